//! Domain-adaptation methods on one engine. A method states its own losses; the engine owns the
//! network, its optimiser, the data streams, checkpoints and logging (docs/design.md).
pub mod adaptsegnet;
pub mod advent;
pub mod adversarial;
pub mod apoda;
pub mod ass;
pub mod extra_stream;
pub mod lse;
pub mod pit;
pub mod self_training;
mod source_only;
pub mod state;
pub mod stylize;
pub mod t2s;

pub mod method;

use crate::config::Config;
use crate::error::{Error, Result};
use burn::prelude::*;
pub use method::{After, Before, DomainBatch, Forward, Method, Needs, Step, Terms};

/// A method as the registry knows it.
struct Entry {
    name: &'static str,
    /// Completes the config for the method: `[method.NAME]` checked against its constants and
    /// filled with their defaults, and whatever else it settles (ASS: which target images the
    /// unlabelled stream leaves to its labelled ones). The resolved config is what the run
    /// directory records.
    resolve: fn(&mut Config, &str) -> Result<()>,
    /// The method, from a resolved config.
    build: fn(&Config, &Device) -> Result<Box<dyn Method>>,
}

/// Every method, by the name `methods = [...]` gives it.
const REGISTRY: &[Entry] = &[
    Entry { name: "source_only", resolve: no_constants, build: |_, _| Ok(Box::new(source_only::SourceOnly)) },
    Entry { name: "oracle", resolve: no_constants, build: |_, _| Ok(Box::new(source_only::Oracle)) },
    Entry {
        name: "adaptsegnet",
        resolve: constants::<adaptsegnet::Params>,
        build: |c, d| Ok(Box::new(adaptsegnet::AdaptSegNet::new(c.method_params("adaptsegnet")?, levels(c), d))),
    },
    Entry {
        name: "advent",
        resolve: constants::<advent::AdvEntParams>,
        build: |c, d| Ok(Box::new(advent::AdvEnt::new(c.method_params("advent")?, levels(c), d))),
    },
    Entry {
        name: "minent",
        resolve: constants::<advent::MinEntParams>,
        build: |c, _| Ok(Box::new(advent::MinEnt { p: c.method_params("minent")? })),
    },
    Entry {
        name: "class_prior",
        resolve: constants::<advent::ClassPriorParams>,
        build: |c, _| Ok(Box::new(advent::ClassPrior::new(c.method_params("class_prior")?))),
    },
    Entry {
        name: "apoda",
        resolve: constants::<apoda::Params>,
        build: |c, d| Ok(Box::new(apoda::Apoda::new(c.method_params("apoda")?, c.model.feature_channels(), d))),
    },
    Entry {
        name: "lse",
        resolve: constants::<lse::Params>,
        build: |c, d| Ok(Box::new(lse::Lse::new(c.method_params("lse")?, c, d)?)),
    },
    Entry {
        name: "ass",
        resolve: ass::Ass::resolve,
        build: |c, d| Ok(Box::new(ass::Ass::new(c.method_params("ass")?, c, d))),
    },
    Entry {
        name: "pit",
        resolve: pit::Pit::resolve,
        build: |c, d| Ok(Box::new(pit::Pit::new(c.method_params("pit")?, c, d))),
    },
    Entry {
        name: "selftrain",
        resolve: constants::<self_training::Params>,
        build: |c, d| Ok(Box::new(self_training::SelfTrain::new(c.method_params("selftrain")?, c, d))),
    },
    Entry {
        name: "t2s",
        resolve: constants::<t2s::Params>,
        build: |c, d| Ok(Box::new(t2s::T2s::new(c.method_params("t2s")?, c, d))),
    },
];

/// The names accepted in `methods = [...]`, in the registry's order.
pub fn names() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|e| e.name)
}

fn no_constants(_: &mut Config, _: &str) -> Result<()> {
    Ok(())
}

fn constants<P: serde::Serialize + serde::de::DeserializeOwned + Default>(cfg: &mut Config, name: &str) -> Result<()> {
    cfg.complete_method_params::<P>(name)
}

/// One discriminator per output level of the network.
fn levels(cfg: &Config) -> usize {
    if cfg.model.multi_level {
        2
    } else {
        1
    }
}

fn entry(name: &str, key: &str) -> Result<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
        Error::config(key, format!("unknown method `{name}`; known: {}", names().collect::<Vec<_>>().join(", ")))
    })
}

/// The config completed for its methods (see `Entry::resolve`); a config resolved before (a
/// resumed run's) comes back unchanged.
pub fn resolve(mut cfg: Config) -> Result<Config> {
    if cfg.methods.is_empty() {
        return Err(Error::config(
            "methods",
            format!("list at least one method; known: {}", names().collect::<Vec<_>>().join(", ")),
        ));
    }
    for table in cfg.method.keys() {
        entry(table, &format!("method.{table}"))?;
    }
    for name in cfg.methods.clone() {
        (entry(&name, "methods")?.resolve)(&mut cfg, &name)?;
    }
    Ok(cfg)
}

/// The methods a resolved config lists, on `device`.
pub fn build(cfg: &Config, device: &Device) -> Result<Vec<Box<dyn Method>>> {
    cfg.methods.iter().map(|name| (entry(name, "methods")?.build)(cfg, device)).collect()
}
