//! Softmax and log-softmax over the class axis of [N, C, H, W] maps, fused, as a burn backend
//! extension on the CPU backend. Under autodiff burn decomposes both into five or six
//! element-wise ops (max, subtract, exp, sum, divide / log), each a full single-threaded pass
//! over a fresh 19 × 256 × 512 buffer, and as many again backward; PyTorch runs one kernel each
//! way. Here: one pass forward and one backward, over both threads, a block of pixels at a time
//! with all its class values in cache.
//!
//! Routed only for f32 tensors on Flex (and autodiff over Flex); other devices keep burn's.
use super::f32s;
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait SoftmaxExt: burn::backend::Backend {
    /// softmax over dim 1 (log = false) or log-softmax (log = true).
    fn class_softmax(x: FloatTensor<Self>, log: bool) -> FloatTensor<Self>;
    /// The input gradient of `class_softmax` from its output `y` and the output gradient.
    fn class_softmax_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>, log: bool) -> FloatTensor<Self>;
}

/// Pixels per block: the block's C rows (19 × 256 floats) stay in L1 through the passes.
const BLOCK: usize = 256;

impl SoftmaxExt for Flex {
    fn class_softmax(x: FlexTensor, log: bool) -> FlexTensor {
        let x = x.to_contiguous();
        let dims = x.layout().shape().dims::<4>();
        let [_, c, h, w] = dims;
        let out = map_blocks(&[f32s(&x)], dims, |ins, outs| {
            let x = &ins[0];
            let len = outs[0].len();
            let mut m = [f32::MIN; BLOCK];
            for row in x.iter().take(c) {
                m[..len].iter_mut().zip(*row).for_each(|(m, &v)| *m = m.max(v));
            }
            let mut s = [0f32; BLOCK];
            for (o, row) in outs.iter_mut().zip(x.iter()) {
                for ((o, &v), (s, &m)) in o.iter_mut().zip(*row).zip(s.iter_mut().zip(&m)) {
                    let e = (v - m).exp();
                    *s += e;
                    *o = e;
                }
            }
            if log {
                // log p = x − m − ln Σ e^{x − m}
                let lse: Vec<f32> = s[..len].iter().zip(&m).map(|(s, m)| m + s.ln()).collect();
                for (o, row) in outs.iter_mut().zip(x.iter()) {
                    o.iter_mut().zip(*row).zip(&lse).for_each(|((o, &v), &l)| *o = v - l);
                }
            } else {
                let inv: Vec<f32> = s[..len].iter().map(|s| 1.0 / s).collect();
                for o in outs.iter_mut() {
                    o.iter_mut().zip(&inv).for_each(|(o, &i)| *o *= i);
                }
            }
        });
        debug_assert_eq!(out.len(), dims.iter().product::<usize>());
        FlexTensor::from_data(TensorData::new(out, [dims[0], c, h, w]))
    }

    fn class_softmax_backward(y: FlexTensor, grad: FlexTensor, log: bool) -> FlexTensor {
        let (y, g) = (y.to_contiguous(), grad.to_contiguous());
        let dims = y.layout().shape().dims::<4>();
        let out = map_blocks(&[f32s(&y), f32s(&g)], dims, |ins, outs| {
            let (y, g) = (&ins[0], &ins[1]);
            let len = outs[0].len();
            let mut acc = [0f32; BLOCK];
            if log {
                // dx = g − softmax · Σ_c g
                for row in g.iter() {
                    acc[..len].iter_mut().zip(*row).for_each(|(a, &v)| *a += v);
                }
                for ((o, yr), gr) in outs.iter_mut().zip(y.iter()).zip(g.iter()) {
                    for (((o, &ly), &gv), &a) in o.iter_mut().zip(*yr).zip(*gr).zip(&acc) {
                        *o = gv - ly.exp() * a;
                    }
                }
            } else {
                // dx = y · (g − Σ_c g·y)
                for (yr, gr) in y.iter().zip(g.iter()) {
                    acc[..len].iter_mut().zip(*yr).zip(*gr).for_each(|((a, &yv), &gv)| *a += yv * gv);
                }
                for ((o, yr), gr) in outs.iter_mut().zip(y.iter()).zip(g.iter()) {
                    for (((o, &yv), &gv), &a) in o.iter_mut().zip(*yr).zip(*gr).zip(&acc) {
                        *o = yv * (gv - a);
                    }
                }
            }
        });
        FlexTensor::from_data(TensorData::new(out, dims))
    }
}

