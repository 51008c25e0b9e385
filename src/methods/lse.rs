//! LSE (seed 003): learning from scale-invariant examples — self-training in rounds
//! (Subhani & Ali, ECCV 2020; reference code MNaseerSubhani/LSE; docs/methods/lse.md).
//!
//! Round r (proportion p = p_start + r·p_step ≤ p_max): predict every target image, keep per
//! class the top-p images by the class's mean confidence, threshold each class at the
//! normalised entropy of its first rejected image, write pseudo-labels, then train on random
//! crops of the selected images enlarged ×2 (the scale-invariant examples) with CE + β·focal.
use super::extra_stream::ExtraStream;
use super::method::{Before, Forward, Method, Needs, Step, Terms};
use crate::config::Config;
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::data::layout::Item;
use crate::data::loader::{Loader, LoaderSpec};
use crate::data::transform::Augment;
use crate::data::{Dataset, DatasetKind, Split};
use crate::error::{Error, IoContext, Result};
use crate::eval::confusion::Confusion;
use crate::nn::losses::ce_per_pixel;
use crate::model::SegNet;
use burn::module::Module;
use burn::prelude::*;
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Selection proportion of the first round.
    pub p_start: f64,
    /// Added to the proportion every round.
    pub p_step: f64,
    /// Last proportion (rounds stop beyond it: 0.10 … 0.40 = 7 rounds).
    pub p_max: f64,
    /// Per class, keep ceil(p · n_c / divisor) images (1 = the paper; the reference code uses 19).
    pub per_class_divisor: f64,
    /// Iterations per round = selected images × epochs × patches (the reference's 2 × 4).
    pub epochs_per_round: u64,
    pub patches_per_image: u64,
    /// Crop size as a fraction of the network input (the reference: 512×256 of 1024×512).
    pub crop_fraction: f64,
    /// Enlargement of the crop (×2 in the paper).
    pub upscale: u32,
    /// β of CE + β·focal on the target examples.
    pub focal_weight: f64,
    /// γ of the focal term.
    pub focal_gamma: f64,
    /// Weight of the target loss.
    pub lambda_target: f64,
    /// Classes never used for selection (SYNTHIA: terrain, truck, train = [9, 14, 16]).
    pub skip_classes: Vec<u8>,
    /// Restart the poly schedule at `train.lr` every round and decay it to 0 by the round's end,
    /// as the reference code does; false: one schedule over `train.max_iters`.
    pub lr_per_round: bool,
    /// Diagnostic: keep the selection and the thresholds but label the kept pixels with the
    /// held target labels (needs a target labelled at the image size), which separates what
    /// the pseudo-labels' errors do from what the rest of the method does.
    pub oracle_labels: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            p_start: 0.10,
            p_step: 0.05,
            p_max: 0.40,
            per_class_divisor: 1.0,
            epochs_per_round: 2,
            patches_per_image: 4,
            crop_fraction: 0.5,
            upscale: 2,
            focal_weight: 0.1,
            focal_gamma: 3.0,
            lambda_target: 1.0,
            skip_classes: vec![],
            lr_per_round: false,
            oracle_labels: false,
        }
    }
}

/// Where the schedule stands (saved in checkpoints).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct State {
    started: bool,
    finished: bool,
    round: usize,
    #[serde(default)]
    round_start: u64,
    round_end: u64,
    selected: usize,
    loader_pos: u64,
}

pub struct Lse {
    p: Params,
    st: State,
    /// The target training set, opened on first use.
    target_cfg: crate::config::DataConfig,
    target: Option<Arc<Dataset>>,
    resize: Option<[u32; 2]>,
    /// The round's scale-invariant examples.
    examples: ExtraStream,
    eval_now: bool,
}

impl Lse {
    pub fn new(p: Params, cfg: &Config, device: &Device) -> Result<Self> {
        Ok(Lse {
            p,
            st: State::default(),
            target_cfg: cfg.target.clone(),
            target: None,
            resize: cfg.target.resize,
            examples: ExtraStream::new(cfg, device),
            eval_now: false,
        })
    }

