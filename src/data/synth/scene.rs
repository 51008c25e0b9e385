//! A street scene: a ray-cast background (road, sidewalks, terrain, facades, sky) and objects
//! drawn as depth-sorted billboards. Geometry is in metres; the camera looks down the street.
use super::noise;
use super::raster::{Canvas, Frame, Paint};
use super::style::Style;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

// Cityscapes labelIds used by the generator.
const EGO: u8 = 1;
const ROAD: u8 = 7;
const SIDEWALK: u8 = 8;
const PARKING: u8 = 9;
const STATIC: u8 = 4;
const BUILDING: u8 = 11;
const WALL: u8 = 12;
const FENCE: u8 = 13;
const POLE: u8 = 17;
const LIGHT: u8 = 19;
const SIGN: u8 = 20;
const VEGETATION: u8 = 21;
const TERRAIN: u8 = 22;
const SKY: u8 = 23;
const PERSON: u8 = 24;
const RIDER: u8 = 25;
const CAR: u8 = 26;
const TRUCK: u8 = 27;
const BUS: u8 = 28;
const TRAIN: u8 = 31;
const MOTORCYCLE: u8 = 32;
const BICYCLE: u8 = 33;

const Z_MAX: f32 = 200.0;

fn tid(label_id: u8) -> usize {
    crate::data::classes::label_id_to_train_id(label_id) as usize
}

fn scale(c: [f32; 3], k: f32) -> [f32; 3] {
    [c[0] * k, c[1] * k, c[2] * k]
}

#[derive(Clone, Copy, PartialEq)]
enum SegKind {
    Building,
    Vegetation,
    Wall,
    Fence,
    Gap,
}

struct Segment {
    z0: f32,
    kind: SegKind,
    height: f32,
    /// Vegetation behind a wall or fence (0 = none).
    backdrop: f32,
    color: [f32; 3],
    window: [f32; 2],
}

struct Side {
    /// Distance of the facade plane from the street axis.
    facade: f32,
    segments: Vec<Segment>,
    /// Light on this side's facades (sunlit or in shade).
    light: f32,
}

impl Side {
    fn sample(rng: &mut ChaCha8Rng, style: &Style, facade: f32, light: f32) -> Side {
        let mut segments = Vec::new();
        let mut z = 0.0;
        while z < Z_MAX {
            let r: f32 = rng.gen();
            let kind = if r < style.green {
                SegKind::Vegetation
            } else if r < style.green + 0.08 {
                SegKind::Wall
            } else if r < style.green + 0.15 {
                SegKind::Fence
            } else if r < style.green + 0.19 {
                SegKind::Gap
            } else {
                SegKind::Building
            };
            let (height, label) = match kind {
                SegKind::Building => (rng.gen_range(7.0..28.0), BUILDING),
                SegKind::Vegetation => (rng.gen_range(4.0..12.0), VEGETATION),
                SegKind::Wall => (rng.gen_range(1.2..2.8), WALL),
                SegKind::Fence => (rng.gen_range(1.0..2.2), FENCE),
                SegKind::Gap => (0.0, SKY),
            };
            let backdrop = if matches!(kind, SegKind::Wall | SegKind::Fence) && rng.gen_bool(0.6) {
                rng.gen_range(3.0..9.0)
            } else {
                0.0
            };
            let color = style.object_color(tid(label), rng);
            segments.push(Segment {
                z0: z,
                kind,
                height,
                backdrop,
                color,
                window: [rng.gen_range(2.2..3.4), rng.gen_range(2.8..3.6)],
            });
            z += rng.gen_range(6.0..32.0);
        }
        Side { facade, segments, light }
    }

    fn at(&self, z: f32) -> &Segment {
        let i = self.segments.partition_point(|s| s.z0 <= z);
        &self.segments[i.saturating_sub(1)]
    }
}

struct Street {
    cam_h: f32,
    focal: f32,
    cx: f32,
    horizon: f32,
    road: f32,
    walk: [f32; 2],
    left: Side,
    right: Side,
    parking: Option<(f32, f32, bool)>,
    seed: u64,
}

