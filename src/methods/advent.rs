//! ADVENT (Vu et al., CVPR 2019): entropy-based adaptation.
//! - MinEnt: minimise the mean normalised entropy of target predictions.
//! - AdvEnt: AdaptSegNet's adversarial scheme with D on the weighted self-information maps
//!   I = −P·log₂P / log₂C (one channel per class).
//!
//! - Class-ratio prior (`class_prior`, the paper's §3.3): a target image's mean probability of
//!   each class should not fall below μ × the class's share of the source labels.
//!
//! Listing several (`methods = ["advent", "minent"]`, `["advent", "class_prior"]`) adds their
//! terms in one run.
use super::adversarial::{Discriminators, Gan};
use super::method::{After, Before, Method, Needs, Step, Terms};
use crate::data::classes::NUM_CLASSES;
use crate::error::Result;
use crate::nn::losses::{entropy_loss, probs, self_information};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdvEntParams {
    /// LAMBDA_ADV_MAIN
    pub lambda_adv_main: f64,
    /// LAMBDA_ADV_AUX
    pub lambda_adv_aux: f64,
    pub gan: Gan,
    /// The discriminator's base width (the reference FCDiscriminator's ndf).
    pub ndf: usize,
}

impl Default for AdvEntParams {
    fn default() -> Self {
        AdvEntParams { lambda_adv_main: 0.001, lambda_adv_aux: 0.0002, gan: Gan::Vanilla, ndf: 64 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MinEntParams {
    /// LAMBDA_ENT_MAIN
    pub lambda_ent_main: f64,
    /// LAMBDA_ENT_AUX
    pub lambda_ent_aux: f64,
}

impl Default for MinEntParams {
    fn default() -> Self {
        MinEntParams { lambda_ent_main: 0.001, lambda_ent_aux: 0.0002 }
    }
}

pub struct AdvEnt {
    p: AdvEntParams,
    d: Discriminators,
}

impl AdvEnt {
    pub fn new(p: AdvEntParams, levels: usize, device: &Device) -> Self {
        let d = Discriminators::output_space_of_width(levels, NUM_CLASSES, p.ndf, p.gan, device);
        AdvEnt { p, d }
    }
}

/// The discriminator's input: weighted self-information of the softmax.
fn entropy_map(logits: Tensor<4>) -> Tensor<4> {
    self_information(probs(logits))
}

impl Method for AdvEnt {
    fn name(&self) -> &'static str {
        "advent"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: true, ..Default::default() }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let (s, t) = (step.source_fwd(), step.target_fwd());
        Ok(self.d.adapt(&s, &t, [self.p.lambda_adv_main, self.p.lambda_adv_aux], "advent", entropy_map))
    }
    fn after_step(&mut self, a: &mut After) -> Result<Vec<(String, f64)>> {
        Ok(self.d.update(a.lr_d, "advent_"))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.d.save(dir)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        self.d.load(dir)
    }
}

pub struct MinEnt {
    pub p: MinEntParams,
}

impl Method for MinEnt {
    fn name(&self) -> &'static str {
        "minent"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, target: true, ..Default::default() }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let t = step.target_fwd();
        let mut terms =
            vec![("ent_main".to_string(), entropy_loss(probs(t.up.main)).mul_scalar(self.p.lambda_ent_main))];
        if let Some(a) = t.up.aux {
            terms.push(("ent_aux".to_string(), entropy_loss(probs(a)).mul_scalar(self.p.lambda_ent_aux)));
        }
        Ok(terms)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClassPriorParams {
    /// Relaxes the prior: a class is held to μ × its source share (the paper's μ = 0.5).
    pub mu: f64,
    /// The term's weight (the paper does not state it; the reference code has no prior).
    pub lambda_cp: f64,
}

impl Default for ClassPriorParams {
    fn default() -> Self {
        ClassPriorParams { mu: 0.5, lambda_cp: 1.0 }
    }
}

/// ADVENT §3.3: entropy minimisation is drawn to the classes the model already favours, and a
/// class the model is unsure of on the target can vanish from its predictions. The prior keeps
/// every class present to some extent, without asking the target to match the source's mix.
pub struct ClassPrior {
    p: ClassPriorParams,
    /// μ × the source class ratio, per class: counted from the source labels before the first
    /// iteration (not when the method is built, so that building reads no data).
    floor: Option<[f64; NUM_CLASSES]>,
}

impl ClassPrior {
    pub fn new(p: ClassPriorParams) -> Self {
        ClassPrior { p, floor: None }
    }
}

/// L_cp = Σ_c max(0, floor_c − E_pixels[P_c]), per image, averaged over the batch.
pub fn class_prior_loss(prob: Tensor<4>, floor: &[f64]) -> Tensor<1> {
    let [n, c, h, w] = prob.dims();
    let mean = prob.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
    let floor: Vec<f32> = floor.iter().map(|&f| f as f32).collect();
    let floor = Tensor::<2>::from_data(TensorData::new(floor, [1, c]), &mean.device()).expand([n, c]);
    (floor - mean).clamp_min(0.0).sum_dim(1).mean()
}

impl Method for ClassPrior {
    fn name(&self) -> &'static str {
        "class_prior"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, target: true, ..Default::default() }
    }
    fn before_step(&mut self, b: &Before) -> Result<Vec<(String, f64)>> {
        if self.floor.is_none() {
            let ratio = crate::data::validate::class_ratio(&b.cfg.source.open()?)?;
            self.floor = Some(ratio.map(|r| self.p.mu * r));
        }
        Ok(vec![])
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let floor = self.floor.as_ref().expect("before_step counts the source classes");
        let t = step.target_fwd();
        Ok(vec![("cp".to_string(), class_prior_loss(probs(t.up.main), floor).mul_scalar(self.p.lambda_cp))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::losses::value;

    #[test]
    fn entropy_loss_by_hand() {
        // p = (0.5, 0.25, 0.25): H = 1.5 bits, normalised by log2(3)
        let d = Device::flex();
        let p = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, 0.25, 0.25], [1, 3, 1, 1]), &d);
        assert!((value(&entropy_loss(p.clone())) - 1.5 / 3f64.log2()).abs() < 1e-6);
        // the map keeps one channel per class: 0.5·1/log2 3, 0.25·2/log2 3 (twice)
        let m: Vec<f32> = self_information(p).into_data().iter::<f32>().collect();
        let want = [0.5 / 3f32.log2(), 0.5 / 3f32.log2(), 0.5 / 3f32.log2()];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn minimising_entropy_sharpens_predictions() {
        let d = Device::flex().autodiff();
        let logits = Tensor::<4>::from_data(TensorData::new(vec![0.3f32, 0.1, -0.2], [1, 3, 1, 1]), &d).require_grad();
        let g = entropy_loss(probs(logits.clone())).backward();
        let grad: Vec<f32> = logits.grad(&g).unwrap().into_data().iter::<f32>().collect();
        // descending the entropy raises the largest logit and lowers the smallest
        assert!(grad[0] < 0.0 && grad[2] > 0.0, "{grad:?}");
    }

    #[test]
    fn the_class_prior_by_hand() {
        // two 1×2 images, 3 classes; floors 0.2, 0.1, 0.05
        let d = Device::flex();
        let p = vec![
            0.9f32, 0.7, 0.1, 0.3, 0.0, 0.0, // image 0: means 0.8, 0.2, 0.0
            0.1, 0.3, 0.2, 0.2, 0.7, 0.5, // image 1: means 0.2, 0.2, 0.6
        ];
        let p = Tensor::<4>::from_data(TensorData::new(p, [2, 3, 1, 2]), &d);
        let l = value(&class_prior_loss(p, &[0.2, 0.1, 0.05]));
        // image 0 misses class 2 by 0.05; image 1 is above every floor
        assert!((l - 0.05 / 2.0).abs() < 1e-6, "{l}");
    }

    #[test]
    fn the_class_prior_raises_a_class_below_its_floor_only() {
        let d = Device::flex().autodiff();
        // class 0 holds both pixels; class 2 is below its floor, class 1 above its own
        let logits = vec![3.0f32, 3.0, 1.0, 1.0, -2.0, -2.0];
        let logits = Tensor::<4>::from_data(TensorData::new(logits, [1, 3, 1, 2]), &d).require_grad();
        // floors μ·p_s with μ = 0.5 and source shares 0.4, 0.1, 0.5
        let floor = [0.2, 0.05, 0.25];
        let g = class_prior_loss(probs(logits.clone()), &floor).backward();
        let grad: Vec<f32> = logits.grad(&g).unwrap().into_data().iter::<f32>().collect();
        // descending raises class 2's logits, lowers the others'
        assert!(grad[4] < 0.0 && grad[5] < 0.0, "{grad:?}");
        assert!(grad[0] > 0.0 && grad[2] > 0.0, "{grad:?}");
        // with every class above its floor, the term is zero and pushes nothing
        assert_eq!(value(&class_prior_loss(probs(logits.detach()), &[0.0; 3])), 0.0);
    }

    #[test]
    fn the_discriminators_width_is_a_constant() {
        let d = Device::flex();
        let widths = |ndf| {
            let a = AdvEnt::new(AdvEntParams { ndf, ..Default::default() }, 2, &d);
            a.d.levels.iter().map(|l| l.d.num_params()).collect::<Vec<_>>()
        };
        let (narrow, reference) = (widths(16), widths(64));
        assert_eq!(narrow.len(), 2);
        // conv weights scale with ndf²: a quarter of the width, about a sixteenth of the weights
        assert!(narrow[0] * 10 < reference[0], "{narrow:?} {reference:?}");
    }
}