    fn target(&mut self) -> Result<Arc<Dataset>> {
        if self.target.is_none() {
            self.target = Some(Arc::new(self.target_cfg.open()?));
        }
        Ok(self.target.clone().expect("opened"))
    }

    fn proportion(&self, round: usize) -> f64 {
        self.p.p_start + self.p.p_step * round as f64
    }

    fn round_dir(run: &Path, round: usize) -> PathBuf {
        run.join("lse").join(format!("round_{round}"))
    }

    /// The stream of scale-invariant examples of a round.
    fn open_round(&mut self, dir: &Path, position: u64) -> Result<()> {
        let list = dir.join("selected.txt");
        let text = std::fs::read_to_string(&list).at(&list)?;
        let items: Vec<Item> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, image) = l.split_once('\t').ok_or_else(|| Error::format(&list, format!("bad line `{l}`")))?;
                Ok(Item { name: name.to_string(), image: PathBuf::from(image), label: Some(dir.join("pseudo").join(format!("{name}.png"))) })
            })
            .collect::<Result<_>>()?;
        let ds = Dataset { kind: DatasetKind::Folder, root: dir.to_path_buf(), split: Split::All, items };
        let [w, h] = self.resize.unwrap_or([1024, 512]);
        let crop = [((w as f64) * self.p.crop_fraction).round() as u32, ((h as f64) * self.p.crop_fraction).round() as u32];
        let augment = Augment { resize: self.resize, crop: Some(crop), flip: false, upscale: Some(self.p.upscale) };
        let seed = self.examples.seed ^ ((self.st.round as u64 + 1) << 20);
        self.examples.open(Arc::new(ds), augment, seed, position);
        Ok(())
    }

    /// Select, threshold and write the pseudo-labels of round `self.st.round`.
    fn make_round(&mut self, net: &SegNet, run: &Path, device: &Device) -> Result<Vec<(String, f64)>> {
        let p = self.proportion(self.st.round);
        let dir = Self::round_dir(run, self.st.round);
        let inf = net.valid();
        let target = self.target()?;
        // pass 1: per-image class scores and normalised entropies
        let pb = crate::ui::bar(target.len() as u64, &format!("lse r{}", self.st.round));
        let mut stats = Vec::with_capacity(target.len());
        self.predict_all(&target, &inf, device, |_, _, s, _| {
            stats.push((s.score, s.mean_hn));
            pb.inc(1);
            Ok(())
        })?;
        pb.finish_and_clear();
        let scores: Vec<[Option<f32>; NUM_CLASSES]> = stats.iter().map(|s| s.0).collect();
        let sel = select(&scores, p, self.p.per_class_divisor, &self.p.skip_classes);
        let th = thresholds(&stats.iter().map(|s| s.1).collect::<Vec<_>>(), &sel.boundary);
        // pass 2: pseudo-labels of the selected images
        std::fs::create_dir_all(dir.join("pseudo")).at(&dir)?;
        std::fs::create_dir_all(dir.join("preview")).at(&dir)?;
        let chosen: std::collections::BTreeSet<usize> = sel.selected.iter().copied().collect();
        let mut conf = Confusion::new(crate::data::classes::Protocol::P19);
        // every pixel, unlabelled ones as void: per-class precision and recall of the selection
        let mut all = Confusion::new(crate::data::classes::Protocol::P19);
        let mut per_class = [0u64; NUM_CLASSES];
        let mut total = 0u64;
        let mut list = String::new();
        self.predict_all(&target, &inf, device, |i, img, s, gt| {
            if !chosen.contains(&i) {
                return Ok(());
            }
            let mut pl = pseudo_label(&s.argmax, &s.hn, &th);
            if self.p.oracle_labels {
                let gt = gt.ok_or_else(|| Error::Other("method.lse.oracle_labels needs a target labelled at the image size".into()))?;
                pl.iter_mut().zip(gt).filter(|(q, _)| **q != IGNORE).for_each(|(q, &g)| *q = g);
            }
            let (w, h) = img;
            let map = GrayImage::from_raw(w, h, pl).expect("sizes match");
            let name = &target.items[i].name;
            crate::data::io::write_gray8(&dir.join("pseudo").join(format!("{name}.png")), &map)?;
            crate::data::io::write_rgb(&dir.join("preview").join(format!("{name}.png")), &crate::eval::predict::colorize(&map))?;
            list.push_str(&format!("{name}\t{}\n", target.items[i].image.display()));
            map.as_raw().iter().filter(|&&q| q != IGNORE).for_each(|&q| per_class[q as usize] += 1);
            total += (w * h) as u64;
            if let Some(gt) = gt {
                all.add(gt, map.as_raw());
                let (g, q): (Vec<u8>, Vec<u8>) = gt.iter().zip(map.as_raw()).filter(|(_, &q)| q != IGNORE).map(|(&g, &q)| (g, q)).unzip();
                conf.add(&g, &q);
            }
            Ok(())
        })?;
        std::fs::write(dir.join("selected.txt"), &list).at(&dir)?;
        let labelled: u64 = per_class.iter().sum();
        let mut out = vec![
            ("lse_round".to_string(), self.st.round as f64),
            ("lse_p".to_string(), p),
            ("lse_selected".to_string(), sel.selected.len() as f64),
            ("lse_coverage".to_string(), 100.0 * labelled as f64 / total.max(1) as f64),
        ];
        if conf.total() > 0 {
            let r = conf.report(crate::data::classes::Protocol::P19);
            out.push(("lse_pseudo_acc".to_string(), r.pixel_acc));
            out.push(("lse_pseudo_miou".to_string(), r.miou));
        }
        let classes = class_table(&per_class, total, (all.total() > 0).then_some(&all));
        let summary = serde_json::json!({
            "round": self.st.round, "p": p, "selected": sel.selected.len(),
            "thresholds": th, "scalars": out.iter().map(|(k, v)| (k.clone(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
            "classes": classes,
        });
        std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).expect("json")).at(&dir)?;
        self.st.selected = sel.selected.len();
        Ok(out)
    }

    /// Predict every target image at the network input size, upsampled to the image's own size
    /// (the original scale: the pseudo-labels are the image's labels, whatever `resize` the
    /// loader applies to both), and hand its statistics to `f` (index, (w, h), stats, ground
    /// truth when labelled at that size).
    fn predict_all(&self, target: &Arc<Dataset>, net: &SegNet, device: &Device, mut f: impl FnMut(usize, (u32, u32), &ImageStats, Option<&[u8]>) -> Result<()>) -> Result<()> {
        let augment = Augment { resize: self.resize, crop: None, flip: false, upscale: None };
        let labels = target.has_labels();
        let spec = LoaderSpec { batch: 1, augment, normalize: self.examples.normalize, shuffle: false, labels, keep_label_size: true, seed: 0, prefetch: 2, once: true };
        let mut loader = Loader::new(target.clone(), spec, 0);
        while let Some(b) = loader.next() {
            let b = b?;
            let i = b.indices[0];
            let path = &target.items[i].image;
            let (w, h) = image::image_dimensions(path).map_err(|e| Error::format(path, format!("cannot read the image size: {e}")))?;
            let x = Tensor::<4>::from_data(TensorData::new(b.images, [1, 3, b.h, b.w]), device);
            let up = crate::nn::losses::upsample(net.forward(x).main, [h as usize, w as usize]);
            let probs: Vec<f32> = crate::nn::losses::probs(up).into_data().iter::<f32>().collect();
            let s = image_stats(&probs, NUM_CLASSES, (h * w) as usize);
            let gt = b.labels.as_ref().map(|l| &l[0]).filter(|(lw, lh, _)| (*lw, *lh) == (w, h)).map(|l| l.2.as_slice());
            f(i, (w, h), &s, gt)?;
        }
        Ok(())
    }
}

