//! Saving and restoring a method's own modules and optimisers inside a checkpoint directory,
//! as `NAME.bpk` files, with errors that name the file.
use crate::error::{Error, Result};
use crate::optim::ModuleOptimizer;
use burn::module::Module;
use std::path::Path;

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
