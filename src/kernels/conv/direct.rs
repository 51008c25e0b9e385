//! Forward convolution with few output channels (the classifier: ASPP 2048 → 19, 3×3, dilation
//! 6–24) as a register-blocked direct kernel over zero-padded input rows. burn-flex runs it as
//! im2col plus a GEMM with M = 19, and the GEMM packs a column buffer nine times the size of the
//! input whose every element then feeds only 19 multiply-adds: memory-bound at a small fraction
//! of the machine's speed.
//!
//! The kernel holds `CB` output channels × `V` vectors of output columns in registers and streams
//! a cache-sized chunk of input rows once per block: one vector load feeds `CB` multiply-adds.
//! The weights are laid out [block][ci][tap][CB] so that a block's broadcasts are contiguous.
//! (Figures: docs/benchmarks.md.)
use super::geometry::Geometry;
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Output channels per register block (19 classes → 4 blocks, one padding channel).
const CB: usize = 5;

/// Layers this kernel takes: stride 1, few output channels.
pub fn suits(out_channels: usize, stride: [usize; 2]) -> bool {
    out_channels <= 32 && stride == [1, 1]
}

/// y = conv(x, w) + b, as [n, co, oh, ow], for a stride-1 `p` with symmetric padding.
pub fn forward(xs: &[f32], ws: &[f32], bs: &[f32], p: &Geometry) -> Vec<f32> {
    pulp::Arch::new().dispatch(Forward { xs, ws, bs, p })
}

struct Forward<'a> {
    xs: &'a [f32],
    ws: &'a [f32],
    bs: &'a [f32],
    p: &'a Geometry,
}

impl WithSimd for Forward<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Vec<f32> {
        let Forward { xs, ws, bs, p } = self;
        let [kh, kw] = p.kernel;
        let lanes = S::F32_LANES;
        let (xp, wp) = padded_rows(xs, p, lanes * vectors(lanes));
        let blocks = p.co.div_ceil(CB);
        let taps = kh * kw;
        let mut wr = vec![0f32; blocks * p.c * taps * CB];
        for o in 0..p.co {
            for ci in 0..p.c {
                for t in 0..taps {
                    wr[((o / CB * p.c + ci) * taps + t) * CB + o % CB] = ws[(o * p.c + ci) * taps + t];
                }
            }
        }
        // rows [n, oh] of [co, ow], permuted to [n, co, oh, ow] at the end
        let mut rows = vec![0f32; p.n * p.oh * p.co * p.ow];
        rows.par_chunks_mut(p.co * p.ow).enumerate().for_each(|(r, out)| {
            let row =
                Row { xp: &xp[r / p.oh * p.c * p.h * wp..][..p.c * p.h * wp], wr: &wr, bs, p, wp, y: r % p.oh, out };
            pulp::Arch::new().dispatch(row);
        });
        let mut y = vec![0f32; rows.len()];
        y.par_chunks_mut(p.oh * p.ow).enumerate().for_each(|(nc, plane)| {
            let (b, o) = (nc / p.co, nc % p.co);
            for (yy, dst) in plane.chunks_exact_mut(p.ow).enumerate() {
                dst.copy_from_slice(&rows[((b * p.oh + yy) * p.co + o) * p.ow..][..p.ow]);
            }
        });
        y
    }
}

/// The input with each row zero-padded: `p.pad[1]` zeros on the left and room on the right for
/// full-vector loads over output columns rounded up to `chunk`. Returns the rows and their width.
fn padded_rows(xs: &[f32], p: &Geometry, chunk: usize) -> (Vec<f32>, usize) {
    let wp = (p.w + 2 * p.pad[1]).max(p.ow.div_ceil(chunk) * chunk + (p.kernel[1] - 1) * p.dilation[1]);
    let mut xp = vec![0f32; p.n * p.c * p.h * wp];
    xp.par_chunks_mut(p.h * wp).zip(xs.par_chunks(p.h * p.w)).for_each(|(dst, src)| {
        for (d, s) in dst.chunks_exact_mut(wp).zip(src.chunks_exact(p.w)) {
            d[p.pad[1]..][..p.w].copy_from_slice(s);
        }
    });
    (xp, wp)
}

/// One output row (all channels) of one image.
struct Row<'a> {
    xp: &'a [f32],
    wr: &'a [f32],
    bs: &'a [f32],
    p: &'a Geometry,
    wp: usize,
    y: usize,
    out: &'a mut [f32],
}

impl WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if vectors(S::F32_LANES) == 4 {
            row::<S, 4>(simd, self)
        } else {
            row::<S, 2>(simd, self)
        }
    }
}

