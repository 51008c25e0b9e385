//! Resize, random crop, horizontal flip and input normalisation.
use super::classes::IGNORE;
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How pixel values become network inputs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Caffe / DeepLab-v2: BGR order, minus the mean, no scaling.
    CaffeBgr,
    /// torchvision: RGB in [0,1], minus mean, divided by std.
    ImagenetRgb,
}

/// The DeepLab-v2 Caffe mean, BGR order (AdaptSegNet and ADVENT use these digits).
pub const CAFFE_BGR_MEAN: [f32; 3] = [104.006_99, 116.668_77, 122.678_91];
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Normalize {
    /// Write `img` as CHW floats into `out` (len 3·H·W).
    pub fn apply(self, img: &RgbImage, out: &mut [f32]) {
        let (w, h) = img.dimensions();
        let plane = (w * h) as usize;
        assert_eq!(out.len(), 3 * plane);
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                let v = px.0[c] as f32;
                match self {
                    Normalize::CaffeBgr => out[(2 - c) * plane + i] = v - CAFFE_BGR_MEAN[2 - c],
                    Normalize::ImagenetRgb => out[c * plane + i] = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c],
                }
            }
        }
    }

    /// Invert [`Normalize::apply`] for one pixel (for previews).
    pub fn unapply(self, chw: &[f32], plane: usize, i: usize) -> [u8; 3] {
        std::array::from_fn(|c| {
            let v = match self {
                Normalize::CaffeBgr => chw[(2 - c) * plane + i] + CAFFE_BGR_MEAN[2 - c],
                Normalize::ImagenetRgb => (chw[c * plane + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0,
            };
            v.round().clamp(0.0, 255.0) as u8
        })
    }
}

/// Resize an image with bicubic filtering (as the reference code does with PIL).
pub fn resize_image(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w, h, FilterType::CatmullRom)
}

/// Resize a label map with nearest neighbour (ids must never be blended).
pub fn resize_label(lbl: &GrayImage, w: u32, h: u32) -> GrayImage {
    if lbl.dimensions() == (w, h) {
        return lbl.clone();
    }
    let (sw, sh) = lbl.dimensions();
    // floor(dst * src / dst_size), like PIL/torch `nearest`
    GrayImage::from_fn(w, h, |x, y| {
        let sx = ((x as u64 * sw as u64) / w as u64) as u32;
        let sy = ((y as u64 * sh as u64) / h as u64) as u32;
        *lbl.get_pixel(sx.min(sw - 1), sy.min(sh - 1))
    })
}

/// Top-left corner of a random `cw`×`ch` window in a `w`×`h` image (0 where it does not fit).
pub fn random_crop_origin(rng: &mut impl Rng, w: u32, h: u32, cw: u32, ch: u32) -> (u32, u32) {
    let x = if w > cw { rng.gen_range(0..=w - cw) } else { 0 };
    let y = if h > ch { rng.gen_range(0..=h - ch) } else { 0 };
    (x, y)
}

/// Crop `cw`×`ch` at (x, y); regions outside the source are black / ignore.
pub fn crop_pair(
    img: &RgbImage,
    lbl: Option<&GrayImage>,
    x: u32,
    y: u32,
    cw: u32,
    ch: u32,
) -> (RgbImage, Option<GrayImage>) {
    let (w, h) = img.dimensions();
    let inside = |px: u32, py: u32| x + px < w && y + py < h;
    let ci =
        RgbImage::from_fn(
            cw,
            ch,
            |px, py| {
                if inside(px, py) {
                    *img.get_pixel(x + px, y + py)
                } else {
                    image::Rgb([0, 0, 0])
                }
            },
        );
    let cl = lbl.map(|l| {
        GrayImage::from_fn(cw, ch, |px, py| if inside(px, py) { *l.get_pixel(x + px, y + py) } else { Luma([IGNORE]) })
    });
    (ci, cl)
}

/// Per-sample augmentation: resize to a fixed size, then optionally crop and flip.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Augment {
    /// [width, height] every image is resized to first (the protocol sizes).
    pub resize: Option<[u32; 2]>,
    /// [width, height] of a random crop taken after resizing.
    pub crop: Option<[u32; 2]>,
    pub flip: bool,
    /// Enlarge the crop by this factor (bilinear image, nearest label): LSE's scale-invariant
    /// examples.
    #[serde(default)]
    pub upscale: Option<u32>,
}

