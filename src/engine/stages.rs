//! Stages: an experiment can start from another experiment's result,
//! `[train] init_from = { experiment = "../source_only.toml", checkpoint = "last" }`, as
//! self-training work does (a source-only or adversarial model first, then the method).
//!
//! The stage is trained for the run's seed on the run's data (its `[source]`, `[target]` and
//! `[val]`: one stage file serves every dataset) into `STAGES/<experiment>-<hash>/seed<S>`, where
//! STAGES is the stage root (`segda train --stages`, by default `stages/` beside the run's output)
//! and the hash is of the stage's resolved config without its seed. Every experiment that names
//! the same stage on the same data shares that directory, so a stage is never trained twice; one
//! interrupted is resumed by the next run that needs it. The run's resolved config records the
//! stage's directory (`init_from.run`).
use super::checkpoint;
use crate::config::{Config, InitFrom};
use crate::error::Result;
use crate::{methods, ui};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The stage a config starts from, ready to train: its config and its run directory.
pub struct Pending {
    pub cfg: Config,
    pub dir: PathBuf,
}

/// The run's config resolved by its methods, and the stage it starts from (if any). The stage is
/// located first, on the data as the user declared it: a method may rewrite the run's data
/// (ASS streams only the target images it does not label), which the stage never sees, so every
/// experiment naming the same stage on the same data shares it.
pub fn resolve(mut cfg: Config, stages: &Path) -> Result<(Config, Option<Pending>)> {
    let stage = locate(&mut cfg, stages)?;
    Ok((methods::resolve(cfg)?, stage))
}

/// Finds the stage `cfg` starts from (if any) and records its run directory in `cfg`.
fn locate(cfg: &mut Config, stages: &Path) -> Result<Option<Pending>> {
    let Some(InitFrom::Stage(stage)) = &mut cfg.train.init_from else { return Ok(None) };
    let mut sets = stage.set.clone();
    sets.push(format!("train.seed={}", cfg.train.seed));
    let mut stage_cfg = Config::load(&stage.experiment, &sets)?;
    stage_cfg.source = cfg.source.clone();
    stage_cfg.target = cfg.target.clone();
    stage_cfg.val = cfg.val.clone();
    let stage_cfg = methods::resolve(stage_cfg)?;
    let dir = stages.join(id(&stage.experiment, &stage_cfg)).join(format!("seed{}", cfg.train.seed));
    stage.run = Some(dir.clone());
    Ok(Some(Pending { cfg: stage_cfg, dir }))
}

impl Pending {
    /// Whether the stage's run has reached its end.
    pub fn finished(&self) -> bool {
        checkpoint::finished(&self.dir)
    }

    /// Waits while another process (a sweep of another method, say) trains this stage.
    pub fn wait_while_busy(&self) {
        let mut waiting = false;
        while let Some(pid) = super::lock::holder(&self.dir) {
            if !waiting {
                ui::note(&format!("waiting for process {pid}, which is training the stage {}", self.dir.display()));
                waiting = true;
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
}

/// `<experiment's file stem>-<8 hex digits of the SHA-256 of its resolved config, seed 0>`.
fn id(experiment: &Path, cfg: &Config) -> String {
    let mut c = cfg.clone();
    c.train.seed = 0;
    let digest = Sha256::digest(c.to_toml().as_bytes());
    let stem = experiment.file_stem().map_or("stage".into(), |s| s.to_string_lossy().into_owned());
    format!("{stem}-{}", digest.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_that_rewrites_the_target_shares_the_stage_of_the_others() {
        let stages = Path::new("runs/stages");
        let stage_of = |file: &str| {
            let cfg = Config::load(Path::new(file), &[]).unwrap();
            let (resolved, stage) = resolve(cfg, stages).unwrap();
            (resolved, stage.unwrap().dir)
        };
        let (so_cont, so_cont_stage) = stage_of("configs/synth/adapt/so_cont.toml");
        let (ass, ass_stage) = stage_of("configs/synth/adapt/ass.toml");
        // ASS's run streams the unlabelled rest of the target; its stage does not
        assert_ne!(ass.target, so_cont.target);
        assert_eq!(ass_stage, so_cont_stage);
    }
}
