//! Convolution kernels that burn's CPU backend is slow at, as a burn backend extension
//! (`#[backend_extension]`, burn's mechanism for custom ops; no fork of burn).
//!
//! - **Depthwise** (groups = channels): burn computes a grouped convolution's weight gradient
//!   group by group, i.e. one convolution per channel whose "kernel" is the whole output-gradient
//!   plane and whose output is 3×3, which burn-flex runs nine outputs at a time. Here: the
//!   weight gradient as vectorised dot products, the input gradient as per-tap row updates, and
//!   the strided forward likewise; burn-flex's stride-1 forward is as fast and is kept.
//! - **Dense** (groups = 1): burn runs the weight gradient as a convolution over the swapped
//!   batch and channel axes, which at batch 1 is again a huge-kernel direct loop; its forward
//!   packs the whole weight again for every 512-position tile of a channels-last copy of the
//!   input. Here both are im2col in bands of output rows and one GEMM per band, the forward's
//!   written straight into the output planes. The stride-1 input gradient is burn-flex's forward convolution with
//!   the flipped kernel (the same kernel) instead of burn's conv-transpose.
//! - **1×1, stride 1** (most of ResNet's and MobileNetV2's layers): a matrix product per image
//!   on the NCHW planes and both gradients plain GEMMs; no im2col, no col2im.
//! - **Few output channels** (the classifier, stride 1): forward and weight gradient through
//!   `direct`'s kernels; the input gradient is the dense one (its column buffer is small).
//!
//! Routed only for Flex tensors (and autodiff over Flex); other devices keep burn's convolution.
//! By role: this file the extension's trait, its Flex implementation (which kernel runs) and the
//! public `conv2d`; `autodiff` the backward; `dense`, `depthwise`, `pointwise` and `direct` the
//! kernel families; `geometry` and `gemm` what they share. Figures: docs/benchmarks.md.
mod autodiff;
mod dense;
mod depthwise;
mod direct;
mod gemm;
mod geometry;
mod pointwise;

use super::f32s;
use burn::backend::ops::conv::calculate_conv_output_size;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;
use geometry::Geometry;

