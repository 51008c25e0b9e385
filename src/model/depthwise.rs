//! Depthwise convolution (groups = channels) with a direct weight gradient on the CPU backend.
//!
//! burn computes the weight gradient of a grouped convolution group by group: for a depthwise
//! layer that is one convolution per channel whose "kernel" is the whole output gradient plane
//! and whose output is 3×3, which burn-flex runs nine outputs at a time. On MobileNetV2 that was
//! about 10 % of a training step (perf, docs/benchmarks.md). Here the weight gradient is nine dot
//! products per channel over the input and gradient planes, vectorised and parallel over channels.
//!
//! The op is a burn backend extension (`#[backend_extension]`, burn's mechanism for custom ops):
//! the forward pass and the input gradient are burn's own `conv2d` / `conv2d_x_backward`; only the
//! weight gradient is ours. It is routed only for Flex tensors (and autodiff over Flex); other
//! devices (CUDA) keep burn's convolution.
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    NodeId,
};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait DepthwiseOps: burn::backend::Backend {
    /// conv2d(x, weight, bias) with groups = channels (weight [C, 1, kh, kw]).
    fn depthwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self>;
    /// The weight gradient [C, 1, kh, kw] of `depthwise_conv2d` given the output gradient.
    fn depthwise_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, kernel: [usize; 2], options: ConvOptions<2>) -> FloatTensor<Self>;
}

impl DepthwiseOps for Flex {
    fn depthwise_conv2d(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        Flex::conv2d(x, weight, Some(bias), options)
    }
    fn depthwise_weight_grad(x: FlexTensor, grad: FlexTensor, kernel: [usize; 2], options: ConvOptions<2>) -> FlexTensor {
        let x = x.to_contiguous();
        let g = grad.to_contiguous();
        let [n, c, h, w] = x.layout().shape().dims::<4>();
        let [_, _, oh, ow] = g.layout().shape().dims::<4>();
        let xs = x.as_slice::<f32>().expect("depthwise conv: f32 input");
        let gs = g.as_slice::<f32>().expect("depthwise conv: f32 gradient");
        let geo = Geometry { n, c, h, w, oh, ow, kernel, stride: options.stride, pad: options.padding_begin(), dilation: options.dilation };
        let out = weight_grad(xs, gs, &geo);
        FlexTensor::from_data(TensorData::new(out, [c, 1, kernel[0], kernel[1]]))
    }
}

impl<B: Backend + DepthwiseOps, C: CheckpointStrategy> DepthwiseOps for Autodiff<B, C> {
    fn depthwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DepthwiseBackward;

        impl<B: Backend + DepthwiseOps> Backward<B, 3> for DepthwiseBackward {
            type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, w_state, b_state, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let w = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
                let b = checkpointer.retrieve_node_output::<FloatTensor<B>>(b_state);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::conv2d_x_backward(x.clone(), w.clone(), grad.clone(), options.clone()));
                }
                if let Some(node) = node_w {
                    let dims = burn::backend::TensorMetadata::shape(&w).dims::<4>();
                    grads.register::<B>(node.id, B::depthwise_weight_grad(x.clone(), grad.clone(), [dims[2], dims[3]], options));
                }
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, B::conv2d_bias_backward(x, b, grad));
                }
            }
        }

        match DepthwiseBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), prep.checkpoint(&bias), options.clone());
                prep.finish(state, B::depthwise_conv2d(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::depthwise_conv2d(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options)),
        }
    }
    fn depthwise_weight_grad(_: FloatTensor<Self>, _: FloatTensor<Self>, _: [usize; 2], _: ConvOptions<2>) -> FloatTensor<Self> {
        unreachable!("the weight gradient is computed on the inner backend")
    }
}

/// conv2d(x, weight, bias, options) for a depthwise layer (groups = in = out channels): the
/// extension op on the CPU backend, burn's conv2d elsewhere.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, options: ConvOptions<2>) -> Tensor<4> {
    if x.device().inner() != Device::flex() || options.is_asymmetric() || options.groups != x.dims()[1] || weight.dims()[1] != 1 {
        return burn::tensor::module::conv2d(x, weight, Some(bias), options);
    }
    Tensor::from_dispatch(<Dispatch as DepthwiseOps>::depthwise_conv2d(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), options))
}

/// Shapes of a depthwise convolution (NCHW).
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

