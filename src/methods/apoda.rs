//! APODA (seed 000): adversarial perturbation oriented domain adaptation — a reconstruction
//! (docs/methods/apoda.md). Pointwise adversarial perturbations of the classifier's input
//! features attack the classifier and a feature-level domain discriminator, for source and
//! target; the classifier is trained to be invariant to them, and attacking the discriminator
//! pushes source features towards the target and target features towards the source.
use super::adversarial::{Discriminators, Gan, SOURCE, TARGET};
use super::method::{stat, After, Method, Needs, Step, Terms};
use crate::error::Result;
use crate::model::discriminator::FcDiscriminator;
use crate::model::{Feats, SegNet};
use crate::nn::losses::log_probs;
use crate::nn::losses::{cross_entropy, entropy_loss, probs, upsample};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Perturbation size ε: each position's perturbation has L2 norm ε over channels.
    pub epsilon: f64,
    /// Attack steps K (each of size ε/K, renormalised per position).
    pub steps: usize,
    /// Attack the classifier (source: CE; target: entropy).
    pub attack_classifier: bool,
    /// Attack the feature-level discriminator (source → "target", target → "source").
    pub attack_discriminator: bool,
    /// Weight of the discriminator objective inside the attack (λ_D).
    pub lambda_attack_d: f64,
    /// Weight of the CE on perturbed source features.
    pub lambda_pert_ce: f64,
    /// Weight of KL(C(f_t) ‖ C(f_t*)) (target invariance; the clean prediction is detached).
    /// 0.01: at 0.1 the term collapses training on both built-in shifts (docs/methods/apoda.md).
    pub lambda_inv: f64,
    /// Weight of the feature-level adversarial term on clean target features.
    pub lambda_adv: f64,
    /// Hidden widths of the pointwise feature discriminator.
    pub d_widths: Vec<usize>,
    pub gan: Gan,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            epsilon: 1.0,
            steps: 1,
            attack_classifier: true,
            attack_discriminator: true,
            lambda_attack_d: 1.0,
            lambda_pert_ce: 1.0,
            lambda_inv: 0.01,
            lambda_adv: 0.001,
            d_widths: vec![256, 128],
            gan: Gan::Vanilla,
        }
    }
}

pub struct Apoda {
    p: Params,
    d: Discriminators,
    /// This iteration's mean per-position L2 norm of the clean source features: the scale that
    /// ε is an absolute step against (it differs between backbones), logged as a statistic.
    feat_norm: f64,
}

impl Apoda {
    pub fn new(p: Params, feature_channels: usize, device: &Device) -> Self {
        let d =
            Discriminators::new(&["feat"], p.gan, || FcDiscriminator::pointwise(feature_channels, &p.d_widths, device));
        Apoda { p, d, feat_norm: 0.0 }
    }

    /// The attack objective on features `f` (a leaf): the classifier's loss (CE on source,
    /// entropy on target) plus λ_D × the discriminator's loss for the feature's *own* domain
    /// label. Ascending it makes D less sure of the true domain: source features move towards
    /// the target and target features towards the source (the abstract's "towards each other").
    pub fn attack_objective(
        &self,
        net: &SegNet,
        feats: &Feats,
        f: Tensor<4>,
        y: Option<&Tensor<3, Int>>,
        size: [usize; 2],
    ) -> Tensor<1> {
        let mut obj = Tensor::<1>::zeros([1], &f.device());
        if self.p.attack_classifier {
            let fk =
                Feats { main: f.clone(), aux: None, skips: feats.skips.iter().map(|s| s.clone().detach()).collect() };
            let logits = upsample(net.classify_main(&fk), size);
            obj = obj
                + match y {
                    Some(y) => cross_entropy(logits, y.clone()),
                    None => entropy_loss(probs(logits)),
                };
        }
        if self.p.attack_discriminator {
            let own = if y.is_some() { SOURCE } else { TARGET };
            obj = obj + self.d.frozen_loss(0, f, own).mul_scalar(self.p.lambda_attack_d);
        }
        obj
    }

