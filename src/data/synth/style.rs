//! How each domain looks: base colours, textures, lighting, camera and optics.
//!
//! The target ("camera") style differs from the game styles the way Cityscapes differs from
//! GTA5/SYNTHIA: overcast grey light instead of sun, desaturated and darker surfaces, camera blur,
//! sensor noise and vignetting, other class colours (grey buildings, dark vegetation, pale sky,
//! blue signs) and other object statistics. `shift` interpolates every parameter between the
//! game style (0) and the camera style (1), so the size of the gap is one number.
use super::noise;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    Gta5,
    Synthia,
    Cityscapes,
}

/// Everything that differs between domains.
#[derive(Clone, Debug)]
pub struct Style {
    /// Base colour of each trainId (linear 0..1 RGB).
    pub base: [[f32; 3]; 19],
    /// Per-object colour spread.
    pub jitter: f32,
    /// Fine texture amplitude multiplier.
    pub texture: f32,
    pub saturation: f32,
    pub contrast: f32,
    pub brightness: f32,
    pub tint: [f32; 3],
    /// Strength of sun shading (lit vs shadowed facades, cast shadows).
    pub sun: f32,
    pub clouds: f32,
    pub blur: f32,
    pub noise: f32,
    pub vignette: f32,
    // camera
    pub cam_height: [f32; 2],
    pub horizon: [f32; 2],
    pub focal: [f32; 2],
    /// Objects are placed at depths drawn from [near, far] metres.
    pub depth: [f32; 2],
    /// Multipliers of the object counts: [vehicles, people, two-wheelers, poles/signs, trees].
    pub density: [f32; 5],
    /// Probability that a facade segment is vegetation instead of a building.
    pub green: f32,
    /// Whether the camera's own car hood is visible (Cityscapes' ego vehicle).
    pub ego_hood: bool,
    /// Car colours to draw from.
    pub car_colors: Vec<[f32; 3]>,
}

const GTA_BASE: [[f32; 3]; 19] = [
    [0.42, 0.40, 0.38], [0.66, 0.62, 0.56], [0.72, 0.62, 0.50], [0.62, 0.58, 0.52], [0.52, 0.44, 0.34],
    [0.30, 0.30, 0.32], [0.12, 0.12, 0.10], [0.88, 0.78, 0.15], [0.40, 0.58, 0.18], [0.60, 0.64, 0.30],
    [0.42, 0.64, 0.95], [0.70, 0.30, 0.25], [0.25, 0.35, 0.70], [0.70, 0.10, 0.10], [0.82, 0.82, 0.78],
    [0.88, 0.66, 0.10], [0.75, 0.20, 0.15], [0.15, 0.15, 0.18], [0.20, 0.28, 0.60],
];

const SYNTHIA_BASE: [[f32; 3]; 19] = [
    [0.36, 0.34, 0.31], [0.58, 0.52, 0.50], [0.62, 0.57, 0.58], [0.58, 0.56, 0.50], [0.48, 0.42, 0.40],
    [0.34, 0.32, 0.30], [0.12, 0.12, 0.12], [0.85, 0.85, 0.85], [0.26, 0.48, 0.16], [0.50, 0.55, 0.28],
    [0.55, 0.70, 0.92], [0.55, 0.35, 0.30], [0.30, 0.30, 0.60], [0.60, 0.15, 0.45], [0.70, 0.70, 0.70],
    [0.85, 0.40, 0.10], [0.60, 0.60, 0.65], [0.20, 0.15, 0.15], [0.25, 0.45, 0.35],
];

const CITY_BASE: [[f32; 3]; 19] = [
    [0.30, 0.29, 0.33], [0.44, 0.41, 0.43], [0.48, 0.47, 0.46], [0.52, 0.50, 0.45], [0.40, 0.40, 0.40],
    [0.42, 0.42, 0.42], [0.15, 0.15, 0.15], [0.15, 0.30, 0.75], [0.20, 0.30, 0.14], [0.40, 0.45, 0.25],
    [0.78, 0.80, 0.84], [0.30, 0.28, 0.30], [0.28, 0.26, 0.26], [0.25, 0.25, 0.28], [0.55, 0.57, 0.60],
    [0.90, 0.90, 0.92], [0.85, 0.82, 0.20], [0.22, 0.22, 0.24], [0.16, 0.16, 0.16],
];

