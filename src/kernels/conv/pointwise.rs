//! 1×1 convolutions at stride 1: on the NCHW planes a matrix product per image, both gradients
//! GEMMs as well; no im2col, no col2im.
use super::gemm::{bias_planes, gemm_into, Out};
use super::geometry::Geometry;
use burn::tensor::ops::ConvOptions;

/// A 1×1 convolution at stride 1 without padding: on the NCHW planes it is a matrix product
/// per image, Y[co, h·w] = W[co, ci] · X[ci, h·w], and both of its gradients are GEMMs as well,
/// with neither im2col nor col2im. (Through burn's matmul each of the three GEMMs' outputs cost a
/// zeroed allocation plus a copy into an aligned one, and the bias a pass of its own.)
pub(super) fn applies(wdims: &[usize; 4], options: &ConvOptions<2>) -> bool {
    wdims[2..] == [1, 1] && options.stride == [1, 1] && options.padding_begin() == [0, 0] && !options.is_asymmetric()
}

/// y[b] = bias + W · x[b], the bias written first and the GEMM accumulated onto it.
pub(super) fn forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let mut y = bias_planes(bs, geo.n * geo.co, l);
    for b in 0..geo.n {
        let dst = y[b * geo.co * l..].as_mut_ptr();
        gemm_into(
            [geo.co, l, geo.c],
            Out { ptr: dst, row_stride: l, accumulate: true },
            (ws.as_ptr(), 1, geo.c as isize),
            (xs[b * geo.c * l..].as_ptr(), 1, l as isize),
        );
    }
    y
}

/// gx[b] = Wᵀ · g[b].
pub(super) fn x_grad(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let len = geo.n * geo.c * l;
    let mut gx: Vec<f32> = Vec::with_capacity(len);
    for b in 0..geo.n {
        // SAFETY: in bounds of the capacity; written, never read, by the GEMM (read_dst = false)
        let dst = unsafe { gx.as_mut_ptr().add(b * geo.c * l) };
        gemm_into(
            [geo.c, l, geo.co],
            Out { ptr: dst, row_stride: l, accumulate: false },
            (ws.as_ptr(), geo.c as isize, 1),
            (gs[b * geo.co * l..].as_ptr(), 1, l as isize),
        );
    }
    // SAFETY: the n GEMMs wrote all n·c·l values
    unsafe { gx.set_len(len) };
    gx
}

/// dW = Σ_b g[b] · x[b]ᵀ.
pub(super) fn weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let len = geo.co * geo.c;
    if l == 0 || geo.n == 0 {
        return vec![0f32; len];
    }
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    for b in 0..geo.n {
        // the first GEMM writes every value (no clearing pass), the others accumulate
        gemm_into(
            [geo.co, geo.c, l],
            Out { ptr: dw.as_mut_ptr(), row_stride: geo.c, accumulate: b > 0 },
            (gs[b * geo.co * l..].as_ptr(), 1, l as isize),
            (xs[b * geo.c * l..].as_ptr(), l as isize, 1),
        );
    }
    // SAFETY: the first GEMM wrote all co·c values
    unsafe { dw.set_len(len) };
    dw
}
