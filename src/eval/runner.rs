//! Run a network over a dataset: predictions at label resolution, confusion over the whole set.
use super::confusion::Confusion;
use super::predict;
use crate::data::classes::Protocol;
use crate::data::loader::{Loader, LoaderSpec};
use crate::data::transform::Normalize;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::SegNet;
use crate::nn::losses::upsample;
use crate::ui;
use burn::prelude::*;
use image::GrayImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct EvalSpec {
    /// Network input size [w, h] (the protocol's 1024×512); None = the stored size.
    pub resize: Option<[u32; 2]>,
    pub normalize: Normalize,
    pub protocol: Protocol,
    /// Evaluate only the first N images (0 = all).
    pub limit: usize,
    pub progress: bool,
}

/// Where predictions go, if anywhere.
#[derive(Clone, Copy, Debug)]
pub struct Export<'a> {
    pub dir: &'a Path,
    pub label_ids: bool,
    pub color: bool,
    /// Where an image that cannot be read or written is reported, while the others go on
    /// (`segda predict`); none: the first failure is the error.
    pub failures: Option<&'a std::cell::RefCell<Vec<String>>>,
}

/// trainId map (argmax over the protocol's classes) of one image's logits [1,C,h,w], upsampled
/// (bilinear, align_corners = true) to `size` = [h, w].
pub fn predict_map(logits: Tensor<4>, size: [usize; 2], protocol: Protocol) -> GrayImage {
    let up = upsample(logits, size);
    let classes = protocol.classes();
    let device = up.device();
    let (up, lut): (Tensor<4>, Vec<u8>) = if classes.len() == up.dims()[1] {
        (up, (0..classes.len() as u8).collect())
    } else {
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(classes.iter().map(|&c| c as i64).collect::<Vec<_>>(), [classes.len()]),
            &device,
        );
        (up.select(1, idx), classes.to_vec())
    };
    let am = up.argmax(1);
    let data: Vec<u8> = am.into_data().iter::<i64>().map(|v| lut[v as usize]).collect();
    GrayImage::from_raw(size[1] as u32, size[0] as u32, data).expect("sizes match")
}

/// Predict every image of `ds` (in order) with an inference-mode network.
pub fn evaluate(
    net: &SegNet,
    ds: &Dataset,
    spec: &EvalSpec,
    device: &Device,
    export: Option<Export>,
) -> Result<Option<Confusion>> {
    evaluate_with(&|x| net.forward(x).main, ds, spec, device, export)
}

/// Equal-weight ensemble of networks: the mean of their main logits (ADVENT's AdvEnt+MinEnt
/// fuses two models this way; bilinear upsampling is linear, so it commutes with the mean).
pub fn evaluate_ensemble(
    nets: &[SegNet],
    ds: &Dataset,
    spec: &EvalSpec,
    device: &Device,
    export: Option<Export>,
) -> Result<Option<Confusion>> {
    let k = nets.len() as f64;
    let fused = |x: Tensor<4>| {
        nets.iter().map(|n| n.forward(x.clone()).main).reduce(|a, b| a + b).expect("at least one network").div_scalar(k)
    };
    evaluate_with(&fused, ds, spec, device, export)
}

/// Predict with any function from an input batch [1,3,h,w] to logits.
pub fn evaluate_with(
    predict: &dyn Fn(Tensor<4>) -> Tensor<4>,
    ds: &Dataset,
    spec: &EvalSpec,
    device: &Device,
    export: Option<Export>,
) -> Result<Option<Confusion>> {
    let n = if spec.limit > 0 { spec.limit.min(ds.len()) } else { ds.len() };
    let mut sub = ds.clone();
    sub.items.truncate(n);
    let labelled = sub.has_labels();
    let mut ls = LoaderSpec::eval(spec.resize, spec.normalize);
    ls.labels = labelled;
    let failures = export.and_then(|e| e.failures);
    ls.keep_going = failures.is_some();
    let mut loader = Loader::new(Arc::new(sub), ls, 0);
    let mut conf = Confusion::new(spec.protocol);
    let pb = spec.progress.then(|| ui::bar(n as u64, "eval"));
    while let Some(b) = loader.next_batch() {
        let one = |b: Result<crate::data::loader::Batch>, conf: &mut Confusion| -> Result<()> {
            let b = b?;
            let x = Tensor::<4>::from_data(TensorData::new(b.images, [1, 3, b.h, b.w]), device);
            let logits = predict(x);
            let (size, gt) = match &b.labels {
                Some(ls) => {
                    let (w, h, v) = &ls[0];
                    ([*h as usize, *w as usize], Some(v))
                }
                None => {
                    // unlabelled: predict at the original image size
                    let (w, h) = crate::data::io::image_dimensions(&ds.items[b.indices[0]].image)?;
                    ([h as usize, w as usize], None)
                }
            };
            let pred = predict_map(logits, size, spec.protocol);
            if let Some(gt) = gt {
                conf.add(gt, pred.as_raw());
            }
            if let Some(e) = export {
                predict::export(e.dir, &b.names[0], &pred, e.label_ids, e.color)?;
            }
            Ok(())
        };
        if let Err(e) = one(b, &mut conf) {
            match failures {
                Some(f) => f.borrow_mut().push(e.to_string()),
                None => return Err(e),
            }
        }
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(labelled.then_some(conf))
}

/// Score a folder of labelIds predictions against a dataset's ground truth (cityscapesscripts' way).
pub fn evaluate_predictions(pred_dir: &Path, ds: &Dataset, protocol: Protocol) -> Result<Confusion> {
    let files = predict::png_files(pred_dir)?;
    let mut conf = Confusion::new(protocol);
    let mut used = std::collections::HashSet::new();
    for i in 0..ds.len() {
        let gt =
            ds.load_label(i)?.ok_or_else(|| Error::format(&ds.items[i].image, "no ground truth for this image"))?;
        let path =
            predict::find_prediction(&files, &ds.items[i].name).map_err(|e| Error::format(pred_dir, e.to_string()))?;
        used.insert(path.clone());
        let pred = predict::read_label_id_prediction(&path)?;
        if pred.dimensions() != gt.train_ids.dimensions() {
            return Err(Error::format(
                &path,
                format!("prediction is {:?}, ground truth is {:?}", pred.dimensions(), gt.train_ids.dimensions()),
            ));
        }
        conf.add(gt.train_ids.as_raw(), pred.as_raw());
    }
    // files that belong to no image (a gtFine folder's color and instanceIds siblings do)
    let names: Vec<&str> = ds.items.iter().map(|it| it.name.as_str()).collect();
    let extra: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !used.contains(*f))
        .filter(|f| f.file_name().is_some_and(|n| !names.iter().any(|m| n.to_string_lossy().contains(m))))
        .collect();
    if let Some(first) = extra.first() {
        ui::warn(&format!(
            "{}: {} prediction file(s) match no image of the dataset and were not scored (e.g. {})",
            pred_dir.display(),
            extra.len(),
            first.display()
        ));
    }
    Ok(conf)
}
