//! This crate's CPU kernels: burn backend extensions (`#[backend_extension(Flex, Autodiff)]`,
//! burn's hook for out-of-tree ops) for the ops burn's CPU backend is slow at. Each implements
//! Flex, and autodiff over Flex, with a hand-written backward, and is tested against burn's op
//! (values and gradients). Callers route through [`extension_applies`]: an extension panics on
//! any other backend, so every other device (and `SEGDA_GENERIC_OPS=1`) keeps burn's op.
//!
//! A new kernel: a trait with `#[backend_extension(Flex, Autodiff)]` and its Flex
//! implementation (the kernel), an `impl … for Autodiff<B, C>` with a `Backward` (the gradient,
//! on the inner backend), a public function that dispatches through `Dispatch`, and a test
//! against burn's op; then route the caller in `nn` through `extension_applies`.
pub mod activation;
pub mod conv;
pub mod resize;
pub mod sgd;
pub mod softmax;

use burn::prelude::*;

/// f32 values on the CPU backend (with or without autodiff): where this crate's backend
/// extensions (`activation`, `conv`, `softmax`, `resize`) replace burn's ops; the
/// extensions implement only Flex, so every other device keeps burn's. Never with
/// [`set_generic_ops`] on.
pub fn extension_applies<const D: usize>(x: &Tensor<D>) -> bool {
    !generic_ops() && x.device().inner() == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// 0: not decided yet (read `SEGDA_GENERIC_OPS`), 1: extensions on the CPU, 2: generic ops only.
static OP_PATH: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether every op takes burn's generic path, the one GPU backends run, on the CPU too
/// ([`set_generic_ops`], or the environment variable `SEGDA_GENERIC_OPS=1`).
pub fn generic_ops() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match OP_PATH.load(Relaxed) {
        0 => {
            let generic = std::env::var("SEGDA_GENERIC_OPS").is_ok_and(|v| v == "1" || v == "true");
            OP_PATH.store(if generic { 2 } else { 1 }, Relaxed);
            generic
        }
        path => path == 2,
    }
}

/// Routes every op of this process through burn's generic implementation (and the generic
/// bilinear resize) instead of the CPU extensions: how the GPU backends' code path is tested on
/// a machine without a GPU. Process-wide; set it before building networks.
pub fn set_generic_ops(on: bool) {
    OP_PATH.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
}

/// The values of a contiguous f32 Flex tensor, as the extensions' kernels read them.
pub(crate) fn f32s(t: &burn_flex::FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("backend extension: contiguous f32 tensors")
}

/// `t`, contiguous from offset 0: moved when it already is, so that `storage_mut` can then
/// update it in place where it is not shared (burn-flex's `to_contiguous` clones the handle,
/// which would make that update copy first).
pub(crate) fn contiguous_owned(t: burn_flex::FlexTensor) -> burn_flex::FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t
    } else {
        t.to_contiguous()
    }
}
