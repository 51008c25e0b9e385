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
mod pull;
mod weights;

pub use pull::{info_nce, labels_at, ClassMemory, ProjHead};
use pull::{pick, rows, sample, sample_per_class};
pub use weights::ClassWeights;

use super::method::{stat, After, Method, Needs, Step, Terms};
use super::self_training::{self, Ema, SelfTrain};
use super::state::{load_module, load_optim, save_module, save_optim};
use super::stylize::{self, Image, StyleKind, Stylizer};
use crate::config::{Config, TrainConfig};
use crate::data::classes::NUM_CLASSES;
use crate::error::{Error, IoContext, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Train with source images only and evaluate on the unseen target.
    pub domain_generalisation: bool,
    /// Weight of the pull (InfoNCE) loss. 1.0: at 0.1 the stylised-source CE, which trains the same
    /// pixels with the same labels, leaves the pull nothing to add (docs/methods/t2s.md).
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
            lambda_pull: 1.0,
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
        let styles: Vec<Image> =
            (0..tdims[0]).map(|i| Image { data: &tdata[i * tsz..(i + 1) * tsz], h: tdims[2], w: tdims[3] }).collect();
        let sz = c * h * w;
        let mut out = Vec::with_capacity(src.len());
        for i in 0..n {
            out.extend(self.stylizer.stylize(&Image { data: &src[i * sz..(i + 1) * sz], h, w }, &styles, rng));
        }
        Tensor::from_data(TensorData::new(out, [n, c, h, w]), &xs.device())
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
            let ok = labels_at(
                &mix.mixed.confident_target.iter().map(|&b| b as u8).collect::<Vec<_>>(),
                n,
                mix.size,
                [fh, fw],
            );
            let idx = sample(&labels, |i| ok[i] == 1, self.p.queries, &mut rng);
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
            terms.push((
                "seg_style".to_string(),
                crate::nn::losses::cross_entropy(up, ys.clone()).mul_scalar(self.p.lambda_style_ce),
            ));
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
        let k_idx = sample_per_class(&labels_f, |_| true, self.p.keys_per_class * n, &mut rng);
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
            let q_idx = sample(&labels_f, |_| true, self.p.queries, &mut rng);
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
        Ok(self
            .weights
            .weights(self.p.gamma)
            .iter()
            .zip(names)
            .zip(&self.weights.seen)
            .filter(|(_, &s)| s)
            .map(|((w, n), _)| (stat(&format!("t2s_weight_{n}")), *w as f64))
            .collect())
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
