//! A round's pass over the target training set: predict every image, select and threshold
//! (selection.rs), and write the pseudo-labels, the list of selected images and a summary of the
//! labels' quality into the round's directory.
use super::params::Params;
use super::selection::{image_stats, pseudo_label, select, thresholds, ImageStats};
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::data::loader::{Loader, LoaderSpec};
use crate::data::transform::{Augment, Normalize};
use crate::data::Dataset;
use crate::error::{Error, IoContext, Result};
use crate::eval::confusion::Confusion;
use crate::model::SegNet;
use burn::module::Module;
use burn::prelude::*;
use image::GrayImage;
use std::path::Path;
use std::sync::Arc;

/// The target training set as a round predicts it: loaded as for training (`resize`,
/// `normalize`), without crops or flips.
pub(super) struct TargetImages<'a> {
    pub(super) ds: &'a Arc<Dataset>,
    pub(super) resize: Option<[u32; 2]>,
    pub(super) normalize: Normalize,
}

/// Select, threshold and write into `dir` the pseudo-labels of round `round` (selection
/// proportion `p`); returns the round's scalars and the number of images selected.
pub(super) fn make_round(
    params: &Params,
    round: usize,
    p: f64,
    images: &TargetImages,
    net: &SegNet,
    dir: &Path,
    device: &Device,
) -> Result<(Vec<(String, f64)>, usize)> {
    let inf = net.valid();
    let target = images.ds;
    // pass 1: per-image class scores and normalised entropies
    let pb = crate::ui::bar(target.len() as u64, &format!("lse r{round}"));
    let mut stats = Vec::with_capacity(target.len());
    predict_all(images, &inf, device, |_, _, s, _| {
        stats.push((s.score, s.mean_hn));
        pb.inc(1);
        Ok(())
    })?;
    pb.finish_and_clear();
    let scores: Vec<[Option<f32>; NUM_CLASSES]> = stats.iter().map(|s| s.0).collect();
    let sel = select(&scores, p, params.per_class_divisor, &params.skip_classes);
    let th = thresholds(&stats.iter().map(|s| s.1).collect::<Vec<_>>(), &sel.boundary);
    // pass 2: pseudo-labels of the selected images
    std::fs::create_dir_all(dir.join("pseudo")).at(dir)?;
    std::fs::create_dir_all(dir.join("preview")).at(dir)?;
    let chosen: std::collections::BTreeSet<usize> = sel.selected.iter().copied().collect();
    let mut conf = Confusion::new(crate::data::classes::Protocol::P19);
    // every pixel, unlabelled ones as void: per-class precision and recall of the selection
    let mut all = Confusion::new(crate::data::classes::Protocol::P19);
    let mut per_class = [0u64; NUM_CLASSES];
    let mut total = 0u64;
    let mut list = String::new();
    predict_all(images, &inf, device, |i, img, s, gt| {
        if !chosen.contains(&i) {
            return Ok(());
        }
        let mut pl = pseudo_label(&s.argmax, &s.hn, &th);
        if params.oracle_labels {
            let gt = gt.ok_or_else(|| {
                Error::Other("method.lse.oracle_labels needs a target labelled at the image size".into())
            })?;
            pl.iter_mut().zip(gt).filter(|(q, _)| **q != IGNORE).for_each(|(q, &g)| *q = g);
        }
        let (w, h) = img;
        let map = GrayImage::from_raw(w, h, pl).expect("sizes match");
        let name = &target.items[i].name;
        crate::data::io::write_gray8(&dir.join("pseudo").join(format!("{name}.png")), &map)?;
        crate::data::io::write_rgb(
            &dir.join("preview").join(format!("{name}.png")),
            &crate::eval::predict::colorize(&map),
        )?;
        list.push_str(&format!("{name}\t{}\n", target.items[i].image.display()));
        map.as_raw().iter().filter(|&&q| q != IGNORE).for_each(|&q| per_class[q as usize] += 1);
        total += (w * h) as u64;
        if let Some(gt) = gt {
            all.add(gt, map.as_raw());
            let (g, q): (Vec<u8>, Vec<u8>) =
                gt.iter().zip(map.as_raw()).filter(|(_, &q)| q != IGNORE).map(|(&g, &q)| (g, q)).unzip();
            conf.add(&g, &q);
        }
        Ok(())
    })?;
    std::fs::write(dir.join("selected.txt"), &list).at(dir)?;
    let labelled: u64 = per_class.iter().sum();
    let mut out = vec![
        ("lse_round".to_string(), round as f64),
        ("lse_p".to_string(), p),
        ("lse_selected".to_string(), sel.selected.len() as f64),
        ("lse_coverage".to_string(), 100.0 * labelled as f64 / total.max(1) as f64),
    ];
    if conf.total() > 0 {
        let r = conf.report(crate::data::classes::Protocol::P19);
        out.push(("lse_pseudo_acc".to_string(), r.pixel_acc));
        out.push(("lse_pseudo_miou".to_string(), r.miou));
    }
    let classes = class_table(&per_class, total, (all.total() > 0).then_some(&all));
    let summary = serde_json::json!({
        "round": round, "p": p, "selected": sel.selected.len(),
        "thresholds": th, "scalars": out.iter().map(|(k, v)| (k.clone(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "classes": classes,
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).expect("json")).at(dir)?;
    Ok((out, sel.selected.len()))
}

/// Predict every target image at the network input size, upsampled to the image's own size
/// (the original scale: the pseudo-labels are the image's labels, whatever `resize` the
/// loader applies to both), and hand its statistics to `f` (index, (w, h), stats, ground
/// truth when labelled at that size).
fn predict_all(
    images: &TargetImages,
    net: &SegNet,
    device: &Device,
    mut f: impl FnMut(usize, (u32, u32), &ImageStats, Option<&[u8]>) -> Result<()>,
) -> Result<()> {
    let target = images.ds;
    let augment = Augment { resize: images.resize, crop: None, flip: false, upscale: None };
    let labels = target.has_labels();
    let spec = LoaderSpec {
        batch: 1,
        augment,
        normalize: images.normalize,
        shuffle: false,
        labels,
        keep_label_size: true,
        seed: 0,
        prefetch: 2,
        once: true,
        keep_going: false,
    };
    let mut loader = Loader::new(target.clone(), spec, 0);
    while let Some(b) = loader.next_batch() {
        let b = b?;
        let i = b.indices[0];
        let path = &target.items[i].image;
        let (w, h) = image::image_dimensions(path)
            .map_err(|e| Error::format(path, format!("cannot read the image size: {e}")))?;
        let x = Tensor::<4>::from_data(TensorData::new(b.images, [1, 3, b.h, b.w]), device);
        let up = crate::nn::losses::upsample(net.forward(x).main, [h as usize, w as usize]);
        let probs: Vec<f32> = crate::nn::losses::probs(up).into_data().iter::<f32>().collect();
        let s = image_stats(&probs, NUM_CLASSES, (h * w) as usize);
        let gt = b.labels.as_ref().map(|l| &l[0]).filter(|(lw, lh, _)| (*lw, *lh) == (w, h)).map(|l| l.2.as_slice());
        f(i, (w, h), &s, gt)?;
    }
    Ok(())
}

/// Per class: the share of the selected images' pixels labelled with it and, against held
/// labels, the precision of those labels and the recall of the class's pixels (in percent).
/// This is where a round's drift shows first (e.g. a class labelled mostly on another).
fn class_table(labelled: &[u64; NUM_CLASSES], total: u64, gt: Option<&Confusion>) -> serde_json::Value {
    let pct = |a: u64, b: u64| (b > 0).then(|| 100.0 * a as f64 / b as f64);
    let rows: serde_json::Map<String, serde_json::Value> = (0..NUM_CLASSES)
        .map(|c| {
            let mut row = serde_json::json!({ "share": pct(labelled[c], total) });
            if let Some(m) = gt {
                let tp = m.get(c, c);
                row["precision"] = serde_json::json!(pct(tp, m.predicted_pixels(c)));
                row["recall"] = serde_json::json!(pct(tp, m.true_pixels(c)));
            }
            (crate::data::classes::CLASS_NAMES[c].to_string(), row)
        })
        .collect();
    serde_json::Value::Object(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table_by_hand() {
        // 6 pixels: gt road road road sidewalk sidewalk car; pseudo road sidewalk ignore sidewalk ignore ignore
        let gt = [0u8, 0, 0, 1, 1, 13];
        let pl = [0u8, 1, IGNORE, 1, IGNORE, IGNORE];
        let mut m = Confusion::new(crate::data::classes::Protocol::P19);
        m.add(&gt, &pl);
        let mut labelled = [0u64; NUM_CLASSES];
        pl.iter().filter(|&&q| q != IGNORE).for_each(|&q| labelled[q as usize] += 1);
        let t = class_table(&labelled, 6, Some(&m));
        let f = |c: &str, k: &str| t[c][k].as_f64();
        assert!((f("road", "share").unwrap() - 100.0 / 6.0).abs() < 1e-9);
        assert_eq!(f("road", "precision"), Some(100.0));
        assert!((f("road", "recall").unwrap() - 100.0 / 3.0).abs() < 1e-9);
        // sidewalk: labelled on one road and one sidewalk pixel, one of two sidewalk pixels found
        assert_eq!(f("sidewalk", "precision"), Some(50.0));
        assert_eq!(f("sidewalk", "recall"), Some(50.0));
        // car is never labelled: no precision, recall 0
        assert_eq!(f("car", "precision"), None);
        assert_eq!(f("car", "recall"), Some(0.0));
        assert_eq!(f("car", "share"), Some(0.0));
        // without held labels only the share
        assert!(class_table(&labelled, 6, None)["road"].get("precision").is_none());
    }
}