impl Augment {
    pub fn apply(&self, rng: &mut impl Rng, img: &RgbImage, lbl: Option<&GrayImage>) -> (RgbImage, Option<GrayImage>) {
        let (mut img, mut lbl) = match self.resize {
            Some([w, h]) => (resize_image(img, w, h), lbl.map(|l| resize_label(l, w, h))),
            None => (img.clone(), lbl.cloned()),
        };
        if let Some([cw, ch]) = self.crop {
            let (x, y) = random_crop_origin(rng, img.width(), img.height(), cw, ch);
            (img, lbl) = crop_pair(&img, lbl.as_ref(), x, y, cw, ch);
        }
        if let Some(k) = self.upscale.filter(|&k| k > 1) {
            let (w, h) = img.dimensions();
            img = imageops::resize(&img, w * k, h * k, FilterType::Triangle);
            lbl = lbl.map(|l| resize_label(&l, w * k, h * k));
        }
        if self.flip && rng.gen_bool(0.5) {
            imageops::flip_horizontal_in_place(&mut img);
            if let Some(l) = lbl.as_mut() {
                imageops::flip_horizontal_in_place(l);
            }
        }
        (img, lbl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn caffe_normalisation_is_bgr_minus_mean() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([10, 20, 30]));
        let mut out = vec![0.0; 3];
        Normalize::CaffeBgr.apply(&img, &mut out);
        assert_eq!(out, vec![30.0 - CAFFE_BGR_MEAN[0], 20.0 - CAFFE_BGR_MEAN[1], 10.0 - CAFFE_BGR_MEAN[2]]);
        assert_eq!(Normalize::CaffeBgr.unapply(&out, 1, 0), [10, 20, 30]);
        Normalize::ImagenetRgb.apply(&img, &mut out);
        assert!((out[0] - (10.0 / 255.0 - 0.485) / 0.229).abs() < 1e-6);
        assert_eq!(Normalize::ImagenetRgb.unapply(&out, 1, 0), [10, 20, 30]);
    }

    #[test]
    fn nearest_label_resize_never_invents_ids() {
        let l = GrayImage::from_fn(7, 5, |x, _| Luma([if x < 3 { 4 } else { 255 }]));
        let r = resize_label(&l, 13, 9);
        assert!(r.pixels().all(|p| p.0[0] == 4 || p.0[0] == 255));
        assert_eq!(resize_label(&l, 7, 5), l);
        assert_eq!(resize_label(&l, 14, 10).get_pixel(5, 0).0[0], 4); // 5*7/14 = 2 -> 4
        assert_eq!(resize_label(&l, 14, 10).get_pixel(6, 0).0[0], 255); // 6*7/14 = 3
    }

    #[test]
    fn crop_and_flip_keep_image_and_label_aligned() {
        // the label encodes the x coordinate of each image pixel
        let img = RgbImage::from_fn(40, 20, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let lbl = GrayImage::from_fn(40, 20, |x, _| Luma([x as u8]));
        let aug = Augment { resize: None, crop: Some([16, 8]), flip: true, upscale: None };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let (i, l) = aug.apply(&mut rng, &img, Some(&lbl));
            let l = l.unwrap();
            assert_eq!(i.dimensions(), (16, 8));
            for (p, q) in i.pixels().zip(l.pixels()) {
                assert_eq!(p.0[0], q.0[0]);
            }
        }
        // crop then ×2: every label pixel still sits on the image pixel it was drawn with
        let aug = Augment { resize: None, crop: Some([10, 6]), flip: true, upscale: Some(2) };
        let img = RgbImage::from_fn(40, 20, |x, y| image::Rgb([x as u8 * 6, y as u8 * 12, 0]));
        let lbl = GrayImage::from_fn(40, 20, |x, y| Luma([if (x / 4 + y / 4) % 2 == 0 { 1 } else { IGNORE }]));
        for _ in 0..10 {
            let (i, l) = aug.apply(&mut rng, &img, Some(&lbl));
            let l = l.unwrap();
            assert_eq!(i.dimensions(), (20, 12));
            assert_eq!(l.dimensions(), (20, 12));
            // pixel (2x, 2y) of the upscaled pair is source pixel (x, y) of the crop; recover the
            // source coordinates from the image and check the label there
            for y in 0..6 {
                for x in 0..10 {
                    let p = i.get_pixel(2 * x, 2 * y).0;
                    let (sx, sy) = ((p[0] as f32 / 6.0).round() as u32, (p[1] as f32 / 12.0).round() as u32);
                    assert_eq!(l.get_pixel(2 * x, 2 * y).0[0], lbl.get_pixel(sx, sy).0[0]);
                    // the nearest-upscaled label is constant on each 2×2 block (mask lines up)
                    assert_eq!(l.get_pixel(2 * x + 1, 2 * y + 1).0[0], l.get_pixel(2 * x, 2 * y).0[0]);
                }
            }
        }
        // a crop larger than the image pads with ignore
        let (_, l) = crop_pair(&img, Some(&lbl), 30, 15, 16, 8);
        assert_eq!(l.unwrap().get_pixel(15, 7).0[0], IGNORE);
    }
}
