//! A convolution's shapes and the im2col machinery the dense and depthwise kernels share:
//! planes split by column phase (strided row accesses become contiguous runs), banded column
//! buffers, and a column buffer kept per thread between calls.
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

/// Shapes of a convolution (NCHW; `c` input and `co` output channels; the padding is the
/// leading one, both sides for the kernels that take only symmetric padding).
pub(super) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// From the input's, the output's (spatial) and the weight's shapes.
    pub fn new(
        [n, c, h, w]: [usize; 4],
        [oh, ow]: [usize; 2],
        [co, _, kh, kw]: [usize; 4],
        o: &ConvOptions<2>,
    ) -> Self {
        Geometry {
            n,
            c,
            h,
            w,
            co,
            oh,
            ow,
            kernel: [kh, kw],
            stride: o.stride,
            pad: o.padding_begin(),
            dilation: o.dilation,
        }
    }

    /// Output rows per band of a column buffer with `k` rows: about 16 MiB of columns (a few
    /// rows in tests, so that the banding itself is checked), at least one row.
    pub(super) fn band_rows(&self, k: usize) -> usize {
        let budget = if cfg!(test) { 64 } else { 1 << 22 };
        (budget / (k * self.ow).max(1)).clamp(1, self.oh.max(1))
    }

    /// The input row of output row `y` under kernel row `i`, if inside the image.
    pub(super) fn in_row(&self, y: usize, i: usize) -> Option<usize> {
        let iy = (y * self.stride[0] + i * self.dilation[0]).checked_sub(self.pad[0])?;
        (iy < self.h).then_some(iy)
    }

    /// For kernel column `j`: the output columns lo..hi whose input column x·s + j·d − p lies in
    /// the row, and the input column of `lo`.
    pub(super) fn cols(&self, j: usize) -> Option<(usize, usize, usize)> {
        let (off, pad, s) = (j * self.dilation[1], self.pad[1], self.stride[1]);
        let lo = pad.saturating_sub(off).div_ceil(s);
        let hi = (self.w + pad).saturating_sub(off).div_ceil(s).min(self.ow);
        (lo < hi).then(|| (lo, hi, lo * s + off - pad))
    }

    /// Every (output row y, input row, tap index, output columns lo..hi, input column of lo)
    /// where a kernel tap meets the image: the loop all three kernels share.
    pub(super) fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        let [kh, kw] = self.kernel;
        for y in 0..self.oh {
            for i in 0..kh {
                let Some(iy) = self.in_row(y, i) else { continue };
                for j in 0..kw {
                    if let Some((lo, hi, start)) = self.cols(j) {
                        f(y, iy, i * kw + j, lo, hi, start);
                    }
                }
            }
        }
    }
}

/// A plane with its columns split by phase modulo the column stride s (phase r holds columns
/// r, r + s, …), so that every strided row access becomes a contiguous slice. For s = 1 it is
/// the plane itself.
pub(super) struct Phased<'a> {
    buf: std::borrow::Cow<'a, [f32]>,
    h: usize,
    wp: usize,
    s: usize,
}

/// Where column x of row y sits in a phased buffer (h rows, wp columns per phase, stride s).
pub(super) fn phased_at(s: usize, h: usize, wp: usize, y: usize, x: usize) -> usize {
    ((x % s) * h + y) * wp + x / s
}

/// The inverse of the phase split: `plane` [h, w] from its phased layout `phased` (column
/// k·s + r of row y sits at slot k of phase r's row y).
pub(super) fn unphase(phased: &[f32], plane: &mut [f32], h: usize, w: usize, s: usize) {
    let wp = w.div_ceil(s);
    if s == 2 {
        let (even, odd) = phased.split_at(h * wp);
        for ((row, e), o) in plane.chunks_exact_mut(w).zip(even.chunks_exact(wp)).zip(odd.chunks_exact(wp)) {
            for ((pair, e), o) in row.chunks_exact_mut(2).zip(e).zip(o) {
                pair[0] = *e;
                pair[1] = *o;
            }
            if w % 2 == 1 {
                row[w - 1] = e[wp - 1];
            }
        }
        return;
    }
    for (r, phase) in phased.chunks_exact(h * wp).enumerate() {
        for (row, src) in plane.chunks_exact_mut(w).zip(phase.chunks_exact(wp)) {
            row[r.min(w)..].iter_mut().step_by(s).zip(src).for_each(|(d, v)| *d = *v);
        }
    }
}

