//! Checkpoints: written into a temporary directory and swapped in by rename, so at every
//! moment a complete checkpoint exists; `last` carries everything exact resume needs.
use crate::error::{Error, IoContext, Result};
use crate::methods::Method;
use crate::model::SegNet;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the run stands (iteration, data stream positions, best score so far).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// Iterations completed.
    pub iter: u64,
    pub source_pos: u64,
    pub target_pos: u64,
    pub best_miou: Option<f64>,
    pub best_iter: Option<u64>,
    /// The run reached its end (not stopped by Ctrl-C or a limit).
    #[serde(default)]
    pub finished: bool,
    pub version: String,
}

pub fn dir(run: &Path, name: &str) -> PathBuf {
    run.join("checkpoints").join(name)
}

/// Write checkpoint `name` (e.g. "last", "best") of the run. `optim` and methods are optional
/// (the best checkpoint holds weights only).
pub fn save(
    run: &Path,
    name: &str,
    net: &SegNet,
    optim: Option<&ModuleOptimizer>,
    methods: &[Box<dyn Method>],
    progress: &Progress,
) -> Result<()> {
    let root = run.join("checkpoints");
    let tmp = root.join(format!(".tmp-{name}"));
    let old = root.join(format!(".old-{name}"));
    let dst = root.join(name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    // `valid()` synchronises pending BatchNorm statistics before they are written
    let model = tmp.join("model.bpk");
    net.valid().save_file(&model).map_err(|e| Error::format(&model, format!("cannot save model: {e}")))?;
    if let Some(o) = optim {
        let p = tmp.join("optim.bpk");
        o.save(&p).map_err(|e| Error::format(&p, format!("cannot save optimiser: {e}")))?;
    }
    for m in methods {
        let d = tmp.join("methods").join(m.name());
        std::fs::create_dir_all(&d).at(&d)?;
        m.save(&d)?;
    }
    let p = tmp.join("progress.json");
    std::fs::write(&p, serde_json::to_string_pretty(progress).expect("serialisable")).at(&p)?;
    sync_dir(&tmp);
    if dst.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).at(&old)?;
        }
        std::fs::rename(&dst, &old).at(&dst)?;
    }
    std::fs::rename(&tmp, &dst).at(&tmp)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).at(&old)?;
    }
    sync_dir(&root);
    Ok(())
}

fn sync_dir(d: &Path) {
    if let Ok(entries) = std::fs::read_dir(d) {
        for e in entries.flatten() {
            if let Ok(f) = std::fs::File::open(e.path()) {
                let _ = f.sync_all();
            }
        }
    }
    if let Ok(f) = std::fs::File::open(d) {
        let _ = f.sync_all();
    }
}

/// The complete checkpoint `name`, or the previous one if a crash hit between the renames.
pub fn find(run: &Path, name: &str) -> Option<PathBuf> {
    let root = run.join("checkpoints");
    [root.join(name), root.join(format!(".old-{name}"))].into_iter().find(|d| d.join("progress.json").is_file())
}

/// Whether the run in `run` has reached its end (its `last` checkpoint says so).
pub fn finished(run: &Path) -> bool {
    find(run, "last").and_then(|c| read_progress(&c).ok()).is_some_and(|p| p.finished)
}

pub fn read_progress(ckpt: &Path) -> Result<Progress> {
    let p = ckpt.join("progress.json");
    let text = std::fs::read_to_string(&p).at(&p)?;
    serde_json::from_str(&text).map_err(|e| Error::format(&p, format!("corrupt progress file: {e}")))
}

pub fn load_model(net: SegNet, ckpt: &Path) -> Result<SegNet> {
    let p = ckpt.join("model.bpk");
    net.try_load_file(&p).map_err(|e| Error::format(&p, format!("cannot load model weights: {e}")))
}

pub fn load_optim(o: ModuleOptimizer, ckpt: &Path) -> Result<ModuleOptimizer> {
    let p = ckpt.join("optim.bpk");
    o.load(&p).map_err(|e| Error::format(&p, format!("cannot load optimiser state: {e}")))
}

/// Accept a run dir, a checkpoint dir or a .bpk file; return the model file.
pub fn resolve_weights(p: &Path) -> Result<PathBuf> {
    let candidates = [
        p.to_path_buf(),
        p.join("model.bpk"),
        p.join("checkpoints/best/model.bpk"),
        p.join("checkpoints/last/model.bpk"),
    ];
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| Error::format(p, "no weights here (expected a .bpk, a checkpoint dir or a run dir)"))
}
