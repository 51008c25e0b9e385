//! Clamp-type activations (ReLU, ReLU6) on the CPU backend: one pass, in place where the
//! tensor is not shared, over both threads; under autodiff the backward is one pass too
//! (the gradient where lo < y < hi). burn-flex's unary ops run on one thread, and ReLU6 took two
//! of them (12 % of a MobileNetV2 inference step); under autodiff burn's ReLU and clamp_max
//! were a ReLU, a comparison and a mask fill forward and two mask passes backward.
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait ActExt: burn::backend::Backend {
    /// min(max(x, lo), hi), NaN kept (as PyTorch's clamp and ReLU).
    fn clamp_ext(x: FloatTensor<Self>, lo: f32, hi: f32) -> FloatTensor<Self>;
    /// The input gradient of `clamp_ext` from its output: `grad` where lo < y < hi, else 0 (as
    /// PyTorch's ReLU and hardtanh backward).
    fn clamp_ext_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>, lo: f32, hi: f32) -> FloatTensor<Self>;
}

impl ActExt for Flex {
    fn clamp_ext(x: FlexTensor, lo: f32, hi: f32) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Flex::float_clamp(x, lo.into(), hi.into());
        }
        let mut x = if x.is_contiguous() && x.layout().start_offset() == 0 { x } else { x.to_contiguous() };
        let n = x.layout().num_elements();
        // storage_mut copies first when the data is shared
        x.storage_mut::<f32>()[..n].par_chunks_mut(1 << 15).for_each(|s| pulp::Arch::new().dispatch(Clamp { s, lo, hi }));
        x
    }
    fn clamp_ext_backward(y: FlexTensor, grad: FlexTensor, lo: f32, hi: f32) -> FlexTensor {
        let (y, g) = (y.to_contiguous(), grad.to_contiguous());
        let dims = y.layout().shape().clone();
        let (ys, gs) = (y.as_slice::<f32>().expect("contiguous f32"), g.as_slice::<f32>().expect("contiguous f32"));
        let mut out = vec![0f32; ys.len()];
        out.par_chunks_mut(1 << 15).zip(ys.par_chunks(1 << 15).zip(gs.par_chunks(1 << 15))).for_each(|(o, (y, g))| pulp::Arch::new().dispatch(Pass { o, y, g, lo, hi }));
        FlexTensor::from_data(TensorData::new(out, dims))
    }
}

/// The backward of one chunk: selects only, so that it vectorises.
struct Pass<'a> {
    o: &'a mut [f32],
    y: &'a [f32],
    g: &'a [f32],
    lo: f32,
    hi: f32,
}

impl pulp::WithSimd for Pass<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Pass { o, y, g, lo, hi } = self;
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = if y > lo && y < hi { g } else { 0.0 };
        }
    }
}

impl<B: Backend + ActExt, C: CheckpointStrategy> ActExt for Autodiff<B, C> {
    fn clamp_ext(x: FloatTensor<Self>, lo: f32, hi: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ClampBackward;

        impl<B: Backend + ActExt> Backward<B, 1> for ClampBackward {
            /// The forward's output and the bounds.
            type State = (FloatTensor<B>, f32, f32);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, lo, hi) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::clamp_ext_backward(y, grad, lo, hi));
                }
            }
        }

        match ClampBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::clamp_ext(x.into_primitive(), lo, hi);
                prep.finish((y.clone(), lo, hi), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::clamp_ext(x.into_primitive(), lo, hi)),
        }
    }
    fn clamp_ext_backward(_: FloatTensor<Self>, _: FloatTensor<Self>, _: f32, _: f32) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// The clamp of one chunk, compiled for the machine's vector width (the crate's baseline is
/// SSE2, and `f32::max`/`min` do not vectorise): selects only, which LLVM turns into vector
/// compares and blends.
struct Clamp<'a> {
    s: &'a mut [f32],
    lo: f32,
    hi: f32,
}

impl pulp::WithSimd for Clamp<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Clamp { s, lo, hi } = self;
        for v in s {
            let x = *v;
            let y = if x > lo { x } else { lo };
            let y = if y < hi { y } else { hi };
            *v = if x.is_nan() { x } else { y };
        }
    }
}

/// min(max(x, lo), hi) on `ActExt`, with or without autodiff (callers check that the device is
/// the CPU backend's).
pub fn clamp(x: Tensor<4>, lo: f32, hi: f32) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::clamp_ext(x.into_dispatch(), lo, hi))
}
