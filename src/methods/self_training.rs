//! The self-training base (DACS/DAFormer style), reusable by methods: an EMA teacher,
//! confidence-weighted target pseudo-labels, ClassMix and photometric augmentation of the mixed
//! images. `selftrain` is this base alone; T2S-DA adds its pull loss on top.
use super::method::{Method, Needs, Step, Terms};
use crate::config::Config;
use crate::error::Result;
use crate::nn::losses::ce_per_pixel;
use crate::model::SegNet;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How target pixels of the mixed image are weighted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PseudoWeight {
    /// Every pixel, weighted by its image's share of confident pixels (DAFormer, DACS).
    #[default]
    Image,
    /// Only pixels at least `pseudo_threshold` confident, weight 1; the rest ignored (the
    /// FixMatch/CBST-style hard threshold): a weak teacher's uncertain pixels cannot spread.
    Pixel,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// EMA coefficient of the teacher (ramped as min(1 − 1/(it + 1), alpha)).
    pub alpha: f64,
    /// Pixels at least this confident count towards an image's pseudo-label weight.
    pub pseudo_threshold: f64,
    pub pseudo_weight: PseudoWeight,
    /// Weight of the mixed-image loss.
    pub lambda_mix: f64,
    /// Colour jitter strength (brightness, contrast, saturation) and its probability.
    pub jitter: f64,
    pub jitter_p: f64,
    /// Gaussian blur probability (σ drawn in [0.15, 1.15] pixels).
    pub blur_p: f64,
    /// Iterations of source-only training (the teacher follows) before target pseudo-labels are
    /// used: short schedules from ImageNet weights otherwise reinforce the first, poor labels.
    pub warmup: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { alpha: 0.999, pseudo_threshold: 0.968, pseudo_weight: PseudoWeight::Image, lambda_mix: 1.0, jitter: 0.2, jitter_p: 0.8, blur_p: 0.5, warmup: 0 }
    }
}

/// An EMA copy of a module in inference mode, θ_T ← a·θ_T + (1 − a)·θ_S (the mean teacher).
pub struct Ema<M> {
    pub net: Option<M>,
}

/// The EMA teacher of the segmentation network.
pub type Teacher = Ema<SegNet>;

#[derive(Default)]
struct Collect(Vec<Tensor<1>>);
impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let t = p.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend<'a> {
    student: &'a [Tensor<1>],
    next: usize,
    a: f64,
}
impl ModuleMapper for Blend<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let s = self.student[self.next].clone();
        self.next += 1;
        let a = self.a;
        p.map(|t| {
            let dims = t.dims();
            t.mul_scalar(a) + s.reshape(dims).mul_scalar(1.0 - a)
        })
    }
}

/// An empty network of `model`'s architecture in inference mode, for loading a saved teacher.
pub fn teacher_template(model: &crate::model::ModelConfig, device: &Device) -> Result<SegNet> {
    Ok(SegNet::new(model, device)?.valid())
}

/// The teacher's coefficient at iteration `it` (DAFormer's ramp).
pub fn ema_coefficient(alpha: f64, it: u64) -> f64 {
    (1.0 - 1.0 / (it as f64 + 1.0)).min(alpha)
}

impl<M: Module> Ema<M> {
    pub fn new() -> Self {
        Ema { net: None }
    }

    /// Update from the student (first call: a copy of it; a = 1 afterwards: frozen, nothing to do).
    pub fn update(&mut self, student: &M, a: f64) {
        if a >= 1.0 && self.net.is_some() {
            return;
        }
        let s = student.valid();
        self.net = Some(match self.net.take() {
            None => s,
            Some(t) => {
                let mut c = Collect::default();
                s.visit(&mut c);
                t.map(&mut Blend { student: &c.0, next: 0, a })
            }
        });
    }

    pub fn get(&self) -> &M {
        self.net.as_ref().expect("the teacher is created at the first iteration")
    }

    /// As `dir/NAME.bpk`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        super::state::save_module(self.get(), dir, name)
    }

    pub fn load(&mut self, dir: &Path, name: &str, like: M) -> Result<()> {
        self.net = Some(super::state::load_module(like, dir, name)?);
        Ok(())
    }
}

impl<M: Module> Default for Ema<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// Teacher predictions of a target batch at input size.
pub struct Pseudo {
    /// argmax class per pixel, [n·h·w]
    pub labels: Vec<u8>,
    /// max probability per pixel
    pub conf: Vec<f32>,
    /// per image: the share of pixels at least `threshold` confident (DAFormer's weight)
    pub weight: Vec<f32>,
}

