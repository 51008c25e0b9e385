//! T2S-DA (seed 001), a reconstruction (docs/methods/t2s.md): pull target(-like) pixel
//! embeddings towards same-class source embeddings with InfoNCE, on top of the self-training base.
//!
//! Queries (student, through a projection head): pixels of a style-randomised copy of the source
//! image, which keeps the source labels, and — in UDA — confidently pseudo-labelled target pixels
//! of the mixed images. Keys (EMA teacher and teacher head, no gradient): pixels of the original
//! source image plus a per-class memory of earlier ones. Each query is weighted by its class's
//! dynamic weight, (1 − score_c)^γ normalised to mean 1, where score_c is a running estimate of how
//! well the student already predicts class c on the stylised source.
//!
//! Domain generalisation (`domain_generalisation = true`): no target images at all; queries come
//! from randomly styled source views only.
use super::self_training::{self, Ema, SelfTrain};
use super::stylize::{self, Image, StyleKind, Stylizer};
use super::state::{load_module, load_optim, save_module, save_optim};
use super::method::{After, Method, Needs, Step, Terms};
use crate::config::{Config, TrainConfig};
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::error::{Error, IoContext, Result};
use crate::nn::layers::{conv, materialize};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Train with source images only and evaluate on the unseen target.
    pub domain_generalisation: bool,
    /// Weight of the pull (InfoNCE) loss.
    pub lambda_pull: f64,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Projection head: hidden width and embedding size.
    pub proj_hidden: usize,
    pub proj_dim: usize,
    /// Query pixels sampled per iteration from each query source (stylised source, target).
    pub queries: usize,
    /// Key pixels per class and image taken from the original source (and pushed to memory).
    pub keys_per_class: usize,
    /// Memory queue length per class.
    pub memory: usize,
    /// Class re-weighting: exponent γ and the momentum of the running per-class score.
    pub gamma: f64,
    pub score_momentum: f64,
    /// How source images are restyled: "fourier" (amplitude of target images) or "random".
    /// Domain generalisation always uses "random".
    pub style: StyleKind,
    /// Style strength: the maximum amplitude-mixing λ, or the random-style strength.
    pub style_strength: f64,
    /// Weight of the supervised loss on the stylised source (its labels are the source's).
    pub lambda_style_ce: f64,
    /// The self-training base (EMA teacher, pseudo-labels, ClassMix); unused parts in DG.
    pub base: self_training::Params,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            domain_generalisation: false,
            lambda_pull: 0.1,
            temperature: 0.1,
            proj_hidden: 256,
            proj_dim: 128,
            queries: 256,
            keys_per_class: 8,
            memory: 64,
            gamma: 1.0,
            score_momentum: 0.99,
            style: StyleKind::Fourier,
            style_strength: 1.0,
            lambda_style_ce: 0.5,
            base: self_training::Params::default(),
        }
    }
}

/// 1×1 conv → ReLU → 1×1 conv, L2-normalised over channels.
#[derive(Module, Debug)]
pub struct ProjHead {
    pub convs: Vec<Conv2d>,
}

impl ProjHead {
    pub fn new(cin: usize, hidden: usize, dim: usize, device: &Device) -> Self {
        materialize(ProjHead { convs: vec![conv(cin, hidden, 1, 1, 0, 1, 1, true, device), conv(hidden, dim, 1, 1, 0, 1, 1, true, device)] })
    }

    pub fn forward(&self, f: Tensor<4>) -> Tensor<4> {
        let e = self.convs[1].forward(relu(self.convs[0].forward(f)));
        e.clone() / e.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12)
    }
}