/// Per class: the share of the selected images' pixels labelled with it and, against held
/// labels, the precision of those labels and the recall of the class's pixels (in percent).
/// This is where a round's drift shows first (e.g. a class labelled mostly on another).
fn class_table(labelled: &[u64; NUM_CLASSES], total: u64, gt: Option<&Confusion>) -> serde_json::Value {
    let pct = |a: u64, b: u64| (b > 0).then(|| 100.0 * a as f64 / b as f64);
    let rows: serde_json::Map<String, serde_json::Value> = (0..NUM_CLASSES)
        .map(|c| {
            let mut row = serde_json::json!({ "share": pct(labelled[c], total) });
            if let Some(m) = gt {
                let tp = m.get(c, c);
                row["precision"] = serde_json::json!(pct(tp, (0..NUM_CLASSES).map(|g| m.get(g, c)).sum()));
                row["recall"] = serde_json::json!(pct(tp, (0..=NUM_CLASSES).map(|q| m.get(c, q)).sum()));
            }
            (crate::data::classes::CLASS_NAMES[c].to_string(), row)
        })
        .collect();
    serde_json::Value::Object(rows)
}

/// Per-image statistics of a softmax map [C, H·W].
pub struct ImageStats {
    pub argmax: Vec<u8>,
    /// Entropy normalised per predicted class within the image: (H − min_u)/(max_u − min_u).
    pub hn: Vec<f32>,
    /// Mean max-probability of the pixels predicted as each class.
    pub score: [Option<f32>; NUM_CLASSES],
    /// Mean normalised entropy of the pixels predicted as each class.
    pub mean_hn: [Option<f32>; NUM_CLASSES],
}

