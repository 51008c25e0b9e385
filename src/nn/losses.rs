//! Loss functions with PyTorch's semantics (burn has no `ignore_index`).
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

pub const IGNORE: i64 = 255;

/// Bilinear resize with align_corners = true (as the reference code upsamples logits); on the
/// CPU through `resize`'s separable kernels, forward and backward.
pub fn upsample(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    crate::nn::resize::bilinear(x, size)
}

/// Nearest-neighbour resize of a label map [N,h,w] to `size` = [H, W].
pub fn resize_labels(y: Tensor<3, Int>, size: [usize; 2]) -> Tensor<3, Int> {
    let [n, h, w] = y.dims();
    if [h, w] == size {
        return y;
    }
    interpolate(
        y.float().unsqueeze_dim::<4>(1),
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
    )
    .int()
    .reshape([n, size[0], size[1]])
}

/// Per-pixel cross-entropy [N,H,W] and the validity mask (1 where target != 255) as floats.
pub fn ce_per_pixel(logits: Tensor<4>, target: Tensor<3, Int>) -> (Tensor<3>, Tensor<3>) {
    let valid = target.clone().not_equal_elem(IGNORE);
    let safe = target.mask_fill(valid.clone().bool_not(), 0);
    let nll = log_probs(logits).gather(1, safe.unsqueeze_dim::<4>(1)).neg().squeeze_dim::<3>(1);
    let validf = valid.float();
    (nll * validf.clone(), validf)
}

/// Cross-entropy averaged over non-ignored pixels (0 when every pixel is ignored).
pub fn cross_entropy(logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
    let (nll, valid) = ce_per_pixel(logits, target);
    nll.sum() / valid.sum().clamp_min(1.0)
}

/// Mean binary cross-entropy with logits against a constant label (0 = source, 1 = target).
pub fn bce_with_logits(logits: Tensor<4>, label: f32) -> Tensor<1> {
    // max(x,0) - x·z + log(1 + exp(-|x|)), the numerically stable form
    let pos = logits.clone().clamp_min(0.0);
    let soft = logits.clone().abs().neg().exp().log1p();
    (pos - logits.mul_scalar(label) + soft).mean()
}

/// ADVENT's weighted self-information map: -p·log2(p + 1e-30) / log2(C), per channel.
pub fn self_information(prob: Tensor<4>) -> Tensor<4> {
    let c = prob.dims()[1] as f64;
    let ln2 = std::f64::consts::LN_2;
    (prob.clone() * prob.add_scalar(1e-30).log()).neg().div_scalar(ln2 * c.log2())
}

/// ADVENT's entropy loss: the mean over pixels of the normalised entropy (in [0, 1]).
pub fn entropy_loss(prob: Tensor<4>) -> Tensor<1> {
    let [n, _, h, w] = prob.dims();
    self_information(prob).sum().div_scalar((n * h * w) as f64)
}

/// Softmax over the classes (dim 1), fused on the CPU backend (`model::softmax_ext`).
pub fn probs(logits: Tensor<4>) -> Tensor<4> {
    crate::kernels::softmax::class_softmax(logits, false)
}

/// Log-softmax over the classes (dim 1), fused on the CPU backend.
pub fn log_probs(logits: Tensor<4>) -> Tensor<4> {
    crate::kernels::softmax::class_softmax(logits, true)
}

/// A scalar's value (synchronises the device).
pub fn value(t: &Tensor<1>) -> f64 {
    t.clone().into_scalar::<f32>() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn cross_entropy_ignores_255_and_matches_a_hand_computation() {
        // two pixels: logits (0, ln 3) with target 1 → -ln(3/4); second pixel ignored
        let l = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 5.0, 3f32.ln(), -2.0], [1, 2, 1, 2]), &dev());
        let t = Tensor::<3, Int>::from_data(TensorData::new(vec![1i64, 255], [1, 1, 2]), &dev());
        let v = value(&cross_entropy(l, t));
        assert!((v - (4.0f64 / 3.0).ln()).abs() < 1e-6, "{v}");
        // all ignored → 0, not NaN
        let l = Tensor::<4>::zeros([1, 3, 2, 2], &dev());
        let t = Tensor::<3, Int>::full([1, 2, 2], 255, &dev());
        assert_eq!(value(&cross_entropy(l, t)), 0.0);
    }

    #[test]
    fn bce_with_logits_matches_the_formula() {
        let x = [-3.0f32, -0.5, 0.0, 2.0, 40.0];
        let l = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, 1, 5]), &dev());
        for z in [0.0f32, 1.0] {
            // -[z·ln σ(x) + (1−z)·ln σ(−x)] in f64, with σ(−x) computed directly
            let want: f64 = x
                .iter()
                .map(|&x| {
                    let (s, s_neg) = (1.0 / (1.0 + (-x as f64).exp()), 1.0 / (1.0 + (x as f64).exp()));
                    -(z as f64 * s.ln() + (1.0 - z as f64) * s_neg.ln())
                })
                .sum::<f64>()
                / 5.0;
            let got = value(&bce_with_logits(l.clone(), z));
            assert!((got - want).abs() < 1e-4, "z={z}: {got} vs {want}");
        }
    }

    #[test]
    fn entropy_of_uniform_is_one_and_of_one_hot_is_zero() {
        let u = Tensor::<4>::full([1, 19, 2, 3], 1.0 / 19.0, &dev());
        assert!((value(&entropy_loss(u)) - 1.0).abs() < 1e-5);
        let mut v = vec![0.0f32; 19];
        v[4] = 1.0;
        let o = Tensor::<4>::from_data(TensorData::new(v, [1, 19, 1, 1]), &dev());
        assert!(value(&entropy_loss(o)).abs() < 1e-6);
        // per-channel map of p = (0.5, 0.5) with C = 2: each channel 0.5·1/1 = 0.5
        let h = Tensor::<4>::full([1, 2, 1, 1], 0.5, &dev());
        let m: Vec<f32> = self_information(h).into_data().iter::<f32>().collect();
        assert!(m.iter().all(|&x| (x - 0.5).abs() < 1e-6), "{m:?}");
    }
}
