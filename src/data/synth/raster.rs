//! A canvas of labelIds, instance ids and linear RGB, with the shapes the scenes are drawn from.

/// What one object paints: its Cityscapes labelId, its instance number (0 = none) and a colour
/// function of the pixel's position in the object's local frame (metres, y up).
pub struct Paint<'a> {
    pub label_id: u8,
    pub instance: u16,
    pub color: &'a dyn Fn(f32, f32) -> [f32; 3],
}

pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub label: Vec<u8>,
    pub instance: Vec<u16>,
    /// Lane markings are road in Cityscapes/GTA5 but a class of their own in SYNTHIA.
    pub lane: Vec<bool>,
    pub rgb: Vec<[f32; 3]>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        let n = w * h;
        Canvas { w, h, label: vec![0; n], instance: vec![0; n], lane: vec![false; n], rgb: vec![[0.0; 3]; n] }
    }

    pub fn set(&mut self, x: usize, y: usize, label_id: u8, instance: u16, rgb: [f32; 3]) {
        let i = y * self.w + x;
        self.label[i] = label_id;
        self.instance[i] = instance;
        self.lane[i] = false;
        self.rgb[i] = rgb;
    }
}

/// Maps an object's local metres (x right, y up, origin at its ground contact) to pixels.
#[derive(Clone, Copy)]
pub struct Frame {
    pub u0: f32,
    pub v0: f32,
    pub px_per_m: f32,
}

impl Frame {
    fn to_local(self, u: f32, v: f32) -> (f32, f32) {
        ((u - self.u0) / self.px_per_m, (self.v0 - v) / self.px_per_m)
    }

    /// Fill every pixel whose centre satisfies `inside(x, y)` (local metres) within the
    /// local bounding box [x0, x1] × [y0, y1].
    pub fn fill(&self, c: &mut Canvas, bbox: [f32; 4], paint: &Paint, inside: impl Fn(f32, f32) -> bool) {
        let [x0, y0, x1, y1] = bbox;
        let u_lo = (self.u0 + x0 * self.px_per_m).floor().max(0.0) as isize;
        let u_hi = (self.u0 + x1 * self.px_per_m).ceil().min(c.w as f32 - 1.0) as isize;
        let v_lo = (self.v0 - y1 * self.px_per_m).floor().max(0.0) as isize;
        let v_hi = (self.v0 - y0 * self.px_per_m).ceil().min(c.h as f32 - 1.0) as isize;
        for v in v_lo..=v_hi {
            for u in u_lo..=u_hi {
                let (x, y) = self.to_local(u as f32 + 0.5, v as f32 + 0.5);
                if inside(x, y) {
                    c.set(u as usize, v as usize, paint.label_id, paint.instance, (paint.color)(x, y));
                }
            }
        }
    }

    pub fn rect(&self, c: &mut Canvas, x0: f32, y0: f32, x1: f32, y1: f32, paint: &Paint) {
        // at least one pixel wide, so thin poles do not vanish between pixel centres
        let min = 0.5 / self.px_per_m;
        let (cx, w) = ((x0 + x1) / 2.0, ((x1 - x0) / 2.0).max(min));
        self.fill(c, [cx - w, y0, cx + w, y1], paint, |x, y| (x - cx).abs() <= w && y >= y0 && y <= y1);
    }

    pub fn ellipse(&self, c: &mut Canvas, cx: f32, cy: f32, rx: f32, ry: f32, paint: &Paint) {
        self.fill(c, [cx - rx, cy - ry, cx + rx, cy + ry], paint, |x, y| {
            let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
            dx * dx + dy * dy <= 1.0
        });
    }

    /// A ring (wheel of a bicycle) of outer radius r and thickness t.
    pub fn ring(&self, c: &mut Canvas, cx: f32, cy: f32, r: f32, t: f32, paint: &Paint) {
        let t = t.max(0.7 / self.px_per_m);
        self.fill(c, [cx - r, cy - r, cx + r, cy + r], paint, |x, y| {
            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            d <= r && d >= r - t
        });
    }

    /// A thick line segment (bicycle frames, arms).
    pub fn line(&self, c: &mut Canvas, a: (f32, f32), b: (f32, f32), t: f32, paint: &Paint) {
        let t = t.max(0.7 / self.px_per_m) / 2.0;
        let bbox = [a.0.min(b.0) - t, a.1.min(b.1) - t, a.0.max(b.0) + t, a.1.max(b.1) + t];
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = (dx * dx + dy * dy).max(1e-12);
        self.fill(c, bbox, paint, |x, y| {
            let s = (((x - a.0) * dx + (y - a.1) * dy) / len2).clamp(0.0, 1.0);
            let (px, py) = (a.0 + s * dx - x, a.1 + s * dy - y);
            px * px + py * py <= t * t
        });
    }

    /// A convex polygon given counter-clockwise or clockwise.
    pub fn polygon(&self, c: &mut Canvas, pts: &[(f32, f32)], paint: &Paint) {
        let x0 = pts.iter().map(|p| p.0).fold(f32::MAX, f32::min);
        let x1 = pts.iter().map(|p| p.0).fold(f32::MIN, f32::max);
        let y0 = pts.iter().map(|p| p.1).fold(f32::MAX, f32::min);
        let y1 = pts.iter().map(|p| p.1).fold(f32::MIN, f32::max);
        self.fill(c, [x0, y0, x1, y1], paint, |x, y| {
            let mut sign = 0.0f32;
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                let cross = (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0);
                if cross != 0.0 {
                    if sign != 0.0 && cross.signum() != sign {
                        return false;
                    }
                    sign = cross.signum();
                }
            }
            true
        });
    }
}
