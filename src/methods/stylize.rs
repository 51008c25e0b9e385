//! Style randomisation of source images that keeps their content (and so their labels): the
//! "target-like" views T2S-DA pulls towards the source. The authors use an arbitrary-style-transfer
//! network; without its weights offline we change the image's Fourier amplitude and keep its
//! phase (which carries the layout). A learned stylizer can implement [`Stylizer`] later.
//!
//! Images are normalised [3,h,w] planes; amplitude mixing is linear per channel, so working in the
//! normalised space only rescales each channel.
use rand::Rng;
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;
use serde::{Deserialize, Serialize};

/// One image: 3 planes of h×w, row-major.
pub struct Image<'a> {
    pub data: &'a [f32],
    pub h: usize,
    pub w: usize,
}

pub trait Stylizer {
    /// A restyled copy of `x` (same size). `styles` are target images to borrow styles from
    /// (empty in domain generalisation).
    fn stylize(&self, x: &Image, styles: &[Image], rng: &mut dyn rand::RngCore) -> Vec<f32>;
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StyleKind {
    /// Mix the amplitude spectrum with a random target image's (UDA).
    Fourier,
    /// Random colour, spectral slope (blur/sharpen) and noise (domain generalisation).
    Random,
}

/// Amplitude mixing (FDA/FACT style): A = (1 − λ)·A_src + λ·A_style, source phase kept.
pub struct FourierMix {
    /// λ is drawn uniformly in [0, mix] per image (the paper mixes 50/50 on average).
    pub mix: f64,
}

/// Random styles that need no target image.
pub struct RandomStyle {
    /// Strength in [0, 1]: colour gain/bias range, spectral slope and noise scale.
    pub strength: f64,
}

pub fn build(kind: StyleKind, strength: f64) -> Box<dyn Stylizer + Send> {
    match kind {
        StyleKind::Fourier => Box::new(FourierMix { mix: strength }),
        StyleKind::Random => Box::new(RandomStyle { strength }),
    }
}

/// In-place 2-D FFT of an h×w plane (rows, then columns).
fn fft2(planner: &mut FftPlanner<f32>, buf: &mut [Complex32], h: usize, w: usize, inverse: bool) {
    let (row, col) = if inverse {
        (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h))
    } else {
        (planner.plan_fft_forward(w), planner.plan_fft_forward(h))
    };
    row.process(buf);
    let mut column = vec![Complex32::default(); h];
    for x in 0..w {
        for y in 0..h {
            column[y] = buf[y * w + x];
        }
        col.process(&mut column);
        for y in 0..h {
            buf[y * w + x] = column[y];
        }
    }
    if inverse {
        let s = 1.0 / (h * w) as f32;
        buf.iter_mut().for_each(|v| *v *= s);
    }
}

fn spectrum(planner: &mut FftPlanner<f32>, plane: &[f32], h: usize, w: usize) -> Vec<Complex32> {
    let mut buf: Vec<Complex32> = plane.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(planner, &mut buf, h, w, false);
    buf
}

/// Signed frequency of index i in an n-point transform.
fn signed(i: usize, n: usize) -> isize {
    if i <= n / 2 {
        i as isize
    } else {
        i as isize - n as isize
    }
}

/// Replace amplitudes by `amp(y, x, |F|)`, keep phases, return the real plane.
fn with_amplitude(
    planner: &mut FftPlanner<f32>,
    plane: &[f32],
    h: usize,
    w: usize,
    amp: impl Fn(usize, usize, f32) -> f32,
) -> Vec<f32> {
    let mut f = spectrum(planner, plane, h, w);
    for y in 0..h {
        for x in 0..w {
            let v = f[y * w + x];
            let a = v.norm();
            let new = amp(y, x, a);
            f[y * w + x] = if a > 0.0 { v * (new / a) } else { Complex32::new(new, 0.0) };
        }
    }
    fft2(planner, &mut f, h, w, true);
    f.iter().map(|v| v.re).collect()
}

impl Stylizer for FourierMix {
    fn stylize(&self, x: &Image, styles: &[Image], rng: &mut dyn rand::RngCore) -> Vec<f32> {
        if styles.is_empty() {
            return x.data.to_vec();
        }
        let s = &styles[rng.gen_range(0..styles.len())];
        let lambda = rng.gen_range(0.0..=self.mix.max(0.0)) as f32;
        let (h, w) = (x.h, x.w);
        let mut planner = FftPlanner::new();
        // a different-sized style image: compare the same frequencies in cycles per image,
        // amplitudes scaled by the pixel-count ratio
        let scale = (h * w) as f32 / (s.h * s.w) as f32;
        let mut out = Vec::with_capacity(x.data.len());
        for c in 0..3 {
            let src = &x.data[c * h * w..(c + 1) * h * w];
            let sty = spectrum(&mut planner, &s.data[c * s.h * s.w..(c + 1) * s.h * s.w], s.h, s.w);
            let style_amp = |y: usize, xx: usize| -> Option<f32> {
                let (fy, fx) = (signed(y, h), signed(xx, w));
                let (sy, sx) = (fy.rem_euclid(s.h as isize) as usize, fx.rem_euclid(s.w as isize) as usize);
                (fy.unsigned_abs() <= s.h / 2 && fx.unsigned_abs() <= s.w / 2)
                    .then(|| sty[sy * s.w + sx].norm() * scale)
            };
            out.extend(with_amplitude(&mut planner, src, h, w, |y, xx, a| match style_amp(y, xx) {
                Some(t) => (1.0 - lambda) * a + lambda * t,
                None => a,
            }));
        }
        out
    }
}

