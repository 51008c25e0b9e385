//! Multi-level region expansion: which classes a target image may contain (image level), its
//! confident seeds (pixel level), and their growth through pixels related to the same pivot
//! (region level).
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::methods::state::{load_json, save_json};
use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;

/// The image-level category logits of `head` on globally pooled features, [N, K].
pub(super) fn image_logits(head: &Linear, f: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = f.dims();
    head.forward(f.mean_dim(3).mean_dim(2).reshape([n, c]))
}

/// Which classes each target image may contain: w·σ(head) + (1 − w)·min(1, area/area_ref).
pub fn infer_present(head_prob: Option<&[f32]>, area: &[f32], w: f64, area_ref: f64, threshold: f64) -> Vec<bool> {
    (0..area.len())
        .map(|c| {
            let a = (area[c] as f64 / area_ref).min(1.0);
            let s = match head_prob {
                Some(h) => w * h[c] as f64 + (1.0 - w) * a,
                None => a,
            };
            s >= threshold
        })
        .collect()
}

/// Each pixel's argmax class and its probability (maps [K, h·w] row-major; the first class on
/// a tie).
pub fn argmax(prob: &[f32], k: usize) -> Vec<(usize, f32)> {
    let hw = prob.len() / k;
    (0..hw)
        .map(|i| {
            let (mut best, mut bp) = (0usize, f32::MIN);
            for c in 0..k {
                if prob[c * hw + i] > bp {
                    bp = prob[c * hw + i];
                    best = c;
                }
            }
            (best, bp)
        })
        .collect()
}

/// The seed threshold of each of `k` classes on one image, from its pixels' `argmax`:
/// `confident`, lowered for a class to the probability of its `portion`-th most confident pixel
/// (CBST's class-balanced selection, so that a class the model is rarely sure of still has
/// seeds); `portion = 0`: `confident` alone.
pub fn seed_thresholds(best: &[(usize, f32)], k: usize, confident: f32, portion: f64) -> Vec<f32> {
    let mut t = vec![confident; k];
    if portion <= 0.0 {
        return t;
    }
    let mut by_class: Vec<Vec<f32>> = vec![Vec::new(); k];
    for &(c, p) in best {
        by_class[c].push(p);
    }
    for (c, ps) in by_class.iter_mut().enumerate() {
        if ps.is_empty() {
            continue;
        }
        ps.sort_by(|a, b| b.total_cmp(a));
        let n = ((portion * ps.len() as f64).ceil() as usize).clamp(1, ps.len());
        t[c] = t[c].min(ps[n - 1]);
    }
    t
}

/// Resolution of [`Confidences`]: a threshold is a multiple of 1/1000 below the exact quantile.
const BINS: usize = 1000;

/// How confident the pseudo-labels' model is on every target pixel it has labelled, per argmax
/// class (a histogram over [0, 1]): CBST's class-balanced thresholds over the target set rather
/// than over one image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Confidences {
    pub(super) counts: Vec<Vec<u64>>,
}

impl Confidences {
    pub fn new(k: usize) -> Self {
        Confidences { counts: vec![vec![0; BINS]; k] }
    }

    /// Counts one image's pixels (their `argmax`).
    pub fn add(&mut self, best: &[(usize, f32)]) {
        for &(c, p) in best {
            self.counts[c][((p * BINS as f32) as usize).min(BINS - 1)] += 1;
        }
    }

    /// As [`seed_thresholds`], with each class's `portion` counted over every pixel added: a
    /// class's threshold is the lower edge of the bin holding its `portion`-th most confident
    /// pixel, if below `confident`.
    pub fn thresholds(&self, confident: f32, portion: f64) -> Vec<f32> {
        self.counts
            .iter()
            .map(|bins| {
                let total: u64 = bins.iter().sum();
                if portion <= 0.0 || total == 0 {
                    return confident;
                }
                let n = ((portion * total as f64).ceil() as u64).clamp(1, total);
                let (mut seen, mut b) = (0u64, BINS);
                while seen < n {
                    b -= 1;
                    seen += bins[b];
                }
                confident.min(b as f32 / BINS as f32)
            })
            .collect()
    }

