//! ASS (seed 002): alleviating semantic-level shift, semi-supervised (Wang et al., CVPRW 2020;
//! docs/methods/ass.md). On top of AdaptSegNet: supervised CE on a few labelled target images,
//! and a semantic-level adversarial game on per-image class-mean feature vectors.
use super::adversarial::{Discriminators, Gan};
use super::extra_stream::ExtraStream;
use super::method::{Before, Forward, Method, Needs, Step, Terms};
use crate::config::{Config, DataConfig};
use crate::data::classes::NUM_CLASSES;
use crate::data::transform::Augment;
use crate::error::{Error, IoContext, Result};
use crate::model::discriminator::FcDiscriminator;
use crate::nn::losses::probs;
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SemanticLevel {
    /// The classifier's input features (layer4).
    Features,
    /// The softmax output maps.
    Outputs,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Labelled target images (0 = every target image: the "source + all target labels" setting).
    pub labelled: usize,
    /// Seed of the draw of labelled images (`target.subset_seed` draws the same ones).
    pub labelled_seed: u64,
    pub lambda_target_ce: f64,
    /// Global (output-space) adversarial weights, as AdaptSegNet.
    pub lambda_adv_main: f64,
    pub lambda_adv_aux: f64,
    /// Semantic-level adversarial weight.
    pub lambda_sem: f64,
    pub semantic_level: SemanticLevel,
    /// Hidden widths of the class-conditional discriminator (an MLP, as 1×1 convolutions).
    pub d_widths: Vec<usize>,
    pub gan: Gan,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            labelled: 100,
            labelled_seed: 0,
            lambda_target_ce: 1.0,
            lambda_adv_main: 0.001,
            lambda_adv_aux: 0.0002,
            lambda_sem: 0.01,
            semantic_level: SemanticLevel::Features,
            d_widths: vec![512, 256],
            gan: Gan::Vanilla,
        }
    }
}

pub struct Ass {
    p: Params,
    global: Discriminators,
    semantic: Discriminators,
    target_cfg: DataConfig,
    /// The labelled target images.
    labelled: ExtraStream,
}

impl Ass {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Self {
        let levels = if cfg.model.multi_level { 2 } else { 1 };
        let global = Discriminators::output_space(levels, NUM_CLASSES, p.gan, device);
        let dim = match p.semantic_level {
            SemanticLevel::Features => cfg.model.feature_channels(),
            SemanticLevel::Outputs => NUM_CLASSES,
        };
        let semantic =
            Discriminators::new(&["sem"], p.gan, || FcDiscriminator::pointwise(dim + NUM_CLASSES, &p.d_widths, device));
        Ass { p, global, semantic, target_cfg: cfg.target.clone(), labelled: ExtraStream::new(cfg, device) }
    }

    /// Make the trainer's target stream the unlabelled rest: every target image but the
    /// labelled ones (with `labelled = 0`, or at least as many as there are images, every image
    /// is labelled and the stream stays whole).
    /// `images` counts the target images (opened only when needed).
    /// The registry's resolution of the config for ASS: its constants, and the unlabelled target
    /// stream as the rest of the labelled draw.
    pub fn resolve(cfg: &mut Config, name: &str) -> Result<()> {
        cfg.complete_method_params::<Params>(name)?;
        let p: Params = cfg.method_params(name)?;
        // a target that cannot be opened is reported by the trainer, which opens it next
        Self::unlabelled_rest(&p, &mut cfg.target, |t| Ok(t.open().map_or(usize::MAX, |d| d.len())))
    }

    pub fn unlabelled_rest(
        p: &Params,
        target: &mut DataConfig,
        images: impl FnOnce(&DataConfig) -> Result<usize>,
    ) -> Result<()> {
        if p.labelled == 0 || target.subset.is_none() && p.labelled >= images(target)? {
            return Ok(());
        }
        let rest = (Some(p.labelled), p.labelled_seed, true);
        match (target.subset, target.subset_seed, target.subset_rest) {
            (None, ..) => {}
            already if already == rest => {}
            _ => {
                return Err(Error::config(
                    "target.subset",
                    "ASS draws the labelled target images itself ([method.ass] labelled); leave target.subset unset",
                ))
            }
        }
        (target.subset, target.subset_seed, target.subset_rest) = rest;
        Ok(())
    }