/// Render one scene into a fresh canvas (labels are Cityscapes labelIds; colours are linear,
/// before the domain's optics are applied).
pub fn render(style: &Style, w: usize, h: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let mut c = Canvas::new(w, h);
    let road = rng.gen_range(3.5..7.0);
    let walk = [rng.gen_range(1.5..4.0), rng.gen_range(1.5..4.0)];
    let terrain = [
        if rng.gen_bool(0.5) { rng.gen_range(1.0..7.0) } else { 0.0 },
        if rng.gen_bool(0.5) { rng.gen_range(1.0..7.0) } else { 0.0 },
    ];
    let sun_left = rng.gen_bool(0.5);
    let lit = 1.0 + 0.25 * style.sun;
    let shade = 1.0 - 0.3 * style.sun;
    let left = Side::sample(rng, style, road + walk[0] + terrain[0], if sun_left { lit } else { shade });
    let right = Side::sample(rng, style, road + walk[1] + terrain[1], if sun_left { shade } else { lit });
    let street = Street {
        cam_h: rng.gen_range(style.cam_height[0]..=style.cam_height[1]),
        focal: w as f32 * rng.gen_range(style.focal[0]..=style.focal[1]),
        cx: w as f32 * (0.5 + rng.gen_range(-0.04..0.04)),
        horizon: h as f32 * rng.gen_range(style.horizon[0]..=style.horizon[1]),
        road,
        walk,
        left,
        right,
        parking: rng.gen_bool(0.3).then(|| (rng.gen_range(5.0..30.0), rng.gen_range(8.0..25.0), rng.gen_bool(0.5))),
        seed: rng.gen(),
    };
    background(&mut c, style, &street);
    objects(&mut c, style, &street, rng);
    if style.ego_hood {
        ego_hood(&mut c);
    }
    c
}

fn background(c: &mut Canvas, style: &Style, st: &Street) {
    let sky = style.base[10];
    for v in 0..c.h {
        for u in 0..c.w {
            let dx = (u as f32 + 0.5 - st.cx) / st.focal;
            let dy = (v as f32 + 0.5 - st.horizon) / st.focal;
            let side = if dx < 0.0 { &st.left } else { &st.right };
            let zf = if dx.abs() > 1e-6 { side.facade / dx.abs() } else { f32::INFINITY };
            let zg = if dy > 0.0 { st.cam_h / dy } else { f32::INFINITY };
            let i = v * c.w + u;
            let mut ground = zg.is_finite() && zg < zf;
            if !ground && zf < Z_MAX {
                let seg = side.at(zf);
                let y = st.cam_h - dy * zf;
                let (s, t) = (zf, y);
                let top = match seg.kind {
                    SegKind::Vegetation => seg.height * (1.0 + 0.35 * noise::fbm(s * 0.4, 0.0, 3, st.seed)),
                    _ => seg.height,
                };
                if seg.kind == SegKind::Gap && zg.is_finite() {
                    ground = true;
                } else if y >= 0.0 && y <= top && seg.kind != SegKind::Gap {
                    let (label, rgb) = facade(style, seg, s, t, st.seed);
                    c.set(u, v, label, 0, scale(rgb, side.light));
                    continue;
                } else if y >= 0.0 && y <= seg.backdrop * (1.0 + 0.3 * noise::fbm(s * 0.5, 1.0, 3, st.seed)) {
                    let rgb = scale(style.base[8], style.texture(8, s, t, st.seed) * 0.9);
                    c.set(u, v, VEGETATION, 0, rgb);
                    continue;
                } else if y < 0.0 {
                    ground = true;
                }
            }
            if ground && zg.is_finite() {
                let (x, z) = (dx * zg, zg);
                ground_pixel(c, i, style, st, x, z);
            } else {
                // sky: brighter towards the horizon, clouds in the game styles
                let k = 1.0 + 0.25 * (v as f32 / st.horizon.max(1.0)).min(1.0);
                let cloud =
                    style.clouds * (noise::fbm(u as f32 / 40.0, v as f32 / 20.0, 4, st.seed ^ 9) + 0.1).max(0.0);
                let rgb = std::array::from_fn(|ch| sky[ch] * k * (1.0 - cloud) + cloud * 1.6);
                c.set(u, v, SKY, 0, rgb);
            }
        }
    }
}

