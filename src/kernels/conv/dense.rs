//! Dense convolutions (groups = 1): banded im2col and one GEMM per band for the forward (written
//! straight into the output planes) and the weight gradient; the input gradient at stride 1 as
//! the forward convolution with the flipped kernel, otherwise GEMM and col2im.
use super::gemm::{bias_planes, gemm_into, Out};
use super::geometry::{for_each_band, phased_at, unphase, Geometry, Scratch};
use crate::kernels::f32s;
use burn::backend::ops::ModuleOps;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// Input gradient of a dense convolution. At stride 1 it is the forward convolution of the
/// output gradient with the flipped, channel-transposed kernel (padding d·(k−1) − p): im2col
/// over the *output* channels plus one GEMM into the input channels (`forward`).
/// burn's own path (conv-transpose) is a GEMM whose inner dimension is the layer's output
/// channels, e.g. 19 for a classifier over 2048 channels, followed by a col2im pass over a
/// column buffer k·k times the input gradient's size.
pub(super) fn x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let [_, _, kh, kw] = weight.layout().shape().dims::<4>();
    let reach = [options.dilation[0] * (kh - 1), options.dilation[1] * (kw - 1)];
    let pad = options.padding_begin();
    if options.is_asymmetric() {
        return Flex::conv2d_x_backward(x, weight, grad, options);
    }
    if options.stride != [1, 1] || pad[0] > reach[0] || pad[1] > reach[1] {
        let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
        let [_, _, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new(x.layout().shape().dims::<4>(), [oh, ow], w.layout().shape().dims::<4>(), &options);
        let gx = x_grad_col2im(f32s(&w), f32s(&g), &geo);
        return FlexTensor::from_data(TensorData::new(gx, [geo.n, geo.c, geo.h, geo.w]));
    }
    let co = weight.layout().shape()[0];
    let transposed = ConvOptions::new([1, 1], [reach[0] - pad[0], reach[1] - pad[1]], options.dilation, 1);
    let (g, w) = (grad.to_contiguous(), flip_transposed(&weight.to_contiguous()));
    let [n, c, h, wd] = x.layout().shape().dims::<4>();
    let geo = Geometry::new(g.layout().shape().dims::<4>(), [h, wd], [c, co, kh, kw], &transposed);
    let zero = vec![0.0; c];
    // also for the classifier's gradient (19 channels in, 2048 out): its column buffer is small,
    // and the GEMM beats the direct kernel there
    let gx = forward(f32s(&g), &w, &zero, &geo);
    FlexTensor::from_data(TensorData::new(gx, [n, c, h, wd]))
}

/// W[co, ci, i, j] → W'[ci, co, kh−1−i, kw−1−j], over the threads (burn's swap_dims + flip +
/// to_contiguous walks a strided iterator on one thread).
fn flip_transposed(w: &FlexTensor) -> Vec<f32> {
    let [co, ci, kh, kw] = w.layout().shape().dims::<4>();
    let (ws, taps) = (f32s(w), kh * kw);
    let mut out = vec![0f32; ws.len()];
    out.par_chunks_mut(co * taps).enumerate().for_each(|(c, dst)| {
        for (o, d) in dst.chunks_exact_mut(taps).enumerate() {
            let src = &ws[(o * ci + c) * taps..][..taps];
            for (t, v) in d.iter_mut().enumerate() {
                *v = src[taps - 1 - t];
            }
        }
    });
    out
}

/// y[b, co, band] = bias[co] + W[co, (ci, i, j)] · cols[(ci, i, j), band]: one GEMM per band,
/// written straight into the output planes. burn-flex's forward builds 512-position tiles of a
/// channels-last copy, packs the whole weight again for every tile and scatters each result.
pub(super) fn forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.oh * geo.ow;
    let k = geo.c * geo.kernel[0] * geo.kernel[1];
    let mut y = bias_planes(bs, geo.n * geo.co, l);
    let out = y.as_mut_ptr();
    for_each_band(xs, geo, |b, y0, lc, cols| {
        let dst = out.wrapping_add(b * geo.co * l + y0 * geo.ow);
        gemm_into(
            [geo.co, lc, k],
            Out { ptr: dst, row_stride: l, accumulate: true },
            (ws.as_ptr(), 1, k as isize),
            (cols.as_ptr(), 1, lc as isize),
        );
    });
    y
}