#[backend_extension(Flex, Autodiff)]
pub trait ConvExt: burn::backend::Backend {
    /// conv2d(x, weight, bias) with groups = 1 or groups = channels (depthwise).
    fn conv2d_ext(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// The input gradient of `conv2d_ext` given the output gradient.
    fn conv2d_ext_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// The weight gradient of `conv2d_ext` given the output gradient.
    fn conv2d_ext_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl ConvExt for Flex {
    fn conv2d_ext(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let wdims = weight.layout().shape().dims::<4>();
        let dense = options.groups == 1;
        let pointwise = dense && pointwise::applies(&wdims, &options);
        let direct = dense && !pointwise && direct::suits(wdims[0], options.stride);
        if !dense && options.stride == [1, 1] {
            return Flex::conv2d(x, weight, Some(bias), options);
        }
        let (x, w, b) = (x.to_contiguous(), weight.to_contiguous(), bias.to_contiguous());
        let [n, c, h, wd] = x.layout().shape().dims::<4>();
        let out = |len: usize, k: usize, d: usize| {
            calculate_conv_output_size(k, options.stride[d], options.padding_begin()[d], options.dilation[d], len)
        };
        let geo = Geometry::new([n, c, h, wd], [out(h, wdims[2], 0), out(wd, wdims[3], 1)], wdims, &options);
        let y = if direct {
            direct::forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else if pointwise {
            pointwise::forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else if dense {
            dense::forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else {
            depthwise::forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        };
        FlexTensor::from_data(TensorData::new(y, [n, geo.co, geo.oh, geo.ow]))
    }
    fn conv2d_ext_x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if options.groups == 1 && pointwise::applies(&weight.layout().shape().dims::<4>(), &options) {
            let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
            let geo = Geometry::new(
                x.layout().shape().dims::<4>(),
                g.layout().shape().dims::<4>()[2..].try_into().unwrap(),
                w.layout().shape().dims::<4>(),
                &options,
            );
            return FlexTensor::from_data(TensorData::new(
                pointwise::x_grad(f32s(&w), f32s(&g), &geo),
                [geo.n, geo.c, geo.h, geo.w],
            ));
        }
        if options.groups == 1 {
            return dense::x_grad(x, weight, grad, options);
        }
        let [_, _, h, wd] = x.layout().shape().dims::<4>();
        let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
        let [n, c, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new([n, c, h, wd], [oh, ow], w.layout().shape().dims::<4>(), &options);
        let gx = depthwise::x_grad(f32s(&w), f32s(&g), &geo);
        FlexTensor::from_data(TensorData::new(gx, [n, c, h, wd]))
    }
    fn conv2d_ext_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let (x, g) = (x.to_contiguous(), grad.to_contiguous());
        let wdims = weight.layout().shape().dims::<4>();
        let [_, _, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new(x.layout().shape().dims::<4>(), [oh, ow], wdims, &options);
        let pointwise = options.groups == 1 && pointwise::applies(&wdims, &options);
        let direct =
            (options.groups == 1 && !pointwise && direct::suits(geo.co, options.stride) && !options.is_asymmetric())
                .then(|| direct::weight_grad(f32s(&x), f32s(&g), &geo))
                .flatten();
        let out = match direct {
            Some(dw) => dw,
            None if pointwise => pointwise::weight_grad(f32s(&x), f32s(&g), &geo),
            None if options.groups == 1 => dense::weight_grad(f32s(&x), f32s(&g), &geo),
            None => depthwise::weight_grad(f32s(&x), f32s(&g), &geo),
        };
        FlexTensor::from_data(TensorData::new(out, wdims))
    }
}

/// conv2d(x, weight, bias, options), on the fastest path this crate has for it. On the CPU
/// backend, depthwise layers and dense ones (groups = 1) use the extension's kernels. Everything
/// else, and every other device, is burn's conv2d.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, options: ConvOptions<2>) -> Tensor<4> {
    let depthwise = options.groups == x.dims()[1] && weight.dims()[1] == 1 && options.groups > 1;
    let dense = options.groups == 1;
    if !super::extension_applies(&x) || options.is_asymmetric() || !(depthwise || dense) {
        return burn::tensor::module::conv2d(x, weight, Some(bias), options);
    }
    Tensor::from_dispatch(<Dispatch as ConvExt>::conv2d_ext(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options,
    ))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Distribution, Tolerance};

    /// `ours` gives the output and gradients (input, weight, bias) of burn's conv2d with `opts`,
    /// on random input, weights and bias and a fixed non-uniform upstream gradient.
    fn matches_conv2d(
        ours: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
        x: [usize; 4],
        w: [usize; 4],
        opts: ConvOptions<2>,
    ) {
        let dev = Device::flex().autodiff();
        let x0 = Tensor::<4>::random(x, Distribution::Normal(0.0, 1.0), &dev);
        let w0 = Tensor::<4>::random(w, Distribution::Normal(0.0, 1.0), &dev);
        let b0 = Tensor::<1>::random([w[0]], Distribution::Normal(0.0, 1.0), &dev);
        let run = |f: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>| {
            let (x, w, b) = (x0.clone().require_grad(), w0.clone().require_grad(), b0.clone().require_grad());
            let y = f(x.clone(), w.clone(), b.clone());
            let dims = y.dims();
            let up: Vec<f32> =
                (0..dims.iter().product::<usize>()).map(|k| ((k * 7919) % 13) as f32 / 6.5 - 1.0).collect();
            let g = (y.clone() * Tensor::<4>::from_data(TensorData::new(up, dims), &dev)).sum().backward();
            (
                y.into_data(),
                [x.grad(&g).unwrap().into_data(), w.grad(&g).unwrap().into_data(), b.grad(&g).unwrap().into_data()],
            )
        };
        let (y_ref, g_ref) = run(&|x, w, b| burn::tensor::module::conv2d(x, w, Some(b), opts.clone()));
        let (y, g) = run(&ours);
        y.assert_approx_eq::<f32>(&y_ref, Tolerance::rel_abs(1e-4, 1e-4));
        // and without autodiff (inference routes some layers differently)
        let plain = Device::flex();
        let (xi, wi, bi) = (
            Tensor::from_data(x0.to_data(), &plain),
            Tensor::from_data(w0.to_data(), &plain),
            Tensor::from_data(b0.to_data(), &plain),
        );
        ours(xi, wi, bi).into_data().assert_approx_eq::<f32>(&y_ref, Tolerance::rel_abs(1e-4, 1e-4));
        for (a, b) in g.iter().zip(&g_ref) {
            a.assert_approx_eq::<f32>(b, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }

    /// The depthwise extension, for the strides, dilations and paddings MobileNetV2 uses, with a
    /// batch of 2 (rows wider than its 16-lane dot product included).
    #[test]
    fn depthwise_matches_burns_convolution() {
        for (stride, dilation, pad, h, w) in [
            (1, 1, 1, 9, 13),
            (2, 1, 1, 10, 15),
            (1, 2, 2, 8, 11),
            (1, 4, 4, 12, 7),
            (2, 1, 0, 7, 9),
            (1, 1, 1, 5, 41),
            (2, 1, 1, 4, 40),
            (3, 1, 1, 11, 17),
        ] {
            let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 5);
            matches_conv2d(|x, w, b| super::conv2d(x, w, b, opts.clone()), [2, 5, h, w], [5, 1, 3, 3], opts.clone());
        }
    }

    /// The dense forward and weight gradient (banded im2col + GEMM) and input gradient (stride 1:
    /// a convolution with the flipped kernel; strided or padded beyond the kernel's reach: GEMM
    /// and col2im), for the discriminators' 4×4 stride-2 layers, dilated 3×3 ones (an ASPP
    /// dilation wider than the image included), unpadded and even kernels, strided 1×1 and 3×3
    /// (strides 2 and 3, odd widths), with a band height that splits the rows; more output
    /// channels than `conv_direct` takes.
    #[test]
    fn dense_matches_burns_convolution() {
        for (k, stride, dilation, pad, h, w) in [
            (4, 2, 1, 1, 9, 14),
            (3, 1, 2, 2, 8, 11),
            (3, 2, 1, 1, 7, 40),
            (3, 1, 6, 6, 5, 9),
            (4, 1, 1, 1, 9, 14),
            (3, 1, 1, 0, 7, 9),
            (3, 1, 1, 3, 6, 8),
            (1, 2, 1, 0, 7, 9),
            (3, 2, 2, 2, 9, 17),
            (1, 1, 1, 1, 5, 6),
            (3, 3, 1, 1, 10, 16),
        ] {
            let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 1);
            matches_conv2d(|x, w, b| super::conv2d(x, w, b, opts.clone()), [2, 3, h, w], [36, 3, k, k], opts.clone());
        }
    }

    /// The few-output-channel direct forward (`conv_direct`): output channels not a multiple of
    /// its register block, rows of more than one column chunk, dilations up to wider than the
    /// image, even and 1-wide kernels, and no padding; gradients are the dense ones.
    #[test]
    fn direct_forward_matches_burns_convolution() {
        for (co, kh, kw, dilation, pad, h, w) in [
            (7, 3, 3, 1, 1, 6, 70),
            (19, 3, 3, 6, 6, 5, 9),
            (12, 3, 3, 2, 0, 9, 150),
            (5, 4, 4, 1, 1, 7, 20),
            (3, 3, 1, 1, 1, 8, 33),
            (1, 1, 1, 1, 0, 4, 17),
        ] {
            let opts = ConvOptions::new([1, 1], [pad, if kw == 1 { 0 } else { pad }], [dilation, dilation], 1);
            matches_conv2d(|x, w, b| super::conv2d(x, w, b, opts.clone()), [2, 6, h, w], [co, 6, kh, kw], opts.clone());
        }
    }

    #[test]
    fn pointwise_matches_burns_convolution() {
        // more output channels than conv_direct takes, and few (which conv_direct would take)
        for co in [36, 4] {
            let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
            matches_conv2d(|x, w, b| super::conv2d(x, w, b, opts.clone()), [2, 6, 5, 7], [co, 6, 1, 1], opts.clone());
        }
    }
}