    /// The perturbation δ (detached): K normalised gradient-ascent steps of size ε/K.
    pub fn perturbation(&self, net: &SegNet, feats: &Feats, y: Option<&Tensor<3, Int>>, size: [usize; 2]) -> Tensor<4> {
        let base = feats.main.clone().detach();
        let mut delta = base.zeros_like();
        let steps = self.p.steps.max(1);
        if self.p.epsilon == 0.0 || !(self.p.attack_classifier || self.p.attack_discriminator) {
            return delta;
        }
        for _ in 0..steps {
            let f = (base.clone() + delta.clone()).detach().require_grad();
            let g = self.attack_objective(net, feats, f.clone(), y, size).backward();
            let grad = f.grad(&g).expect("the attack objective depends on the features");
            delta = delta + unit_per_position(grad).mul_scalar(self.p.epsilon / steps as f64);
        }
        delta.detach()
    }
}

/// g / (‖g‖₂ + 1e-12), the norm taken over channels at each position.
pub fn unit_per_position(g: Tensor<4>) -> Tensor<4> {
    let norm = g.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-12);
    g / norm
}

/// KL(p ‖ q) averaged over pixels, from logits; p is the (detached) reference.
fn kl(p_logits: Tensor<4>, q_logits: Tensor<4>) -> Tensor<1> {
    let [n, _, h, w] = p_logits.dims();
    let lp = log_probs(p_logits).detach();
    let lq = log_probs(q_logits);
    (lp.clone().exp() * (lp - lq)).sum().div_scalar((n * h * w) as f64)
}

