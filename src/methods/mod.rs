//! Domain-adaptation methods on one engine. A method states its own losses; the engine owns the
//! network, its optimiser, the data streams, checkpoints and logging (docs/design.md).
pub mod adaptsegnet;
pub mod adversarial;
pub mod advent;
pub mod apoda;
pub mod extra_stream;
pub mod ass;
pub mod lse;
pub mod pit;
pub mod self_training;
pub mod state;
mod source_only;
pub mod stylize;
pub mod t2s;

pub mod method;

use crate::config::Config;
use crate::error::{Error, Result};
use burn::prelude::*;
pub use method::{After, Before, DomainBatch, Forward, Method, Needs, Step, Terms};

/// Names accepted in `methods = [...]`.
pub const KNOWN: &[&str] = &["source_only", "oracle", "adaptsegnet", "advent", "minent", "apoda", "lse", "ass", "pit", "selftrain", "t2s"];

/// Build the methods a config lists (their constants are read from `[method.NAME]`).
pub fn build(cfg: &mut Config, device: &Device) -> Result<Vec<Box<dyn Method>>> {
    if cfg.methods.is_empty() {
        return Err(Error::config("methods", format!("list at least one method; known: {}", KNOWN.join(", "))));
    }
    let unknown_tables: Vec<&String> = cfg.method.keys().filter(|k| !KNOWN.contains(&k.as_str())).collect();
    if let Some(k) = unknown_tables.first() {
        return Err(Error::config(format!("method.{k}"), format!("unknown method; known: {}", KNOWN.join(", "))));
    }
    let names = cfg.methods.clone();
    // one discriminator per output level of the network
    let levels = if cfg.model.multi_level { 2 } else { 1 };
    let mut out: Vec<Box<dyn Method>> = Vec::new();
    for name in &names {
        let m: Box<dyn Method> = match name.as_str() {
            "source_only" => Box::new(source_only::SourceOnly),
            "oracle" => Box::new(source_only::Oracle),
            "adaptsegnet" => Box::new(adaptsegnet::AdaptSegNet::new(cfg.method_params(name)?, levels, device)),
            "advent" => Box::new(advent::AdvEnt::new(cfg.method_params(name)?, levels, device)),
            "minent" => Box::new(advent::MinEnt { p: cfg.method_params(name)? }),
            "selftrain" => Box::new(self_training::SelfTrain::new(cfg.method_params(name)?, cfg, device)),
            "t2s" => Box::new(t2s::T2s::new(cfg.method_params(name)?, cfg, device)),
            "pit" => Box::new(pit::Pit::new(cfg.method_params(name)?, cfg, device)),
            "ass" => {
                let p: ass::Params = cfg.method_params(name)?;
                let m = ass::Ass::new(p.clone(), cfg, device);
                // a target that cannot be opened is reported by the trainer, which opens it next
                ass::Ass::unlabelled_rest(&p, &mut cfg.target, |t| Ok(t.open().map_or(usize::MAX, |d| d.len())))?;
                Box::new(m)
            }
            "lse" => Box::new(lse::Lse::new(cfg.method_params(name)?, cfg, device)?),
            "apoda" => Box::new(apoda::Apoda::new(cfg.method_params(name)?, cfg.model.feature_channels(), device)),
            other => return Err(Error::config("methods", format!("unknown method `{other}`; known: {}", KNOWN.join(", ")))),
        };
        out.push(m);
    }
    Ok(out)
}