fn facade(style: &Style, seg: &Segment, s: f32, t: f32, seed: u64) -> (u8, [f32; 3]) {
    match seg.kind {
        SegKind::Building => {
            let [ww, fh] = seg.window;
            let in_window =
                t > 1.0 && (s % ww) / ww > 0.3 && (s % ww) / ww < 0.75 && (t % fh) / fh > 0.35 && (t % fh) / fh < 0.8;
            let rgb = if in_window {
                // game windows reflect the sky, camera windows are dark
                let refl = style.sun.clamp(0.0, 1.0);
                std::array::from_fn(|ch| 0.12 + refl * 0.5 * style.base[10][ch])
            } else {
                scale(seg.color, style.texture(2, s, t, seed))
            };
            (BUILDING, rgb)
        }
        SegKind::Vegetation => (VEGETATION, scale(seg.color, style.texture(8, s, t, seed))),
        SegKind::Wall => (WALL, scale(seg.color, style.texture(3, s, t, seed))),
        SegKind::Fence => {
            let slat = (s * 4.0).fract() < 0.55 || t % 1.0 > 0.85;
            (FENCE, scale(seg.color, if slat { 1.0 } else { 0.55 } * style.texture(4, s, t, seed)))
        }
        SegKind::Gap => (SKY, style.base[10]),
    }
}

fn ground_pixel(c: &mut Canvas, i: usize, style: &Style, st: &Street, x: f32, z: f32) {
    let ax = x.abs();
    let walk = if x < 0.0 { st.walk[0] } else { st.walk[1] };
    let side = if x < 0.0 { &st.left } else { &st.right };
    // cast shadow of the sunlit side's opposite facade onto the ground near it
    let shadow = if side.light < 1.0 && ax > side.facade - 0.35 * side.facade { 1.0 - 0.35 * style.sun } else { 1.0 };
    let (label, mut rgb, lane) = if ax < st.road {
        let on_line = (ax < 0.08 && (z % 6.0) < 3.0) || (ax > st.road - 0.35 && ax < st.road - 0.22);
        let parking = st.parking.is_some_and(|(z0, len, left)| {
            (x < 0.0) == left && z > z0 && z < z0 + len && ax > st.road - 2.4 && ax < st.road - 0.4
        });
        if on_line {
            (ROAD, [0.85, 0.85, 0.82], true)
        } else if parking {
            (PARKING, scale(style.base[1], 0.8 * style.texture(1, x, z, st.seed)), false)
        } else {
            (ROAD, scale(style.base[0], style.texture(0, x, z, st.seed)), false)
        }
    } else if ax < st.road + walk {
        let tile = ((x * 2.0).fract().abs() < 0.06 || (z * 2.0).fract() < 0.06) as u8 as f32;
        let curb = if ax < st.road + 0.2 { 1.15 } else { 1.0 };
        (
            SIDEWALK,
            scale(style.base[1], curb * (1.0 - 0.12 * tile * style.texture.min(1.0)) * style.texture(1, x, z, st.seed)),
            false,
        )
    } else {
        (TERRAIN, scale(style.base[9], style.texture(9, x, z, st.seed)), false)
    };
    rgb = scale(rgb, shadow);
    c.label[i] = label;
    c.instance[i] = 0;
    c.lane[i] = lane;
    c.rgb[i] = rgb;
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Car,
    Truck,
    Bus,
    Train,
    Person,
    Rider { motor: bool },
    Bicycle,
    Motorcycle,
    Pole { light: bool, sign: bool },
    Sign,
    Tree,
    Static,
}

struct Obj {
    x: f32,
    z: f32,
    kind: Kind,
    seed: u64,
}