/// Teacher pseudo-labels of a batch at input size, with DAFormer's per-image confidence weight.
pub fn pseudo_labels(teacher: &SegNet, x: Tensor<4>, threshold: f64) -> Pseudo {
    let [n, _, h, w] = x.dims();
    let logits = crate::nn::losses::upsample(teacher.forward(x).main, [h, w]);
    let p = crate::nn::losses::probs(logits);
    let conf: Vec<f32> = p.clone().max_dim(1).into_data().iter::<f32>().collect();
    let labels = label_bytes(p.argmax(1));
    let weight = (0..n).map(|i| conf[i * h * w..(i + 1) * h * w].iter().filter(|&&c| c as f64 >= threshold).count() as f32 / (h * w) as f32).collect();
    Pseudo { labels, conf, weight }
}

/// A label map's classes as bytes (trainIds and 255 fit), on the host.
pub fn label_bytes<const D: usize>(y: Tensor<D, Int>) -> Vec<u8> {
    y.into_data().iter::<i64>().map(|v| v as u8).collect()
}

/// ClassMix mask of one source label map: 1 where the pixel's class is among ceil(n/2) classes
/// drawn from the n classes present (ignore excluded).
pub fn class_mix_mask(labels: &[u8], rng: &mut impl Rng) -> Vec<bool> {
    let mut present: Vec<u8> = labels.iter().copied().filter(|&v| v != crate::data::classes::IGNORE).collect();
    present.sort_unstable();
    present.dedup();
    let k = present.len().div_ceil(2);
    present.shuffle(rng);
    let chosen = &present[..k];
    labels.iter().map(|v| chosen.contains(v)).collect()
}

/// A mixed batch: source pixels under the mask pasted onto target images, labels and
/// per-pixel weights (1 for pasted source pixels, the target's as `weighting` says elsewhere).
pub struct Mixed {
    pub x: Tensor<4>,
    pub y: Tensor<3, Int>,
    pub weight: Tensor<3>,
    /// per pixel: a target pixel whose own teacher confidence reaches the threshold
    pub confident_target: Vec<bool>,
    pub labels: Vec<u8>,
}

/// Paste ClassMix masks of the source batch onto the target batch (same size).
pub fn class_mix(xs: &Tensor<4>, ys: &[u8], xt: &Tensor<4>, pseudo: &Pseudo, threshold: f64, weighting: PseudoWeight, rng: &mut impl Rng) -> Mixed {
    let [n, _, h, w] = xs.dims();
    let device = xs.device();
    let hw = h * w;
    let mut mask = Vec::with_capacity(n * hw);
    let mut labels = Vec::with_capacity(n * hw);
    let mut wt = Vec::with_capacity(n * hw);
    let mut confident_target = Vec::with_capacity(n * hw);
    for i in 0..n {
        let m = class_mix_mask(&ys[i * hw..(i + 1) * hw], rng);
        for (j, &inside) in m.iter().enumerate() {
            let k = i * hw + j;
            mask.push(if inside { 1.0f32 } else { 0.0 });
            labels.push(if inside { ys[k] } else { pseudo.labels[k] });
            let confident = !inside && pseudo.conf[k] as f64 >= threshold;
            wt.push(match (inside, weighting) {
                (true, _) => 1.0,
                (false, PseudoWeight::Image) => pseudo.weight[i],
                (false, PseudoWeight::Pixel) => confident as u8 as f32,
            });
            confident_target.push(confident);
        }
    }
    let m = Tensor::<3>::from_data(TensorData::new(mask, [n, h, w]), &device).unsqueeze_dim::<4>(1);
    let x = xs.clone() * m.clone() + xt.clone() * m.neg().add_scalar(1.0);
    let y: Vec<i64> = labels.iter().map(|&v| v as i64).collect();
    Mixed { x, y: Tensor::from_data(TensorData::new(y, [n, h, w]), &device), weight: Tensor::from_data(TensorData::new(wt, [n, h, w]), &device), confident_target, labels }
}

/// Bring a source batch to the target's size (bilinear image, nearest labels) so that the two mix.
pub fn fit_to(x: Tensor<4>, y: Tensor<3, Int>, size: [usize; 2]) -> (Tensor<4>, Tensor<3, Int>) {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return (x, y);
    }
    let x = crate::nn::resize::bilinear(x, size);
    (x, crate::nn::losses::resize_labels(y, size))
}

/// Colour jitter and Gaussian blur on normalised images (random per image).
pub fn photometric(x: Tensor<4>, p: &Params, rng: &mut impl Rng) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut xi = x.clone().slice([i..i + 1, 0..c, 0..h, 0..w]);
        if rng.gen_bool(p.jitter_p.clamp(0.0, 1.0)) {
            let j = p.jitter;
            let bright = rng.gen_range(-j..=j);
            let contrast = rng.gen_range(1.0 - j..=1.0 + j);
            let sat = rng.gen_range(1.0 - j..=1.0 + j);
            let mean = xi.clone().mean_dim(3).mean_dim(2); // [1,c,1,1]
            let gray = xi.clone().mean_dim(1); // [1,1,h,w]
            xi = gray.clone() + (xi - gray).mul_scalar(sat);
            xi = mean.clone() + (xi - mean).mul_scalar(contrast);
            xi = xi.add_scalar(bright);
        }
        if rng.gen_bool(p.blur_p.clamp(0.0, 1.0)) {
            xi = gaussian_blur(xi, rng.gen_range(0.15..1.15));
        }
        out.push(xi);
    }
    Tensor::cat(out, 0)
}

