//! `segda synth`: a procedural street-scene benchmark with a real synthetic→real domain shift,
//! written in the exact on-disk formats of GTA5, SYNTHIA-RAND-CITYSCAPES and Cityscapes.
mod noise;
mod raster;
mod scene;
pub mod style;

use super::classes::{label_id_to_train_id, train_id_to_synthia_id, HAS_INSTANCES, PALETTE};
use super::{cityscapes, gta5, io, synthia};
use crate::error::{IoContext, Result};
use image::{GrayImage, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use raster::Canvas;
use rayon::prelude::*;
use std::path::Path;
use style::{Domain, Shift, Style};

/// What to generate. Sizes are of the stored images (the real datasets' aspect ratios).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SynthOptions {
    pub seed: u64,
    /// Width of the Cityscapes-like target images (height = width / 2).
    pub width: u32,
    pub gta5: usize,
    pub synthia: usize,
    pub city_train: usize,
    pub city_val: usize,
    /// The target's domain gap.
    pub shift: Shift,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 0,
            width: 256,
            gta5: 500,
            synthia: 400,
            city_train: 500,
            city_val: 100,
            shift: Shift::Camera(1.0),
        }
    }
}

impl SynthOptions {
    /// GTA5's 1914×1052 and SYNTHIA's 1280×760 aspect ratios, at about the target's scale.
    pub fn gta5_size(&self) -> (u32, u32) {
        let w = self.width * 9 / 8;
        (w, (w as f32 * 1052.0 / 1914.0).round() as u32)
    }
    pub fn synthia_size(&self) -> (u32, u32) {
        let w = self.width;
        (w, (w as f32 * 760.0 / 1280.0).round() as u32)
    }
    pub fn city_size(&self) -> (u32, u32) {
        (self.width, self.width / 2)
    }
}

/// Train cities and val cities of the real dataset (names only).
const TRAIN_CITIES: [&str; 3] = ["aachen", "bochum", "bremen"];
const VAL_CITIES: [&str; 3] = ["frankfurt", "lindau", "munster"];

/// Render one image of a domain; deterministic in (seed, domain, index).
pub fn render(domain: Domain, opts: &SynthOptions, index: usize) -> (RgbImage, Canvas) {
    let (w, h) = match domain {
        Domain::Gta5 => opts.gta5_size(),
        Domain::Synthia => opts.synthia_size(),
        Domain::Cityscapes => opts.city_size(),
    };
    let style = match domain {
        Domain::Cityscapes => Style::target_of(opts.shift),
        d => Style::game(d),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(((domain as u64) << 40) | index as u64);
    let canvas = scene::render(&style, w as usize, h as usize, &mut rng);
    let img = optics(&style, &canvas, &mut rng);
    (img, canvas)
}

/// Colour grading, blur, vignetting and sensor noise: the camera half of the domain gap.
fn optics(style: &Style, c: &Canvas, rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = (c.w, c.h);
    let mut px: Vec<[f32; 3]> = c
        .rgb
        .iter()
        .map(|&p| {
            let p: [f32; 3] = std::array::from_fn(|k| p[k] * style.brightness * style.tint[k]);
            let lum = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            std::array::from_fn(|k| {
                let s = lum + (p[k] - lum) * style.saturation;
                0.5 + (s - 0.5) * style.contrast
            })
        })
        .collect();
    if style.blur > 0.05 {
        px = gaussian_blur(&px, w, h, style.blur * w as f32 / 256.0);
    }
    let mut img = RgbImage::new(w as u32, h as u32);
    for (i, p) in px.iter().enumerate() {
        let (x, y) = ((i % w) as f32 / w as f32 - 0.5, (i / w) as f32 / h as f32 - 0.5);
        let vig = 1.0 - style.vignette * (x * x + y * y) * 1.6;
        let n: f32 = if style.noise > 0.0 { gauss(rng) * style.noise } else { 0.0 };
        let rgb = std::array::from_fn(|k| {
            let v = (p[k] * vig + n + gauss(rng) * style.noise * 0.5).clamp(0.0, 1.0);
            (v.powf(1.0 / 1.1) * 255.0).round() as u8
        });
        img.put_pixel((i % w) as u32, (i / w) as u32, image::Rgb(rgb));
    }
    img
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn gaussian_blur(px: &[[f32; 3]], w: usize, h: usize, sigma: f32) -> Vec<[f32; 3]> {
    let r = (sigma * 3.0).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let ks: f32 = k.iter().sum();
    let pass = |src: &[[f32; 3]], horizontal: bool| -> Vec<[f32; 3]> {
        let mut out = vec![[0.0; 3]; src.len()];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut acc = [0.0; 3];
                for (j, kv) in k.iter().enumerate() {
                    let d = j as isize - r;
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, w as isize - 1), y)
                    } else {
                        (x, (y + d).clamp(0, h as isize - 1))
                    };
                    let s = src[sy as usize * w + sx as usize];
                    for c in 0..3 {
                        acc[c] += kv * s[c];
                    }
                }
                out[y as usize * w + x as usize] = acc.map(|a| a / ks);
            }
        }
        out
    };
    pass(&pass(px, true), false)
}

