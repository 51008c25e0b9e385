//! The scale-invariant examples: random crops of a round's selected images, enlarged, with
//! their pseudo-labels, and the CE + focal loss the network learns them with.
use super::params::Params;
use crate::data::layout::Item;
use crate::data::transform::Augment;
use crate::data::{Dataset, DatasetKind, Split};
use crate::error::{Error, IoContext, Result};
use crate::methods::extra_stream::ExtraStream;
use crate::nn::losses::ce_per_pixel;
use burn::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Open `examples` on the scale-invariant examples of round `round` (the images and
/// pseudo-labels listed in `dir`), from batch `position` on.
pub(super) fn open(
    examples: &mut ExtraStream,
    p: &Params,
    resize: Option<[u32; 2]>,
    round: usize,
    dir: &Path,
    position: u64,
) -> Result<()> {
    let list = dir.join("selected.txt");
    let text = std::fs::read_to_string(&list).at(&list)?;
    let items: Vec<Item> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, image) = l.split_once('\t').ok_or_else(|| Error::format(&list, format!("bad line `{l}`")))?;
            Ok(Item {
                name: name.to_string(),
                image: PathBuf::from(image),
                label: Some(dir.join("pseudo").join(format!("{name}.png"))),
            })
        })
        .collect::<Result<_>>()?;
    let ds = Dataset { kind: DatasetKind::Folder, root: dir.to_path_buf(), split: Split::All, items };
    let [w, h] = resize.unwrap_or([1024, 512]);
    let crop = [((w as f64) * p.crop_fraction).round() as u32, ((h as f64) * p.crop_fraction).round() as u32];
    let augment = Augment { resize, crop: Some(crop), flip: false, upscale: Some(p.upscale) };
    let seed = examples.seed ^ ((round as u64 + 1) << 20);
    examples.open(Arc::new(ds), augment, seed, position);
    Ok(())
}

/// CE + β·focal over valid pixels: mean(ℓ) + β·mean(ℓ·(1 − e^{−ℓ})^γ).
pub fn ce_focal(logits: Tensor<4>, target: Tensor<3, Int>, beta: f64, gamma: f64) -> Tensor<1> {
    let (nll, valid) = ce_per_pixel(logits, target);
    let n = valid.clone().sum().clamp_min(1.0);
    let pt = nll.clone().neg().exp();
    let focal = nll.clone() * pt.neg().add_scalar(1.0).powf_scalar(gamma) * valid;
    (nll.sum() + focal.sum().mul_scalar(beta)) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focal_loss_matches_pytorch() {
        // values from scripts/make_fixtures.py (tests/fixtures/focal.json)
        let fix: serde_json::Value = serde_json::from_str(include_str!("../../../tests/fixtures/focal.json")).unwrap();
        let d = Device::flex();
        let logits: Vec<f32> = fix["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let labels: Vec<i64> = fix["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let shape: Vec<usize> = fix["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let l = Tensor::<4>::from_data(TensorData::new(logits, [shape[0], shape[1], shape[2], shape[3]]), &d);
        let y = Tensor::<3, Int>::from_data(TensorData::new(labels, [shape[0], shape[2], shape[3]]), &d);
        let got = crate::nn::losses::value(&ce_focal(l, y, 0.1, 3.0));
        let want = fix["loss"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
