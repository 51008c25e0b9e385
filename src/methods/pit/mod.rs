//! PIT (seed 004): pivot interaction transfer with multi-level region expansion — a
//! reconstruction (docs/methods/pit.md; Lv et al., CVPR 2020; no public code).
//!
//! Pivots are per-class embeddings shared across domains (EMA of source class centroids). The
//! pixel–pivot relation (cosine similarity, softmax over classes) is assumed domain-invariant:
//! it is trained as an extra segmentation branch on source and aligned across domains by a
//! discriminator. Image-level categories (a multi-label head on pooled features, fused with the
//! predicted areas) decide which classes a target image may contain; target pseudo-labels grow
//! from confident seeds of those classes into neighbouring pixels related to the image's own
//! pivot of the seed's class (its centroid over that class's seeds in the image).
mod audit;
mod pivots;
mod regions;

use audit::Audit;
use pivots::Pivots;
use regions::image_logits;
pub use regions::{argmax, expand_regions, image_relation, infer_present, seed_thresholds, Confidences};

use super::adversarial::Discriminators;
use super::method::{stat, After, Method, Needs, Step, Terms};
use super::self_training::{teacher_template, Ema, Teacher};
use super::state::{load_module, load_optim, save_module, save_optim};
use crate::config::{Config, TrainConfig};
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::nn::losses::{cross_entropy, probs, upsample};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    // image level
    /// Train the image-level category head and use it to infer target categories.
    pub image_head: bool,
    pub lambda_image: f64,
    /// A source class is "present" in an image above this pixel fraction.
    pub min_fraction: f64,
    /// Target class presence: w·σ(head) + (1 − w)·min(1, area / area_ref) ≥ present_threshold.
    pub head_weight: f64,
    pub area_ref: f64,
    pub present_threshold: f64,
    // pivots and interaction
    pub pivot_momentum: f64,
    /// Temperature of the relation softmax over classes (cosine / τ).
    pub relation_temperature: f64,
    /// The relation map as an extra segmentation branch (CE on source).
    pub relation_branch: bool,
    pub lambda_relation: f64,
    /// Train the relation branch on the target's pseudo-labels too (weight `lambda_relation`):
    /// a pseudo-labelled target pixel is pulled to its class's pivot, the source centroid, as a
    /// source pixel is — the relation transferred, not only its maps aligned.
    pub relation_pseudo: bool,
    /// Align relation maps across domains with a discriminator.
    pub relation_adv: bool,
    pub lambda_relation_adv: f64,
    // region expansion
    pub pseudo_labels: bool,
    /// Grow seeds into neighbouring related pixels (false: confident seeds only).
    pub region_expansion: bool,
    pub seed_confidence: f64,
    /// Class-balanced seeds (CBST's starting portion): a class's `seed_portion` most confident
    /// pixels of an image are seeds too, even below `seed_confidence` (0: confident pixels only,
    /// which starves the classes the teacher is rarely sure of; docs/methods/pit.md).
    pub seed_portion: f64,
    /// Over what `seed_portion` is counted: each image's pixels of the class, or every target
    /// pixel of the class the pseudo-labels' model has labelled so far (CBST's thresholds, which
    /// are over the whole target set).
    pub seed_scope: SeedScope,
    /// A neighbour joins class c when its relation probability to pivot c is at least this.
    pub grow_threshold: f64,
    /// Which pivots the region growth relates a pixel to: the image's own (each class's centroid
    /// of the teacher's features over its seeds in this image, so that a pixel is compared with
    /// features of its own domain), or the shared ones (the source centroids; the former rule,
    /// which grows less and ends lower on both built-in shifts: docs/methods/pit.md).
    pub grow_pivots: GrowPivots,
    pub lambda_pseudo: f64,
    /// Pseudo-labels start at this iteration; before it the alignment parts train alone.
    pub pseudo_start: u64,
    /// The pseudo-labels are the predictions (and, for the relation maps, the features) of a
    /// teacher: the network at `pseudo_start`, then θ_T ← α·θ_T + (1 − α)·θ (α = 1: frozen, the
    /// two-stage scheme; 0: no teacher, the current network's own detached predictions).
    pub teacher_alpha: f64,
    /// Measure the pseudo-labels against the target's labels, when it has them (a diagnostic:
    /// logs `stat/pit_pseudo_precision` and `stat/pit_teacher_accuracy`; no loss reads them).
    pub measure_pseudo: bool,
    /// An upper bound, not a method: each target image's classes are read from its labels
    /// instead of inferred (needs a labelled target, as the built-in benchmark's). Measures what
    /// a perfect image level could give the pseudo-labels.
    pub oracle_presence: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SeedScope {
    Image,
    Target,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GrowPivots {
    Source,
    Image,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            image_head: true,
            lambda_image: 0.1,
            min_fraction: 0.001,
            head_weight: 0.5,
            area_ref: 0.01,
            present_threshold: 0.5,
            pivot_momentum: 0.99,
            relation_temperature: 0.1,
            relation_branch: true,
            lambda_relation: 0.1,
            relation_pseudo: false,
            relation_adv: true,
            lambda_relation_adv: 0.001,
            pseudo_labels: true,
            region_expansion: true,
            seed_confidence: 0.9,
            seed_portion: 0.2,
            seed_scope: SeedScope::Image,
            grow_threshold: 0.6,
            grow_pivots: GrowPivots::Image,
            lambda_pseudo: 1.0,
            pseudo_start: 0,
            teacher_alpha: 1.0,
            measure_pseudo: false,
            oracle_presence: false,
        }
    }
}

