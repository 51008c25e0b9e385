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
use super::method::{stat, After, Before, Method, Needs, Step, Terms};
use super::state::{load_json, save_json};
use crate::data::classes::NUM_CLASSES;
use crate::error::{Error, Result};
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
    /// Measure which classes the prior holds up, against the target's labels when it has them
    /// (a diagnostic; no loss reads them): logs `stat/cp_short` (classes below their floor, per
    /// image) and `stat/cp_short_absent` (% of those the image's labels do not contain).
    pub measure: bool,
}

impl Default for ClassPriorParams {
    fn default() -> Self {
        ClassPriorParams { mu: 0.5, lambda_cp: 1.0, measure: false }
    }
}

/// ADVENT §3.3: entropy minimisation is drawn to the classes the model already favours, and a
/// class the model is unsure of on the target can vanish from its predictions. The prior keeps
/// every class present to some extent, without asking the target to match the source's mix.
pub struct ClassPrior {
    p: ClassPriorParams,
    /// The source class ratio: counted from the source labels before the first iteration (not
    /// when the method is built, so that building reads no data), and kept with the run's state
    /// so that a resumed run does not count again.
    ratio: Option<[f64; NUM_CLASSES]>,
    /// With `measure`: the last batch's (image, class) pairs below the floor, per image, and the
    /// share of them whose class the image does not contain (when the target has labels).
    short: Option<(f64, Option<f64>)>,
}

impl ClassPrior {
    pub fn new(p: ClassPriorParams) -> Self {
        ClassPrior { p, ratio: None, short: None }
    }
}

/// Which classes each image holds below its floor, from the images' mean probabilities ([N·K]
/// row-major).
pub fn below_floor(mean: &[f32], floor: &[f64]) -> Vec<Vec<bool>> {
    mean.chunks(floor.len()).map(|m| m.iter().zip(floor).map(|(&p, &f)| (p as f64) < f).collect()).collect()
}

/// The (image, class) pairs below the floor per image, and the percentage of them whose class
/// has no pixel in the image's `labels` (one slice per image; None without pairs or labels).
pub fn shortfall(short: &[Vec<bool>], labels: Option<&[&[i64]]>) -> (f64, Option<f64>) {
    let pairs: usize = short.iter().map(|s| s.iter().filter(|&&b| b).count()).sum();
    let absent = labels.filter(|_| pairs > 0).map(|labels| {
        let mut absent = 0usize;
        for (s, l) in short.iter().zip(labels) {
            let present = crate::data::classes::classes_in(l, 0.0);
            absent += (0..s.len()).filter(|&c| s[c] && !present[c]).count();
        }
        100.0 * absent as f64 / pairs as f64
    });
    (pairs as f64 / short.len().max(1) as f64, absent)
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
        Needs { source_ce: true, target: true, target_labels: self.p.measure, ..Default::default() }
    }
    fn before_step(&mut self, b: &Before) -> Result<Vec<(String, f64)>> {
        if self.ratio.is_none() {
            self.ratio = Some(crate::data::validate::class_ratio(&b.cfg.source.open()?)?);
        }
        Ok(vec![])
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let ratio = self.ratio.expect("before_step counts the source classes");
        let floor = &ratio.map(|r| self.p.mu * r);
        let prob = probs(step.target_fwd().up.main);
        if self.p.measure {
            let [n, c, h, w] = prob.dims();
            let mean: Vec<f32> =
                prob.clone().detach().reshape([n, c, h * w]).mean_dim(2).into_data().iter::<f32>().collect();
            let labels: Option<Vec<i64>> =
                step.target.and_then(|b| b.y.clone()).map(|y| y.into_data().iter::<i64>().collect());
            let per_image: Option<Vec<&[i64]>> = labels.as_ref().map(|l| l.chunks(l.len() / n).collect());
            self.short = Some(shortfall(&below_floor(&mean, floor), per_image.as_deref()));
        }
        Ok(vec![("cp".to_string(), class_prior_loss(prob, floor).mul_scalar(self.p.lambda_cp))])
    }
    fn after_step(&mut self, _: &mut After) -> Result<Vec<(String, f64)>> {
        let Some((short, absent)) = self.short else { return Ok(vec![]) };
        let mut out = vec![(stat("cp_short"), short)];
        out.extend(absent.map(|a| (stat("cp_short_absent"), a)));
        Ok(out)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        let Some(ratio) = &self.ratio else { return Ok(()) };
        let p = dir.join(RATIO_FILE);
        save_json(&ratio.to_vec(), &p)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        let p = dir.join(RATIO_FILE);
        if !p.is_file() {
            return Ok(());
        }
        let v: Vec<f64> = load_json(&p)?;
        let n = v.len();
        let ratio: [f64; NUM_CLASSES] =
            v.try_into().map_err(|_| Error::format(&p, format!("expected {NUM_CLASSES} class shares, found {n}")))?;
        self.ratio = Some(ratio);
        Ok(())
    }
}

/// Where the source class ratio is kept with the method's state.
const RATIO_FILE: &str = "source_class_ratio.json";

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
    fn the_prior_is_measured_against_the_images_labels_only_when_asked() {
        // two images, 3 classes, floors 0.2 each: image 0 short of classes 1 and 2, image 1 of 0
        let short = below_floor(&[0.8, 0.15, 0.05, 0.1, 0.5, 0.4], &[0.2; 3]);
        assert_eq!(short, vec![vec![false, true, true], vec![true, false, false]]);
        // image 0 contains class 1 but not 2; image 1 contains class 0: 1 of 3 pairs absent
        let labels: [&[i64]; 2] = [&[0, 1, 1, 255], &[0, 2, 2, 2]];
        let (per_image, absent) = shortfall(&short, Some(&labels));
        assert_eq!(per_image, 1.5);
        assert!((absent.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(shortfall(&short, None), (1.5, None), "no labels, nothing to compare");
        assert_eq!(shortfall(&[vec![false; 3]], Some(&labels[..1])), (0.0, None), "no pair held up");
        let needs = |measure| ClassPrior::new(ClassPriorParams { measure, ..Default::default() }).needs();
        assert!(needs(true).target_labels && !needs(false).target_labels);
    }

    #[test]
    fn the_source_class_ratio_is_kept_with_the_state_and_a_broken_file_is_named() {
        let dir = std::env::temp_dir().join(format!("segda-cp-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = ClassPrior::new(ClassPriorParams::default());
        a.save(&dir).unwrap();
        assert!(!dir.join(RATIO_FILE).exists(), "nothing counted, nothing saved");
        let mut ratio = [0.0; NUM_CLASSES];
        ratio[0] = 0.75;
        ratio[13] = 0.25;
        a.ratio = Some(ratio);
        a.save(&dir).unwrap();
        let mut b = ClassPrior::new(ClassPriorParams::default());
        b.load(&dir).unwrap();
        assert_eq!(b.ratio, Some(ratio), "a resumed run does not count again");
        std::fs::write(dir.join(RATIO_FILE), "[0.5, 0.5]").unwrap();
        let e = b.load(&dir).unwrap_err().to_string();
        assert!(e.contains(RATIO_FILE) && e.contains("found 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
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