/// dW[c, i, j] = Σ_{n, y, x} g[n, c, y, x] · in[n, c, y·s + i·d − p, x·s + j·d − p] (zero outside).
fn weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let mut out = vec![0f32; geo.c * kh * kw];
    out.par_chunks_mut(kh * kw).enumerate().for_each(|(ch, acc)| {
        let mut sums = vec![0f64; kh * kw];
        for b in 0..geo.n {
            let plane = (b * geo.c + ch) * geo.h * geo.w;
            let gplane = (b * geo.c + ch) * geo.oh * geo.ow;
            for i in 0..kh {
                for y in 0..geo.oh {
                    let iy = (y * geo.stride[0] + i * geo.dilation[0]) as isize - geo.pad[0] as isize;
                    if iy < 0 || iy >= geo.h as isize {
                        continue;
                    }
                    let xrow = &xs[plane + iy as usize * geo.w..][..geo.w];
                    let grow = &gs[gplane + y * geo.ow..][..geo.ow];
                    for j in 0..kw {
                        sums[i * kw + j] += row_dot(grow, xrow, j * geo.dilation[1], geo.pad[1], geo.stride[1]) as f64;
                    }
                }
            }
        }
        acc.iter_mut().zip(&sums).for_each(|(a, s)| *a = *s as f32);
    });
    out
}

/// Σ_x g[x] · in[x·s + off − pad] over the x where the input index is inside the row.
fn row_dot(g: &[f32], xrow: &[f32], off: usize, pad: usize, stride: usize) -> f32 {
    // first x with x·s + off ≥ pad, one past the last with x·s + off − pad < len
    let lo = pad.saturating_sub(off).div_ceil(stride);
    let hi = ((xrow.len() + pad).saturating_sub(off)).div_ceil(stride).min(g.len());
    if lo >= hi {
        return 0.0;
    }
    let start = lo * stride + off - pad;
    if stride == 1 {
        dot(&g[lo..hi], &xrow[start..start + (hi - lo)])
    } else {
        g[lo..hi].iter().zip(xrow[start..].iter().step_by(stride)).map(|(a, b)| a * b).sum()
    }
}

/// A dot product with 16 independent partial sums, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Output and gradients (input, weight, bias) of the extension op equal burn's conv2d's, for
    /// the strides, dilations and paddings MobileNetV2 uses, with a batch of 2.
    #[test]
    fn gradients_match_burns_convolution() {
        let dev = Device::flex().autodiff();
        for (stride, dilation, pad, h, w) in [(1, 1, 1, 9, 13), (2, 1, 1, 10, 15), (1, 2, 2, 8, 11), (1, 4, 4, 12, 7), (2, 1, 0, 7, 9)] {
            let (n, c) = (2, 5);
            let x0 = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let w0 = Tensor::<4>::random([c, 1, 3, 3], Distribution::Normal(0.0, 1.0), &dev);
            let b0 = Tensor::<1>::random([c], Distribution::Normal(0.0, 1.0), &dev);
            let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], c);
            let run = |ours: bool| {
                let (x, w, b) = (x0.clone().require_grad(), w0.clone().require_grad(), b0.clone().require_grad());
                let y = if ours { conv2d(x.clone(), w.clone(), b.clone(), opts.clone()) } else { burn::tensor::module::conv2d(x.clone(), w.clone(), Some(b.clone()), opts.clone()) };
                // a fixed, non-uniform upstream gradient
                let dims = y.dims();
                let up: Vec<f32> = (0..dims.iter().product::<usize>()).map(|k| ((k * 7919) % 13) as f32 / 6.5 - 1.0).collect();
                let loss = (y.clone() * Tensor::<4>::from_data(TensorData::new(up, dims), &dev)).sum();
                let g = loss.backward();
                (y.into_data(), [x.grad(&g).unwrap().into_data(), w.grad(&g).unwrap().into_data(), b.grad(&g).unwrap().into_data()])
            };
            let (y_ref, g_ref) = run(false);
            let (y, g) = run(true);
            y.assert_approx_eq::<f32>(&y_ref, Tolerance::default());
            for (a, b) in g.iter().zip(&g_ref) {
                a.assert_approx_eq::<f32>(b, Tolerance::rel_abs(1e-4, 1e-4));
            }
        }
    }
}