impl Style {
    pub fn game(domain: Domain) -> Style {
        let synthia = domain == Domain::Synthia;
        Style {
            base: if synthia { SYNTHIA_BASE } else { GTA_BASE },
            jitter: 0.12,
            texture: if synthia { 0.4 } else { 1.0 },
            saturation: if synthia { 1.1 } else { 1.25 },
            contrast: 1.15,
            brightness: 1.08,
            tint: [1.04, 1.0, 0.93],
            sun: 1.0,
            clouds: 1.0,
            blur: 0.0,
            noise: 0.0,
            vignette: 0.0,
            cam_height: if synthia { [2.5, 6.0] } else { [1.3, 1.9] },
            horizon: if synthia { [0.30, 0.42] } else { [0.40, 0.50] },
            focal: [0.85, 1.05],
            depth: [5.0, 55.0],
            density: if synthia { [0.9, 2.2, 1.0, 1.0, 0.8] } else { [1.2, 0.8, 0.7, 0.9, 1.2] },
            green: 0.3,
            ego_hood: false,
            car_colors: vec![
                [0.75, 0.10, 0.10], [0.10, 0.25, 0.70], [0.90, 0.85, 0.80], [0.10, 0.55, 0.20],
                [0.95, 0.70, 0.10], [0.15, 0.15, 0.15], [0.55, 0.10, 0.55],
            ],
        }
    }

    pub fn camera() -> Style {
        Style {
            base: CITY_BASE,
            jitter: 0.07,
            texture: 1.6,
            saturation: 0.7,
            contrast: 0.85,
            brightness: 0.92,
            tint: [0.94, 0.98, 1.05],
            sun: 0.15,
            clouds: 0.2,
            blur: 0.9,
            noise: 0.035,
            vignette: 0.35,
            cam_height: [1.15, 1.3],
            horizon: [0.42, 0.47],
            focal: [1.0, 1.15],
            depth: [7.0, 80.0],
            density: [1.4, 1.2, 1.3, 1.2, 1.0],
            green: 0.4,
            ego_hood: true,
            car_colors: vec![
                [0.20, 0.20, 0.22], [0.55, 0.56, 0.58], [0.80, 0.80, 0.82], [0.12, 0.14, 0.25],
                [0.35, 0.10, 0.10], [0.30, 0.32, 0.30],
            ],
        }
    }

    /// The target style at a given shift from the GTA5 style (1 = the full camera style).
    pub fn target(shift: f32) -> Style {
        let (a, b) = (Style::game(Domain::Gta5), Style::camera());
        let l = |x: f32, y: f32| x + (y - x) * shift;
        let l2 = |x: [f32; 2], y: [f32; 2]| [l(x[0], y[0]), l(x[1], y[1])];
        let l3 = |x: [f32; 3], y: [f32; 3]| [l(x[0], y[0]), l(x[1], y[1]), l(x[2], y[2])];
        Style {
            base: std::array::from_fn(|i| l3(a.base[i], b.base[i])),
            jitter: l(a.jitter, b.jitter),
            texture: l(a.texture, b.texture),
            saturation: l(a.saturation, b.saturation),
            contrast: l(a.contrast, b.contrast),
            brightness: l(a.brightness, b.brightness),
            tint: l3(a.tint, b.tint),
            sun: l(a.sun, b.sun),
            clouds: l(a.clouds, b.clouds),
            blur: l(a.blur, b.blur),
            noise: l(a.noise, b.noise),
            vignette: l(a.vignette, b.vignette),
            cam_height: l2(a.cam_height, b.cam_height),
            horizon: l2(a.horizon, b.horizon),
            focal: l2(a.focal, b.focal),
            depth: l2(a.depth, b.depth),
            density: std::array::from_fn(|i| l(a.density[i], b.density[i])),
            green: l(a.green, b.green),
            ego_hood: shift >= 0.5,
            car_colors: if shift >= 0.5 { b.car_colors } else { a.car_colors },
        }
    }

    /// A colour for one object or surface patch of class `tid`.
    pub fn object_color(&self, tid: usize, rng: &mut ChaCha8Rng) -> [f32; 3] {
        let base = match tid {
            13 => self.car_colors[rng.gen_range(0..self.car_colors.len())],
            11 | 12 => {
                // clothes: anything, darker in the camera style
                let c = self.base[tid];
                let k = rng.gen_range(0.3..1.5f32);
                [c[0] * k + rng.gen_range(-0.2..0.2), c[1] * k + rng.gen_range(-0.2..0.2), c[2] * k + rng.gen_range(-0.2..0.2)]
            }
            _ => self.base[tid],
        };
        let j = self.jitter;
        let g = rng.gen_range(-j..j);
        std::array::from_fn(|c| (base[c] + g + rng.gen_range(-j..j) * 0.5).clamp(0.02, 0.98))
    }

    /// Multiplicative texture of class `tid` at surface coordinates (s, t) in metres.
    pub fn texture(&self, tid: usize, s: f32, t: f32, seed: u64) -> f32 {
        let (amp, freq, oct) = match tid {
            0 => (0.10, 6.0, 3),   // asphalt
            1 => (0.08, 3.0, 2),   // paving
            2 => (0.06, 1.5, 3),   // facades
            3 | 4 => (0.10, 2.0, 2),
            8 => (0.45, 2.5, 4),   // foliage
            9 => (0.25, 3.0, 3),   // grass
            10 => (0.0, 1.0, 1),
            _ => (0.08, 4.0, 2),
        };
        1.0 + self.texture * amp * 2.0 * noise::fbm(s * freq, t * freq, oct, seed)
    }
}
