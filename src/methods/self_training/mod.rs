//! The self-training base (DACS/DAFormer style), reusable by methods: an EMA teacher,
//! confidence-weighted target pseudo-labels, ClassMix and photometric augmentation of the mixed
//! images. `selftrain` is this base alone; T2S-DA adds its pull loss on top.
mod ema;
mod mix;
mod params;
mod pseudo;

pub use ema::{ema_coefficient, teacher_template, Ema, Teacher};
pub use mix::{class_mix, class_mix_mask, fit_to, photometric, Mixed};
pub use params::{Params, PseudoWeight};
pub use pseudo::{label_bytes, pseudo_labels, Pseudo};

use super::method::{Method, Needs, Step, Terms};
use crate::config::Config;
use crate::error::Result;
use crate::model::SegNet;
use crate::nn::losses::ce_per_pixel;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Mean over all pixels of weight × CE (ignored pixels contribute 0), as DAFormer reduces it.
pub fn weighted_ce(logits: Tensor<4>, y: Tensor<3, Int>, weight: Tensor<3>) -> Tensor<1> {
    let (nll, _) = ce_per_pixel(logits, y);
    (nll * weight).mean()
}

/// What the mixed-image pass leaves for methods built on the base.
pub struct MixOut {
    pub loss: Tensor<1>,
    /// the student's features of the mixed images
    pub feats: crate::model::Feats,
    pub mixed: Mixed,
    /// [h, w] of the mixed images
    pub size: [usize; 2],
}

/// The self-training base as a method of its own.
pub struct SelfTrain {
    pub p: Params,
    pub teacher: Teacher,
    seed: u64,
    model: crate::model::ModelConfig,
    device: Device,
}

impl SelfTrain {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Self {
        SelfTrain { p, teacher: Ema::new(), seed: cfg.train.seed, model: cfg.model.clone(), device: device.clone() }
    }

    /// An empty network of the right architecture for loading a saved teacher.
    pub fn template(&self) -> Result<SegNet> {
        teacher_template(&self.model, &self.device)
    }

    /// Whether the target pseudo-label losses are on at this iteration.
    pub fn active(&self, it: u64) -> bool {
        it >= self.p.warmup
    }

    /// Update the teacher from the student; returns this iteration's EMA coefficient (for
    /// methods that keep EMAs of their own modules in step with it).
    pub fn update_teacher(&mut self, step: &Step) -> f64 {
        let a = ema_coefficient(self.p.alpha, step.it);
        self.teacher.update(step.net, a);
        a
    }

    /// The mixed-image loss of this iteration (the teacher must be up to date).
    pub fn mix(&mut self, step: &mut Step) -> Result<MixOut> {
        let (src, tgt) = (step.source.expect("source"), step.target.expect("target"));
        let size = tgt.size();
        let (xs, ys) = fit_to(src.x.clone(), src.y.clone().expect("labelled source"), size);
        let pseudo = pseudo_labels(self.teacher.get(), tgt.x.clone().inner(), self.p.pseudo_threshold);
        let ys = label_bytes(ys);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xC1A5_5000);
        rng.set_stream(step.it);
        let mixed = class_mix(&xs, &ys, &tgt.x, &pseudo, self.p.pseudo_threshold, self.p.pseudo_weight, &mut rng);
        let x = photometric(mixed.x.clone(), &self.p, &mut rng);
        let feats = step.net.features(x);
        let logits = crate::nn::losses::upsample(step.net.classify_main(&feats), size);
        let loss = weighted_ce(logits, mixed.y.clone(), mixed.weight.clone()).mul_scalar(self.p.lambda_mix);
        Ok(MixOut { loss, feats, mixed, size })
    }
}

impl Method for SelfTrain {
    fn name(&self) -> &'static str {
        "selftrain"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: true, ..Default::default() }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        self.update_teacher(step);
        if !self.active(step.it) {
            return Ok(vec![]);
        }
        Ok(vec![("mix".to_string(), self.mix(step)?.loss)])
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.teacher.save(dir, "teacher")
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        let like = self.template()?;
        self.teacher.load(dir, "teacher", like)
    }
}