fn gaussian_blur(x: Tensor<4>, sigma: f64) -> Tensor<4> {
    let c = x.dims()[1];
    let r = (2.0 * sigma).ceil() as usize;
    let k: Vec<f32> = (0..=2 * r).map(|i| (-((i as f64 - r as f64).powi(2)) / (2.0 * sigma * sigma)).exp() as f32).collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let len = k.len();
    let device = x.device();
    let kx = Tensor::<4>::from_data(TensorData::new(k.repeat(c), [c, 1, 1, len]), &device);
    let ky = Tensor::<4>::from_data(TensorData::new(k.repeat(c), [c, 1, len, 1]), &device);
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    let x = conv2d(x, kx, None, ConvOptions::new([1, 1], [0, r], [1, 1], c));
    conv2d(x, ky, None, ConvOptions::new([1, 1], [r, 0], [1, 1], c))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_blends_parameters_and_starts_as_a_copy() {
        let dev = Device::flex();
        let student = burn::nn::LinearConfig::new(3, 2).init(&dev);
        let mut ema = Ema::new();
        ema.update(&student, ema_coefficient(0.99, 0));
        let w = |m: &burn::nn::Linear| m.weight.val().into_data().iter::<f32>().collect::<Vec<f32>>();
        assert_eq!(w(ema.get()), w(&student), "the first update copies");
        // the student moves: θ_T ← a·θ_T + (1 − a)·θ_S
        let moved = burn::nn::Linear { weight: Param::from_tensor(student.weight.val().add_scalar(1.0)), bias: student.bias.clone() };
        ema.update(&moved, 0.9);
        for (t, s) in w(ema.get()).iter().zip(w(&student)) {
            assert!((t - (s + 0.1)).abs() < 1e-6, "{t} vs {s}");
        }
        // the ramp: min(1 − 1/(it + 1), α)
        assert_eq!(ema_coefficient(0.999, 0), 0.0);
        assert!((ema_coefficient(0.999, 9) - 0.9).abs() < 1e-12);
        assert_eq!(ema_coefficient(0.99, 10_000), 0.99);
    }

    #[test]
    fn class_mix_pastes_half_the_present_classes_with_their_labels() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // classes 0, 3, 5, 7 present, ignore excluded: two of them are chosen
        let labels = [0u8, 3, 5, 7, 255, 0, 3, 5];
        for _ in 0..20 {
            let m = class_mix_mask(&labels, &mut rng);
            let chosen: std::collections::BTreeSet<u8> = labels.iter().zip(&m).filter(|(_, &b)| b).map(|(l, _)| *l).collect();
            assert_eq!(chosen.len(), 2);
            assert!(!chosen.contains(&255));
            // a class is pasted whole or not at all
            for (l, b) in labels.iter().zip(&m) {
                assert_eq!(*b, chosen.contains(l));
            }
        }
        // the mixed batch: source pixels and labels under the mask, target pixels and pseudo-labels elsewhere
        let dev = Device::flex();
        let xs = Tensor::<4>::ones([1, 3, 2, 4], &dev);
        let xt = Tensor::<4>::zeros([1, 3, 2, 4], &dev);
        let pseudo = Pseudo { labels: vec![9; 8], conf: vec![0.99, 0.5, 0.99, 0.5, 0.99, 0.5, 0.99, 0.5], weight: vec![0.25] };
        let mixed = class_mix(&xs, &labels, &xt, &pseudo, 0.9, PseudoWeight::Image, &mut rng);
        let x: Vec<f32> = mixed.x.slice([0..1, 0..1, 0..2, 0..4]).into_data().iter::<f32>().collect();
        let wt: Vec<f32> = mixed.weight.into_data().iter::<f32>().collect();
        for k in 0..8 {
            let pasted = x[k] == 1.0;
            assert_eq!(mixed.labels[k], if pasted { labels[k] } else { 9 });
            assert_eq!(wt[k], if pasted { 1.0 } else { 0.25 });
            assert_eq!(mixed.confident_target[k], !pasted && pseudo.conf[k] >= 0.9);
        }
        // pixel weighting: confident target pixels count fully, the others not at all
        let mixed = class_mix(&xs, &labels, &xt, &pseudo, 0.9, PseudoWeight::Pixel, &mut rng);
        let x: Vec<f32> = mixed.x.slice([0..1, 0..1, 0..2, 0..4]).into_data().iter::<f32>().collect();
        let wt: Vec<f32> = mixed.weight.into_data().iter::<f32>().collect();
        for k in 0..8 {
            let expected = if x[k] == 1.0 { 1.0 } else if pseudo.conf[k] >= 0.9 { 1.0 } else { 0.0 };
            assert_eq!(wt[k], expected, "pixel {k}");
        }
    }
}
