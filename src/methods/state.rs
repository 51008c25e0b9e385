//! Saving and restoring a method's own modules and optimisers inside a checkpoint directory,
//! as `NAME.bpk` files, and its plain state as JSON, with errors that name the file.
use crate::error::{Error, IoContext, Result};
use crate::optim::ModuleOptimizer;
use burn::module::Module;
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// `v` as compact JSON at `p`.
pub fn save_json<T: Serialize>(v: &T, p: &Path) -> Result<()> {
    std::fs::write(p, serde_json::to_string(v).expect("json")).at(p)
}

/// The JSON at `p`, read as a `T` (a file that does not parse is an error naming it; checking
/// its sizes is the caller's).
pub fn load_json<T: DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).at(p)?;
    serde_json::from_str(&text).map_err(|e| Error::format(p, e.to_string()))
}

pub fn save_module<M: Module>(m: &M, dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(format!("{name}.bpk"));
    m.clone().save_file(&p).map_err(|e| Error::format(&p, e.to_string()))
}

pub fn load_module<M: Module>(like: M, dir: &Path, name: &str) -> Result<M> {
    let p = dir.join(format!("{name}.bpk"));
    like.try_load_file(&p).map_err(|e| Error::format(&p, format!("cannot load {name}: {e}")))
}

pub fn save_optim(o: &ModuleOptimizer, dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(format!("{name}.bpk"));
    o.save(&p).map_err(|e| Error::format(&p, e.to_string()))
}

/// Restore `o` in place (`fresh` builds the empty optimiser the record is loaded into).
pub fn load_optim(
    o: &mut ModuleOptimizer,
    fresh: impl FnOnce() -> ModuleOptimizer,
    dir: &Path,
    name: &str,
) -> Result<()> {
    let p = dir.join(format!("{name}.bpk"));
    let old = std::mem::replace(o, fresh());
    *o = old.load(&p).map_err(|e| Error::format(&p, format!("cannot load {name}: {e}")))?;
    Ok(())
}
