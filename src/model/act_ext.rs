//! The networks' activations on the CPU backend: ReLU, ReLU6 and LeakyReLU as one piecewise-linear
//! op (slope below 0, identity up to a cap). One pass, in place where the tensor is not shared,
//! over both threads; under autodiff the backward is one pass too, computed from the output.
//! burn-flex's unary ops run on one thread (ReLU6 took two of them, 12 % of a MobileNetV2
//! inference step), and under autodiff burn's ReLU + clamp_max and LeakyReLU ran mask passes and
//! kept masks and intermediates for the backward. A residual block's sum and activation are one
//! pass too (`apply_residual`): burn's add ran on one thread, over every block's output.
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

/// y = slope·x for x ≤ 0, x for 0 < x < cap, cap above (NaN kept, as PyTorch's activations).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piecewise {
    pub slope: f32,
    pub cap: f32,
}

#[backend_extension(Flex, Autodiff)]
pub trait ActExt: burn::backend::Backend {
    fn act_ext(x: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
    /// `act_ext(x + r)`, x and r of one shape.
    fn act_residual_ext(x: FloatTensor<Self>, r: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
    /// The input gradient of `act_ext` from its output `y`: grad where 0 < y < cap, slope·grad
    /// where y ≤ 0, 0 at the cap (PyTorch's ReLU, hardtanh and LeakyReLU backward).
    fn act_ext_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
}

const CHUNK: usize = 1 << 15;

impl ActExt for Flex {
    fn act_ext(x: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let mut x = super::contiguous_owned(x);
        let n = x.layout().num_elements();
        // storage_mut copies first when the data is shared
        x.storage_mut::<f32>()[..n].par_chunks_mut(CHUNK).for_each(|s| pulp::Arch::new().dispatch(Forward { s, r: None, f }));
        x
    }
    fn act_residual_ext(x: FlexTensor, r: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let mut x = super::contiguous_owned(x);
        let r = r.to_contiguous();
        let rs = super::f32s(&r);
        x.storage_mut::<f32>()[..rs.len()].par_chunks_mut(CHUNK).zip(rs.par_chunks(CHUNK)).for_each(|(s, r)| pulp::Arch::new().dispatch(Forward { s, r: Some(r), f }));
        x
    }
    fn act_ext_backward(y: FlexTensor, grad: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let y = y.to_contiguous();
        let mut g = super::contiguous_owned(grad);
        let ys = super::f32s(&y);
        // in place in the output gradient (the autodiff graph hands it over; copied first if shared)
        g.storage_mut::<f32>()[..ys.len()].par_chunks_mut(CHUNK).zip(ys.par_chunks(CHUNK)).for_each(|(g, y)| pulp::Arch::new().dispatch(Back { g, y, f }));
        g
    }
}

/// One chunk, compiled for the machine's vector width (the crate's baseline is SSE2, and
/// `f32::max`/`min` do not vectorise): selects only, which LLVM turns into compares and blends.
struct Forward<'a> {
    s: &'a mut [f32],
    /// Added to `s` first (a residual).
    r: Option<&'a [f32]>,
    f: Piecewise,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Forward { s, r, f: Piecewise { slope, cap } } = self;
        if let Some(r) = r {
            s.iter_mut().zip(r).for_each(|(v, r)| *v += r);
        }
        // slope 0 separately: −∞ · 0 would be NaN where ReLU gives 0
        if slope == 0.0 {
            for v in s {
                let x = *v;
                *v = if x > 0.0 { if x < cap { x } else { cap } } else if x.is_nan() { x } else { 0.0 };
            }
        } else {
            for v in s {
                let x = *v;
                *v = if x > 0.0 { if x < cap { x } else { cap } } else { x * slope };
            }
        }
    }
}

struct Back<'a> {
    g: &'a mut [f32],
    y: &'a [f32],
    f: Piecewise,
}

impl pulp::WithSimd for Back<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Back { g, y, f: Piecewise { slope, cap } } = self;
        for (g, &y) in g.iter_mut().zip(y) {
            *g = if y > 0.0 { if y < cap { *g } else { 0.0 } } else if y <= 0.0 { *g * slope } else { 0.0 };
        }
    }
}

impl<B: Backend + ActExt, C: CheckpointStrategy> ActExt for Autodiff<B, C> {
    fn act_ext(x: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ActBackward;

        impl<B: Backend + ActExt> Backward<B, 1> for ActBackward {
            /// The forward's output, the slope and the cap.
            type State = (FloatTensor<B>, f32, f32);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, slope, cap) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::act_ext_backward(y, grad, slope, cap));
                }
            }
        }

        match ActBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::act_ext(x.into_primitive(), slope, cap);
                prep.finish((y.clone(), slope, cap), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::act_ext(x.into_primitive(), slope, cap)),
        }
    }
    fn act_residual_ext(x: FloatTensor<Self>, r: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ActResidualBackward;

        impl<B: Backend + ActExt> Backward<B, 2> for ActResidualBackward {
            /// The forward's output, the slope and the cap.
            type State = (FloatTensor<B>, f32, f32);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [px, pr] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, slope, cap) = ops.state;
                // both summands get the activation's input gradient
                let g = B::act_ext_backward(y, grad, slope, cap);
                match (px, pr) {
                    (Some(a), Some(b)) => {
                        grads.register::<B>(a.id, g.clone());
                        grads.register::<B>(b.id, g);
                    }
                    (Some(n), None) | (None, Some(n)) => grads.register::<B>(n.id, g),
                    (None, None) => {}
                }
            }
        }

        match ActResidualBackward.prepare::<C>([x.node(), r.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::act_residual_ext(x.into_primitive(), r.into_primitive(), slope, cap);
                prep.finish((y.clone(), slope, cap), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::act_residual_ext(x.into_primitive(), r.into_primitive(), slope, cap)),
        }
    }
    fn act_ext_backward(_: FloatTensor<Self>, _: FloatTensor<Self>, _: f32, _: f32) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// `f` on `ActExt`, with or without autodiff (callers check `model::extension_applies`).
pub fn apply(x: Tensor<4>, f: Piecewise) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::act_ext(x.into_dispatch(), f.slope, f.cap))
}

/// `f(x + r)` on `ActExt` (same shapes; callers check `model::extension_applies`).
pub fn apply_residual(x: Tensor<4>, r: Tensor<4>, f: Piecewise) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::act_residual_ext(x.into_dispatch(), r.into_dispatch(), f.slope, f.cap))
}
