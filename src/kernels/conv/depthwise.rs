//! Depthwise convolutions (groups = channels): the strided forward, the input gradient and the
//! weight gradient as per-tap row updates and vectorised dot products over phase-split planes.
use super::geometry::{phased_at, unphase, Geometry, Phased};
use rayon::prelude::*;

/// y[n, c] = b[c] + Σ_ij w[c, i, j] · shift_ij(x[n, c]): row by row, one axpy per tap. Used for
/// strided layers; burn-flex's own kernel is as fast at stride 1.
pub(super) fn forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let mut out = vec![0f32; geo.n * geo.c * geo.oh * geo.ow];
    out.par_chunks_mut(geo.oh * geo.ow).enumerate().for_each(|(nc, plane)| {
        let ch = nc % geo.c;
        let x = Phased::new(&xs[nc * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1]);
        let taps = &ws[ch * kh * kw..][..kh * kw];
        plane.fill(bs[ch]);
        geo.for_each_tap(|y, iy, k, lo, hi, start| {
            let row = &mut plane[y * geo.ow..][lo..hi];
            row.iter_mut().zip(x.run(iy, start, hi - lo)).for_each(|(o, v)| *o += taps[k] * v);
        });
    });
    out
}

/// dx[n, c] = Σ_ij w[c, i, j] · (g[n, c] scattered back through tap ij), accumulated by phase.
pub(super) fn x_grad(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let s = geo.stride[1];
    let wp = geo.w.div_ceil(s);
    let mut out = vec![0f32; geo.n * geo.c * geo.h * geo.w];
    out.par_chunks_mut(geo.h * geo.w).enumerate().for_each(|(nc, plane)| {
        let ch = nc % geo.c;
        let g = &gs[nc * geo.oh * geo.ow..][..geo.oh * geo.ow];
        let taps = &ws[ch * kh * kw..][..kh * kw];
        let mut phased = if s == 1 { Vec::new() } else { vec![0f32; s * geo.h * wp] };
        let acc: &mut [f32] = if s == 1 { plane } else { &mut phased };
        geo.for_each_tap(|y, iy, k, lo, hi, start| {
            let run = &mut acc[phased_at(s, geo.h, wp, iy, start)..][..hi - lo];
            run.iter_mut().zip(&g[y * geo.ow..][lo..hi]).for_each(|(o, v)| *o += taps[k] * v);
        });
        if s > 1 {
            unphase(&phased, plane, geo.h, geo.w, s);
        }
    });
    out
}

/// dW[c, i, j] = Σ_{n, y, x} g[n, c, y, x] · x[n, c, y·s + i·d − p, x·s + j·d − p] (zero outside).
pub(super) fn weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let mut out = vec![0f32; geo.c * kh * kw];
    out.par_chunks_mut(kh * kw).enumerate().for_each(|(ch, acc)| {
        let mut sums = vec![0f64; kh * kw];
        for b in 0..geo.n {
            let x = Phased::new(&xs[(b * geo.c + ch) * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1]);
            let g = &gs[(b * geo.c + ch) * geo.oh * geo.ow..][..geo.oh * geo.ow];
            geo.for_each_tap(|y, iy, k, lo, hi, start| {
                sums[k] += dot(&g[y * geo.ow..][lo..hi], x.run(iy, start, hi - lo)) as f64;
            });
        }
        acc.iter_mut().zip(&sums).for_each(|(a, s)| *a = *s as f32);
    });
    out
}

/// A dot product with 16 independent partial sums, so the compiler can vectorise it.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
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