pub fn image_stats(probs: &[f32], c: usize, hw: usize) -> ImageStats {
    let mut argmax = vec![0u8; hw];
    let mut maxp = vec![0f32; hw];
    let mut ent = vec![0f32; hw];
    for i in 0..hw {
        let (mut best, mut bp, mut h) = (0usize, f32::MIN, 0f32);
        for k in 0..c {
            let p = probs[k * hw + i];
            if p > bp {
                bp = p;
                best = k;
            }
            h -= p * (p + 1e-12).ln();
        }
        argmax[i] = best as u8;
        maxp[i] = bp;
        ent[i] = h;
    }
    let mut lo = [f32::MAX; NUM_CLASSES];
    let mut hi = [f32::MIN; NUM_CLASSES];
    let mut sum_p = [0f64; NUM_CLASSES];
    let mut n = [0u64; NUM_CLASSES];
    for i in 0..hw {
        let u = argmax[i] as usize;
        lo[u] = lo[u].min(ent[i]);
        hi[u] = hi[u].max(ent[i]);
        sum_p[u] += maxp[i] as f64;
        n[u] += 1;
    }
    let mut sum_hn = [0f64; NUM_CLASSES];
    let hn: Vec<f32> = (0..hw)
        .map(|i| {
            let u = argmax[i] as usize;
            // a class whose pixels all share one entropy is as confident as it gets: 0
            let v = if hi[u] > lo[u] { (ent[i] - lo[u]) / (hi[u] - lo[u]) } else { 0.0 };
            sum_hn[u] += v as f64;
            v
        })
        .collect();
    ImageStats {
        argmax,
        hn,
        score: std::array::from_fn(|u| (n[u] > 0).then(|| (sum_p[u] / n[u] as f64) as f32)),
        mean_hn: std::array::from_fn(|u| (n[u] > 0).then(|| (sum_hn[u] / n[u] as f64) as f32)),
    }
}