/// A new [N, C, H·W] map from `inputs` of the same shape, computed by `f` one block of pixels
/// at a time, in parallel: `f(ins, outs)` gets, per input, the block's C rows (one per class)
/// and the C output rows to fill.
fn map_blocks(
    inputs: &[&[f32]],
    [n, c, h, w]: [usize; 4],
    f: impl Fn(&[Vec<&[f32]>], &mut [&mut [f32]]) + Sync,
) -> Vec<f32> {
    let hw = h * w;
    let blocks = hw.div_ceil(BLOCK);
    let mut out = vec![0f32; n * c * hw];
    // the output's rows grouped by (image, block): disjoint slices, so the blocks run in parallel
    let mut rows: Vec<Vec<&mut [f32]>> = (0..n * blocks).map(|_| Vec::with_capacity(c)).collect();
    for (p, plane) in out.chunks_mut(hw).enumerate() {
        for (k, s) in plane.chunks_mut(BLOCK).enumerate() {
            rows[(p / c) * blocks + k].push(s);
        }
    }
    rows.into_par_iter().enumerate().for_each(|(i, mut outs)| {
        let (b, j0) = (i / blocks, (i % blocks) * BLOCK);
        let len = outs[0].len();
        let ins: Vec<Vec<&[f32]>> =
            inputs.iter().map(|x| (0..c).map(|ci| &x[(b * c + ci) * hw + j0..][..len]).collect()).collect();
        f(&ins, &mut outs);
    });
    out
}

impl<B: Backend + SoftmaxExt, C: CheckpointStrategy> SoftmaxExt for Autodiff<B, C> {
    fn class_softmax(x: FloatTensor<Self>, log: bool) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxBackward;

        impl<B: Backend + SoftmaxExt> Backward<B, 1> for SoftmaxBackward {
            /// The forward's output and whether it is the log-softmax.
            type State = (FloatTensor<B>, bool);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, log) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::class_softmax_backward(y, grad, log));
                }
            }
        }

        match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::class_softmax(x.into_primitive(), log);
                prep.finish((y.clone(), log), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::class_softmax(x.into_primitive(), log)),
        }
    }
    fn class_softmax_backward(_: FloatTensor<Self>, _: FloatTensor<Self>, _: bool) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// softmax (log = false) or log-softmax (log = true) over the classes (dim 1) of [N, C, H, W].
pub fn class_softmax(x: Tensor<4>, log: bool) -> Tensor<4> {
    if !super::extension_applies(&x) {
        return if log { burn::tensor::activation::log_softmax(x, 1) } else { burn::tensor::activation::softmax(x, 1) };
    }
    Tensor::from_dispatch(<Dispatch as SoftmaxExt>::class_softmax(x.into_dispatch(), log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Values and input gradients equal burn's decomposed softmax and log-softmax, on maps whose
    /// pixel count is not a multiple of the block, with a batch, large logits and a gradient
    /// that is not constant over the classes.
    #[test]
    fn matches_burns_softmax_and_log_softmax() {
        let dev = Device::flex().autodiff();
        for log in [false, true] {
            for (n, c, h, w) in [(2, 19, 7, 45), (1, 3, 1, 1), (1, 5, 16, 16)] {
                let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 8.0), &dev);
                let weight = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &dev);
                let run = |fused: bool| {
                    let x = x.clone().require_grad();
                    let y = if fused {
                        class_softmax(x.clone(), log)
                    } else if log {
                        burn::tensor::activation::log_softmax(x.clone(), 1)
                    } else {
                        burn::tensor::activation::softmax(x.clone(), 1)
                    };
                    let g = (y.clone() * weight.clone()).sum().backward();
                    (y.into_data(), x.grad(&g).unwrap().into_data())
                };
                let ((y, gx), (want_y, want_gx)) = (run(true), run(false));
                y.assert_approx_eq::<f32>(&want_y, Tolerance::rel_abs(1e-4, 1e-5));
                gx.assert_approx_eq::<f32>(&want_gx, Tolerance::rel_abs(1e-3, 1e-5));
            }
        }
    }
}
