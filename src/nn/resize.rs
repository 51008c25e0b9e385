//! Bilinear resize, differentiable on every backend: this crate's CPU kernel
//! (`kernels::resize`) on the CPU, two matrix products everywhere else.
use crate::kernels::{self, resize::taps};
use burn::prelude::*;

/// Bilinear resize (align_corners = true) of [N, C, h, w] to `size`: the CPU kernel (`kernels::resize`) on
/// f32 tensors of the CPU backend (with or without autodiff), two matrix products everywhere
/// else ([`bilinear_matmul`]).
pub fn bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    if !kernels::extension_applies(&x) {
        return bilinear_matmul(x, size, true);
    }
    kernels::resize::bilinear(x, size)
}

/// Bilinear resize with half-pixel centres (align_corners = false, PyTorch's default; the
/// FCN8s head's upsampling): burn's interpolate on the CPU, two matrix products elsewhere.
pub fn bilinear_half_pixel(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    if kernels::extension_applies(&x) {
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        return interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size(size),
        );
    }
    bilinear_matmul(x, size, false)
}

/// Bilinear resize as two products with fixed interpolation matrices: every row across
/// (`X · Aw`, Aw [w, ow]), then every column down (`Ah · X`, Ah [oh, h]). burn's GPU backends
/// (burn-cubecl 0.22.1) implement interpolate's backward for nearest mode only, while matmul,
/// reshape and swap_dims are differentiable everywhere: the backward is the transposed products,
/// and both directions are GEMMs, which GPUs run well.
pub fn bilinear_matmul(x: Tensor<4>, [oh, ow]: [usize; 2], align_corners: bool) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let across = interpolation_matrix(w, ow, align_corners, &device);
    let down = interpolation_matrix(h, oh, align_corners, &device).transpose();
    let rows = x.reshape([n * c * h, w]).matmul(across);
    let columns = rows.reshape([n * c, h, ow]).swap_dims(0, 1).reshape([h, n * c * ow]);
    down.matmul(columns).reshape([oh, n * c, ow]).swap_dims(0, 1).reshape([n, c, oh, ow])
}

/// The [n_in, n_out] matrix of a resize along one axis: column `o` holds the blend weights of
/// output `o` at its two source indices.
fn interpolation_matrix(n_in: usize, n_out: usize, align_corners: bool, device: &Device) -> Tensor<2> {
    let mut m = vec![0f32; n_in * n_out];
    let taps = if align_corners { taps(n_in, n_out) } else { half_pixel_taps(n_in, n_out) };
    for (o, (i0, i1, f)) in taps.into_iter().enumerate() {
        m[i0 * n_out + o] += 1.0 - f;
        m[i1 * n_out + o] += f;
    }
    // a constant (never marked `require_grad`): no gradient is kept for the weights
    Tensor::<2>::from_data(TensorData::new(m, [n_in, n_out]), device)
}

/// The same with half-pixel centres (align_corners = false): output `o` samples the input at
/// (o + ½)·n_in/n_out − ½, clamped at 0, as PyTorch does.
fn half_pixel_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_in - 1);
            (i0, (i0 + 1).min(n_in - 1), (s - i0 as f64) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    use burn::tensor::{Distribution, Tolerance};

    /// The backend-generic path (two matrix products, what GPU backends run) gives the CPU
    /// kernel's values and input gradients, up, down, to and from one row or column.
    #[test]
    fn matmul_path_matches_the_cpu_kernel() {
        let dev = Device::flex().autodiff();
        for (h, w, oh, ow) in
            [(4, 5, 32, 41), (9, 13, 4, 6), (1, 7, 3, 7), (6, 1, 6, 5), (5, 8, 1, 1), (3, 3, 3, 3), (17, 33, 129, 257)]
        {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let weight = Tensor::<4>::random([2, 3, oh, ow], Distribution::Normal(0.0, 1.0), &dev);
            let run = |f: fn(Tensor<4>, [usize; 2]) -> Tensor<4>| {
                let x = x.clone().require_grad();
                let y = f(x.clone(), [oh, ow]);
                let g = (y.clone() * weight.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data())
            };
            let ((y, gx), (want_y, want_gx)) = (run(|x, s| super::bilinear_matmul(x, s, true)), run(super::bilinear));
            y.assert_approx_eq::<f32>(&want_y, Tolerance::rel_abs(1e-5, 1e-5));
            gx.assert_approx_eq::<f32>(&want_gx, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }

    /// With half-pixel centres (the FCN8s head's upsampling) the matrix-product path gives burn's
    /// interpolate's values and gradients (align_corners = false, as PyTorch).
    #[test]
    fn half_pixel_matmul_path_matches_burns_interpolate() {
        let dev = Device::flex().autodiff();
        for (h, w, oh, ow) in [(4, 5, 8, 10), (9, 13, 17, 25), (1, 7, 3, 7), (6, 1, 6, 5), (5, 8, 2, 3), (3, 3, 3, 3)] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let weight = Tensor::<4>::random([2, 3, oh, ow], Distribution::Normal(0.0, 1.0), &dev);
            let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let x = x.clone().require_grad();
                let y = f(x.clone());
                let g = (y.clone() * weight.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data())
            };
            let (y, gx) = run(&|x| super::bilinear_matmul(x, [oh, ow], false));
            let (want_y, want_gx) = run(&|x| {
                interpolate(
                    x,
                    InterpolateOptions::new(InterpolateMode::Bilinear)
                        .with_align_corners(false)
                        .with_output_size([oh, ow]),
                )
            });
            y.assert_approx_eq::<f32>(&want_y, Tolerance::rel_abs(1e-5, 1e-5));
            gx.assert_approx_eq::<f32>(&want_gx, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }
}