pub struct Pit {
    p: Params,
    head: Linear,
    head_opt: ModuleOptimizer,
    train: TrainConfig,
    /// Per-class embeddings shared across domains.
    pivots: Pivots,
    d: Discriminators,
    /// Share of target pixels pseudo-labelled in the last batch (logged).
    coverage: f64,
    /// With `measure_pseudo`: the last batch's pseudo-labels' and teacher's agreement with the
    /// target's labels (%).
    quality: Option<(Option<f64>, Option<f64>)>,
    /// With `measure_pseudo`: per-class counts over the run (written with the state).
    audit: Option<Audit>,
    /// With `seed_scope = "target"`: the pseudo-labels' model's confidence on every target
    /// pixel so far (saved with the state).
    confidences: Option<Confidences>,
    /// The pseudo-labels' model, frozen (or averaged) together: the network, the image head and
    /// the pivots as they were at `pseudo_start`.
    teacher: Teacher,
    teacher_head: Ema<Linear>,
    teacher_pivots: Option<Pivots>,
    model: crate::model::ModelConfig,
    device: Device,
}

impl Pit {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Self {
        let channels = cfg.model.feature_channels();
        Pit {
            head: crate::nn::layers::materialize(LinearConfig::new(channels, NUM_CLASSES).init(device)),
            head_opt: crate::optim::sgd(&cfg.train),
            train: cfg.train.clone(),
            pivots: Pivots::new(channels),
            d: Discriminators::output_space(1, NUM_CLASSES, super::adversarial::Gan::Vanilla, device),
            coverage: 0.0,
            quality: None,
            audit: (p.pseudo_labels && p.measure_pseudo).then(Audit::new),
            confidences: (p.pseudo_labels && p.seed_scope == SeedScope::Target).then(|| Confidences::new(NUM_CLASSES)),
            teacher: Ema::new(),
            teacher_head: Ema::new(),
            teacher_pivots: None,
            model: cfg.model.clone(),
            device: device.clone(),
            p,
        }
    }

    /// The registry's resolution of the config for PIT: its constants, a variant asked for that
    /// would do nothing without another part refused rather than run silently as something
    /// else, and the oracle's labelled target checked before any stage trains.
    pub fn resolve(cfg: &mut Config, name: &str) -> Result<()> {
        cfg.complete_method_params::<Params>(name)?;
        let p: Params = cfg.method_params(name)?;
        let refuse = |key: &str, why: &str| Err(Error::config(format!("method.{name}.{key}"), why));
        if p.pseudo_labels && p.relation_pseudo && !p.relation_branch {
            return refuse(
                "relation_pseudo",
                "trains the relation branch on the pseudo-labels, but relation_branch = false (set both)",
            );
        }
        // a target that cannot be opened is reported by the trainer, which opens it next
        if p.pseudo_labels && p.oracle_presence && cfg.target.open().is_ok_and(|d| !d.has_labels()) {
            return Err(Error::config(
                format!("method.{name}.oracle_presence"),
                format!(
                    "reads each target image's classes from its labels, but the target ({}) has none",
                    cfg.target.root.display()
                ),
            ));
        }
        Ok(())
    }

    /// Multi-hot image labels of a labelled batch ([N, K]; present above `min_fraction`).
    fn multi_hot(&self, y: &Tensor<3, Int>) -> Tensor<2> {
        let [n, h, w] = y.dims();
        let ids: Vec<i64> = y.clone().into_data().iter::<i64>().collect();
        let hot: Vec<f32> =
            ids.chunks(h * w).flat_map(|img| self.contains(img)).map(|c| if c { 1.0 } else { 0.0 }).collect();
        Tensor::from_data(TensorData::new(hot, [n, NUM_CLASSES]), &y.device())
    }