impl Stylizer for RandomStyle {
    fn stylize(&self, x: &Image, _styles: &[Image], rng: &mut dyn rand::RngCore) -> Vec<f32> {
        let (h, w) = (x.h, x.w);
        let hw = h * w;
        let k = self.strength.clamp(0.0, 1.0);
        let mut planner = FftPlanner::new();
        // one spectral slope for the image: amplitude × exp(−s·r), r the normalised radius
        // (s > 0 blurs, s < 0 sharpens), plus white noise and a colour change per channel
        let slope = rng.gen_range(-1.0..=3.0) * k;
        let noise = rng.gen_range(0.0..=0.15) * k;
        let mut out = Vec::with_capacity(x.data.len());
        for c in 0..3 {
            let plane = &x.data[c * hw..(c + 1) * hw];
            let mean = plane.iter().sum::<f32>() / hw as f32;
            let std = (plane.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / hw as f32).sqrt().max(1e-6);
            let shaped = with_amplitude(&mut planner, plane, h, w, |y, xx, a| {
                let (fy, fx) = (signed(y, h) as f64 / (h as f64 / 2.0), signed(xx, w) as f64 / (w as f64 / 2.0));
                let r = (fy * fy + fx * fx).sqrt().min(1.0);
                a * (-slope * r).exp() as f32
            });
            let gain = 1.0 + rng.gen_range(-0.5..=0.5) * k;
            let bias = rng.gen_range(-0.5..=0.5) * k * std as f64;
            for v in shaped {
                let n = noise * std as f64 * gaussian(rng);
                out.push(((v - mean) as f64 * gain + mean as f64 + bias + n) as f32);
            }
        }
        out
    }
}

fn gaussian(rng: &mut dyn rand::RngCore) -> f64 {
    // Box–Muller
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn img(h: usize, w: usize, f: impl Fn(usize, usize, usize) -> f32) -> Vec<f32> {
        (0..3)
            .flat_map(|c| (0..h).flat_map(move |y| (0..w).map(move |x| (c, y, x))))
            .map(|(c, y, x)| f(c, y, x))
            .collect()
    }

    #[test]
    fn fft_round_trip_is_identity() {
        let (h, w) = (6, 10);
        let plane: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let mut p = FftPlanner::new();
        let back = with_amplitude(&mut p, &plane, h, w, |_, _, a| a);
        for (a, b) in plane.iter().zip(&back) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn amplitude_mixing_moves_colour_statistics_to_the_style_and_keeps_layout() {
        let (h, w) = (8, 12);
        // source: a vertical edge; style: bright flat image of another size
        let src = img(h, w, |_, _, x| if x < 6 { -1.0 } else { 1.0 });
        let sty = img(10, 12, |c, _, _| 3.0 + c as f32);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = FourierMix { mix: 1.0 }.stylize(
            &Image { data: &src, h, w },
            &[Image { data: &sty, h: 10, w: 12 }],
            &mut rng,
        );
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        // the DC amplitude moves towards the style's mean (λ > 0 drawn), the edge stays an edge
        for c in 0..3 {
            let plane = &out[c * h * w..(c + 1) * h * w];
            assert!(mean(plane) > 0.05, "channel {c} mean {}", mean(plane));
            assert!(plane[5] < plane[6], "layout lost");
        }
        // no style image: unchanged
        let same = FourierMix { mix: 1.0 }.stylize(&Image { data: &src, h, w }, &[], &mut rng);
        assert_eq!(same, src);
    }

    #[test]
    fn random_styles_differ_per_draw_and_are_deterministic_for_a_seed() {
        let (h, w) = (8, 8);
        let src = img(h, w, |c, y, x| (c + y * x) as f32 * 0.1);
        let s = RandomStyle { strength: 1.0 };
        let a = s.stylize(&Image { data: &src, h, w }, &[], &mut ChaCha8Rng::seed_from_u64(3));
        let b = s.stylize(&Image { data: &src, h, w }, &[], &mut ChaCha8Rng::seed_from_u64(3));
        let c = s.stylize(&Image { data: &src, h, w }, &[], &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, src);
        assert!(a.iter().all(|v| v.is_finite()));
    }
}