fn count(rng: &mut ChaCha8Rng, max: f32, density: f32) -> usize {
    let n = rng.gen_range(0.0..=max) * density;
    n.floor() as usize + rng.gen_bool(n.fract() as f64) as usize
}

fn objects(c: &mut Canvas, style: &Style, st: &Street, rng: &mut ChaCha8Rng) {
    let [near, far] = style.depth;
    let depth = |rng: &mut ChaCha8Rng| near + (far - near) * rng.gen::<f32>().powf(1.4);
    let mut objs = Vec::new();
    let walk_x = |rng: &mut ChaCha8Rng, left: bool| {
        let w = if left { st.walk[0] } else { st.walk[1] };
        let x = st.road + rng.gen_range(0.3..(w - 0.2).max(0.31));
        if left {
            -x
        } else {
            x
        }
    };
    let lane_x = |rng: &mut ChaCha8Rng| {
        let x = st.road * rng.gen_range(0.25..0.75);
        if rng.gen_bool(0.5) {
            -x
        } else {
            x
        }
    };
    let [dv, dp, dw, ds, dt] = style.density;
    for _ in 0..count(rng, 7.0, dv) + 1 {
        let parked = rng.gen_bool(0.35);
        let x = if parked { (st.road - 1.2) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 } } else { lane_x(rng) };
        objs.push(Obj { x, z: depth(rng), kind: Kind::Car, seed: rng.gen() });
    }
    for (p, kind) in [(0.25, Kind::Truck), (0.2, Kind::Bus), (0.07, Kind::Train)] {
        if rng.gen_bool((p * dv as f64).min(1.0)) {
            let x = if matches!(kind, Kind::Train) { 0.0 } else { lane_x(rng) };
            objs.push(Obj { x, z: depth(rng) + 6.0, kind, seed: rng.gen() });
        }
    }
    for _ in 0..count(rng, 6.0, dp) {
        let left = rng.gen_bool(0.5);
        objs.push(Obj { x: walk_x(rng, left), z: depth(rng), kind: Kind::Person, seed: rng.gen() });
    }
    for _ in 0..count(rng, 2.5, dw) {
        let x = (st.road - 0.8) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        objs.push(Obj { x, z: depth(rng), kind: Kind::Rider { motor: rng.gen_bool(0.4) }, seed: rng.gen() });
    }
    for _ in 0..count(rng, 2.5, dw) {
        let left = rng.gen_bool(0.5);
        let kind = if rng.gen_bool(0.6) { Kind::Bicycle } else { Kind::Motorcycle };
        objs.push(Obj { x: walk_x(rng, left), z: depth(rng), kind, seed: rng.gen() });
    }
    for left in [true, false] {
        let spacing = rng.gen_range(10.0..24.0) / ds.max(0.1);
        let mut z = rng.gen_range(3.0..spacing);
        while z < far * 1.5 {
            let x = (st.road + 0.35) * if left { -1.0 } else { 1.0 };
            let kind = Kind::Pole { light: rng.gen_bool(0.35), sign: rng.gen_bool(0.35) };
            objs.push(Obj { x, z, kind, seed: rng.gen() });
            z += spacing * rng.gen_range(0.7..1.3);
        }
    }
    for _ in 0..count(rng, 2.0, ds) {
        let left = rng.gen_bool(0.5);
        objs.push(Obj { x: walk_x(rng, left), z: depth(rng), kind: Kind::Sign, seed: rng.gen() });
    }
    for _ in 0..count(rng, 6.0, dt) {
        let left = rng.gen_bool(0.5);
        let side = if left { &st.left } else { &st.right };
        let inner = st.road + if left { st.walk[0] } else { st.walk[1] };
        let x = if side.facade - inner > 1.5 { rng.gen_range(inner + 0.6..side.facade - 0.5) } else { inner - 0.4 };
        objs.push(Obj { x: if left { -x } else { x }, z: depth(rng), kind: Kind::Tree, seed: rng.gen() });
    }
    if rng.gen_bool(0.4) {
        let left = rng.gen_bool(0.5);
        objs.push(Obj { x: walk_x(rng, left), z: depth(rng), kind: Kind::Static, seed: rng.gen() });
    }
    objs.sort_by(|a, b| b.z.total_cmp(&a.z));
    let mut instances = [0u16; 34];
    for o in objs {
        let f = Frame {
            u0: st.cx + st.focal * o.x / o.z,
            v0: st.horizon + st.focal * st.cam_h / o.z,
            px_per_m: st.focal / o.z,
        };
        let mut r = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(o.seed);
        draw(c, style, &f, o.kind, &mut r, &mut instances);
    }
}

