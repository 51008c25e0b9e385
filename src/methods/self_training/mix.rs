//! The mixed images the student learns from: ClassMix of source pixels onto target images,
//! then colour jitter and blur.
use super::params::{Params, PseudoWeight};
use super::pseudo::Pseudo;
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

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
pub fn class_mix(
    xs: &Tensor<4>,
    ys: &[u8],
    xt: &Tensor<4>,
    pseudo: &Pseudo,
    threshold: f64,
    weighting: PseudoWeight,
    rng: &mut impl Rng,
) -> Mixed {
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
    Mixed {
        x,
        y: Tensor::from_data(TensorData::new(y, [n, h, w]), &device),
        weight: Tensor::from_data(TensorData::new(wt, [n, h, w]), &device),
        confident_target,
        labels,
    }
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
    let k: Vec<f32> =
        (0..=2 * r).map(|i| (-((i as f64 - r as f64).powi(2)) / (2.0 * sigma * sigma)).exp() as f32).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn class_mix_pastes_half_the_present_classes_with_their_labels() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // classes 0, 3, 5, 7 present, ignore excluded: two of them are chosen
        let labels = [0u8, 3, 5, 7, 255, 0, 3, 5];
        for _ in 0..20 {
            let m = class_mix_mask(&labels, &mut rng);
            let chosen: std::collections::BTreeSet<u8> =
                labels.iter().zip(&m).filter(|(_, &b)| b).map(|(l, _)| *l).collect();
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
        let pseudo =
            Pseudo { labels: vec![9; 8], conf: vec![0.99, 0.5, 0.99, 0.5, 0.99, 0.5, 0.99, 0.5], weight: vec![0.25] };
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
            // pasted source pixels and confident target pixels
            let expected = if x[k] == 1.0 || pseudo.conf[k] >= 0.9 { 1.0 } else { 0.0 };
            assert_eq!(wt[k], expected, "pixel {k}");
        }
    }
}
