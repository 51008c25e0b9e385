//! The report's image grid: target image | ground truth | prediction | error map, predicted with
//! a run's best checkpoint by the evaluation code (same loader, resize and normalisation, argmax
//! over the protocol's classes at label resolution).
use crate::config::Config;
use crate::data::classes::{Protocol, IGNORE};
use crate::data::io;
use crate::data::loader::{Loader, LoaderSpec};
use crate::engine::{checkpoint, trainer};
use crate::error::{Error, Result};
use crate::eval::predict::colorize;
use crate::eval::runner::predict_map;
use base64::Engine as _;
use burn::prelude::*;
use image::{imageops, GrayImage, RgbImage};
use std::path::Path;
use std::sync::Arc;

/// Displayed images are at most this wide (full-size Cityscapes would make a huge page).
const MAX_WIDTH: u32 = 384;
pub const WRONG: [u8; 3] = [230, 25, 25];
pub const IGNORED: [u8; 3] = [24, 24, 24];

/// One row of the grid: four PNGs as `data:` URIs (ground truth and error absent when unlabelled).
pub struct GridRow {
    pub name: String,
    pub image: String,
    pub truth: Option<String>,
    pub prediction: String,
    pub error: Option<String>,
    /// Share of labelled pixels predicted right, in percent.
    pub pixel_acc: Option<f64>,
}

/// The first `n` validation images of a run, predicted with its best checkpoint.
pub fn rows(run: &Path, cfg: &Config, n: usize, device: &Device) -> Result<Vec<GridRow>> {
    let ck = checkpoint::find(run, "best")
        .ok_or_else(|| Error::format(run, "no best checkpoint yet (the run has not evaluated)"))?;
    let mut c = cfg.clone();
    // the checkpoint holds every weight: do not look for the initial weights again
    c.model.init = None;
    c.train.init_from = None;
    let net = checkpoint::load_model(trainer::build_net(&c, device, false)?, &ck)?;
    use burn::module::Module;
    let net = net.valid();

    let mut ds = cfg.val.open()?;
    ds.items.truncate(n);
    let labelled = ds.has_labels();
    let ds = Arc::new(ds);
    let mut spec = LoaderSpec::eval(cfg.val.resize, cfg.model.normalize());
    spec.labels = labelled;
    let mut loader = Loader::new(ds.clone(), spec, 0);
    let protocol = cfg.eval.protocol;
    let mut out = Vec::new();
    while let Some(b) = loader.next_batch() {
        let b = b?;
        let item = &ds.items[b.indices[0]];
        let x = Tensor::<4>::from_data(TensorData::new(b.images, [1, 3, b.h, b.w]), device);
        let logits = net.forward(x).main;
        let photo = io::read_rgb(&item.image)?;
        let truth = b.labels.as_ref().map(|ls| {
            let (w, h, v) = &ls[0];
            // classes outside the protocol are not scored: show them as ignored
            let v = v.iter().map(|&t| if t != IGNORE && protocol.contains(t) { t } else { IGNORE }).collect();
            GrayImage::from_raw(*w, *h, v).expect("label size")
        });
        let (w, h) = truth.as_ref().map_or(photo.dimensions(), |t| t.dimensions());
        let pred = predict_map(logits, [h as usize, w as usize], protocol);
        let photo = if photo.dimensions() == (w, h) {
            photo
        } else {
            imageops::resize(&photo, w, h, imageops::FilterType::Triangle)
        };
        out.push(GridRow {
            name: item.name.clone(),
            pixel_acc: truth.as_ref().and_then(|t| pixel_acc(t, &pred)),
            error: truth.as_ref().map(|t| png(&error_map(&photo, t, &pred))).transpose()?,
            truth: truth.as_ref().map(|t| png(&colorize(t))).transpose()?,
            prediction: png(&colorize(&pred))?,
            image: png(&photo)?,
        });
    }
    Ok(out)
}

/// Wrong pixels in red, ignored ones dark, right ones a light grey rendering of the photo.
pub fn error_map(photo: &RgbImage, truth: &GrayImage, pred: &GrayImage) -> RgbImage {
    RgbImage::from_fn(truth.width(), truth.height(), |x, y| {
        let t = truth.get_pixel(x, y).0[0];
        image::Rgb(if t == IGNORE {
            IGNORED
        } else if t != pred.get_pixel(x, y).0[0] {
            WRONG
        } else {
            let [r, g, b] = photo.get_pixel(x, y).0;
            let l = (150.0 + 0.4 * (0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64)) as u8;
            [l, l, l]
        })
    })
}

fn pixel_acc(truth: &GrayImage, pred: &GrayImage) -> Option<f64> {
    let (mut n, mut right) = (0u64, 0u64);
    for (t, p) in truth.as_raw().iter().zip(pred.as_raw()) {
        if *t != IGNORE {
            n += 1;
            right += (t == p) as u64;
        }
    }
    (n > 0).then(|| 100.0 * right as f64 / n as f64)
}

fn png(img: &RgbImage) -> Result<String> {
    Ok(png_data_uri(&png_bytes(img)?))
}

/// A PNG as a `data:` URI for an `<img src>` (standard base64, padded).
fn png_data_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

/// PNG bytes, scaled down (nearest, so label colours stay exact) if wide.
fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let img = if img.width() > MAX_WIDTH {
        let h = (img.height() as u64 * MAX_WIDTH as u64 / img.width() as u64).max(1) as u32;
        imageops::resize(img, MAX_WIDTH, h, imageops::FilterType::Nearest)
    } else {
        img.clone()
    };
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Other(format!("cannot encode a report image: {e}")))?;
    Ok(bytes)
}

/// The protocol's classes with their colours, for the grid's legend.
pub fn legend(protocol: Protocol) -> Vec<(&'static str, [u8; 3])> {
    protocol
        .classes()
        .iter()
        .map(|&c| (crate::data::classes::CLASS_NAMES[c as usize], crate::data::classes::PALETTE[c as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_map_marks_wrong_red_and_ignored_dark() {
        let truth = GrayImage::from_raw(3, 1, vec![0, 1, IGNORE]).unwrap();
        let pred = GrayImage::from_raw(3, 1, vec![0, 2, 5]).unwrap();
        let photo = RgbImage::from_pixel(3, 1, image::Rgb([255, 255, 255]));
        let e = error_map(&photo, &truth, &pred);
        assert_eq!(e.get_pixel(1, 0).0, WRONG);
        assert_eq!(e.get_pixel(2, 0).0, IGNORED);
        assert!(e.get_pixel(0, 0).0[0] > 200, "right pixels are light");
        assert_eq!(pixel_acc(&truth, &pred), Some(50.0));
    }

    #[test]
    fn wide_images_are_scaled_down_before_inlining() {
        let small = image::load_from_memory(&png_bytes(&RgbImage::new(1024, 512)).unwrap()).unwrap();
        assert_eq!((small.width(), small.height()), (MAX_WIDTH, 192));
        assert!(png(&RgbImage::new(4, 2)).unwrap().starts_with("data:image/png;base64,"));
        // standard alphabet, padded (RFC 4648)
        assert_eq!(png_data_uri(b"fooba"), "data:image/png;base64,Zm9vYmE=");
        assert_eq!(png_data_uri(&[0xff, 0xfe]), "data:image/png;base64,//4=");
    }
}