    /// The classes one image's labels contain: more than `min_fraction` of its pixels.
    fn contains(&self, labels: &[i64]) -> Vec<bool> {
        crate::data::classes::classes_in(labels, self.p.min_fraction).to_vec()
    }
}

impl Method for Pit {
    fn name(&self) -> &'static str {
        "pit"
    }
    fn needs(&self) -> Needs {
        Needs {
            source_ce: true,
            source: true,
            target: true,
            target_labels: self.p.pseudo_labels && (self.p.measure_pseudo || self.p.oracle_presence),
            ..Default::default()
        }
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let (s, t) = (step.source_fwd(), step.target_fwd());
        let (src, tgt) = (step.source.expect("source"), step.target.expect("target"));
        let ys = src.y.clone().expect("labelled source");
        if self.p.pseudo_labels && self.p.oracle_presence && tgt.y.is_none() {
            return Err(Error::config(
                "method.pit.oracle_presence",
                "reads each target image's classes from its labels, but the target has none",
            ));
        }
        self.pivots.update(s.feats.main.clone(), ys.clone(), self.p.pivot_momentum);
        let mut terms = Vec::new();
        if self.p.image_head {
            let logits = image_logits(&self.head, s.feats.main.clone());
            let z = self.multi_hot(&ys);
            // BCE with logits against multi-hot labels
            let bce = (logits.clone().clamp_min(0.0) - logits.clone() * z + logits.abs().neg().exp().log1p()).mean();
            terms.push(("pit_image".to_string(), bce.mul_scalar(self.p.lambda_image)));
        }
        let rs = self.pivots.relation(s.feats.main.clone(), self.p.relation_temperature);
        if self.p.relation_branch {
            terms.push((
                "pit_relation".to_string(),
                cross_entropy(upsample(rs.clone(), src.size()), ys).mul_scalar(self.p.lambda_relation),
            ));
        }
        let pseudo_now = self.p.pseudo_labels && step.it >= self.p.pseudo_start;
        // the relation branch on the target's pseudo-labels this iteration
        let relation_pseudo = pseudo_now && self.p.relation_branch && self.p.relation_pseudo;
        let rt = (self.p.relation_adv || relation_pseudo)
            .then(|| upsample(self.pivots.relation(t.feats.main.clone(), self.p.relation_temperature), tgt.size()));
        if self.p.relation_adv {
            let (ms, mt) =
                (probs(upsample(rs, src.size())), probs(rt.clone().expect("computed for the discriminator")));
            terms.push((
                "pit_relation_adv".to_string(),
                self.d.fool(0, mt.clone()).mul_scalar(self.p.lambda_relation_adv),
            ));
            self.d.remember(0, ms, mt);
        }
        if pseudo_now {
            // the model that makes the pseudo-labels (no gradient), one and the same for its
            // logits, relation maps and image-level presence: the teacher — network, image head
            // and pivots as they were at `pseudo_start` (the first update copies), then their EMA
            // — or, without a teacher, the current network's own
            let (logits, feats, head, pivots) = if self.p.teacher_alpha > 0.0 {
                let a = self.p.teacher_alpha;
                self.teacher.update(step.net, a);
                self.teacher_head.update(&self.head, a);
                self.teacher_pivots = Some(Pivots::follow(self.teacher_pivots.take(), &self.pivots, a));
                let f = self.teacher.get().features(tgt.x.clone().inner());
                (
                    self.teacher.get().classify_main(&f),
                    f.main,
                    self.teacher_head.get().valid(),
                    self.teacher_pivots.as_ref().expect("just set"),
                )
            } else {
                (t.logits.main.clone().inner(), t.feats.main.clone().inner(), self.head.valid(), &self.pivots)
            };
            let [n, _, h, w] = logits.dims();
            let pt: Vec<f32> = probs(logits).into_data().iter::<f32>().collect();
            // what the region growth (None: none) relates a pixel to: the shared pivots, whose
            // relation maps it reads, or each image's own, made from the features on the host
            let growth = self.p.region_expansion.then_some(self.p.grow_pivots);
            let channels = feats.dims()[1];
            let to_host = |t: Tensor<4>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
            let (rel, host_feats) = match growth {
                Some(GrowPivots::Source) => {
                    (to_host(probs(pivots.relation(feats.clone(), self.p.relation_temperature))), vec![])
                }
                Some(GrowPivots::Image) => (vec![], to_host(feats.clone())),
                None => (vec![], vec![]),
            };
            let head: Option<Vec<f32>> =
                self.p.image_head.then(|| sigmoid(image_logits(&head, feats)).into_data().iter::<f32>().collect());
            let per = NUM_CLASSES * h * w;
            // the target's labels, when there are any, to measure against or (oracle) to read each
            // image's classes from
            let host = |t: Tensor<3, Int>| t.into_data().iter::<i64>().collect::<Vec<_>>();
            let truth =
                tgt.y.as_ref().filter(|_| self.p.measure_pseudo || self.p.oracle_presence).map(|gt| host(gt.clone()));
            let [th, tw] = tgt.size();
            let mut labels = Vec::with_capacity(n * h * w);
            let mut predicted = Vec::new();
            let mut kept = 0usize;
            let bests: Vec<_> = pt.chunks(per).map(|p_i| argmax(p_i, NUM_CLASSES)).collect();
            let (confident, portion) = (self.p.seed_confidence as f32, self.p.seed_portion);
            let over_target = self.confidences.as_mut().map(|c| {
                bests.iter().for_each(|b| c.add(b));
                c.thresholds(confident, portion)
            });
            for (i, best) in bests.iter().enumerate() {
                let mut area = vec![0f32; NUM_CLASSES];
                for &(c, _) in best {
                    area[c] += 1.0 / (h * w) as f32;
                }
                if self.p.measure_pseudo {
                    predicted.extend(best.iter().map(|&(c, _)| c as i64));
                }
                let hp = head.as_ref().map(|v| &v[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]);
                let contains = truth.as_ref().map(|truth| self.contains(&truth[i * th * tw..(i + 1) * th * tw]));
                let present = match contains.as_ref().filter(|_| self.p.oracle_presence) {
                    Some(c) => c.clone(),
                    None => infer_present(hp, &area, self.p.head_weight, self.p.area_ref, self.p.present_threshold),
                };
                if let Some(contains) = contains.as_ref().filter(|_| self.audit.is_some()) {
                    let by_head: Option<Vec<bool>> = hp.map(|v| v.iter().map(|&p| p >= 0.5).collect());
                    self.audit.as_mut().expect("checked").add_image(contains, &present, by_head.as_deref());
                }
                let grow = Some(self.p.grow_threshold as f32);
                let seeds = match &over_target {
                    Some(t) => t.clone(),
                    None => seed_thresholds(best, NUM_CLASSES, confident, portion),
                };
                let l = match growth {
                    None => expand_regions(best, &[], &present, w, &seeds, None),
                    Some(GrowPivots::Source) => {
                        expand_regions(best, &rel[i * per..(i + 1) * per], &present, w, &seeds, grow)
                    }
                    Some(GrowPivots::Image) => {
                        let seeded = expand_regions(best, &[], &present, w, &seeds, None);
                        let f_i = &host_feats[i * channels * h * w..(i + 1) * channels * h * w];
                        let r_i =
                            image_relation(f_i, channels, &seeded, NUM_CLASSES, self.p.relation_temperature as f32);
                        expand_regions(best, &r_i, &present, w, &seeds, grow)
                    }
                };
                kept += l.iter().filter(|&&v| v != IGNORE).count();
                labels.extend(l.into_iter().map(|v| v as i64));
            }
            let small = Tensor::<3, Int>::from_data(TensorData::new(labels, [n, h, w]), &t.logits.main.device());
            let y = crate::nn::losses::resize_labels(small, [th, tw]);
            self.quality = truth.filter(|_| self.p.measure_pseudo).map(|gt| {
                let pseudo = host(y.clone());
                if let Some(audit) = self.audit.as_mut() {
                    audit.add_pixels(&pseudo, &gt);
                }
                let all = Tensor::<3, Int>::from_data(TensorData::new(predicted, [n, h, w]), &y.device());
                let all = crate::nn::losses::resize_labels(all, [th, tw]);
                (agreement(&pseudo, &gt), agreement(&host(all), &gt))
            });
            if let Some(rt) = rt.filter(|_| relation_pseudo) {
                terms.push((
                    "pit_relation_pseudo".to_string(),
                    cross_entropy(rt, y.clone()).mul_scalar(self.p.lambda_relation),
                ));
            }
            terms
                .push(("pit_pseudo".to_string(), cross_entropy(t.up.main.clone(), y).mul_scalar(self.p.lambda_pseudo)));
            self.coverage = 100.0 * kept as f64 / (n * h * w) as f64;
        }
        Ok(terms)
    }
    fn after_step(&mut self, a: &mut After) -> Result<Vec<(String, f64)>> {
        if self.p.image_head {
            if let Some(g) = a.grads.as_deref_mut() {
                let hg = GradientsParams::from_module(g, &self.head);
                self.head = self.head_opt.step(a.lr * self.train.head_lr_mult, self.head.clone(), hg);
            }
        }
        let mut out = if self.p.relation_adv { self.d.update(a.lr_d, "pit_") } else { vec![] };
        if self.p.pseudo_labels {
            out.push((stat("pit_coverage"), self.coverage));
            if let Some((precision, accuracy)) = self.quality {
                out.extend(precision.map(|v| (stat("pit_pseudo_precision"), v)));
                out.extend(accuracy.map(|v| (stat("pit_teacher_accuracy"), v)));
            }
        }
        Ok(out)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        save_module(&self.head, dir, "image_head")?;
        save_optim(&self.head_opt, dir, "image_head_optim")?;
        self.pivots.save(&dir.join("pivots.json"))?;
        if self.teacher.net.is_some() {
            self.teacher.save(dir, "teacher")?;
            self.teacher_head.save(dir, "teacher_image_head")?;
            self.teacher_pivots.as_ref().expect("set with the teacher").save(&dir.join("teacher_pivots.json"))?;
        }
        if let Some(audit) = &self.audit {
            audit.save(dir)?;
        }
        if let Some(c) = &self.confidences {
            c.save(dir)?;
        }
        self.d.save(dir)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        self.head = load_module(self.head.clone(), dir, "image_head")?;
        load_optim(&mut self.head_opt, || crate::optim::sgd(&self.train), dir, "image_head_optim")?;
        self.pivots.load(&dir.join("pivots.json"))?;
        if dir.join("teacher.bpk").is_file() {
            self.teacher.load(dir, "teacher", teacher_template(&self.model, &self.device)?)?;
            self.teacher_head.load(dir, "teacher_image_head", self.head.valid())?;
            let mut pv = self.pivots.clone();
            pv.load(&dir.join("teacher_pivots.json"))?;
            self.teacher_pivots = Some(pv);
        }
        if self.audit.is_some() {
            self.audit = Some(Audit::load(dir)?.unwrap_or_else(Audit::new));
        }
        if self.confidences.is_some() {
            self.confidences = Some(Confidences::load(dir)?.unwrap_or_else(|| Confidences::new(NUM_CLASSES)));
        }
        self.d.load(dir)
    }
}