    /// The labelled target images: the draw `target.subset` makes with the same N and seed.
    fn open_labelled(&mut self, run: &Path) -> Result<()> {
        let mut d = self.target_cfg.clone();
        d.subset = (self.p.labelled > 0).then_some(self.p.labelled);
        d.subset_seed = self.p.labelled_seed;
        d.subset_rest = false;
        let ds = d.open()?;
        if !ds.has_labels() {
            return Err(Error::format(&d.root, "ASS needs labels for its labelled target images"));
        }
        let dir = run.join("ass");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let list: String = ds.items.iter().map(|i| format!("{}\n", i.name)).collect();
        std::fs::write(dir.join("labelled.txt"), list).at(&dir)?;
        let augment = Augment { resize: d.resize, crop: d.crop, flip: d.flip, upscale: None };
        let (seed, position) = (self.labelled.seed.wrapping_add(3), self.labelled.position);
        self.labelled.open(Arc::new(ds), augment, seed, position);
        Ok(())
    }

    fn semantic_vectors(&self, f: &Forward, y: Tensor<3, Int>) -> Option<Tensor<4>> {
        let maps = match self.p.semantic_level {
            SemanticLevel::Features => f.feats.main.clone(),
            SemanticLevel::Outputs => probs(f.logits.main.clone()),
        };
        let (v, classes) = class_mean_features(maps, y);
        (!classes.is_empty()).then(|| with_class_code(v, &classes))
    }
}

/// Per image and per class k present in `labels` (downsampled, nearest, to the maps' size):
/// f_k = Σ 1[y = k]·F / Σ 1[y = k]. Returns the [M, C] vectors and their classes (ignore and
/// absent classes give no vector).
pub fn class_mean_features(maps: Tensor<4>, labels: Tensor<3, Int>) -> (Tensor<2>, Vec<usize>) {
    let [n, c, h, w] = maps.dims();
    let device = maps.device();
    let small = interpolate(
        labels.float().unsqueeze_dim::<4>(1),
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h, w]),
    )
    .int()
    .reshape([n, 1, h * w]);
    let ids = Tensor::<1, Int>::arange(0..NUM_CLASSES as i64, &device).reshape([1, NUM_CLASSES, 1]);
    let onehot = small.expand([n, NUM_CLASSES, h * w]).equal(ids.expand([n, NUM_CLASSES, h * w])).float(); // 255 matches none
    let counts = onehot.clone().sum_dim(2); // [n, K, 1]
    let sums = onehot.matmul(maps.reshape([n, c, h * w]).swap_dims(1, 2)); // [n, K, C]
    let means = (sums / counts.clone().clamp_min(1.0)).reshape([n * NUM_CLASSES, c]);
    let present: Vec<usize> =
        counts.into_data().iter::<f32>().enumerate().filter(|(_, v)| *v > 0.0).map(|(i, _)| i).collect();
    if present.is_empty() {
        return (Tensor::zeros([0, c], &device), vec![]);
    }
    let idx = Tensor::<1, Int>::from_data(
        TensorData::new(present.iter().map(|&i| i as i64).collect::<Vec<_>>(), [present.len()]),
        &device,
    );
    (means.select(0, idx), present.into_iter().map(|i| i % NUM_CLASSES).collect())
}

/// [vector ; one-hot class] as [M, C+K, 1, 1], the class-conditional discriminator's input.
fn with_class_code(v: Tensor<2>, classes: &[usize]) -> Tensor<4> {
    let [m, c] = v.dims();
    let mut code = vec![0f32; m * NUM_CLASSES];
    for (i, &k) in classes.iter().enumerate() {
        code[i * NUM_CLASSES + k] = 1.0;
    }
    let code = Tensor::<2>::from_data(TensorData::new(code, [m, NUM_CLASSES]), &v.device());
    Tensor::cat(vec![v, code], 1).reshape([m, c + NUM_CLASSES, 1, 1])
}

