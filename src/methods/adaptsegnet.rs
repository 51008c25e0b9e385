//! AdaptSegNet (Tsai et al., CVPR 2018): output-space adversarial adaptation. A discriminator
//! per output level tells softmax maps of source images from those of target images; the
//! segmentation network learns to make target maps look like source ones.
use super::adversarial::{Discriminators, Gan};
use super::method::{After, Method, Needs, Step, Terms};
use crate::error::Result;
use crate::nn::losses::probs;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// λ_adv of the main output (LAMBDA_ADV_TARGET2).
    pub lambda_adv_main: f64,
    /// λ_adv of the auxiliary output (LAMBDA_ADV_TARGET1).
    pub lambda_adv_aux: f64,
    pub gan: Gan,
}

impl Default for Params {
    fn default() -> Self {
        Params { lambda_adv_main: 0.001, lambda_adv_aux: 0.0002, gan: Gan::Vanilla }
    }
}

pub struct AdaptSegNet {
    p: Params,
    d: Discriminators,
}

impl AdaptSegNet {
    pub fn new(p: Params, levels: usize, device: &Device) -> Self {
        let d = Discriminators::output_space(levels, crate::data::classes::NUM_CLASSES, p.gan, device);
        AdaptSegNet { p, d }
    }
}

impl Method for AdaptSegNet {
    fn name(&self) -> &'static str {
        "adaptsegnet"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: true, ..Default::default() }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let (s, t) = (step.source_fwd(), step.target_fwd());
        // D sees softmax maps; the network is pushed to make target maps look like source ones
        Ok(self.d.adapt(&s, &t, [self.p.lambda_adv_main, self.p.lambda_adv_aux], "adv", probs))
    }
    fn after_step(&mut self, a: &mut After) -> Result<Vec<(String, f64)>> {
        Ok(self.d.update(a.lr_d, ""))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.d.save(dir)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        self.d.load(dir)
    }
}
