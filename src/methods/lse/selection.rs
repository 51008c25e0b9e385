//! Per-image statistics of a prediction, the class-wise image selection, the entropy thresholds
//! and the pseudo-labels they give: pure functions of the predictions.
use crate::data::classes::{IGNORE, NUM_CLASSES};
use rayon::prelude::*;

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
    // per pixel: argmax, max probability, entropy. Pixels are independent, so the pass runs in
    // parallel (19 logarithms a pixel over every target image: most of an LSE round's host time)
    // and gives the same bits as a serial one.
    let mut argmax = vec![0u8; hw];
    let mut maxp = vec![0f32; hw];
    let mut ent = vec![0f32; hw];
    const CHUNK: usize = 4096;
    argmax.par_chunks_mut(CHUNK).zip(maxp.par_chunks_mut(CHUNK)).zip(ent.par_chunks_mut(CHUNK)).enumerate().for_each(
        |(ci, ((am, mp), en))| {
            for j in 0..am.len() {
                let i = ci * CHUNK + j;
                let (mut best, mut bp, mut h) = (0usize, f32::MIN, 0f32);
                for k in 0..c {
                    let p = probs[k * hw + i];
                    if p > bp {
                        bp = p;
                        best = k;
                    }
                    h -= p * (p + 1e-12).ln();
                }
                am[j] = best as u8;
                mp[j] = bp;
                en[j] = h;
            }
        },
    );
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
pub fn thresholds(
    mean_hn: &[[Option<f32>; NUM_CLASSES]],
    boundary: &[Option<usize>; NUM_CLASSES],
) -> [f32; NUM_CLASSES] {
    std::array::from_fn(|c| boundary[c].and_then(|i| mean_hn[i][c]).unwrap_or(1.0))
}

/// argmax where the normalised entropy is at most its class's threshold, else ignore (so a
/// threshold of 1 keeps every pixel of the class).
pub fn pseudo_label(argmax: &[u8], hn: &[f32], th: &[f32; NUM_CLASSES]) -> Vec<u8> {
    argmax.iter().zip(hn).map(|(&u, &h)| if h <= th[u as usize] { u } else { IGNORE }).collect()
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
        let imgs: Vec<Vec<(usize, f32)>> = (0..10)
            .map(|i| {
                let mut v = vec![(0, i as f32 / 10.0)];
                if i < 4 {
                    v.push((7, 0.5 + i as f32 / 10.0));
                }
                v
            })
            .collect();
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
    fn image_stats_across_many_pixel_chunks_match_each_pixel_on_its_own() {
        // more pixels than one parallel chunk holds, the last chunk partial
        let hw = 3 * 4096 + 77;
        let mut probs = vec![0f32; NUM_CLASSES * hw];
        for i in 0..hw {
            let top = (i * 7919) % NUM_CLASSES;
            let conf = 0.3 + 0.6 * ((i * 31) % 101) as f32 / 100.0;
            for k in 0..NUM_CLASSES {
                probs[k * hw + i] = if k == top { conf } else { (1.0 - conf) / (NUM_CLASSES - 1) as f32 };
            }
        }
        let s = image_stats(&probs, NUM_CLASSES, hw);
        for i in [0, 4095, 4096, 8191, 8192, hw - 1] {
            let column: Vec<f32> = (0..NUM_CLASSES).map(|k| probs[k * hw + i]).collect();
            let top = (i * 7919) % NUM_CLASSES;
            assert_eq!(s.argmax[i] as usize, top, "pixel {i}");
            // the same pixel alone in an image of its own
            let alone = image_stats(&column, NUM_CLASSES, 1);
            assert_eq!(alone.argmax[0] as usize, top);
            assert!((alone.score[top].unwrap() - column[top]).abs() < 1e-7);
        }
        // per class, the normalised entropies span [0, 1] and the scores are the mean confidences
        for u in 0..NUM_CLASSES {
            let mine: Vec<usize> = (0..hw).filter(|&i| s.argmax[i] as usize == u).collect();
            let mean = mine.iter().map(|&i| probs[u * hw + i] as f64).sum::<f64>() / mine.len() as f64;
            assert!((s.score[u].unwrap() as f64 - mean).abs() < 1e-5, "class {u}");
            let lo = mine.iter().map(|&i| s.hn[i]).fold(f32::MAX, f32::min);
            let hi = mine.iter().map(|&i| s.hn[i]).fold(f32::MIN, f32::max);
            assert_eq!((lo, hi), (0.0, 1.0), "class {u}");
        }
    }
}