/// Input gradient of a dense convolution as columns and col2im: cols[(ci, i, j), band] =
/// Wᵀ · G[co, band], one GEMM per band of output rows, then every column row added back onto
/// the input row its tap reads (by phase, so strided columns are contiguous runs), where burn
/// runs a direct conv-transpose (the discriminators' 4×4 stride-2 layers).
fn x_grad_col2im(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let taps = kh * kw;
    let k = geo.c * taps;
    let l = geo.oh * geo.ow;
    let s = geo.stride[1];
    let wp = geo.w.div_ceil(s);
    let band = geo.band_rows(k);
    let mut gx = vec![0f32; geo.n * geo.c * geo.h * geo.w];
    let mut acc = vec![0f32; geo.c * s * geo.h * wp];
    // the GEMM overwrites the columns it uses (it does not read them)
    let mut cols = Scratch::take(k * band * geo.ow);
    for b in 0..geo.n {
        acc.fill(0.0);
        for y0 in (0..geo.oh).step_by(band) {
            let rows = band.min(geo.oh - y0);
            let lc = rows * geo.ow;
            let g = gs[b * geo.co * l + y0 * geo.ow..].as_ptr();
            gemm_into(
                [k, lc, geo.co],
                Out { ptr: cols.as_mut_ptr(), row_stride: lc, accumulate: false },
                (ws.as_ptr(), k as isize, 1),
                (g, 1, l as isize),
            );
            let cols = &cols[..k * lc];
            acc.par_chunks_mut(s * geo.h * wp).zip(cols.par_chunks(taps * lc)).for_each(|(a, c)| {
                for y in y0..y0 + rows {
                    for i in 0..kh {
                        let Some(iy) = geo.in_row(y, i) else { continue };
                        for j in 0..kw {
                            let Some((lo, hi, start)) = geo.cols(j) else { continue };
                            let src = &c[(i * kw + j) * lc + (y - y0) * geo.ow..][lo..hi];
                            a[phased_at(s, geo.h, wp, iy, start)..][..hi - lo]
                                .iter_mut()
                                .zip(src)
                                .for_each(|(a, v)| *a += v);
                        }
                    }
                }
            });
        }
        gx[b * geo.c * geo.h * geo.w..][..geo.c * geo.h * geo.w]
            .par_chunks_mut(geo.h * geo.w)
            .zip(acc.par_chunks(s * geo.h * wp))
            .for_each(|(plane, a)| unphase(a, plane, geo.h, geo.w, s));
    }
    gx
}

/// dW[co, (ci, i, j)] = Σ_n G_n[co, L] · cols_n[(ci, i, j), L]: one GEMM per band.
pub(super) fn weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let k = geo.c * geo.kernel[0] * geo.kernel[1];
    let l = geo.oh * geo.ow;
    let len = geo.co * k;
    if l == 0 || geo.n == 0 {
        return vec![0f32; len];
    }
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    for_each_band(xs, geo, |b, y0, lc, cols| {
        // dw[co × k] += G[co × lc] · colsᵀ[lc × k]; G's rows are the full planes of batch b. The
        // first band's GEMM writes every value (no clearing pass), the others accumulate.
        let g = gs[(b * geo.co) * l + y0 * geo.ow..].as_ptr();
        gemm_into(
            [geo.co, k, lc],
            Out { ptr: dw.as_mut_ptr(), row_stride: k, accumulate: b > 0 || y0 > 0 },
            (g, 1, l as isize),
            (cols.as_ptr(), lc as isize, 1),
        );
    });
    // SAFETY: the first band's GEMM wrote all co·k values (l > 0: there is a first band)
    unsafe { dw.set_len(len) };
    dw
}