fn next_instance(instances: &mut [u16; 34], label: u8) -> u16 {
    instances[label as usize] += 1;
    instances[label as usize]
}

fn solid(color: [f32; 3]) -> impl Fn(f32, f32) -> [f32; 3] {
    move |_, y| scale(color, 1.0 - 0.04 * y.min(3.0))
}

fn draw(c: &mut Canvas, style: &Style, f: &Frame, kind: Kind, rng: &mut ChaCha8Rng, inst: &mut [u16; 34]) {
    let dark = [0.05, 0.05, 0.06];
    match kind {
        Kind::Car => {
            let (w, h) = (rng.gen_range(1.65..1.95), rng.gen_range(1.35..1.6));
            let body = style.object_color(13, rng);
            let id = next_instance(inst, CAR);
            let p = |col: [f32; 3]| move |x: f32, y: f32| scale(col, 1.0 - 0.05 * y + 0.03 * x);
            let (pb, pd, pg) = (p(body), p(dark), p([0.2, 0.24, 0.3]));
            f.rect(c, -w / 2.0 + 0.1, 0.0, -w / 2.0 + 0.4, 0.4, &Paint { label_id: CAR, instance: id, color: &pd });
            f.rect(c, w / 2.0 - 0.4, 0.0, w / 2.0 - 0.1, 0.4, &Paint { label_id: CAR, instance: id, color: &pd });
            f.rect(c, -w / 2.0, 0.25, w / 2.0, 0.62 * h, &Paint { label_id: CAR, instance: id, color: &pb });
            let cab = [(-w * 0.46, 0.62 * h), (w * 0.46, 0.62 * h), (w * 0.36, h), (-w * 0.36, h)];
            f.polygon(c, &cab, &Paint { label_id: CAR, instance: id, color: &pb });
            let win = [(-w * 0.40, 0.66 * h), (w * 0.40, 0.66 * h), (w * 0.33, 0.95 * h), (-w * 0.33, 0.95 * h)];
            f.polygon(c, &win, &Paint { label_id: CAR, instance: id, color: &pg });
            let lamp = solid([0.8, 0.1, 0.08]);
            f.rect(
                c,
                -w / 2.0 + 0.05,
                0.45 * h,
                -w / 2.0 + 0.3,
                0.53 * h,
                &Paint { label_id: CAR, instance: id, color: &lamp },
            );
            f.rect(
                c,
                w / 2.0 - 0.3,
                0.45 * h,
                w / 2.0 - 0.05,
                0.53 * h,
                &Paint { label_id: CAR, instance: id, color: &lamp },
            );
        }
        Kind::Truck => {
            let (w, h) = (rng.gen_range(2.35..2.55), rng.gen_range(3.0..3.8));
            let id = next_instance(inst, TRUCK);
            let (pb, pd) = (solid(style.object_color(14, rng)), solid(dark));
            f.rect(c, -w / 2.0 + 0.1, 0.0, -w / 2.0 + 0.5, 0.5, &Paint { label_id: TRUCK, instance: id, color: &pd });
            f.rect(c, w / 2.0 - 0.5, 0.0, w / 2.0 - 0.1, 0.5, &Paint { label_id: TRUCK, instance: id, color: &pd });
            f.rect(c, -w / 2.0, 0.35, w / 2.0, 0.7, &Paint { label_id: TRUCK, instance: id, color: &pd });
            f.rect(c, -w / 2.0, 0.7, w / 2.0, h, &Paint { label_id: TRUCK, instance: id, color: &pb });
            let seam = solid(scale(style.base[14], 0.7));
            f.rect(c, -0.03, 0.7, 0.03, h, &Paint { label_id: TRUCK, instance: id, color: &seam });
        }
        Kind::Bus => {
            let (w, h) = (2.55, rng.gen_range(3.0..3.3));
            let id = next_instance(inst, BUS);
            let (pb, pd, pw) = (solid(style.object_color(15, rng)), solid(dark), solid([0.15, 0.18, 0.22]));
            f.rect(c, -w / 2.0 + 0.15, 0.0, -w / 2.0 + 0.5, 0.45, &Paint { label_id: BUS, instance: id, color: &pd });
            f.rect(c, w / 2.0 - 0.5, 0.0, w / 2.0 - 0.15, 0.45, &Paint { label_id: BUS, instance: id, color: &pd });
            f.rect(c, -w / 2.0, 0.3, w / 2.0, h, &Paint { label_id: BUS, instance: id, color: &pb });
            f.rect(
                c,
                -w / 2.0 + 0.1,
                0.5 * h,
                w / 2.0 - 0.1,
                0.88 * h,
                &Paint { label_id: BUS, instance: id, color: &pw },
            );
            let sign = solid([0.95, 0.55, 0.1]);
            f.rect(c, -0.6, 0.91 * h, 0.6, 0.97 * h, &Paint { label_id: BUS, instance: id, color: &sign });
        }
        Kind::Train => {
            let (w, h) = (2.65, rng.gen_range(3.4..3.8));
            let id = next_instance(inst, TRAIN);
            let (pb, pw) = (solid(style.object_color(16, rng)), solid([0.12, 0.14, 0.18]));
            f.rect(c, -w / 2.0, 0.2, w / 2.0, h, &Paint { label_id: TRAIN, instance: id, color: &pb });
            f.rect(
                c,
                -w / 2.0 + 0.15,
                0.45 * h,
                w / 2.0 - 0.15,
                0.85 * h,
                &Paint { label_id: TRAIN, instance: id, color: &pw },
            );
            f.line(c, (-0.5, h), (0.0, h + 0.9), 0.06, &Paint { label_id: TRAIN, instance: id, color: &pw });
            f.line(c, (0.5, h), (0.0, h + 0.9), 0.06, &Paint { label_id: TRAIN, instance: id, color: &pw });
        }
        Kind::Person => person(c, style, f, rng, PERSON, next_instance(inst, PERSON), 0.0),
        Kind::Rider { motor } => {
            let (label, id) = if motor {
                (MOTORCYCLE, next_instance(inst, MOTORCYCLE))
            } else {
                (BICYCLE, next_instance(inst, BICYCLE))
            };
            two_wheeler(c, style, f, rng, label, id);
            person(c, style, f, rng, RIDER, next_instance(inst, RIDER), 0.55);
        }
        Kind::Bicycle => two_wheeler(c, style, f, rng, BICYCLE, next_instance(inst, BICYCLE)),
        Kind::Motorcycle => two_wheeler(c, style, f, rng, MOTORCYCLE, next_instance(inst, MOTORCYCLE)),
        Kind::Pole { light, sign } => {
            let (w, h) = (rng.gen_range(0.12..0.25), rng.gen_range(4.0..9.0));
            let pp = solid(style.object_color(5, rng));
            f.rect(c, -w / 2.0, 0.0, w / 2.0, h, &Paint { label_id: POLE, instance: 0, color: &pp });
            if light {
                traffic_light(c, f, rng, (h - 1.0).max(2.5));
            }
            if sign {
                let y = rng.gen_range(2.2..3.0);
                traffic_sign(c, style, f, rng, y);
            }
        }
        Kind::Sign => {
            let h = rng.gen_range(2.3..3.0);
            let pp = solid(style.object_color(5, rng));
            f.rect(c, -0.04, 0.0, 0.04, h, &Paint { label_id: POLE, instance: 0, color: &pp });
            traffic_sign(c, style, f, rng, h);
        }
        Kind::Tree => {
            let (th, r) = (rng.gen_range(1.8..3.5), rng.gen_range(1.4..3.2));
            let trunk = solid([0.28, 0.21, 0.14]);
            f.rect(c, -0.16, 0.0, 0.16, th + r * 0.3, &Paint { label_id: VEGETATION, instance: 0, color: &trunk });
            let base = style.object_color(8, rng);
            let seed: u64 = rng.gen();
            let crown = move |x: f32, y: f32| scale(base, style.texture(8, x, y, seed));
            let cy = th + r * 0.9;
            f.fill(
                c,
                [-r * 1.3, cy - r * 1.4, r * 1.3, cy + r * 1.4],
                &Paint { label_id: VEGETATION, instance: 0, color: &crown },
                |x, y| {
                    let (dx, dy) = (x / r, (y - cy) / (r * 1.1));
                    (dx * dx + dy * dy).sqrt() < 1.0 + 0.3 * noise::fbm(x * 1.5, y * 1.5, 2, seed)
                },
            );
        }
        Kind::Static => {
            let pc = solid([0.3, 0.35, 0.3]);
            f.rect(c, -0.3, 0.0, 0.3, 1.0, &Paint { label_id: STATIC, instance: 0, color: &pc });
        }
    }
}