    const FILE: &'static str = "pit_confidences.json";

    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join(Self::FILE);
        save_json(self, &p)
    }

    /// The counts saved in `dir`, if any (a run that started before they were kept has none).
    pub(super) fn load(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join(Self::FILE);
        if !p.is_file() {
            return Ok(None);
        }
        let c: Confidences = load_json(&p)?;
        if c.counts.len() != NUM_CLASSES || c.counts.iter().any(|b| b.len() != BINS) {
            return Err(Error::format(&p, format!("expected {NUM_CLASSES} classes of {BINS} counts each")));
        }
        Ok(Some(c))
    }
}

/// The relation map [K, h·w] of one image's pixels to the image's *own* pivots: each class's
/// centroid of the features `feats` ([channels, h·w] row-major) over its seed pixels in `seeds`
/// (a class label per pixel, IGNORE where none), related by cos / `temperature` and a softmax
/// over the classes with seeds; a class without seeds has relation 0 everywhere. The category
/// information of this image, not of the source, so that its relation to the pixels compares
/// features of one domain.
pub fn image_relation(feats: &[f32], channels: usize, seeds: &[u8], k: usize, temperature: f32) -> Vec<f32> {
    let hw = seeds.len();
    // pixel-major, so that each pixel's feature is contiguous
    let mut px = vec![0f32; hw * channels];
    for (ch, plane) in feats.chunks(hw).enumerate() {
        for (x, &v) in plane.iter().enumerate() {
            px[x * channels + ch] = v;
        }
    }
    let mut sums = vec![vec![0f64; channels]; k];
    let mut counts = vec![0usize; k];
    for (f, &l) in px.chunks(channels).zip(seeds) {
        if l != IGNORE {
            counts[l as usize] += 1;
            sums[l as usize].iter_mut().zip(f).for_each(|(s, &v)| *s += v as f64);
        }
    }
    let unit = |v: &[f64]| {
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        v.iter().map(|a| (a / n) as f32).collect::<Vec<f32>>()
    };
    let pivots: Vec<(usize, Vec<f32>)> = (0..k).filter(|&c| counts[c] > 0).map(|c| (c, unit(&sums[c]))).collect();
    let mut rel = vec![0f32; k * hw];
    let mut logits = vec![0f32; pivots.len()];
    for (x, f) in px.chunks(channels).enumerate() {
        let norm = f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt().max(1e-12) as f32;
        for (l, (_, p)) in logits.iter_mut().zip(&pivots) {
            *l = p.iter().zip(f).map(|(a, b)| a * b).sum::<f32>() / norm / temperature;
        }
        let top = logits.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = logits.iter().map(|&l| (l - top).exp()).sum();
        for (l, (c, _)) in logits.iter().zip(&pivots) {
            rel[c * hw + x] = (l - top).exp() / z;
        }
    }
    rel
}