impl<'a> Phased<'a> {
    pub(super) fn new(plane: &'a [f32], h: usize, w: usize, s: usize) -> Self {
        if s == 1 {
            return Phased { buf: plane.into(), h, wp: w, s };
        }
        let wp = w.div_ceil(s);
        let mut buf = vec![0f32; s * h * wp];
        if s == 2 {
            // the common case, as one deinterleaving pass that vectorises
            let (even, odd) = buf.split_at_mut(h * wp);
            for ((row, e), o) in plane.chunks_exact(w).zip(even.chunks_exact_mut(wp)).zip(odd.chunks_exact_mut(wp)) {
                for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
                if w % 2 == 1 {
                    e[wp - 1] = row[w - 1];
                }
            }
        } else {
            for (r, phase) in buf.chunks_exact_mut(h * wp).enumerate() {
                for (row, dst) in plane.chunks_exact(w).zip(phase.chunks_exact_mut(wp)) {
                    dst.iter_mut().zip(row[r.min(w)..].iter().step_by(s)).for_each(|(d, v)| *d = *v);
                }
            }
        }
        Phased { buf: buf.into(), h, wp, s }
    }

    /// The input columns start, start + s, … (len of them) of row y.
    pub(super) fn run(&self, y: usize, start: usize, len: usize) -> &[f32] {
        &self.buf[phased_at(self.s, self.h, self.wp, y, start)..][..len]
    }
}

/// The im2col of a dense convolution's input, a band of output rows at a time (at most ~16 MiB):
/// calls `f(b, y0, lc, cols)` per band of image b, with cols[(ci, i, j), lc] over the band's
/// lc = rows · ow output positions (zero where a tap falls outside the image).
pub(super) fn for_each_band(xs: &[f32], geo: &Geometry, mut f: impl FnMut(usize, usize, usize, &[f32])) {
    let taps = geo.kernel[0] * geo.kernel[1];
    let k = geo.c * taps;
    let band = geo.band_rows(k);
    let [kh, kw] = geo.kernel;
    let mut cols = Scratch::take(k * band * geo.ow);
    for b in 0..geo.n {
        let planes: Vec<Phased> = (0..geo.c)
            .into_par_iter()
            .map(|ci| {
                Phased::new(&xs[(b * geo.c + ci) * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1])
            })
            .collect();
        for y0 in (0..geo.oh).step_by(band) {
            let rows = band.min(geo.oh - y0);
            let lc = rows * geo.ow;
            cols[..k * lc].par_chunks_mut(taps * lc).zip(&planes).for_each(|(chunk, x)| {
                // every element written once: the tap's run of the input row, zeros around it
                for y in y0..y0 + rows {
                    for i in 0..kh {
                        let iy = geo.in_row(y, i);
                        for j in 0..kw {
                            let dst = &mut chunk[(i * kw + j) * lc + (y - y0) * geo.ow..][..geo.ow];
                            match (iy, geo.cols(j)) {
                                (Some(iy), Some((lo, hi, start))) => {
                                    dst[..lo].fill(0.0);
                                    dst[lo..hi].copy_from_slice(x.run(iy, start, hi - lo));
                                    dst[hi..].fill(0.0);
                                }
                                _ => dst.fill(0.0),
                            }
                        }
                    }
                }
            });
            f(b, y0, lc, &cols[..k * lc]);
        }
    }
}

thread_local!(static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) });

/// A buffer of floats kept per thread between calls, holding whatever the last user left in
/// it: for column buffers that are written whole before they are read (a fresh one per call
/// was a memset and page faults each time). Handed back to the thread when dropped.
pub(super) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    pub(super) fn take(len: usize) -> Scratch {
        let mut buf = SCRATCH.take();
        if buf.len() < len {
            buf = vec![0f32; len];
        }
        Scratch { buf, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        SCRATCH.set(std::mem::take(&mut self.buf));
    }
}