fn gray(c: &Canvas, f: impl Fn(usize) -> u8) -> GrayImage {
    GrayImage::from_fn(c.w as u32, c.h as u32, |x, y| image::Luma([f(y as usize * c.w + x as usize)]))
}

fn write_gta5(root: &Path, name: &str, img: &RgbImage, c: &Canvas) -> Result<()> {
    io::write_rgb(&gta5::image_path(root, name), img)?;
    // palette index = labelId; the palette shows each id in its class colour
    let pal: Vec<[u8; 3]> = (0..256u32)
        .map(|id| {
            let t = label_id_to_train_id(id as u8);
            if (t as usize) < PALETTE.len() {
                PALETTE[t as usize]
            } else {
                [0, 0, 0]
            }
        })
        .collect();
    io::write_palette(&gta5::label_path(root, name), &gray(c, |i| c.label[i]), &pal)
}

fn write_synthia(root: &Path, name: &str, img: &RgbImage, c: &Canvas) -> Result<()> {
    io::write_rgb(&synthia::image_path(root, name), img)?;
    let mut samples = Vec::with_capacity(c.label.len() * 3);
    for i in 0..c.label.len() {
        let t = label_id_to_train_id(c.label[i]);
        let id = if c.lane[i] {
            22 // lanemarking: its own class in SYNTHIA, ignored by the 16-class map
        } else {
            train_id_to_synthia_id(t).unwrap_or(match t {
                9 => 16,  // terrain
                14 => 18, // truck
                16 => 20, // train
                _ => 0,   // void
            })
        };
        samples.extend([id, c.instance[i], 0]);
    }
    io::write_u16(&synthia::label_path(root, name), c.w as u32, c.h as u32, 3, &samples)
}

fn write_cityscapes(root: &Path, split: &str, name: &str, img: &RgbImage, c: &Canvas) -> Result<()> {
    io::write_rgb(&cityscapes::image_path(root, split, name), img)?;
    io::write_gray8(&cityscapes::gt_path(root, split, name, "labelIds"), &gray(c, |i| c.label[i]))?;
    let inst: Vec<u16> = (0..c.label.len())
        .map(|i| {
            let l = c.label[i];
            if HAS_INSTANCES.contains(&l) && c.instance[i] > 0 {
                l as u16 * 1000 + c.instance[i] - 1
            } else {
                l as u16
            }
        })
        .collect();
    io::write_u16(&cityscapes::gt_path(root, split, name, "instanceIds"), c.w as u32, c.h as u32, 1, &inst)?;
    let color = RgbImage::from_fn(c.w as u32, c.h as u32, |x, y| {
        let t = label_id_to_train_id(c.label[y as usize * c.w + x as usize]);
        image::Rgb(if (t as usize) < PALETTE.len() { PALETTE[t as usize] } else { [0, 0, 0] })
    });
    io::write_rgb(&cityscapes::gt_path(root, split, name, "color"), &color)
}

/// Cityscapes-style name of target image `i` of a split.
pub fn city_name(split: &str, i: usize) -> String {
    let cities = if split == "val" { VAL_CITIES } else { TRAIN_CITIES };
    let city = cities[i % cities.len()];
    format!("{city}_{:06}_{:06}", i / cities.len(), 19 + i % 7)
}

/// Write `out/gta5`, `out/synthia` and `out/cityscapes`.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<()> {
    std::fs::create_dir_all(out).at(out)?;
    let mut jobs: Vec<(Domain, &str, usize)> = Vec::new();
    jobs.extend((0..opts.gta5).map(|i| (Domain::Gta5, "", i)));
    jobs.extend((0..opts.synthia).map(|i| (Domain::Synthia, "", i)));
    jobs.extend((0..opts.city_train).map(|i| (Domain::Cityscapes, "train", i)));
    // val images use indices after the train ones so the two splits never share a scene
    jobs.extend((0..opts.city_val).map(|i| (Domain::Cityscapes, "val", i)));
    let pb = crate::ui::bar(jobs.len() as u64, "synth");
    jobs.par_iter()
        .map(|&(domain, split, i)| {
            let index = if split == "val" { opts.city_train + i } else { i };
            let (img, canvas) = render(domain, opts, index);
            let r = match domain {
                Domain::Gta5 => write_gta5(&out.join("gta5"), &format!("{:05}", i + 1), &img, &canvas),
                Domain::Synthia => write_synthia(&out.join("synthia"), &format!("{i:07}"), &img, &canvas),
                Domain::Cityscapes => {
                    write_cityscapes(&out.join("cityscapes"), split, &city_name(split, i), &img, &canvas)
                }
            };
            pb.inc(1);
            r
        })
        .collect::<Result<Vec<()>>>()?;
    pb.finish_and_clear();
    let meta = serde_json::to_string_pretty(opts).expect("serialisable");
    std::fs::write(out.join("synth.json"), meta).at(out.join("synth.json"))?;
    Ok(())
}