/// Multi-level region expansion on one image (its pixels' `argmax`, the relation map [K, h·w]
/// row-major, width `w`): seeds = pixels whose argmax class is present and at least that
/// class's `seed_conf` (image and pixel level); each seed region grows into 4-neighbours whose
/// relation probability to the same pivot is at least `grow` (region level). Classes not present
/// never appear.
pub fn expand_regions(
    best: &[(usize, f32)],
    relation: &[f32],
    present: &[bool],
    w: usize,
    seed_conf: &[f32],
    grow: Option<f32>,
) -> Vec<u8> {
    let hw = best.len();
    let mut label = vec![IGNORE; hw];
    let mut queue = VecDeque::new();
    for (i, &(best, bp)) in best.iter().enumerate() {
        if present[best] && bp >= seed_conf[best] {
            label[i] = best as u8;
            queue.push_back(i);
        }
    }
    let Some(grow) = grow else { return label };
    let h = hw / w;
    while let Some(i) = queue.pop_front() {
        let c = label[i] as usize;
        let (x, y) = (i % w, i / w);
        let mut nb = Vec::with_capacity(4);
        if x > 0 {
            nb.push(i - 1);
        }
        if x + 1 < w {
            nb.push(i + 1);
        }
        if y > 0 {
            nb.push(i - w);
        }
        if y + 1 < h {
            nb.push(i + w);
        }
        for j in nb {
            if label[j] == IGNORE && relation[c * hw + j] >= grow {
                label[j] = c as u8;
                queue.push_back(j);
            }
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 classes on a 5×3 map; class 1 is confident only at (0,0).
    fn maps(rel1: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let hw = 15;
        let mut prob = vec![0f32; 2 * hw];
        for i in 0..hw {
            prob[i] = 0.6; // class 0, not confident
            prob[hw + i] = 0.4;
        }
        prob[0] = 0.05;
        prob[hw] = 0.95;
        let mut rel = vec![0f32; 2 * hw];
        for i in 0..hw {
            rel[hw + i] = rel1[i];
            rel[i] = 1.0 - rel1[i];
        }
        (prob, rel)
    }

    #[test]
    fn a_seed_grows_through_its_similar_region_and_stops_at_a_boundary() {
        // relation to pivot 1: high in the left two columns (a connected region), low elsewhere;
        // (4,2) is high too but not connected to the seed
        #[rustfmt::skip]
        let rel1 = [
            0.9, 0.8, 0.1, 0.1, 0.1,
            0.9, 0.7, 0.2, 0.1, 0.1,
            0.8, 0.9, 0.1, 0.1, 0.9,
        ];
        let (prob, rel) = maps(&rel1);
        let l = expand_regions(&argmax(&prob, 2), &rel, &[true, true], 5, &[0.9; 2], Some(0.6));
        #[rustfmt::skip]
        let want = [
            1, 1, 255, 255, 255,
            1, 1, 255, 255, 255,
            1, 1, 255, 255, 255,
        ];
        assert_eq!(l, want);
        // without expansion only the seed is labelled
        let l = expand_regions(&argmax(&prob, 2), &rel, &[true, true], 5, &[0.9; 2], None);
        assert_eq!(l.iter().filter(|&&v| v != IGNORE).count(), 1);
    }

    #[test]
    fn the_images_own_pivots_relate_its_pixels_to_its_seeds() {
        // 3 classes, 2 channels, a 4×1 image: a seed of class 0 at x=0 (feature along the first
        // axis), of class 2 at x=3 (along the second); class 1 has no seed
        let seeds = [0u8, IGNORE, IGNORE, 2];
        #[rustfmt::skip]
        let feats = [
            1.0, 0.9, 0.1, 0.0, // channel 0
            0.0, 0.1, 0.9, 1.0, // channel 1
        ];
        let r = image_relation(&feats, 2, &seeds, 3, 0.1);
        let at = |c: usize, x: usize| r[c * 4 + x];
        // by hand, x=1: cos to pivot 0 = 0.9/|(0.9, 0.1)|, to pivot 2 = 0.1/|(0.9, 0.1)|
        let n = (0.81f32 + 0.01).sqrt();
        let (l0, l2) = (0.9 / n / 0.1, 0.1 / n / 0.1);
        let want = 1.0 / (1.0 + (l2 - l0).exp());
        assert!((at(0, 1) - want).abs() < 1e-5, "{} against {want}", at(0, 1));
        for x in 0..4 {
            assert_eq!(at(1, x), 0.0, "a class without seeds relates to nothing");
            assert!((at(0, x) + at(2, x) - 1.0).abs() < 1e-6);
        }
        assert!(at(2, 2) > 0.99 && at(0, 1) > 0.99);
        // grown from the seeds with it, each pixel joins the seed it resembles
        let best = [(0usize, 0.95f32), (1, 0.5), (1, 0.5), (2, 0.95)];
        let l = expand_regions(&best, &r, &[true; 3], 4, &[0.9; 3], Some(0.6));
        assert_eq!(l, [0, 0, 2, 2]);
    }

    #[test]
    fn classes_inferred_absent_never_appear() {
        let rel1 = [0.9f32; 15];
        let (prob, rel) = maps(&rel1);
        let l = expand_regions(&argmax(&prob, 2), &rel, &[true, false], 5, &[0.9; 2], Some(0.6));
        assert!(l.iter().all(|&v| v == IGNORE), "{l:?}");
        // presence: head and area fused
        let present = infer_present(Some(&[0.9, 0.1, 0.9]), &[0.0, 0.5, 0.02], 0.5, 0.01, 0.5);
        assert_eq!(present, vec![false, true, true]);
        assert_eq!(infer_present(None, &[0.0, 0.5], 0.5, 0.01, 0.5), vec![false, true]);
    }

    #[test]
    fn a_class_never_confident_still_has_its_most_confident_pixels_as_seeds() {
        // class 0 everywhere at 0.6 (never ≥ 0.9) except (0,0), class 1's at 0.95
        let (prob, rel) = maps(&[0.0f32; 15]);
        // confident seeds only: class 0, argmax on 14 pixels, has none
        assert_eq!(seed_thresholds(&argmax(&prob, 2), 2, 0.9, 0.0), vec![0.9, 0.9]);
        // its top 20 % (3 of 14 pixels, all at 0.6) lower its threshold; class 1 keeps 0.9
        let t = seed_thresholds(&argmax(&prob, 2), 2, 0.9, 0.2);
        assert_eq!(t, vec![0.6, 0.9]);
        let l = expand_regions(&argmax(&prob, 2), &rel, &[true, true], 5, &t, None);
        assert_eq!(l.iter().filter(|&&v| v == 0).count(), 14);
        assert_eq!(l[0], 1);
        // graded confidences: the top 20 % of class 0's pixels, no more
        let mut prob = prob;
        for i in 1..15 {
            prob[i] = 0.5 + 0.01 * i as f32;
            prob[15 + i] = 1.0 - prob[i];
        }
        let t = seed_thresholds(&argmax(&prob, 2), 2, 0.9, 0.2);
        let l = expand_regions(&argmax(&prob, 2), &rel, &[true, true], 5, &t, None);
        assert_eq!(l.iter().filter(|&&v| v == 0).count(), 3, "{l:?}");
        assert!(l[12..].iter().all(|&v| v == 0), "the three most confident: {l:?}");
    }

    #[test]
    fn over_the_target_a_class_seeds_where_it_is_surest_not_in_every_image() {
        // class 1: 10 pixels at 0.8 in image A, 10 at 0.3 in image B; class 0 never predicted
        let a = vec![(1usize, 0.8f32); 10];
        let b = vec![(1usize, 0.3f32); 10];
        // per image, half of B's class-1 pixels are seeds however unsure
        assert_eq!(seed_thresholds(&b, 2, 0.9, 0.5)[1], 0.3);
        // over both images, the top half of class 1 is A's pixels: B's are not seeds
        let mut c = Confidences::new(2);
        c.add(&a);
        c.add(&b);
        let t = c.thresholds(0.9, 0.5);
        assert_eq!(t[0], 0.9, "an unseen class keeps the confident threshold");
        assert!(t[1] > 0.79 && t[1] <= 0.8, "{t:?}");
        assert!(expand_regions(&b, &[0.0; 20], &[true, true], 5, &t, None).iter().all(|&v| v == IGNORE));
        assert!(expand_regions(&a, &[0.0; 20], &[true, true], 5, &t, None).iter().all(|&v| v == 1));
        // a larger portion reaches into B; no portion is the confident rule; the confident
        // threshold caps it
        assert!(c.thresholds(0.9, 0.75)[1] <= 0.3);
        assert_eq!(c.thresholds(0.9, 0.0), vec![0.9, 0.9]);
        assert_eq!(c.thresholds(0.5, 0.5), vec![0.5, 0.5]);
    }

    #[test]
    fn the_target_confidences_load_back_and_a_broken_file_is_named() {
        let dir = std::env::temp_dir().join(format!("segda-pit-confidences-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Confidences::load(&dir).unwrap(), None);
        let mut c = Confidences::new(NUM_CLASSES);
        c.add(&[(3, 0.42), (18, 1.0), (0, 0.0)]);
        c.save(&dir).unwrap();
        assert_eq!(Confidences::load(&dir).unwrap(), Some(c));
        std::fs::write(dir.join(Confidences::FILE), "{\"counts\": [[1, 2]]}").unwrap();
        let e = Confidences::load(&dir).unwrap_err().to_string();
        assert!(e.contains(Confidences::FILE) && e.contains("classes"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