/// Vectors of output columns per register block: 4 with AVX-512 (32 registers), 2 with AVX2
/// (16 registers; 4 spilled).
fn vectors(lanes: usize) -> usize {
    if lanes >= 16 {
        4
    } else {
        2
    }
}

/// The row kernel with `V` vectors per register block. Input channels go in chunks of `CC`, so
/// that a chunk's rows stay in cache while every block and column window reads them; between
/// chunks the accumulators wait in a row buffer. (Streaming all channels per window instead
/// fetches every input line from memory once per block and window, slower than the GEMM.)
#[inline(always)]
fn row<S: Simd, const V: usize>(simd: S, r: Row<'_>) {
    const CC: usize = 16;
    let Row { xp, wr, bs, p, wp, y, out } = r;
    let [kh, kw] = p.kernel;
    let [dy, dx] = p.dilation;
    let lanes = S::F32_LANES;
    let taps = kh * kw;
    let blocks = p.co.div_ceil(CB);
    let windows = p.ow.div_ceil(lanes * V);
    // kernel rows that land inside the image for this output row
    let live: Vec<(usize, usize)> =
        (0..kh).filter_map(|i| (y + i * dy).checked_sub(p.pad[0]).filter(|iy| *iy < p.h).map(|iy| (i, iy))).collect();
    // [block][window][CB][V] accumulators, starting at the bias
    let mut accs: Vec<[[S::f32s; V]; CB]> = (0..blocks * windows)
        .map(|bw| std::array::from_fn(|j| [simd.splat_f32s(bs.get(bw / windows * CB + j).copied().unwrap_or(0.0)); V]))
        .collect();
    for c0 in (0..p.c).step_by(CC) {
        // the next chunk's rows on their way to the cache while this one is computed: its first
        // reads otherwise wait on memory, as dozens of rows in far-apart planes defeat the
        // hardware prefetcher
        for ci in (c0 + CC).min(p.c)..(c0 + 2 * CC).min(p.c) {
            for &(_, iy) in &live {
                prefetch(&xp[(ci * p.h + iy) * wp..][..wp]);
            }
        }
        for (bw, slot) in accs.iter_mut().enumerate() {
            let (b, x0) = (bw / windows, bw % windows * lanes * V);
            let mut acc = *slot;
            for ci in c0..(c0 + CC).min(p.c) {
                let plane = &xp[ci * p.h * wp..][..p.h * wp];
                let wt = &wr[(b * p.c + ci) * taps * CB..][..taps * CB];
                for &(i, iy) in &live {
                    let row = &plane[iy * wp..][..wp];
                    for j in 0..kw {
                        let seg = &row[x0 + j * dx..][..lanes * V];
                        // SAFETY: `seg` holds V·lanes floats; f32s is a plain array of lanes f32
                        let xv: [S::f32s; V] = std::array::from_fn(|v| unsafe {
                            std::ptr::read_unaligned(seg.as_ptr().add(v * lanes) as *const S::f32s)
                        });
                        let wk = &wt[(i * kw + j) * CB..][..CB];
                        for c in 0..CB {
                            let wc = simd.splat_f32s(wk[c]);
                            for v in 0..V {
                                acc[c][v] = simd.mul_add_f32s(wc, xv[v], acc[c][v]);
                            }
                        }
                    }
                }
            }
            *slot = acc;
        }
    }
    for (bw, acc) in accs.iter().enumerate() {
        let (b, x0) = (bw / windows, bw % windows * lanes * V);
        for (c, a) in acc.iter().enumerate().take(p.co.saturating_sub(b * CB)) {
            let dst = &mut out[(b * CB + c) * p.ow..][..p.ow];
            for (v, vec) in a.iter().enumerate() {
                let start = x0 + v * lanes;
                if start < p.ow {
                    simd.partial_store_f32s(&mut dst[start..(start + lanes).min(p.ow)], *vec);
                }
            }
        }
    }
}

/// Asks for every cache line of `s` (a hint; no-op off x86-64).
#[inline(always)]
fn prefetch(s: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for k in (0..s.len()).step_by(16) {
        // SAFETY: prefetching is a hint and never faults; the address is inside `s`
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(s.as_ptr().add(k) as *const i8) }
    }
}

/// Output channels per block of the weight gradient (× 3 kernel columns = 18 accumulators).
const GB: usize = 6;