fn person(c: &mut Canvas, style: &Style, f: &Frame, rng: &mut ChaCha8Rng, label: u8, id: u16, lift: f32) {
    let h = rng.gen_range(1.55..1.9);
    let top = style.object_color(tid(label), rng);
    let bottom = style.object_color(tid(label), rng);
    let skin = scale([0.80, 0.62, 0.50], rng.gen_range(0.5..1.1));
    let (pt, pb, ps) = (solid(top), solid(bottom), solid(skin));
    let y0 = lift;
    if lift == 0.0 {
        f.rect(c, -0.16, y0, -0.03, y0 + 0.47 * h, &Paint { label_id: label, instance: id, color: &pb });
        f.rect(c, 0.03, y0, 0.16, y0 + 0.47 * h, &Paint { label_id: label, instance: id, color: &pb });
    } else {
        f.line(c, (0.0, y0 + 0.35 * h), (0.25, y0 + 0.05), 0.13, &Paint { label_id: label, instance: id, color: &pb });
    }
    f.rect(c, -0.19, y0 + 0.45 * h, 0.19, y0 + 0.82 * h, &Paint { label_id: label, instance: id, color: &pt });
    f.line(c, (-0.2, y0 + 0.8 * h), (-0.26, y0 + 0.5 * h), 0.09, &Paint { label_id: label, instance: id, color: &pt });
    f.line(
        c,
        (0.2, y0 + 0.8 * h),
        (0.26 + lift * 0.4, y0 + 0.5 * h),
        0.09,
        &Paint { label_id: label, instance: id, color: &pt },
    );
    f.ellipse(c, 0.0, y0 + 0.91 * h, 0.1, 0.12, &Paint { label_id: label, instance: id, color: &ps });
}