pub struct Selection {
    /// Selected image indices, ascending.
    pub selected: Vec<usize>,
    /// Per class, the first image *not* selected (whose entropy sets the threshold).
    pub boundary: [Option<usize>; NUM_CLASSES],
}

/// Class-wise image selection: per class, the images predicting it ranked by the class's mean
/// confidence; keep the top ceil(p · n_c / divisor).
pub fn select(scores: &[[Option<f32>; NUM_CLASSES]], p: f64, divisor: f64, skip: &[u8]) -> Selection {
    let mut chosen = std::collections::BTreeSet::new();
    let mut boundary = [None; NUM_CLASSES];
    for c in 0..NUM_CLASSES {
        if skip.contains(&(c as u8)) {
            continue;
        }
        let mut imgs: Vec<(usize, f32)> = scores.iter().enumerate().filter_map(|(i, s)| s[c].map(|v| (i, v))).collect();
        if imgs.is_empty() {
            continue;
        }
        imgs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let k = ((p * imgs.len() as f64 / divisor).ceil() as usize).min(imgs.len());
        chosen.extend(imgs[..k].iter().map(|x| x.0));
        boundary[c] = imgs.get(k).map(|x| x.0);
    }
    Selection { selected: chosen.into_iter().collect(), boundary }
}

/// th[c] = mean normalised entropy of class c in its boundary image (1 = keep every pixel
/// when every image of the class was selected or the class was never predicted).
pub fn thresholds(mean_hn: &[[Option<f32>; NUM_CLASSES]], boundary: &[Option<usize>; NUM_CLASSES]) -> [f32; NUM_CLASSES] {
    std::array::from_fn(|c| boundary[c].and_then(|i| mean_hn[i][c]).unwrap_or(1.0))
}

/// argmax where the normalised entropy is at most its class's threshold, else ignore (so a
/// threshold of 1 keeps every pixel of the class).
pub fn pseudo_label(argmax: &[u8], hn: &[f32], th: &[f32; NUM_CLASSES]) -> Vec<u8> {
    argmax.iter().zip(hn).map(|(&u, &h)| if h <= th[u as usize] { u } else { IGNORE }).collect()
}

/// CE + β·focal over valid pixels: mean(ℓ) + β·mean(ℓ·(1 − e^{−ℓ})^γ).
pub fn ce_focal(logits: Tensor<4>, target: Tensor<3, Int>, beta: f64, gamma: f64) -> Tensor<1> {
    let (nll, valid) = ce_per_pixel(logits, target);
    let n = valid.clone().sum().clamp_min(1.0);
    let pt = nll.clone().neg().exp();
    let focal = nll.clone() * pt.neg().add_scalar(1.0).powf_scalar(gamma) * valid;
    (nll.sum() + focal.sum().mul_scalar(beta)) / n
}