impl Method for Ass {
    fn name(&self) -> &'static str {
        "ass"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, source: true, target: true, ..Default::default() }
    }
    fn before_step(&mut self, b: &Before) -> Result<Vec<(String, f64)>> {
        if !self.labelled.is_open() {
            self.open_labelled(b.run)?;
        }
        Ok(vec![])
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        let (s, t) = (step.source_fwd(), step.target_fwd());
        let mut terms = self.global.adapt(&s, &t, [self.p.lambda_adv_main, self.p.lambda_adv_aux], "adv", probs);
        // the labelled target images: supervised CE and class vectors
        let (xt, yt) = self.labelled.next("ASS's labelled target images")?;
        let lt = Forward::run(step.net, xt);
        terms.push((
            "ass_tgt_ce".into(),
            lt.seg_loss(&yt, self.labelled.aux_weight).mul_scalar(self.p.lambda_target_ce),
        ));
        let ys = step.source.and_then(|b| b.y.clone()).expect("labelled source");
        if let (Some(vs), Some(vt)) = (self.semantic_vectors(&s, ys), self.semantic_vectors(&lt, yt)) {
            terms.push(("ass_sem".into(), self.semantic.fool(0, vt.clone()).mul_scalar(self.p.lambda_sem)));
            self.semantic.remember(0, vs, vt);
        }
        Ok(terms)
    }
    fn after_step(&mut self, a: &mut super::method::After) -> Result<Vec<(String, f64)>> {
        let mut out = self.global.update(a.lr_d, "");
        out.extend(self.semantic.update(a.lr_d, "ass_"));
        Ok(out)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir.join("global")).at(dir)?;
        std::fs::create_dir_all(dir.join("semantic")).at(dir)?;
        self.global.save(&dir.join("global"))?;
        self.semantic.save(&dir.join("semantic"))?;
        std::fs::write(dir.join("position"), self.labelled.position.to_string()).at(dir)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        self.global.load(&dir.join("global"))?;
        self.semantic.load(&dir.join("semantic"))?;
        let p = dir.join("position");
        self.labelled.position =
            std::fs::read_to_string(&p).at(&p)?.trim().parse().map_err(|_| Error::format(&p, "not a number"))?;
        self.labelled.close(); // reopened at `position` before the next step
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::adversarial::SOURCE;
    use crate::nn::losses::value;

    #[test]
    fn class_means_by_hand() {
        let d = Device::flex();
        // features [1, 2, 2, 2]: channel 0 = 1 2 / 3 4, channel 1 = 10 20 / 30 40
        let f = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2., 3., 4., 10., 20., 30., 40.], [1, 2, 2, 2]), &d);
        // labels 4×4 → nearest to 2×2 samples (0,0) (0,2) (2,0) (2,2): classes 0, 0, 3, ignore
        let mut l = vec![9i64; 16];
        l[0] = 0;
        l[2] = 0;
        l[8] = 3;
        l[10] = 255;
        let y = Tensor::<3, Int>::from_data(TensorData::new(l, [1, 4, 4]), &d);
        let (v, classes) = class_mean_features(f, y);
        assert_eq!(classes, vec![0, 3]);
        let v: Vec<f32> = v.into_data().iter::<f32>().collect();
        // class 0: mean of positions (0,0), (0,1) = (1.5, 15); class 3: position (1,0) = (3, 30)
        assert_eq!(v, vec![1.5, 15.0, 3.0, 30.0]);
        // two images, the second all ignore: it contributes no vector
        let f2 = Tensor::<4>::ones([2, 2, 2, 2], &d);
        let mut l2 = vec![255i64; 32];
        l2[0] = 5;
        let (v2, c2) = class_mean_features(f2, Tensor::<3, Int>::from_data(TensorData::new(l2, [2, 4, 4]), &d));
        assert_eq!(c2, vec![5]);
        assert_eq!(v2.dims(), [1, 2]);
    }

    #[test]
    fn the_unlabelled_stream_is_the_rest_of_the_labelled_draw() {
        let p = Params { labelled: 50, labelled_seed: 7, ..Default::default() };
        let mut t = DataConfig::default();
        Ass::unlabelled_rest(&p, &mut t, |_| Ok(200)).unwrap();
        assert_eq!((t.subset, t.subset_seed, t.subset_rest), (Some(50), 7, true));
        // a resumed run's dumped config already says so
        Ass::unlabelled_rest(&p, &mut t, |_| Ok(200)).unwrap();
        // a user's own target.subset would silently change which images are labelled
        let mut own = DataConfig { subset: Some(10), ..Default::default() };
        assert!(Ass::unlabelled_rest(&p, &mut own, |_| Ok(200)).is_err());
        // every image labelled: the stream stays whole
        let mut all = DataConfig::default();
        Ass::unlabelled_rest(&Params { labelled: 0, ..p.clone() }, &mut all, |_| Ok(200)).unwrap();
        assert_eq!(all.subset, None);
        // as many labelled images as there are: the same
        Ass::unlabelled_rest(&p, &mut all, |_| Ok(50)).unwrap();
        assert_eq!(all.subset, None);
    }

    #[test]
    fn semantic_discriminator_labels_and_generator_sign() {
        let d = Device::flex().autodiff();
        let sem = Discriminators::new(&["sem"], Gan::Vanilla, || FcDiscriminator::pointwise(4 + NUM_CLASSES, &[8], &d));
        let v = with_class_code(Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -1., 2., 0.1], [1, 4]), &d), &[7]);
        // the generator's term scores target vectors against the source label (0)
        let logits = sem.levels[0].d.forward(v.clone());
        assert!(
            (value(&sem.fool(0, v.clone())) - value(&crate::nn::losses::bce_with_logits(logits, SOURCE))).abs() < 1e-6
        );
        // the class code is part of the input
        let code: Vec<f32> = v.reshape([1, 4 + NUM_CLASSES]).into_data().iter::<f32>().collect();
        assert_eq!(code[4 + 7], 1.0);
        assert_eq!(code.iter().skip(4).sum::<f32>(), 1.0);
    }
}