fn two_wheeler(c: &mut Canvas, style: &Style, f: &Frame, rng: &mut ChaCha8Rng, label: u8, id: u16) {
    let col = style.object_color(tid(label), rng);
    let pc = solid(col);
    let pd = solid([0.06, 0.06, 0.06]);
    let paint = Paint { label_id: label, instance: id, color: &pc };
    let tyre = Paint { label_id: label, instance: id, color: &pd };
    if label == BICYCLE {
        let r = 0.34;
        f.ring(c, -0.52, r, r, 0.05, &tyre);
        f.ring(c, 0.52, r, r, 0.05, &tyre);
        for (a, b) in [
            ((-0.52, r), (0.0, r)),
            ((0.0, r), (0.35, 0.8)),
            ((0.35, 0.8), (-0.25, 0.8)),
            ((-0.25, 0.8), (-0.52, r)),
            ((-0.25, 0.8), (0.0, r)),
            ((0.35, 0.8), (0.52, r)),
        ] {
            f.line(c, a, b, 0.04, &paint);
        }
        f.line(c, (0.35, 0.8), (0.4, 1.0), 0.04, &paint);
        f.rect(c, -0.32, 0.82, -0.15, 0.88, &paint);
    } else {
        let r = 0.32;
        f.ellipse(c, -0.7, r, r, r, &tyre);
        f.ellipse(c, 0.7, r, r, r, &tyre);
        f.polygon(c, &[(-0.75, 0.45), (0.6, 0.4), (0.75, 0.75), (0.2, 0.95), (-0.5, 0.85)], &paint);
        f.line(c, (0.6, 0.7), (0.7, 1.15), 0.05, &paint);
    }
}

