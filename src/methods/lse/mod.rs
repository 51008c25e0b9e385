//! LSE (seed 003): learning from scale-invariant examples — self-training in rounds
//! (Subhani & Ali, ECCV 2020; reference code MNaseerSubhani/LSE; docs/methods/lse.md).
//!
//! Round r (proportion p = p_start + r·p_step ≤ p_max): predict every target image, keep per
//! class the top-p images by the class's mean confidence, threshold each class at the
//! normalised entropy of its first rejected image, write pseudo-labels, then train on random
//! crops of the selected images enlarged ×2 (the scale-invariant examples) with CE + β·focal.
mod examples;
mod params;
mod round;
mod selection;

pub use examples::ce_focal;
pub use params::Params;
use round::{make_round, TargetImages};
pub use selection::{image_stats, pseudo_label, select, thresholds, ImageStats, Selection};

use super::extra_stream::ExtraStream;
use super::method::{Before, Forward, Method, Needs, Step, Terms};
use super::state::load_json;
use crate::config::Config;
use crate::data::Dataset;
use crate::error::{IoContext, Result};
use crate::model::SegNet;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the schedule stands (saved in checkpoints).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct State {
    started: bool,
    finished: bool,
    round: usize,
    #[serde(default)]
    round_start: u64,
    round_end: u64,
    selected: usize,
    loader_pos: u64,
}

pub struct Lse {
    p: Params,
    st: State,
    /// The target training set, opened on first use.
    target_cfg: crate::config::DataConfig,
    target: Option<Arc<Dataset>>,
    resize: Option<[u32; 2]>,
    /// The round's scale-invariant examples.
    examples: ExtraStream,
    eval_now: bool,
    /// Resumed in the middle of a round: its examples reopen at this position in the next
    /// `before_step` (which knows the run directory).
    reopen: Option<u64>,
}

impl Lse {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Result<Self> {
        Ok(Lse {
            p,
            st: State::default(),
            target_cfg: cfg.target.clone(),
            target: None,
            resize: cfg.target.resize,
            examples: ExtraStream::new(cfg, device),
            eval_now: false,
            reopen: None,
        })
    }

    fn target(&mut self) -> Result<Arc<Dataset>> {
        if self.target.is_none() {
            self.target = Some(Arc::new(self.target_cfg.open()?));
        }
        Ok(self.target.clone().expect("opened"))
    }

    fn proportion(&self, round: usize) -> f64 {
        self.p.p_start + self.p.p_step * round as f64
    }

    fn round_dir(run: &Path, round: usize) -> PathBuf {
        run.join("lse").join(format!("round_{round}"))
    }

    /// The stream of scale-invariant examples of a round.
    fn open_round(&mut self, dir: &Path, position: u64) -> Result<()> {
        examples::open(&mut self.examples, &self.p, self.resize, self.st.round, dir, position)
    }

    /// Select, threshold and write the pseudo-labels of round `self.st.round`.
    fn make_round(&mut self, net: &SegNet, run: &Path, device: &Device) -> Result<Vec<(String, f64)>> {
        let p = self.proportion(self.st.round);
        let dir = Self::round_dir(run, self.st.round);
        let target = self.target()?;
        let images = TargetImages { ds: &target, resize: self.resize, normalize: self.examples.normalize };
        let (scalars, selected) = make_round(&self.p, self.st.round, p, &images, net, &dir, device)?;
        self.st.selected = selected;
        Ok(scalars)
    }
}

impl Method for Lse {
    fn name(&self) -> &'static str {
        "lse"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, ..Default::default() }
    }
    fn before_step(&mut self, b: &Before) -> Result<Vec<(String, f64)>> {
        self.eval_now = false;
        if let Some(pos) = self.reopen.take() {
            self.open_round(&Self::round_dir(b.run, self.st.round), pos)?;
        }
        if self.st.finished || (self.st.started && b.it < self.st.round_end) {
            return Ok(vec![]);
        }
        if self.st.started {
            self.st.round += 1;
        }
        if self.proportion(self.st.round) > self.p.p_max + 1e-9 {
            self.st.finished = true;
            self.examples.close();
            return Ok(vec![]);
        }
        self.st.started = true;
        let scalars = self.make_round(b.net, b.run, b.device)?;
        let iters = (self.st.selected as u64 * self.p.epochs_per_round * self.p.patches_per_image
            / self.examples.batch.max(1) as u64)
            .max(1);
        self.st.round_start = b.it;
        self.st.round_end = b.it + iters;
        self.st.loader_pos = 0;
        self.open_round(&Self::round_dir(b.run, self.st.round), 0)?;
        crate::ui::note(&format!(
            "LSE round {}: p = {:.2}, {} images selected, {iters} iterations",
            self.st.round,
            self.proportion(self.st.round),
            self.st.selected
        ));
        Ok(scalars)
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        if !self.examples.is_open() {
            return Ok(vec![]);
        }
        let (x, y) = self.examples.next("LSE's scale-invariant examples")?;
        self.st.loader_pos = self.examples.position;
        self.eval_now = step.it + 1 == self.st.round_end;
        let f = Forward::run(step.net, x);
        let mut l = ce_focal(f.up.main, y.clone(), self.p.focal_weight, self.p.focal_gamma);
        if let Some(a) = f.up.aux {
            l = l + ce_focal(a, y, self.p.focal_weight, self.p.focal_gamma).mul_scalar(self.examples.aux_weight);
        }
        Ok(vec![("lse_target".to_string(), l.mul_scalar(self.p.lambda_target))])
    }
    fn finished(&self) -> bool {
        self.st.finished
    }
    fn lr_window(&self) -> Option<(u64, u64)> {
        (self.p.lr_per_round && self.st.started).then_some((self.st.round_start, self.st.round_end))
    }
    fn eval_now(&self) -> bool {
        self.eval_now
    }
    fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("lse.json");
        std::fs::write(&p, serde_json::to_string_pretty(&self.st).expect("json")).at(&p)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        let p = dir.join("lse.json");
        self.st = load_json(&p)?;
        if self.st.started && !self.st.finished {
            self.reopen = Some(self.st.loader_pos);
        }
        Ok(())
    }
}