impl Method for Lse {
    fn name(&self) -> &'static str {
        "lse"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, ..Default::default() }
    }
    fn before_step(&mut self, b: &Before) -> Result<Vec<(String, f64)>> {
        self.eval_now = false;
        if self.st.finished || (self.st.started && b.it < self.st.round_end) {
            return Ok(vec![]);
        }
        if self.st.started {
            self.st.round += 1;
        }
        if self.proportion(self.st.round) > self.p.p_max + 1e-9 {
            self.st.finished = true;
            self.examples.close();
            return Ok(vec![]);
        }
        self.st.started = true;
        let scalars = self.make_round(b.net, b.run, b.device)?;
        let iters = (self.st.selected as u64 * self.p.epochs_per_round * self.p.patches_per_image / self.examples.batch.max(1) as u64).max(1);
        self.st.round_start = b.it;
        self.st.round_end = b.it + iters;
        self.st.loader_pos = 0;
        self.open_round(&Self::round_dir(b.run, self.st.round), 0)?;
        crate::ui::note(&format!("LSE round {}: p = {:.2}, {} images selected, {iters} iterations", self.st.round, self.proportion(self.st.round), self.st.selected));
        Ok(scalars)
    }
    fn losses(&mut self, step: &mut Step) -> Result<Terms> {
        if !self.examples.is_open() {
            return Ok(vec![]);
        }
        let (x, y) = self.examples.next("LSE's scale-invariant examples")?;
        self.st.loader_pos = self.examples.position;
        self.eval_now = step.it + 1 == self.st.round_end;
        let f = Forward::run(step.net, x);
        let mut l = ce_focal(f.up.main, y.clone(), self.p.focal_weight, self.p.focal_gamma);
        if let Some(a) = f.up.aux {
            l = l + ce_focal(a, y, self.p.focal_weight, self.p.focal_gamma).mul_scalar(self.examples.aux_weight);
        }
        Ok(vec![("lse_target".to_string(), l.mul_scalar(self.p.lambda_target))])
    }
    fn finished(&self) -> bool {
        self.st.finished
    }
    fn lr_window(&self) -> Option<(u64, u64)> {
        (self.p.lr_per_round && self.st.started).then_some((self.st.round_start, self.st.round_end))
    }
    fn eval_now(&self) -> bool {
        self.eval_now
    }
    fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("lse.json");
        std::fs::write(&p, serde_json::to_string_pretty(&self.st).expect("json")).at(&p)
    }
    fn load(&mut self, dir: &Path) -> Result<()> {
        let p = dir.join("lse.json");
        let text = std::fs::read_to_string(&p).at(&p)?;
        self.st = serde_json::from_str(&text).map_err(|e| Error::format(&p, e.to_string()))?;
        if self.st.started && !self.st.finished {
            // the run dir is two levels above checkpoints/last/methods/lse
            let run = dir.ancestors().nth(4).ok_or_else(|| Error::format(dir, "unexpected checkpoint layout"))?;
            self.open_round(&Self::round_dir(run, self.st.round), self.st.loader_pos)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(v: &[&[(usize, f32)]]) -> Vec<[Option<f32>; NUM_CLASSES]> {
        v.iter().map(|img| std::array::from_fn(|c| img.iter().find(|x| x.0 == c).map(|x| x.1))).collect()
    }

    #[test]
    fn class_wise_selection_keeps_the_top_proportion_of_each_class() {
        // 10 images predict road (class 0) with confidence 0.0 … 0.9; images 0..4 also predict
        // sign (class 7) with confidence rising with the index
        let imgs: Vec<Vec<(usize, f32)>> = (0..10).map(|i| {
            let mut v = vec![(0, i as f32 / 10.0)];
            if i < 4 {
                v.push((7, 0.5 + i as f32 / 10.0));
            }
            v
        }).collect();
        let refs: Vec<&[(usize, f32)]> = imgs.iter().map(|v| v.as_slice()).collect();
        let s = select(&scores(&refs), 0.2, 1.0, &[]);
        // road: ceil(0.2·10) = 2 → images 9, 8; sign: ceil(0.2·4) = 1 → image 3
        assert_eq!(s.selected, vec![3, 8, 9]);
        assert_eq!(s.boundary[0], Some(7));
        assert_eq!(s.boundary[7], Some(2));
        assert_eq!(s.boundary[1], None);
        // p = 0.5: road 5, sign 2
        let s = select(&scores(&refs), 0.5, 1.0, &[]);
        assert_eq!(s.selected, vec![2, 3, 5, 6, 7, 8, 9]);
        // skipped classes are not selected for
        let s = select(&scores(&refs), 0.2, 1.0, &[7]);
        assert_eq!(s.selected, vec![8, 9]);
        // the reference code's divisor
        let s = select(&scores(&refs), 0.2, 19.0, &[]);
        assert_eq!(s.selected, vec![3, 9]);
    }

    #[test]
    fn thresholds_and_pseudo_labels_by_hand() {
        // one image, 2 classes, 4 pixels (C = 2 padded to NUM_CLASSES below)
        let hw = 4;
        let p0 = [0.9f32, 0.6, 0.3, 0.2];
        let mut probs = vec![0f32; NUM_CLASSES * hw];
        for i in 0..hw {
            probs[i] = p0[i];
            probs[hw + i] = 1.0 - p0[i];
        }
        let s = image_stats(&probs, NUM_CLASSES, hw);
        assert_eq!(s.argmax, vec![0, 0, 1, 1]);
        let h = |p: f32| -(p * (p + 1e-12).ln() + (1.0 - p) * (1.0 - p + 1e-12).ln());
        // class 0 pixels: entropies h(0.9) < h(0.6) → normalised 0 and 1; class 1: h(0.3) > h(0.2) → 1 and 0
        assert_eq!(s.hn, vec![0.0, 1.0, 1.0, 0.0]);
        assert!((s.score[0].unwrap() - 0.75).abs() < 1e-6);
        assert!((s.score[1].unwrap() - 0.75).abs() < 1e-6);
        assert_eq!(s.mean_hn[0], Some(0.5));
        assert!(h(0.9) < h(0.6));
        // the boundary image of class 0 is this one: threshold 0.5 keeps pixel 0, drops pixel 1
        let mut boundary = [None; NUM_CLASSES];
        boundary[0] = Some(0);
        let th = thresholds(&[s.mean_hn], &boundary);
        assert_eq!(th[0], 0.5);
        assert_eq!(th[1], 1.0);
        assert_eq!(pseudo_label(&s.argmax, &s.hn, &th), vec![0, IGNORE, 1, 1]);
    }

    #[test]
    fn class_table_by_hand() {
        // 6 pixels: gt road road road sidewalk sidewalk car; pseudo road sidewalk ignore sidewalk ignore ignore
        let gt = [0u8, 0, 0, 1, 1, 13];
        let pl = [0u8, 1, IGNORE, 1, IGNORE, IGNORE];
        let mut m = Confusion::new(crate::data::classes::Protocol::P19);
        m.add(&gt, &pl);
        let mut labelled = [0u64; NUM_CLASSES];
        pl.iter().filter(|&&q| q != IGNORE).for_each(|&q| labelled[q as usize] += 1);
        let t = class_table(&labelled, 6, Some(&m));
        let f = |c: &str, k: &str| t[c][k].as_f64();
        assert!((f("road", "share").unwrap() - 100.0 / 6.0).abs() < 1e-9);
        assert_eq!(f("road", "precision"), Some(100.0));
        assert!((f("road", "recall").unwrap() - 100.0 / 3.0).abs() < 1e-9);
        // sidewalk: labelled on one road and one sidewalk pixel, one of two sidewalk pixels found
        assert_eq!(f("sidewalk", "precision"), Some(50.0));
        assert_eq!(f("sidewalk", "recall"), Some(50.0));
        // car is never labelled: no precision, recall 0
        assert_eq!(f("car", "precision"), None);
        assert_eq!(f("car", "recall"), Some(0.0));
        assert_eq!(f("car", "share"), Some(0.0));
        // without held labels only the share
        assert!(class_table(&labelled, 6, None)["road"].get("precision").is_none());
    }

    #[test]
    fn focal_loss_matches_pytorch() {
        // values from scripts/make_fixtures.py (tests/fixtures/focal.json)
        let fix: serde_json::Value = serde_json::from_str(include_str!("../../tests/fixtures/focal.json")).unwrap();
        let d = Device::flex();
        let logits: Vec<f32> = fix["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let labels: Vec<i64> = fix["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let shape: Vec<usize> = fix["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let l = Tensor::<4>::from_data(TensorData::new(logits, [shape[0], shape[1], shape[2], shape[3]]), &d);
        let y = Tensor::<3, Int>::from_data(TensorData::new(labels, [shape[0], shape[2], shape[3]]), &d);
        let got = crate::nn::losses::value(&ce_focal(l, y, 0.1, 3.0));
        let want = fix["loss"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
