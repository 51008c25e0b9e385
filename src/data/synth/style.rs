//! How each domain looks: base colours, textures, lighting, camera and optics.
//!
//! The target ("camera") style differs from the game styles the way Cityscapes differs from
//! GTA5/SYNTHIA: overcast grey light instead of sun, desaturated and darker surfaces, camera blur,
//! sensor noise and vignetting, other class colours (grey buildings, dark vegetation, pale sky,
//! blue signs) and other object statistics. `Shift::Camera(k)` interpolates every parameter
//! between the game style (0) and the camera style (1), so the size of the gap is one number.
//!
//! `Shift::Classwise` is another kind of gap: the same light, camera and optics as GTA5, but each
//! class looks different in the target (brick facades, autumn vegetation, reddish asphalt, slate
//! sidewalks, pastel cars, green signs, other surface textures), so a network has to carry over
//! shapes and context instead of undoing one global colour, blur and noise change.
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
    /// Per class, a multiplier of its fine texture's amplitude.
    pub class_texture: [f32; 19],
}

/// The domain gap of the target images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shift {
    /// The camera look at a strength: 0 = the target rendered like GTA5, 1 = the full look.
    Camera(f32),
    /// Class-wise appearance with the game's light, camera and optics.
    Classwise,
}

impl std::str::FromStr for Shift {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shift, String> {
        match s {
            "camera" => Ok(Shift::Camera(1.0)),
            "classwise" => Ok(Shift::Classwise),
            _ => match s.parse::<f32>() {
                Ok(k) if (0.0..=1.0).contains(&k) => Ok(Shift::Camera(k)),
                _ => Err(format!("`{s}`: expected camera, classwise or a camera strength in [0, 1]")),
            },
        }
    }
}

impl std::fmt::Display for Shift {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Shift::Camera(k) if *k == 1.0 => f.write_str("camera"),
            Shift::Camera(k) => write!(f, "{k}"),
            Shift::Classwise => f.write_str("classwise"),
        }
    }
}