/// Multi-positive InfoNCE: for a query q of class c with positives P and negatives N among the
/// keys, the mean over p ∈ P of −log(e^{q·p/τ} / (e^{q·p/τ} + Σ_{n∈N} e^{q·n/τ})). Queries are
/// weighted by `class_w[c]`; the result is the weighted mean over queries that have a positive
/// (None when none has).
pub fn info_nce(q: Tensor<2>, q_cls: &[u8], keys: Tensor<2>, k_cls: &[u8], tau: f64, class_w: &[f32]) -> Option<Tensor<1>> {
    let device = q.device();
    let (nq, nk) = (q_cls.len(), k_cls.len());
    let mut pos = vec![0f32; nq * nk];
    let mut w = vec![0f32; nq];
    for (i, &c) in q_cls.iter().enumerate() {
        let mut any = false;
        for (j, &k) in k_cls.iter().enumerate() {
            if k == c {
                pos[i * nk + j] = 1.0;
                any = true;
            }
        }
        // a query with no positive key has nothing to be pulled to
        w[i] = if any { class_w[c as usize] } else { 0.0 };
    }
    let wsum: f32 = w.iter().sum();
    if wsum <= 0.0 {
        return None;
    }
    let pos = Tensor::<2>::from_data(TensorData::new(pos, [nq, nk]), &device);
    let neg = pos.clone().neg().add_scalar(1.0);
    let s = q.matmul(keys.transpose()).div_scalar(tau); // [nq, nk]
    // |s| ≤ 1/τ: the exponentials stay finite in f32 for τ ≥ 0.02
    let e = s.clone().exp();
    let neg_sum = (e.clone() * neg).sum_dim(1); // [nq, 1]
    let per_pair = (e + neg_sum).log() - s; // −log(e^s / (e^s + Σneg))
    let per_query = (per_pair * pos.clone()).sum_dim(1) / pos.sum_dim(1).clamp_min(1.0);
    let w = Tensor::<2>::from_data(TensorData::new(w, [nq, 1]), &device);
    Some((per_query * w).sum().div_scalar(wsum as f64))
}

/// A running per-class score and the weights derived from it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassWeights {
    pub score: Vec<f64>,
    pub seen: Vec<bool>,
}

impl ClassWeights {
    pub fn new() -> Self {
        ClassWeights { score: vec![0.0; NUM_CLASSES], seen: vec![false; NUM_CLASSES] }
    }

    /// Fold in this batch's score of class c (the first observation initialises it).
    pub fn observe(&mut self, c: usize, v: f64, momentum: f64) {
        self.score[c] = if self.seen[c] { momentum * self.score[c] + (1.0 - momentum) * v } else { v };
        self.seen[c] = true;
    }

    /// w_c ∝ (1 − score_c)^γ over the classes seen so far, normalised to mean 1 over them;
    /// classes not seen yet get 1.
    pub fn weights(&self, gamma: f64) -> Vec<f32> {
        let raw: Vec<f64> = self.score.iter().map(|s| (1.0 - s).clamp(1e-3, 1.0).powf(gamma)).collect();
        let seen: Vec<f64> = raw.iter().zip(&self.seen).filter(|(_, &s)| s).map(|(r, _)| *r).collect();
        let mean = if seen.is_empty() { 1.0 } else { seen.iter().sum::<f64>() / seen.len() as f64 };
        raw.iter().zip(&self.seen).map(|(r, &s)| if s { (r / mean) as f32 } else { 1.0 }).collect()
    }
}

impl Default for ClassWeights {
    fn default() -> Self {
        Self::new()
    }
}

/// FIFO queues of source key embeddings, one per class.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassMemory {
    pub size: usize,
    pub queues: Vec<VecDeque<Vec<f32>>>,
}

impl ClassMemory {
    pub fn new(size: usize) -> Self {
        ClassMemory { size, queues: vec![VecDeque::new(); NUM_CLASSES] }
    }

    pub fn push(&mut self, c: usize, e: Vec<f32>) {
        let q = &mut self.queues[c];
        q.push_back(e);
        while q.len() > self.size {
            q.pop_front();
        }
    }

    /// Every stored embedding with its class.
    pub fn entries(&self) -> (Vec<f32>, Vec<u8>) {
        let mut v = Vec::new();
        let mut c = Vec::new();
        for (k, q) in self.queues.iter().enumerate() {
            for e in q {
                v.extend_from_slice(e);
                c.push(k as u8);
            }
        }
        (v, c)
    }
}