fn traffic_light(c: &mut Canvas, f: &Frame, rng: &mut ChaCha8Rng, y: f32) {
    let (w, h) = (0.34, 0.95);
    let x = if rng.gen_bool(0.5) { 0.25 } else { -0.25 };
    let housing = solid([0.1, 0.1, 0.09]);
    f.rect(c, x - w / 2.0, y, x + w / 2.0, y + h, &Paint { label_id: LIGHT, instance: 0, color: &housing });
    let on = rng.gen_range(0..3);
    for (k, col) in [[0.9, 0.1, 0.05], [0.95, 0.7, 0.05], [0.1, 0.85, 0.3]].iter().enumerate() {
        let lamp = solid(if k == on { *col } else { scale(*col, 0.25) });
        f.ellipse(
            c,
            x,
            y + h * (0.8 - 0.3 * k as f32),
            0.1,
            0.1,
            &Paint { label_id: LIGHT, instance: 0, color: &lamp },
        );
    }
}

fn traffic_sign(c: &mut Canvas, style: &Style, f: &Frame, rng: &mut ChaCha8Rng, y: f32) {
    let col = style.object_color(7, rng);
    let face = solid(col);
    let rim = solid([0.92, 0.92, 0.9]);
    let s = rng.gen_range(0.28..0.4);
    match rng.gen_range(0..3) {
        0 => {
            f.ellipse(c, 0.0, y, s, s, &Paint { label_id: SIGN, instance: 0, color: &rim });
            f.ellipse(c, 0.0, y, s * 0.8, s * 0.8, &Paint { label_id: SIGN, instance: 0, color: &face });
        }
        1 => {
            f.polygon(
                c,
                &[(-s, y - s * 0.7), (s, y - s * 0.7), (0.0, y + s)],
                &Paint { label_id: SIGN, instance: 0, color: &rim },
            );
            f.polygon(
                c,
                &[(-s * 0.7, y - s * 0.5), (s * 0.7, y - s * 0.5), (0.0, y + s * 0.6)],
                &Paint { label_id: SIGN, instance: 0, color: &face },
            );
        }
        _ => {
            f.rect(c, -s, y - s, s, y + s, &Paint { label_id: SIGN, instance: 0, color: &rim });
            f.rect(
                c,
                -s * 0.85,
                y - s * 0.85,
                s * 0.85,
                y + s * 0.85,
                &Paint { label_id: SIGN, instance: 0, color: &face },
            );
        }
    }
}

/// Cityscapes shows the recording car's hood at the bottom (labelId 1, ignored in evaluation).
fn ego_hood(c: &mut Canvas) {
    let (w, h) = (c.w as f32, c.h as f32);
    for v in 0..c.h {
        for u in 0..c.w {
            let dx = (u as f32 + 0.5 - w * 0.5) / (w * 0.8);
            let dy = (v as f32 + 0.5 - h * 1.3) / (h * 0.38);
            if dx * dx + dy * dy <= 1.0 {
                let shine = 0.08 + 0.1 * (1.0 - dx.abs());
                c.set(u, v, EGO, 0, [shine, shine, shine * 1.1]);
            }
        }
    }
}
