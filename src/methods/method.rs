//! The Method contract: what the engine hands a method each iteration and what a method gives
//! back (docs/design.md).
use crate::config::Config;
use crate::error::Result;
use crate::model::{Feats, Logits, SegNet};
use crate::nn::losses::{cross_entropy, upsample};
use burn::prelude::*;
use std::path::Path;

/// What a method needs from the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Supervised CE on labelled source images.
    pub source_ce: bool,
    /// Supervised CE on labelled target images (the oracle; semi-supervised methods).
    pub target_ce: bool,
    /// Source images flow through the network (CE or features for the method).
    pub source: bool,
    /// Target images flow through the network.
    pub target: bool,
    /// The target's labels, where it has them, are loaded for a method's diagnostics (no loss
    /// reads them; an unlabelled target is not an error).
    pub target_labels: bool,
}

impl Needs {
    pub fn union(self, o: Needs) -> Needs {
        Needs {
            source_ce: self.source_ce || o.source_ce,
            target_ce: self.target_ce || o.target_ce,
            source: self.source || o.source || self.source_ce || o.source_ce,
            target: self.target || o.target || self.target_ce || o.target_ce,
            target_labels: self.target_labels || o.target_labels,
        }
    }
}

/// One domain's batch on the training device.
#[derive(Clone, Debug)]
pub struct DomainBatch {
    pub x: Tensor<4>,
    /// trainIds (255 = ignore), when the stream is labelled.
    pub y: Option<Tensor<3, Int>>,
    pub names: Vec<String>,
    pub indices: Vec<usize>,
}

impl DomainBatch {
    /// A loader's batch on `device`.
    pub fn upload(b: crate::data::loader::Batch, device: &Device) -> DomainBatch {
        let x = Tensor::<4>::from_data(TensorData::new(b.images.clone(), [b.n, 3, b.h, b.w]), device);
        let y = b.label_ids().map(|v| Tensor::<3, Int>::from_data(TensorData::new(v, [b.n, b.h, b.w]), device));
        DomainBatch { x, y, names: b.names, indices: b.indices }
    }

    pub fn size(&self) -> [usize; 2] {
        let [_, _, h, w] = self.x.dims();
        [h, w]
    }
}

/// A network pass: features, logits at feature resolution, and logits upsampled to the input.
#[derive(Clone, Debug)]
pub struct Forward {
    pub feats: Feats,
    pub logits: Logits,
    pub up: Logits,
}

impl Forward {
    pub fn run(net: &SegNet, x: Tensor<4>) -> Forward {
        let [_, _, h, w] = x.dims();
        let feats = net.features(x);
        let logits = net.classify(&feats);
        let up = Logits {
            main: upsample(logits.main.clone(), [h, w]),
            aux: logits.aux.clone().map(|a| upsample(a, [h, w])),
        };
        Forward { feats, logits, up }
    }

    /// CE on main + `aux_weight` × CE on aux (the multi-level segmentation loss).
    pub fn seg_loss(&self, y: &Tensor<3, Int>, aux_weight: f64) -> Tensor<1> {
        let mut l = cross_entropy(self.up.main.clone(), y.clone());
        if let Some(a) = &self.up.aux {
            l = l + cross_entropy(a.clone(), y.clone()).mul_scalar(aux_weight);
        }
        l
    }
}

/// The iteration as a method sees it. Forward passes are computed once, on first use, and
/// shared by every method of a composition.
pub struct Step<'a> {
    pub net: &'a SegNet,
    pub it: u64,
    pub seed: u64,
    pub source: Option<&'a DomainBatch>,
    pub target: Option<&'a DomainBatch>,
    src_fwd: Option<Forward>,
    tgt_fwd: Option<Forward>,
}

impl<'a> Step<'a> {
    pub fn new(
        net: &'a SegNet,
        it: u64,
        seed: u64,
        source: Option<&'a DomainBatch>,
        target: Option<&'a DomainBatch>,
    ) -> Self {
        Step { net, it, seed, source, target, src_fwd: None, tgt_fwd: None }
    }

    pub fn source_fwd(&mut self) -> Forward {
        let b = self.source.expect("method declared Needs::source");
        self.src_fwd.get_or_insert_with(|| Forward::run(self.net, b.x.clone())).clone()
    }

    pub fn target_fwd(&mut self) -> Forward {
        let b = self.target.expect("method declared Needs::target");
        self.tgt_fwd.get_or_insert_with(|| Forward::run(self.net, b.x.clone())).clone()
    }
}

/// What a method may use before an iteration (e.g. to start a self-training round): the
/// network in inference mode is `net.valid()`.
pub struct Before<'a> {
    pub it: u64,
    pub net: &'a SegNet,
    /// The run directory (methods keep their artefacts in `RUN/<method>/`).
    pub run: &'a Path,
    /// The plain (non-autodiff) device, for inference.
    pub device: &'a Device,
    pub cfg: &'a Config,
}

/// What methods may use after the network's update.
pub struct After<'a> {
    pub it: u64,
    /// The discriminators' learning rate for this iteration (poly-decayed `train.lr_d`).
    pub lr_d: f64,
    /// The network's base learning rate for this iteration (heads use × `train.head_lr_mult`).
    pub lr: f64,
    /// What is left of the iteration's gradients after the network took its own: the gradients
    /// of a method's trainable modules (e.g. a projection head) that took part in its terms.
    pub grads: Option<&'a mut burn::tensor::Gradients>,
}

pub type Terms = Vec<(String, Tensor<1>)>;

/// The logged name of a scalar that is not a loss (a coverage, a class weight): the report
/// charts these apart from the losses.
pub fn stat(name: &str) -> String {
    format!("stat/{name}")
}

pub trait Method {
    fn name(&self) -> &'static str;
    fn needs(&self) -> Needs;
    /// The method's own generator loss terms for this iteration.
    fn losses(&mut self, step: &mut Step) -> Result<Terms>;
    /// Called before every iteration; returns scalars to log (a round's statistics, say).
    fn before_step(&mut self, _b: &Before) -> Result<Vec<(String, f64)>> {
        Ok(vec![])
    }
    /// The method's schedule is complete (e.g. LSE after its last round): stop training.
    fn finished(&self) -> bool {
        false
    }
    /// A window [start, end) of iterations over which the poly schedule restarts instead of
    /// running over `train.max_iters` (LSE's rounds, as its reference code schedules them).
    fn lr_window(&self) -> Option<(u64, u64)> {
        None
    }
    /// Evaluate after this iteration (e.g. at the end of a self-training round).
    fn eval_now(&self) -> bool {
        false
    }
    /// Update the method's own modules (discriminators, EMA teachers) after the network's step;
    /// returns scalars to log: their losses by name, anything else named with [`stat`].
    fn after_step(&mut self, _after: &mut After) -> Result<Vec<(String, f64)>> {
        Ok(vec![])
    }
    /// Persist / restore the method's state (auxiliary modules, optimisers) in a checkpoint.
    fn save(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    fn load(&mut self, _dir: &Path) -> Result<()> {
        Ok(())
    }
}