impl Method for Apoda {
    fn name(&self) -> &'static str {
        "apoda"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: true, ..Default::default() }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let (s, t) = (step.source_fwd(), step.target_fwd());
        let (src, tgt) = (step.source.expect("source batch"), step.target.expect("target batch"));
        let ys = src.y.as_ref().expect("labelled source");
        let net = step.net;
        let norms = s.feats.main.clone().detach().powi_scalar(2).sum_dim(1).sqrt();
        self.feat_norm = crate::nn::losses::value(&norms.mean());
        // 1. attack (on detached features, in graphs of their own)
        let ds = self.perturbation(net, &s.feats, Some(ys), src.size());
        let dt = self.perturbation(net, &t.feats, None, tgt.size());
        // 2. invariance: the perturbed features keep their gradient path to the extractor
        let fs_p = Feats { main: s.feats.main.clone() + ds.clone(), ..s.feats.clone() };
        let ft_p = Feats { main: t.feats.main.clone() + dt.clone(), ..t.feats.clone() };
        let ls_p = upsample(net.classify_main(&fs_p), src.size());
        let lt_p = upsample(net.classify_main(&ft_p), tgt.size());
        let terms = vec![
            ("apoda_pert_ce".to_string(), cross_entropy(ls_p, ys.clone()).mul_scalar(self.p.lambda_pert_ce)),
            ("apoda_inv".to_string(), kl(t.up.main.clone(), lt_p).mul_scalar(self.p.lambda_inv)),
            ("apoda_adv".to_string(), self.d.fool(0, t.feats.main.clone()).mul_scalar(self.p.lambda_adv)),
        ];
        // 3. D learns from clean and perturbed features of both domains
        let fs = s.feats.main.clone().detach();
        let ft = t.feats.main.clone().detach();
        self.d.remember(0, Tensor::cat(vec![fs.clone(), fs + ds], 0), Tensor::cat(vec![ft.clone(), ft + dt], 0));
        Ok(terms)
    }
    fn after_step(&mut self, a: &mut After) -> Result<Vec<(String, f64)>> {
        let mut out = self.d.update(a.lr_d, "apoda_");
        out.push((stat("apoda_feature_norm"), self.feat_norm));
        Ok(out)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.d.save(dir)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        self.d.load(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::Forward;
    use crate::model::{BackboneKind, ModelConfig};
    use crate::nn::losses::value;

    fn tiny(d: &Device) -> (SegNet, ModelConfig) {
        let cfg = ModelConfig {
            backbone: BackboneKind::MobilenetV2,
            width_mult: 0.25,
            output_stride: 16,
            multi_level: false,
            ..Default::default()
        };
        (SegNet::new(&cfg, d).unwrap(), cfg)
    }

    fn input(d: &Device) -> (Tensor<4>, Tensor<3, Int>) {
        let x = Tensor::<4>::from_data(
            TensorData::new((0..3 * 32 * 48).map(|i| ((i as f32) * 0.13).sin()).collect::<Vec<_>>(), [1, 3, 32, 48]),
            d,
        );
        let y = Tensor::<3, Int>::from_data(
            TensorData::new(
                (0..32 * 48).map(|i| if i % 7 == 0 { 255i64 } else { (i % 19) as i64 }).collect::<Vec<_>>(),
                [1, 32, 48],
            ),
            d,
        );
        (x, y)
    }

    #[test]
    fn perturbations_have_norm_epsilon_at_every_position() {
        let d = Device::flex().autodiff();
        let (net, cfg) = tiny(&d);
        let a = Apoda::new(Params { epsilon: 0.7, steps: 1, ..Default::default() }, cfg.feature_channels(), &d);
        let (x, y) = input(&d);
        let f = Forward::run(&net, x);
        for y in [Some(&y), None] {
            let delta = a.perturbation(&net, &f.feats, y, [32, 48]);
            let norms: Vec<f32> = delta.powi_scalar(2).sum_dim(1).sqrt().into_data().iter::<f32>().collect();
            assert!(norms.iter().all(|n| (n - 0.7).abs() < 1e-4), "{norms:?}");
        }
    }

    /// The discriminator half of the attack moves each domain's features towards the other:
    /// after one step, a discriminator that tells the domains apart is less sure of each
    /// feature's true domain. (Ascending D's loss on the *other* domain's label, as the first
    /// reconstruction did, pushes the domains apart and fails this.)
    #[test]
    fn the_discriminator_attack_lowers_the_true_domains_probability() {
        let d = Device::flex().autodiff();
        let (net, cfg) = tiny(&d);
        let p = Params {
            epsilon: 0.5,
            steps: 1,
            attack_classifier: false,
            attack_discriminator: true,
            ..Default::default()
        };
        let mut a = Apoda::new(p, cfg.feature_channels(), &d);
        let (x, y) = input(&d);
        let (fs, ft) = (Forward::run(&net, x.clone()).feats, Forward::run(&net, x.flip([3]).mul_scalar(-1.0)).feats);
        // a discriminator trained to tell these source features from these target ones
        for _ in 0..10 {
            a.d.remember(0, fs.main.clone(), ft.main.clone());
            a.d.update(1e-3, "");
        }
        let p_domain = |f: Tensor<4>, label: f32| -> f64 {
            let p = burn::tensor::activation::sigmoid(a.d.levels[0].d.clone().no_grad().forward(f)).mean();
            let p = value(&p);
            if label == SOURCE {
                1.0 - p
            } else {
                p
            }
        };
        for (feats, y, label) in [(&fs, Some(&y), SOURCE), (&ft, None, TARGET)] {
            let before = p_domain(feats.main.clone(), label);
            assert!(before > 0.55, "the discriminator should know the domain first: p = {before}");
            let delta = a.perturbation(&net, feats, y, [32, 48]);
            let after = p_domain(feats.main.clone() + delta.clone(), label);
            assert!(after < before, "p(true domain) {before} -> {after}");
            // and the opposite step is the one that makes D surer
            assert!(p_domain(feats.main.clone() - delta, label) > before);
        }
    }

    #[test]
    fn epsilon_zero_reduces_to_the_unperturbed_losses() {
        let d = Device::flex().autodiff();
        let (net, cfg) = tiny(&d);
        let mut a = Apoda::new(Params { epsilon: 0.0, ..Default::default() }, cfg.feature_channels(), &d);
        let (x, y) = input(&d);
        let src = crate::methods::DomainBatch { x: x.clone(), y: Some(y.clone()), names: vec![], indices: vec![] };
        let tgt = crate::methods::DomainBatch { x: x.flip([3]), y: None, names: vec![], indices: vec![] };
        let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
        let clean_ce = value(&cross_entropy(step.source_fwd().up.main, y));
        let terms = a.losses(&mut step).unwrap();
        let get = |k: &str| value(&terms.iter().find(|t| t.0 == k).unwrap().1);
        assert_eq!(get("apoda_pert_ce"), clean_ce);
        assert_eq!(get("apoda_inv"), 0.0);
    }

    #[test]
    fn feature_gradient_matches_finite_differences() {
        let d = Device::flex().autodiff();
        let (net, cfg) = tiny(&d);
        let a = Apoda::new(Params::default(), cfg.feature_channels(), &d);
        let (x, y) = input(&d);
        let feats = net.features(x);
        let f0: Vec<f32> = feats.main.clone().into_data().iter::<f32>().collect();
        let shape = feats.main.dims();
        for y in [Some(&y), None] {
            let leaf = Tensor::<4>::from_data(TensorData::new(f0.clone(), shape), &d).require_grad();
            let g = a.attack_objective(&net, &feats, leaf.clone(), y, [32, 48]).backward();
            let grad: Vec<f32> = leaf.grad(&g).unwrap().into_data().iter::<f32>().collect();
            let f = |v: &[f32]| -> f64 {
                let t = Tensor::<4>::from_data(TensorData::new(v.to_vec(), shape), &d);
                value(&a.attack_objective(&net, &feats, t, y, [32, 48]))
            };
            // Directional derivatives, not single coordinates: in f32 a one-coordinate difference
            // is mostly rounding noise, and a step along all coordinates keeps kinks (ReLU, leaky
            // ReLU) from dominating. Along the gradient itself and along a fixed unrelated direction.
            let norm = |v: &[f32]| v.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
            let other: Vec<f32> = (0..grad.len()).map(|i| ((i as f32) * 0.37).sin()).collect();
            for dir in [grad.clone(), other] {
                let n = norm(&dir);
                let u: Vec<f32> = dir.iter().map(|v| (*v as f64 / n) as f32).collect();
                let expect: f64 = u.iter().zip(&grad).map(|(u, g)| (*u as f64) * (*g as f64)).sum();
                let h = 1e-2f32;
                let up: Vec<f32> = f0.iter().zip(&u).map(|(f, u)| f + h * u).collect();
                let dn: Vec<f32> = f0.iter().zip(&u).map(|(f, u)| f - h * u).collect();
                let fd = (f(&up) - f(&dn)) / (2.0 * h as f64);
                assert!(
                    (fd - expect).abs() <= 2e-2 * norm(&grad) + 1e-5,
                    "autodiff {expect} vs finite difference {fd} (|grad| {})",
                    norm(&grad)
                );
            }
        }
    }

    #[test]
    fn the_feature_discriminator_and_the_network_have_separate_gradients() {
        let d = Device::flex().autodiff();
        let (net, cfg) = tiny(&d);
        let mut a = Apoda::new(Params::default(), cfg.feature_channels(), &d);
        let (x, y) = input(&d);
        let src = crate::methods::DomainBatch { x: x.clone(), y: Some(y), names: vec![], indices: vec![] };
        let tgt = crate::methods::DomainBatch { x: x.flip([3]), y: None, names: vec![], indices: vec![] };
        let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
        let terms = a.losses(&mut step).unwrap();
        let total = terms.into_iter().map(|t| t.1).reduce(|p, q| p + q).unwrap();
        let mut g = total.backward();
        assert!(!burn::optim::GradientsParams::from_module(&mut g, &net).is_empty());
        assert_eq!(burn::optim::GradientsParams::from_module(&mut g, &a.d.levels[0].d).len(), 0);
        let before: Vec<f32> = a.d.levels[0].d.convs[0].weight.val().into_data().iter::<f32>().collect();
        a.after_step(&mut After { it: 0, lr_d: 1e-3, lr: 0.0, grads: None }).unwrap();
        let after: Vec<f32> = a.d.levels[0].d.convs[0].weight.val().into_data().iter::<f32>().collect();
        assert!(before != after, "the discriminator's own optimiser stepped it");
    }
}