impl serde::Serialize for Shift {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

const GTA_BASE: [[f32; 3]; 19] = [
    [0.42, 0.40, 0.38],
    [0.66, 0.62, 0.56],
    [0.72, 0.62, 0.50],
    [0.62, 0.58, 0.52],
    [0.52, 0.44, 0.34],
    [0.30, 0.30, 0.32],
    [0.12, 0.12, 0.10],
    [0.88, 0.78, 0.15],
    [0.40, 0.58, 0.18],
    [0.60, 0.64, 0.30],
    [0.42, 0.64, 0.95],
    [0.70, 0.30, 0.25],
    [0.25, 0.35, 0.70],
    [0.70, 0.10, 0.10],
    [0.82, 0.82, 0.78],
    [0.88, 0.66, 0.10],
    [0.75, 0.20, 0.15],
    [0.15, 0.15, 0.18],
    [0.20, 0.28, 0.60],
];

const SYNTHIA_BASE: [[f32; 3]; 19] = [
    [0.36, 0.34, 0.31],
    [0.58, 0.52, 0.50],
    [0.62, 0.57, 0.58],
    [0.58, 0.56, 0.50],
    [0.48, 0.42, 0.40],
    [0.34, 0.32, 0.30],
    [0.12, 0.12, 0.12],
    [0.85, 0.85, 0.85],
    [0.26, 0.48, 0.16],
    [0.50, 0.55, 0.28],
    [0.55, 0.70, 0.92],
    [0.55, 0.35, 0.30],
    [0.30, 0.30, 0.60],
    [0.60, 0.15, 0.45],
    [0.70, 0.70, 0.70],
    [0.85, 0.40, 0.10],
    [0.60, 0.60, 0.65],
    [0.20, 0.15, 0.15],
    [0.25, 0.45, 0.35],
];

/// The class-wise target: every class's colour moved (trainId order as above).
const CLASSWISE_BASE: [[f32; 3]; 19] = [
    [0.50, 0.36, 0.32],
    [0.36, 0.42, 0.52],
    [0.62, 0.32, 0.24],
    [0.40, 0.46, 0.40],
    [0.30, 0.34, 0.50],
    [0.62, 0.55, 0.20],
    [0.30, 0.20, 0.45],
    [0.10, 0.65, 0.30],
    [0.66, 0.48, 0.14],
    [0.62, 0.52, 0.34],
    [0.70, 0.74, 0.86],
    [0.30, 0.55, 0.60],
    [0.65, 0.55, 0.30],
    [0.80, 0.70, 0.75],
    [0.50, 0.40, 0.60],
    [0.30, 0.65, 0.62],
    [0.45, 0.55, 0.80],
    [0.60, 0.52, 0.40],
    [0.70, 0.45, 0.60],
];

const CITY_BASE: [[f32; 3]; 19] = [
    [0.30, 0.29, 0.33],
    [0.44, 0.41, 0.43],
    [0.48, 0.47, 0.46],
    [0.52, 0.50, 0.45],
    [0.40, 0.40, 0.40],
    [0.42, 0.42, 0.42],
    [0.15, 0.15, 0.15],
    [0.15, 0.30, 0.75],
    [0.20, 0.30, 0.14],
    [0.40, 0.45, 0.25],
    [0.78, 0.80, 0.84],
    [0.30, 0.28, 0.30],
    [0.28, 0.26, 0.26],
    [0.25, 0.25, 0.28],
    [0.55, 0.57, 0.60],
    [0.90, 0.90, 0.92],
    [0.85, 0.82, 0.20],
    [0.22, 0.22, 0.24],
    [0.16, 0.16, 0.16],
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
                [0.75, 0.10, 0.10],
                [0.10, 0.25, 0.70],
                [0.90, 0.85, 0.80],
                [0.10, 0.55, 0.20],
                [0.95, 0.70, 0.10],
                [0.15, 0.15, 0.15],
                [0.55, 0.10, 0.55],
            ],
            class_texture: [1.0; 19],
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
                [0.20, 0.20, 0.22],
                [0.55, 0.56, 0.58],
                [0.80, 0.80, 0.82],
                [0.12, 0.14, 0.25],
                [0.35, 0.10, 0.10],
                [0.30, 0.32, 0.30],
            ],
            class_texture: [1.0; 19],
        }
    }

    /// The class-wise target: GTA5's light, camera, optics and object statistics; other colours
    /// and textures per class.
    pub fn classwise() -> Style {
        let mut class_texture = [1.0; 19];
        // smooth asphalt and vegetation, rough paving and brick facades
        for (tid, k) in [(0, 0.3), (1, 2.2), (2, 2.8), (3, 0.4), (8, 0.45), (9, 1.8)] {
            class_texture[tid] = k;
        }
        Style {
            base: CLASSWISE_BASE,
            car_colors: vec![
                [0.85, 0.75, 0.80],
                [0.65, 0.85, 0.80],
                [0.90, 0.88, 0.65],
                [0.70, 0.75, 0.92],
                [0.55, 0.70, 0.55],
            ],
            class_texture,
            ..Style::game(Domain::Gta5)
        }
    }

    /// The target style of a shift.
    pub fn target_of(shift: Shift) -> Style {
        match shift {
            Shift::Camera(k) => Style::target(k),
            Shift::Classwise => Style::classwise(),
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
            class_texture: a.class_texture,
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
                [
                    c[0] * k + rng.gen_range(-0.2..0.2),
                    c[1] * k + rng.gen_range(-0.2..0.2),
                    c[2] * k + rng.gen_range(-0.2..0.2),
                ]
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
            0 => (0.10, 6.0, 3), // asphalt
            1 => (0.08, 3.0, 2), // paving
            2 => (0.06, 1.5, 3), // facades
            3 | 4 => (0.10, 2.0, 2),
            8 => (0.45, 2.5, 4), // foliage
            9 => (0.25, 3.0, 3), // grass
            10 => (0.0, 1.0, 1),
            _ => (0.08, 4.0, 2),
        };
        1.0 + self.texture * self.class_texture[tid] * amp * 2.0 * noise::fbm(s * freq, t * freq, oct, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_parse_and_print_back() {
        for (text, shift) in [
            ("camera", Shift::Camera(1.0)),
            ("classwise", Shift::Classwise),
            ("0.5", Shift::Camera(0.5)),
            ("1", Shift::Camera(1.0)),
        ] {
            assert_eq!(text.parse::<Shift>().unwrap(), shift);
            assert_eq!(shift.to_string().parse::<Shift>().unwrap(), shift);
        }
        assert!("1.5".parse::<Shift>().unwrap_err().contains("classwise"));
        assert!("sideways".parse::<Shift>().is_err());
    }

    /// The class-wise gap changes what each class looks like and nothing about light, camera,
    /// optics or layout.
    #[test]
    fn the_classwise_target_differs_from_the_source_by_class_only() {
        let (src, tgt) = (Style::game(Domain::Gta5), Style::classwise());
        for tid in 0..19 {
            let d: f32 = (0..3).map(|c| (src.base[tid][c] - tgt.base[tid][c]).abs()).sum();
            assert!(d > 0.15, "class {tid} keeps its colour");
        }
        assert!(tgt.car_colors.iter().all(|c| !src.car_colors.contains(c)));
        let optics =
            |s: &Style| (s.saturation, s.contrast, s.brightness, s.tint, s.sun, s.blur, s.noise, s.vignette, s.texture);
        let camera = |s: &Style| (s.cam_height, s.horizon, s.focal, s.depth, s.density, s.green, s.ego_hood);
        assert_eq!(optics(&src), optics(&tgt));
        assert_eq!(camera(&src), camera(&tgt));
    }
}