/// Labels at feature resolution (nearest: the pixel at each cell's top-left-aligned centre).
pub fn labels_at(labels: &[u8], n: usize, [h, w]: [usize; 2], [fh, fw]: [usize; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * fh * fw);
    for i in 0..n {
        for y in 0..fh {
            let sy = ((y as f64 + 0.5) * h as f64 / fh as f64) as usize;
            for x in 0..fw {
                let sx = ((x as f64 + 0.5) * w as f64 / fw as f64) as usize;
                out.push(labels[i * h * w + sy.min(h - 1) * w + sx.min(w - 1)]);
            }
        }
    }
    out
}

/// Rows [n·h·w, D] of an embedding map [n, D, h, w].
fn rows(e: Tensor<4>) -> Tensor<2> {
    let [n, d, h, w] = e.dims();
    e.permute([0, 2, 3, 1]).reshape([n * h * w, d])
}

fn pick(rows: Tensor<2>, idx: &[usize]) -> Tensor<2> {
    let device = rows.device();
    let i: Vec<i64> = idx.iter().map(|&v| v as i64).collect();
    rows.select(0, Tensor::<1, Int>::from_data(TensorData::new(i, [idx.len()]), &device))
}

pub struct T2s {
    p: Params,
    base: SelfTrain,
    head: ProjHead,
    head_teacher: Ema<ProjHead>,
    head_opt: ModuleOptimizer,
    stylizer: Box<dyn Stylizer + Send>,
    memory: ClassMemory,
    weights: ClassWeights,
    train: TrainConfig,
    channels: usize,
    seed: u64,
    device: Device,
}

impl T2s {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Self {
        let channels = cfg.model.feature_channels();
        let style = if p.domain_generalisation { StyleKind::Random } else { p.style };
        T2s {
            base: SelfTrain::new(p.base.clone(), cfg, device),
            head: ProjHead::new(channels, p.proj_hidden, p.proj_dim, device),
            head_teacher: Ema::new(),
            head_opt: crate::optim::sgd(&cfg.train),
            stylizer: stylize::build(style, p.style_strength),
            memory: ClassMemory::new(p.memory),
            weights: ClassWeights::new(),
            train: cfg.train.clone(),
            channels,
            seed: cfg.train.seed,
            device: device.clone(),
            p,
        }
    }

    /// The stylised copy of the source batch (styles from the target batch in UDA).
    fn stylise(&self, xs: &Tensor<4>, xt: Option<&Tensor<4>>, rng: &mut ChaCha8Rng) -> Tensor<4> {
        let [n, c, h, w] = xs.dims();
        let src: Vec<f32> = xs.clone().inner().into_data().iter::<f32>().collect();
        let (tdata, tdims) = match xt {
            Some(t) => (t.clone().inner().into_data().iter::<f32>().collect::<Vec<f32>>(), t.dims()),
            None => (Vec::new(), [0, c, 0, 0]),
        };
        let tsz = c * tdims[2] * tdims[3];
        let styles: Vec<Image> = (0..tdims[0]).map(|i| Image { data: &tdata[i * tsz..(i + 1) * tsz], h: tdims[2], w: tdims[3] }).collect();
        let sz = c * h * w;
        let mut out = Vec::with_capacity(src.len());
        for i in 0..n {
            out.extend(self.stylizer.stylize(&Image { data: &src[i * sz..(i + 1) * sz], h, w }, &styles, rng));
        }
        Tensor::from_data(TensorData::new(out, [n, c, h, w]), &xs.device())
    }

    /// Up to `k` random positions per class among `labels` where `ok`.
    fn sample_per_class(labels: &[u8], ok: impl Fn(usize) -> bool, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
        for (i, &c) in labels.iter().enumerate() {
            if c != IGNORE && (c as usize) < NUM_CLASSES && ok(i) {
                by_class[c as usize].push(i);
            }
        }
        let mut out = Vec::new();
        for mut v in by_class {
            v.shuffle(rng);
            out.extend(v.into_iter().take(k));
        }
        out
    }