/// dW[o, ci, i, j] = Σ_{n, y, x} g[n, o, y, x] · x[n, ci, y + i·d − p, x + j·d − p], for kernels at
/// most 4 wide; `None` for wider ones. Per input channel: `GB` output channels × the kernel
/// columns in registers, so one vector load of a gradient row feeds `kw` multiply-adds and one
/// of an input row feeds `GB`. (burn's path, and the GEMM one in `conv_ext`, build an im2col
/// buffer nine times the input and run a GEMM with M = 19 over it.)
pub fn weight_grad(xs: &[f32], gs: &[f32], p: &Geometry) -> Option<Vec<f32>> {
    match p.kernel[1] {
        1 => Some(pulp::Arch::new().dispatch(WeightGrad::<1> { xs, gs, p })),
        2 => Some(pulp::Arch::new().dispatch(WeightGrad::<2> { xs, gs, p })),
        3 => Some(pulp::Arch::new().dispatch(WeightGrad::<3> { xs, gs, p })),
        4 => Some(pulp::Arch::new().dispatch(WeightGrad::<4> { xs, gs, p })),
        _ => None,
    }
}

struct WeightGrad<'a, const KW: usize> {
    xs: &'a [f32],
    gs: &'a [f32],
    p: &'a Geometry,
}

impl<const KW: usize> WithSimd for WeightGrad<'_, KW> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Vec<f32> {
        let WeightGrad { xs, gs, p } = self;
        let lanes = S::F32_LANES;
        let (xp, wp) = padded_rows(xs, p, lanes);
        // the gradient with output channels padded to whole blocks and rows to whole vectors
        let blocks = p.co.div_ceil(GB);
        let gw = p.ow.div_ceil(lanes) * lanes;
        let mut gp = vec![0f32; p.n * blocks * GB * p.oh * gw];
        for (b, img) in gs.chunks_exact(p.co * p.oh * p.ow).enumerate() {
            for (r, row) in img.chunks_exact(p.ow).enumerate() {
                gp[(b * blocks * GB * p.oh + r) * gw..][..p.ow].copy_from_slice(row);
            }
        }
        let taps = p.kernel[0] * KW;
        // per input channel: [co, taps], permuted to [co, ci, taps] at the end
        let mut per_ci = vec![0f32; p.c * p.co * taps];
        per_ci.par_chunks_mut(p.co * taps).enumerate().for_each(|(ci, out)| {
            pulp::Arch::new().dispatch(WeightGradChannel::<KW> { xp: &xp, gp: &gp, p, wp, gw, ci, out });
        });
        let mut dw = vec![0f32; per_ci.len()];
        for (ci, src) in per_ci.chunks_exact(p.co * taps).enumerate() {
            for (o, t) in src.chunks_exact(taps).enumerate() {
                dw[(o * p.c + ci) * taps..][..taps].copy_from_slice(t);
            }
        }
        dw
    }
}

/// The weight gradient of one input channel, all output channels.
struct WeightGradChannel<'a, const KW: usize> {
    xp: &'a [f32],
    gp: &'a [f32],
    p: &'a Geometry,
    wp: usize,
    gw: usize,
    ci: usize,
    out: &'a mut [f32],
}

impl<const KW: usize> WithSimd for WeightGradChannel<'_, KW> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let WeightGradChannel { xp, gp, p, wp, gw, ci, out } = self;
        let lanes = S::F32_LANES;
        let [dy, dx] = p.dilation;
        let taps = p.kernel[0] * KW;
        let blocks = p.co.div_ceil(GB);
        let load = |s: &[f32]| -> S::f32s {
            let s = &s[..lanes];
            // SAFETY: `s` holds `lanes` floats; f32s is a plain array of `lanes` f32
            unsafe { std::ptr::read_unaligned(s.as_ptr() as *const S::f32s) }
        };
        for ob in 0..blocks {
            for i in 0..p.kernel[0] {
                let mut acc: [[S::f32s; KW]; GB] = [[simd.splat_f32s(0.0); KW]; GB];
                for b in 0..p.n {
                    let plane = &xp[(b * p.c + ci) * p.h * wp..][..p.h * wp];
                    let grads = &gp[(b * blocks + ob) * GB * p.oh * gw..][..GB * p.oh * gw];
                    for y in 0..p.oh {
                        let Some(iy) = (y + i * dy).checked_sub(p.pad[0]).filter(|iy| *iy < p.h) else { continue };
                        let row = &plane[iy * wp..][..wp];
                        for x0 in (0..gw).step_by(lanes) {
                            let xv: [S::f32s; KW] = std::array::from_fn(|j| load(&row[x0 + j * dx..]));
                            for (o, a) in acc.iter_mut().enumerate() {
                                let gv = load(&grads[(o * p.oh + y) * gw + x0..]);
                                for j in 0..KW {
                                    a[j] = simd.mul_add_f32s(gv, xv[j], a[j]);
                                }
                            }
                        }
                    }
                }
                for (o, a) in acc.iter().enumerate().take(p.co.saturating_sub(ob * GB)) {
                    for j in 0..KW {
                        out[(ob * GB + o) * taps + i * KW + j] = simd.reduce_sum_f32s(a[j]);
                    }
                }
            }
        }
    }
}