/// Percentage of the pixels labelled in both `pred` and `gt` on which they agree; None when
/// there are none.
fn agreement(pred: &[i64], gt: &[i64]) -> Option<f64> {
    let ignore = IGNORE as i64;
    let (mut both, mut same) = (0usize, 0usize);
    for (&p, &g) in pred.iter().zip(gt) {
        if p != ignore && g != ignore {
            both += 1;
            same += usize::from(p == g);
        }
    }
    (both > 0).then(|| 100.0 * same as f64 / both as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SegNet;
    /// A tiny network and config, and a labelled source / unlabelled target batch of `n` images.
    fn tiny(
        n: usize,
    ) -> (Device, crate::config::Config, SegNet, crate::methods::DomainBatch, crate::methods::DomainBatch) {
        let d = Device::flex().autodiff();
        let cfg = crate::config::Config {
            model: crate::model::ModelConfig {
                backbone: crate::model::BackboneKind::MobilenetV2,
                width_mult: 0.25,
                output_stride: 16,
                ..Default::default()
            },
            ..Default::default()
        };
        let net = SegNet::new(&cfg.model, &d).unwrap();
        let x = Tensor::<4>::random([n, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
        let y = Tensor::<3, Int>::from_data(
            TensorData::new((0..n * 64 * 64).map(|i| ((i / 700) % 19) as i64).collect::<Vec<_>>(), [n, 64, 64]),
            &d,
        );
        let src = crate::methods::DomainBatch { x: x.clone(), y: Some(y), names: vec![], indices: vec![] };
        let tgt = crate::methods::DomainBatch { x: x.flip([3]), y: None, names: vec![], indices: vec![] };
        (d, cfg, net, src, tgt)
    }

    #[test]
    fn the_image_head_is_trained_from_the_iterations_gradients() {
        let (d, cfg, net, src, tgt) = tiny(2);
        let mut pit = Pit::new(Params::default(), &cfg, &d);
        let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
        let terms = pit.losses(&mut step).unwrap();
        let names: Vec<&str> = terms.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["pit_image", "pit_relation", "pit_relation_adv", "pit_pseudo"]);
        let mut g = terms.into_iter().map(|t| t.1).reduce(|a, b| a + b).unwrap().backward();
        let _ = GradientsParams::from_module(&mut g, &net);
        let before: Vec<f32> = pit.head.weight.val().into_data().iter::<f32>().collect();
        pit.after_step(&mut After { it: 0, lr_d: 1e-4, lr: 0.01, grads: Some(&mut g) }).unwrap();
        let after: Vec<f32> = pit.head.weight.val().into_data().iter::<f32>().collect();
        assert!(before != after);
        // pivots were set from the source batch's class means
        assert!(pit.pivots.seen.iter().filter(|&&s| s).count() >= 5);
    }

    #[test]
    fn pseudo_labels_start_late_from_a_teacher_frozen_at_the_start() {
        let (d, cfg, net, src, tgt) = tiny(1);
        let mut pit = Pit::new(Params { pseudo_start: 3, teacher_alpha: 1.0, ..Default::default() }, &cfg, &d);
        let names = |pit: &mut Pit, net: &SegNet, it: u64| -> Vec<String> {
            let mut step = Step::new(net, it, 0, Some(&src), Some(&tgt));
            pit.losses(&mut step).unwrap().into_iter().map(|t| t.0).collect()
        };
        assert!(!names(&mut pit, &net, 2).contains(&"pit_pseudo".to_string()));
        assert!(pit.teacher.net.is_none(), "no teacher before pseudo_start");
        assert!(names(&mut pit, &net, 3).contains(&"pit_pseudo".to_string()));
        // a parameter tensor of a network, to tell networks apart
        struct First(Option<Vec<f32>>);
        impl burn::module::ModuleVisitor for First {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                if self.0.is_none() {
                    self.0 = Some(p.val().into_data().iter::<f32>().collect());
                }
            }
        }
        let w = |m: &SegNet| -> Vec<f32> {
            let mut f = First(None);
            m.visit(&mut f);
            f.0.unwrap()
        };
        let at_start = w(pit.teacher.get());
        assert_eq!(at_start, w(&net), "the teacher is the network at pseudo_start");
        // the network moves; a frozen teacher (α = 1) does not
        let moved = SegNet::new(&cfg.model, &d).unwrap();
        assert_ne!(w(&moved), at_start);
        let (head_at_start, pivots_at_start) = (pit.head.weight.val().into_data(), pit.pivots.rows.clone());
        assert_eq!(pit.teacher_head.get().weight.val().into_data(), head_at_start);
        assert_eq!(pit.teacher_pivots.as_ref().unwrap().rows, pivots_at_start);
        // the student's image head and pivots move too; the pseudo-labels' model keeps them
        pit.head.weight = pit.head.weight.clone().map(|t| t.add_scalar(0.5));
        names(&mut pit, &moved, 4);
        assert_ne!(pit.pivots.rows, pivots_at_start, "the source batch moves the student's pivots");
        assert_eq!(w(pit.teacher.get()), at_start);
        assert_eq!(pit.teacher_head.get().weight.val().into_data(), head_at_start);
        assert_eq!(pit.teacher_pivots.as_ref().unwrap().rows, pivots_at_start);
        // and it is saved and restored with the method's state
        let dir = std::env::temp_dir().join(format!("segda-pit-teacher-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        pit.save(&dir).unwrap();
        let mut again = Pit::new(Params { pseudo_start: 3, teacher_alpha: 1.0, ..Default::default() }, &cfg, &d);
        again.load(&dir).unwrap();
        assert_eq!(w(again.teacher.get()), at_start);
        assert_eq!(again.teacher_head.get().weight.val().into_data(), head_at_start);
        assert_eq!(again.teacher_pivots.as_ref().unwrap().rows, pivots_at_start);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn without_a_teacher_the_pseudo_labels_are_the_networks_own() {
        let (d, cfg, net, src, tgt) = tiny(1);
        let mut pit = Pit::new(Params { teacher_alpha: 0.0, ..Default::default() }, &cfg, &d);
        let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
        let terms = pit.losses(&mut step).unwrap();
        assert!(terms.iter().any(|t| t.0 == "pit_pseudo"));
        assert!(pit.teacher.net.is_none(), "no teacher is kept");
    }

    #[test]
    fn regions_grow_from_either_pivots_beyond_their_seeds() {
        let (d, cfg, net, src, tgt) = tiny(2);
        let coverage = |grow_pivots, region_expansion| {
            let p =
                Params { teacher_alpha: 0.0, grow_pivots, region_expansion, grow_threshold: 0.0, ..Default::default() };
            let mut pit = Pit::new(p, &cfg, &d);
            pit.losses(&mut Step::new(&net, 0, 0, Some(&src), Some(&tgt))).unwrap();
            pit.coverage
        };
        let seeds = coverage(GrowPivots::Image, false);
        assert!(seeds > 0.0 && seeds < 100.0, "{seeds}");
        // at threshold 0 a region takes every pixel it reaches: the second image's features are
        // read where its own slice of the batch is, and each connected seed region floods
        for pivots in [GrowPivots::Image, GrowPivots::Source] {
            assert_eq!(coverage(pivots, true), 100.0, "{pivots:?}");
        }
    }

    #[test]
    fn the_relation_branch_learns_the_targets_pseudo_labels_only_when_asked() {
        let (d, cfg, net, src, tgt) = tiny(1);
        // every pixel a seed of its argmax class: the pseudo-labels are the network's own argmax
        let p = |relation_pseudo, pseudo_start| Params {
            teacher_alpha: 0.0,
            seed_confidence: 0.0,
            present_threshold: 0.0,
            region_expansion: false,
            relation_pseudo,
            pseudo_start,
            ..Default::default()
        };
        let run = |p: Params| {
            let mut pit = Pit::new(p, &cfg, &d);
            let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
            let terms = pit.losses(&mut step).unwrap();
            (pit, terms.into_iter().find(|t| t.0 == "pit_relation_pseudo").map(|t| t.1.into_scalar::<f32>()))
        };
        assert_eq!(run(p(false, 0)).1, None);
        assert_eq!(run(p(true, 1)).1, None, "not before the pseudo-labels start");
        let (pit, got) = run(p(true, 0));
        // by hand: CE of the target's relation map to the pivots against those labels
        let f = net.features(tgt.x.clone());
        let small = net.classify_main(&f).argmax(1).squeeze_dim::<3>(1);
        let y = crate::nn::losses::resize_labels(small, [64, 64]);
        let rel = upsample(pit.pivots.relation(f.main, 0.1), [64, 64]);
        let want = cross_entropy(rel, y).into_scalar::<f32>() * 0.1;
        let got = got.expect("the term is there");
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{got} against {want}");
    }

    #[test]
    fn target_wide_seeds_count_every_labelled_batch_and_resume_with_the_run() {
        let (d, cfg, net, src, tgt) = tiny(2);
        let p = Params { teacher_alpha: 0.0, seed_scope: SeedScope::Target, ..Default::default() };
        let mut pit = Pit::new(p.clone(), &cfg, &d);
        for it in 0..3 {
            pit.losses(&mut Step::new(&net, it, 0, Some(&src), Some(&tgt))).unwrap();
        }
        let [_, _, h, w] = net.features(tgt.x.clone()).main.dims();
        let counted: u64 = pit.confidences.as_ref().unwrap().counts.iter().flatten().sum();
        assert_eq!(counted, (3 * 2 * h * w) as u64, "every pixel of every batch, once");
        let dir = std::env::temp_dir().join(format!("segda-pit-scope-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        pit.save(&dir).unwrap();
        let mut again = Pit::new(p, &cfg, &d);
        again.load(&dir).unwrap();
        assert_eq!(again.confidences, pit.confidences);
        std::fs::remove_dir_all(&dir).ok();
        // the per-image rule keeps no counts
        assert!(Pit::new(Params::default(), &cfg, &d).confidences.is_none());
    }

    #[test]
    fn oracle_presence_keeps_only_the_classes_the_targets_labels_contain() {
        let (d, cfg, net, src, tgt) = tiny(1);
        let p = |oracle_presence| Params {
            teacher_alpha: 0.0,
            measure_pseudo: true,
            oracle_presence,
            seed_confidence: 0.0,
            ..Default::default()
        };
        assert!(Pit::new(p(true), &cfg, &d).needs().target_labels);
        let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
        let err = Pit::new(p(true), &cfg, &d).losses(&mut step).expect_err("an unlabelled target").to_string();
        assert!(err.contains("method.pit.oracle_presence"), "{err}");
        // the target labelled all one class k: with the oracle every kept pseudo-label is k; the
        // inferred presence keeps the network's other classes too
        let precision = |oracle: bool, k: i64| {
            let tgt = crate::methods::DomainBatch {
                y: Some(Tensor::from_data(TensorData::new(vec![k; 64 * 64], [1, 64, 64]), &d)),
                ..tgt.clone()
            };
            let mut pit = Pit::new(Params { present_threshold: 0.0, ..p(oracle) }, &cfg, &d);
            let mut step = Step::new(&net, 0, 0, Some(&src), Some(&tgt));
            pit.losses(&mut step).unwrap();
            let stats = pit.after_step(&mut After { it: 0, lr_d: 1e-4, lr: 0.01, grads: None }).unwrap();
            stats.iter().find(|s| s.0 == stat("pit_pseudo_precision")).map(|s| s.1)
        };
        let (oracle, inferred): (Vec<_>, Vec<_>) =
            (0..NUM_CLASSES as i64).map(|k| (precision(true, k), precision(false, k))).unzip();
        assert!(oracle.iter().flatten().count() > 0, "some class seeds");
        assert!(oracle.iter().flatten().all(|&v| v == 100.0), "{oracle:?}");
        assert!(inferred.iter().flatten().any(|&v| v < 100.0), "{inferred:?}");
    }

    #[test]
    fn settings_that_would_do_nothing_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("segda-pit-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("images")).unwrap();
        image::RgbImage::new(4, 4).save(dir.join("images/a.png")).unwrap();
        let resolve = |sets: &[&str], target: Option<&Path>| {
            let mut cfg = crate::config::Config::for_method("pit", sets);
            if let Some(root) = target {
                cfg.target.kind = crate::data::dataset::DatasetKind::Folder;
                cfg.target.root = root.to_path_buf();
            }
            crate::methods::resolve(cfg).map(|_| ()).map_err(|e| e.to_string())
        };
        let e = resolve(&["method.pit.relation_pseudo=true", "method.pit.relation_branch=false"], None).unwrap_err();
        assert!(e.contains("method.pit.relation_pseudo") && e.contains("relation_branch"), "{e}");
        assert!(resolve(&["method.pit.relation_pseudo=true"], None).is_ok());
        // one key switches a part off, whatever the others say (the region growth's pivots, a
        // default, mean nothing without it)
        assert!(resolve(&["method.pit.region_expansion=false"], None).is_ok());
        let off = "method.pit.pseudo_labels=false";
        assert!(resolve(&[off, "method.pit.relation_pseudo=true", "method.pit.relation_branch=false"], None).is_ok());
        // the oracle's unlabelled target is refused when the config is read, naming it
        let e = resolve(&["method.pit.oracle_presence=true"], Some(&dir)).unwrap_err();
        assert!(e.contains("method.pit.oracle_presence") && e.contains(&dir.display().to_string()), "{e}");
        std::fs::create_dir_all(dir.join("labels")).unwrap();
        image::GrayImage::new(4, 4).save(dir.join("labels/a.png")).unwrap();
        assert!(resolve(&["method.pit.oracle_presence=true"], Some(&dir)).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn agreement_counts_only_pixels_labelled_on_both_sides() {
        let i = IGNORE as i64;
        assert_eq!(agreement(&[1, 2, 3, i, 5], &[1, 2, 0, 4, i]), Some(100.0 * 2.0 / 3.0));
        assert_eq!(agreement(&[i, 1], &[2, i]), None);
    }

    #[test]
    fn measuring_the_pseudo_labels_needs_the_targets_labels_only_when_asked() {
        let (d, cfg, net, src, mut tgt) = tiny(1);
        let p = |measure_pseudo| Params {
            teacher_alpha: 0.0,
            measure_pseudo,
            seed_confidence: 0.0,
            present_threshold: 0.0,
            ..Default::default()
        };
        assert!(!Pit::new(p(false), &cfg, &d).needs().target_labels);
        assert!(Pit::new(p(true), &cfg, &d).needs().target_labels);
        let stats = |pit: &mut Pit, tgt: &crate::methods::DomainBatch| -> Vec<(String, f64)> {
            let mut step = Step::new(&net, 0, 0, Some(&src), Some(tgt));
            pit.losses(&mut step).unwrap();
            pit.after_step(&mut After { it: 0, lr_d: 1e-4, lr: 0.01, grads: None }).unwrap()
        };
        let named = |v: &[(String, f64)], k: &str| v.iter().find(|s| s.0 == stat(k)).map(|s| s.1);
        // the target labelled all one class k, for every k: each labelled pixel agrees for exactly
        // one k, so the percentages add up to 100
        let (mut precision, mut accuracy) = (0.0, 0.0);
        for k in 0..NUM_CLASSES as i64 {
            tgt.y = Some(Tensor::from_data(TensorData::new(vec![k; 64 * 64], [1, 64, 64]), &d));
            let got = stats(&mut Pit::new(p(true), &cfg, &d), &tgt);
            precision += named(&got, "pit_pseudo_precision").expect("pseudo-labels were kept");
            accuracy += named(&got, "pit_teacher_accuracy").expect("a labelled target");
        }
        assert!((precision - 100.0).abs() < 1e-6 && (accuracy - 100.0).abs() < 1e-6, "{precision} {accuracy}");
        // an unlabelled target logs nothing; nor does a labelled one when not asked
        tgt.y = Some(Tensor::from_data(TensorData::new(vec![IGNORE as i64; 64 * 64], [1, 64, 64]), &d));
        assert_eq!(named(&stats(&mut Pit::new(p(true), &cfg, &d), &tgt), "pit_teacher_accuracy"), None);
        assert_eq!(named(&stats(&mut Pit::new(p(false), &cfg, &d), &tgt), "pit_teacher_accuracy"), None);
    }
}