    /// Up to `k` random positions overall among valid labels where `ok`.
    fn sample(labels: &[u8], ok: impl Fn(usize) -> bool, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut v: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] != IGNORE && (labels[i] as usize) < NUM_CLASSES && ok(i)).collect();
        v.shuffle(rng);
        v.truncate(k);
        v
    }
}

impl Method for T2s {
    fn name(&self) -> &'static str {
        "t2s"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: !self.p.domain_generalisation, ..Default::default() }
    }

    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let a = self.base.update_teacher(step);
        self.head_teacher.update(&self.head, a);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7257_DA00);
        rng.set_stream(step.it);
        let mut terms = Vec::new();
        let src = step.source.expect("source");
        let ys = src.y.clone().expect("labelled source");
        let [n, _, h, w] = src.x.dims();
        let ys_cpu = self_training::label_bytes(ys.clone());

        // UDA: the base's mixed-image loss; its confident target pixels become queries too
        let mut target_queries = None;
        if !self.p.domain_generalisation && self.base.active(step.it) {
            let mix = self.base.mix(step)?;
            terms.push(("mix".to_string(), mix.loss));
            let emb = self.head.forward(mix.feats.main);
            let [_, _, fh, fw] = emb.dims();
            let labels = labels_at(&mix.mixed.labels, n, mix.size, [fh, fw]);
            let ok = labels_at(&mix.mixed.confident_target.iter().map(|&b| b as u8).collect::<Vec<_>>(), n, mix.size, [fh, fw]);
            let idx = Self::sample(&labels, |i| ok[i] == 1, self.p.queries, &mut rng);
            if !idx.is_empty() {
                let cls: Vec<u8> = idx.iter().map(|&i| labels[i]).collect();
                target_queries = Some((pick(rows(emb), &idx), cls));
            }
        }

        // the stylised source: supervised with the source labels, and the main queries
        let xt = step.target.map(|t| &t.x);
        let xst = self.stylise(&src.x, xt, &mut rng);
        let feats = step.net.features(xst);
        let logits = step.net.classify_main(&feats);
        let up = crate::nn::losses::upsample(logits.clone(), [h, w]);
        if self.p.lambda_style_ce > 0.0 {
            terms.push(("seg_style".to_string(), crate::nn::losses::cross_entropy(up, ys.clone()).mul_scalar(self.p.lambda_style_ce)));
        }
        let emb = self.head.forward(feats.main);
        let [_, _, fh, fw] = emb.dims();
        // source labels at feature resolution: the queries' (stylised) and the keys' (original)
        let labels_f = labels_at(&ys_cpu, n, [h, w], [fh, fw]);

        // the running class scores: the student's probability of the true class, per class
        let prob: Vec<f32> = crate::nn::losses::probs(logits.detach()).into_data().iter::<f32>().collect();
        let (mut sum, mut cnt) = (vec![0f64; NUM_CLASSES], vec![0usize; NUM_CLASSES]);
        let fhw = fh * fw;
        for (i, &c) in labels_f.iter().enumerate() {
            if (c as usize) < NUM_CLASSES {
                let (b, pix) = (i / fhw, i % fhw);
                sum[c as usize] += prob[(b * NUM_CLASSES + c as usize) * fhw + pix] as f64;
                cnt[c as usize] += 1;
            }
        }
        for c in 0..NUM_CLASSES {
            if cnt[c] > 0 {
                self.weights.observe(c, sum[c] / cnt[c] as f64, self.p.score_momentum);
            }
        }
        let class_w = self.weights.weights(self.p.gamma);

        // keys: the teacher's embeddings of the original source, then this batch joins the memory
        let teacher_emb = self.head_teacher.get().forward(self.base.teacher.get().features(src.x.clone().inner()).main);
        let k_idx = Self::sample_per_class(&labels_f, |_| true, self.p.keys_per_class * n, &mut rng);
        let k_cls: Vec<u8> = k_idx.iter().map(|&i| labels_f[i]).collect();
        let batch_keys: Vec<f32> = pick(rows(teacher_emb), &k_idx).into_data().iter::<f32>().collect();
        let (mem, mem_cls) = self.memory.entries();
        let d = self.p.proj_dim;
        let all_cls: Vec<u8> = k_cls.iter().chain(&mem_cls).copied().collect();
        let all_keys: Vec<f32> = batch_keys.iter().chain(&mem).copied().collect();
        for (j, &c) in k_cls.iter().enumerate() {
            self.memory.push(c as usize, batch_keys[j * d..(j + 1) * d].to_vec());
        }

        if !all_cls.is_empty() {
            let keys = Tensor::<2>::from_data(TensorData::new(all_keys, [all_cls.len(), d]), &self.device);
            let q_idx = Self::sample(&labels_f, |_| true, self.p.queries, &mut rng);
            let mut q = pick(rows(emb), &q_idx);
            let mut q_cls: Vec<u8> = q_idx.iter().map(|&i| labels_f[i]).collect();
            if let Some((tq, tc)) = target_queries {
                q = Tensor::cat(vec![q, tq], 0);
                q_cls.extend(tc);
            }
            if let Some(l) = info_nce(q, &q_cls, keys, &all_cls, self.p.temperature, &class_w) {
                terms.push(("pull".to_string(), l.mul_scalar(self.p.lambda_pull)));
            }
        }
        Ok(terms)
    }

    fn after_step(&mut self, a: &mut After) -> Result<Vec<(String, f64)>> {
        if let Some(g) = a.grads.as_deref_mut() {
            let hg = GradientsParams::from_module(g, &self.head);
            self.head = self.head_opt.step(a.lr * self.train.head_lr_mult, self.head.clone(), hg);
        }
        // the class weights over time (metrics.jsonl, TensorBoard)
        let names = crate::data::classes::CLASS_NAMES;
        Ok(self.weights.weights(self.p.gamma).iter().zip(names).zip(&self.weights.seen).filter(|(_, &s)| s).map(|((w, n), _)| (format!("w_{n}"), *w as f64)).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        if self.base.teacher.net.is_some() {
            self.base.teacher.save(dir, "teacher")?;
            self.head_teacher.save(dir, "teacher_head")?;
        }
        save_module(&self.head, dir, "head")?;
        save_optim(&self.head_opt, dir, "head_optim")?;
        let p = dir.join("state.json");
        let state = serde_json::json!({ "memory": self.memory, "weights": self.weights });
        std::fs::write(&p, serde_json::to_vec(&state).map_err(|e| Error::Other(e.to_string()))?).at(&p)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        if dir.join("teacher.bpk").is_file() {
            let like = self.base.template()?;
            self.base.teacher.load(dir, "teacher", like)?;
            let like = ProjHead::new(self.channels, self.p.proj_hidden, self.p.proj_dim, &self.device).valid();
            self.head_teacher.load(dir, "teacher_head", like)?;
        }
        self.head = load_module(self.head.clone(), dir, "head")?;
        load_optim(&mut self.head_opt, || crate::optim::sgd(&self.train), dir, "head_optim")?;
        let p = dir.join("state.json");
        let text = std::fs::read(&p).at(&p)?;
        #[derive(Deserialize)]
        struct State {
            memory: ClassMemory,
            weights: ClassWeights,
        }
        let s: State = serde_json::from_slice(&text).map_err(|e| Error::format(&p, e.to_string()))?;
        self.memory = s.memory;
        self.weights = s.weights;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: Vec<f32>, r: usize, c: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [r, c]), &Device::flex())
    }

    #[test]
    fn info_nce_matches_a_hand_computation() {
        // two unit queries, three unit keys in 2-D
        let q = t2(vec![1.0, 0.0, 0.0, 1.0], 2, 2);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let k = t2(vec![1.0, 0.0, s, s, 0.0, 1.0], 3, 2);
        let (qc, kc) = ([0u8, 1], [0u8, 0, 1]);
        let tau = 0.5;
        let w = vec![1.0f32; NUM_CLASSES];
        let got = crate::nn::losses::value(&info_nce(q, &qc, k, &kc, tau, &w).unwrap());
        // query 0 (class 0): positives k0 (sim 1), k1 (sim .707); negative k2 (sim 0)
        let e = |x: f64| (x / tau).exp();
        let s = 0.5f64.sqrt();
        let l0 = 0.5 * (-(e(1.0) / (e(1.0) + e(0.0))).ln() - (e(s) / (e(s) + e(0.0))).ln());
        // query 1 (class 1): positive k2 (sim 1); negatives k0 (0), k1 (.707)
        let l1 = -(e(1.0) / (e(1.0) + e(0.0) + e(s))).ln();
        let want = (l0 + l1) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // class weights weigh the queries; a query without positives is left out
        let mut w2 = vec![1.0f32; NUM_CLASSES];
        w2[1] = 3.0;
        let q = t2(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 3, 2);
        let k = t2(vec![1.0, 0.0, s as f32, s as f32, 0.0, 1.0], 3, 2);
        let got = crate::nn::losses::value(&info_nce(q, &[0, 1, 7], k, &kc, tau, &w2).unwrap());
        let want = (l0 + 3.0 * l1) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(info_nce(t2(vec![1.0, 0.0], 1, 2), &[5], t2(vec![1.0, 0.0], 1, 2), &[0], tau, &w).is_none());
    }

    #[test]
    fn pulling_a_query_to_its_class_lowers_the_loss() {
        let k = t2(vec![1.0, 0.0, 0.0, 1.0], 2, 2);
        let w = vec![1.0f32; NUM_CLASSES];
        let far = crate::nn::losses::value(&info_nce(t2(vec![0.0, 1.0], 1, 2), &[0], k.clone(), &[0, 1], 0.1, &w).unwrap());
        let near = crate::nn::losses::value(&info_nce(t2(vec![1.0, 0.0], 1, 2), &[0], k, &[0, 1], 0.1, &w).unwrap());
        assert!(near < 0.01 && far > 5.0, "near {near} far {far}");
    }

    #[test]
    fn class_weights_favour_hard_classes_and_average_one() {
        let mut cw = ClassWeights::new();
        cw.observe(0, 0.9, 0.5); // easy
        cw.observe(5, 0.3, 0.5); // hard
        cw.observe(11, 0.6, 0.5);
        let w = cw.weights(1.0);
        let seen = [w[0], w[5], w[11]];
        assert!((seen.iter().sum::<f32>() / 3.0 - 1.0).abs() < 1e-6, "{seen:?}");
        assert!(w[5] > w[11] && w[11] > w[0]);
        assert_eq!(w[3], 1.0, "unseen classes keep weight 1");
        // running estimate: momentum folds the new value in
        cw.observe(0, 0.1, 0.5);
        assert!((cw.score[0] - 0.5).abs() < 1e-12);
        // γ = 0: uniform
        assert!(cw.weights(0.0).iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn memory_is_a_bounded_fifo_per_class() {
        let mut m = ClassMemory::new(2);
        for i in 0..3 {
            m.push(4, vec![i as f32]);
        }
        m.push(1, vec![9.0]);
        let (v, c) = m.entries();
        assert_eq!(c, vec![1, 4, 4]);
        assert_eq!(v, vec![9.0, 1.0, 2.0]);
    }

    #[test]
    fn labels_are_taken_at_feature_cell_centres() {
        // 1 image 4×4 with a left/right split, features 2×2
        let l: Vec<u8> = (0..16).map(|i| if i % 4 < 2 { 1 } else { 2 }).collect();
        assert_eq!(labels_at(&l, 1, [4, 4], [2, 2]), vec![1, 2, 1, 2]);
    }
}
