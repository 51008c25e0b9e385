//! Clamp-type activations (ReLU, ReLU6) at inference on the CPU backend: one pass, in place
//! where the tensor is not shared, over both threads. burn-flex's unary ops run on one thread,
//! and ReLU6 took two of them (12 % of a MobileNetV2 inference step). Where gradients are taken
//! the activations stay burn's (its fused ReLU backward).
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex)]
pub trait ActExt: burn::backend::Backend {
    /// min(max(x, lo), hi), NaN kept (as PyTorch's clamp and ReLU).
    fn clamp_ext(x: FloatTensor<Self>, lo: f32, hi: f32) -> FloatTensor<Self>;
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

/// min(max(x, lo), hi) on `ActExt` (callers check `model::cpu_inference`).
pub fn clamp(x: Tensor<4>, lo: f32, hi: f32) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::clamp_ext(x.into_dispatch(), lo, hi))
}
