//! Bilinear resize with align_corners = true on the CPU backend, separable: each source row is
//! interpolated across once, then every output row is a blend of two of those (burn-flex
//! computes both axes' weights and four taps for every output pixel, and the logits' upsampling
//! to the input size is one of the largest tensors of a step). Under autodiff the backward is the
//! same two passes transposed.
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait ResizeExt: burn::backend::Backend {
    /// Bilinear resize (align_corners = true) of [N, C, h, w] to [N, C, oh, ow].
    fn bilinear_ext(x: FloatTensor<Self>, size: [usize; 2]) -> FloatTensor<Self>;
    /// Its input gradient: the output gradient resized back by the transposed interpolation.
    fn bilinear_ext_backward(grad: FloatTensor<Self>, size: [usize; 2]) -> FloatTensor<Self>;
}

impl ResizeExt for Flex {
    fn bilinear_ext(x: FlexTensor, size: [usize; 2]) -> FlexTensor {
        let x = x.to_contiguous();
        let [n, c, h, w] = x.layout().shape().dims::<4>();
        let y = bilinear_align_corners(super::f32s(&x), [h, w], size);
        FlexTensor::from_data(TensorData::new(y, [n, c, size[0], size[1]]))
    }
    fn bilinear_ext_backward(grad: FlexTensor, size: [usize; 2]) -> FlexTensor {
        let g = grad.to_contiguous();
        let [n, c, oh, ow] = g.layout().shape().dims::<4>();
        let gx = bilinear_align_corners_backward(super::f32s(&g), [oh, ow], size);
        FlexTensor::from_data(TensorData::new(gx, [n, c, size[0], size[1]]))
    }
}

impl<B: Backend + ResizeExt, C: CheckpointStrategy> ResizeExt for Autodiff<B, C> {
    fn bilinear_ext(x: FloatTensor<Self>, size: [usize; 2]) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BilinearBackward;

        impl<B: Backend + ResizeExt> Backward<B, 1> for BilinearBackward {
            /// The input's spatial size.
            type State = [usize; 2];

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::bilinear_ext_backward(grad, ops.state));
                }
            }
        }

        let [_, _, h, w] = x.primitive().shape().dims::<4>();
        match BilinearBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish([h, w], B::bilinear_ext(x.into_primitive(), size)),
            OpsKind::UnTracked(prep) => prep.finish(B::bilinear_ext(x.into_primitive(), size)),
        }
    }
    fn bilinear_ext_backward(_: FloatTensor<Self>, _: [usize; 2]) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// Bilinear resize (align_corners = true) of [N, C, h, w] to `size` through this extension (CPU
/// backend only; `nn::resize::bilinear` routes).
pub fn bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ResizeExt>::bilinear_ext(x.into_dispatch(), size))
}

/// Source index pairs and blend weights of an align_corners = true resize from `n_in` to `n_out`.
pub fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = if n_out > 1 { (n_in - 1) as f64 / (n_out - 1) as f64 } else { 0.0 };
    (0..n_out)
        .map(|o| {
            let s = o as f64 * scale;
            let i0 = (s.floor() as usize).min(n_in - 1);
            (i0, (i0 + 1).min(n_in - 1), (s - i0 as f64) as f32)
        })
        .collect()
}

/// Resizes `planes` (a multiple of h·w floats, each plane [h, w]) to [oh, ow] per plane.
pub fn bilinear_align_corners(planes: &[f32], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Vec<f32> {
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let mut out = vec![0f32; planes.len() / (h * w) * oh * ow];
    out.par_chunks_mut(oh * ow).zip(planes.par_chunks(h * w)).for_each(|(dst, src)| {
        // every source row across to the output width
        let mut across = vec![0f32; h * ow];
        for (row, s) in across.chunks_exact_mut(ow).zip(src.chunks_exact(w)) {
            for (d, &(x0, x1, f)) in row.iter_mut().zip(&tx) {
                *d = s[x0] + (s[x1] - s[x0]) * f;
            }
        }
        for (row, &(y0, y1, f)) in dst.chunks_exact_mut(ow).zip(&ty) {
            let (a, b) = (&across[y0 * ow..][..ow], &across[y1 * ow..][..ow]);
            for ((d, &a), &b) in row.iter_mut().zip(a).zip(b) {
                *d = a + (b - a) * f;
            }
        }
    });
    out
}

/// The transpose of [`bilinear_align_corners`]: `grads` (planes [oh, ow]) gathered back onto
/// planes [h, w]: first onto the source rows (each output row to its two), then across.
pub fn bilinear_align_corners_backward(grads: &[f32], [oh, ow]: [usize; 2], [h, w]: [usize; 2]) -> Vec<f32> {
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let mut out = vec![0f32; grads.len() / (oh * ow) * h * w];
    out.par_chunks_mut(h * w).zip(grads.par_chunks(oh * ow)).for_each(|(dst, g)| {
        let mut rows = vec![0f32; h * ow];
        for (grow, &(y0, y1, f)) in g.chunks_exact(ow).zip(&ty) {
            for (r, &v) in rows[y0 * ow..][..ow].iter_mut().zip(grow) {
                *r += v * (1.0 - f);
            }
            for (r, &v) in rows[y1 * ow..][..ow].iter_mut().zip(grow) {
                *r += v * f;
            }
        }
        for (d, r) in dst.chunks_exact_mut(w).zip(rows.chunks_exact(ow)) {
            for (&v, &(x0, x1, f)) in r.iter().zip(&tx) {
                d[x0] += v * (1.0 - f);
                d[x1] += v * f;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    use burn::tensor::{Distribution, Tolerance};

    /// Agrees with burn's bilinear interpolation (align_corners = true) up, down, to and from
    /// one row or column, with a batch and several channels.
    #[test]
    fn matches_burns_bilinear() {
        let dev = Device::flex();
        for (h, w, oh, ow) in [(4, 5, 32, 41), (9, 13, 4, 6), (1, 7, 3, 7), (6, 1, 6, 5), (5, 8, 1, 1), (3, 3, 3, 3)] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let want = interpolate(
                x.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(true).with_output_size([oh, ow]),
            );
            let got = super::bilinear_align_corners(&x.into_data().try_to_vec::<f32>().unwrap(), [h, w], [oh, ow]);
            TensorData::new(got, [2, 3, oh, ow])
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-5, 1e-5));
        }
    }

    /// Under autodiff: the same values and input gradients as burn's bilinear interpolation,
    /// for a gradient that differs at every output pixel.
    #[test]
    fn gradients_match_burns_bilinear() {
        let dev = Device::flex().autodiff();
        for (h, w, oh, ow) in
            [(4, 5, 32, 41), (9, 13, 4, 6), (1, 7, 3, 7), (6, 1, 6, 5), (5, 8, 1, 1), (32, 64, 256, 512)]
        {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let weight = Tensor::<4>::random([2, 3, oh, ow], Distribution::Normal(0.0, 1.0), &dev);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    super::bilinear(x.clone(), [oh, ow])
                } else {
                    interpolate(
                        x.clone(),
                        InterpolateOptions::new(InterpolateMode::Bilinear)
                            .with_align_corners(true)
                            .with_output_size([oh, ow]),
                    )
                };
                let g = (y.clone() * weight.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data())
            };
            let ((y, gx), (want_y, want_gx)) = (run(true), run(false));
            y.assert_approx_eq::<f32>(&want_y, Tolerance::rel_abs(1e-5, 1e-5));
            gx.assert_approx_eq::<f32>(&want_gx, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }
}
