//! `segda prepare`: check a dataset end to end and count class pixels.
use super::classes::{Protocol, CLASS_NAMES, NUM_CLASSES};
use super::dataset::Dataset;
use super::io;
use crate::ui;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct Stats {
    pub images: usize,
    pub labelled: usize,
    /// (width, height) → count.
    pub sizes: BTreeMap<(u32, u32), usize>,
    /// Pixels per trainId, and ignored pixels.
    pub class_pixels: [u64; NUM_CLASSES],
    pub ignored: u64,
    /// Images containing each class.
    pub class_images: [usize; NUM_CLASSES],
    /// Problems that stop training (unreadable, missing, mismatched): file and message.
    pub errors: Vec<(PathBuf, String)>,
    /// Things worth knowing (unknown ids).
    pub warnings: Vec<(PathBuf, String)>,
}

struct One {
    size: Option<(u32, u32)>,
    labelled: bool,
    pixels: [u64; NUM_CLASSES],
    ignored: u64,
    errors: Vec<(PathBuf, String)>,
    warnings: Vec<(PathBuf, String)>,
}

/// An error's message without the path the report prints in front of it anyway.
fn about(path: &Path, e: &crate::error::Error) -> String {
    let text = e.to_string();
    text.strip_prefix(&format!("{}: ", path.display())).map_or(text.clone(), str::to_string)
}

fn check(ds: &Dataset, i: usize) -> One {
    let item = &ds.items[i];
    let mut one =
        One { size: None, labelled: false, pixels: [0; NUM_CLASSES], ignored: 0, errors: vec![], warnings: vec![] };
    match io::read_rgb(&item.image) {
        Ok(img) => one.size = Some(img.dimensions()),
        Err(e) => one.errors.push((item.image.clone(), about(&item.image, &e))),
    }
    let Some(lp) = &item.label else { return one };
    if !lp.is_file() {
        one.errors.push((lp.clone(), format!("missing label of {}", item.image.display())));
        return one;
    }
    match ds.load_label(i) {
        Err(e) => one.errors.push((lp.clone(), about(lp, &e))),
        Ok(None) => {}
        Ok(Some(d)) => {
            one.labelled = true;
            if d.unknown > 0 {
                one.warnings.push((
                    lp.clone(),
                    format!("{} pixels with ids the {} layout does not define (read as ignore)", d.unknown, ds.kind),
                ));
            }
            if let Some(s) = one.size {
                if s != d.train_ids.dimensions() {
                    let msg = format!("label is {:?} but the image is {:?}", d.train_ids.dimensions(), s);
                    match ds.kind {
                        super::dataset::DatasetKind::Gta5 => {
                            one.warnings.push((lp.clone(), format!("{msg} (resized with nearest when loading)")))
                        }
                        _ => one.errors.push((lp.clone(), msg)),
                    }
                }
            }
            one.ignored += count_classes(&d.train_ids, &mut one.pixels);
        }
    }
    one
}

/// Adds each trainId's pixels of `train_ids` to `pixels`; returns the ignored pixels.
fn count_classes(train_ids: &image::GrayImage, pixels: &mut [u64; NUM_CLASSES]) -> u64 {
    let mut ignored = 0;
    for &v in train_ids.as_raw() {
        match pixels.get_mut(v as usize) {
            Some(n) => *n += 1,
            None => ignored += 1,
        }
    }
    ignored
}

/// Each class's share of the labelled pixels of `ds` (its labels at their own size, ignore
/// left out): the source class ratio of ADVENT's class-ratio prior.
pub fn class_ratio(ds: &Dataset) -> crate::error::Result<[f64; NUM_CLASSES]> {
    let pb = ui::bar(ds.len() as u64, "classes");
    let counts = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let mut pixels = [0u64; NUM_CLASSES];
            if let Some(d) = ds.load_label(i)? {
                count_classes(&d.train_ids, &mut pixels);
            }
            pb.inc(1);
            Ok(pixels)
        })
        .collect::<crate::error::Result<Vec<_>>>();
    pb.finish_and_clear();
    let mut total = [0u64; NUM_CLASSES];
    for pixels in counts? {
        for (t, n) in total.iter_mut().zip(pixels) {
            *t += n;
        }
    }
    let all: u64 = total.iter().sum();
    if all == 0 {
        return Err(crate::error::Error::format(
            &ds.root,
            format!("the {} dataset has no labelled pixels to count classes in", ds.kind),
        ));
    }
    Ok(total.map(|n| n as f64 / all as f64))
}

pub fn validate(ds: &Dataset) -> Stats {
    let pb = ui::bar(ds.len() as u64, "prepare");
    let results: Vec<One> = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let r = check(ds, i);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let mut s = Stats { images: ds.len(), ..Default::default() };
    for r in results {
        if let Some(sz) = r.size {
            *s.sizes.entry(sz).or_default() += 1;
        }
        s.labelled += r.labelled as usize;
        for c in 0..NUM_CLASSES {
            s.class_pixels[c] += r.pixels[c];
            s.class_images[c] += (r.pixels[c] > 0) as usize;
        }
        s.ignored += r.ignored;
        s.errors.extend(r.errors);
        s.warnings.extend(r.warnings);
    }
    s
}

impl Stats {
    /// A human-readable summary with per-class frequencies for `protocol`.
    pub fn render(&self, ds: &Dataset, protocol: Protocol) -> String {
        let mut out = format!("{} dataset at {} (split {})\n", ds.kind, ds.root.display(), ds.split.as_str());
        out += &format!("  images: {}   labelled: {}\n", self.images, self.labelled);
        let mut sizes: Vec<_> = self.sizes.iter().collect();
        sizes.sort_by(|a, b| b.1.cmp(a.1));
        let shown: Vec<String> = sizes.iter().take(4).map(|((w, h), n)| format!("{w}x{h} ({n})")).collect();
        out += &format!(
            "  sizes: {}{}\n",
            shown.join(", "),
            if sizes.len() > 4 { format!(" and {} more", sizes.len() - 4) } else { String::new() }
        );
        if self.labelled > 0 {
            let total: u64 = self.class_pixels.iter().sum::<u64>() + self.ignored;
            out += &format!(
                "  class pixel frequencies ({} classes; ignored {:.2}%):\n",
                protocol,
                100.0 * self.ignored as f64 / total.max(1) as f64
            );
            out += &format!("    {:<14} {:>8} {:>8}\n", "class", "pixels%", "images");
            for &c in protocol.classes() {
                let c = c as usize;
                out += &format!(
                    "    {:<14} {:>8.3} {:>8}\n",
                    CLASS_NAMES[c],
                    100.0 * self.class_pixels[c] as f64 / total.max(1) as f64,
                    self.class_images[c]
                );
            }
            let outside: Vec<&str> = (0..NUM_CLASSES)
                .filter(|&c| !protocol.contains(c as u8) && self.class_pixels[c] > 0)
                .map(|c| CLASS_NAMES[c])
                .collect();
            if !outside.is_empty() {
                out += &format!("  present but not evaluated under {}: {}\n", protocol, outside.join(", "));
            }
        }
        for (what, list) in [("warning", &self.warnings), ("error", &self.errors)] {
            for (p, m) in list.iter().take(20) {
                out += &format!("  {what}: {}: {m}\n", p.display());
            }
            if list.len() > 20 {
                out += &format!("  … {} more {what}s\n", list.len() - 20);
            }
        }
        out += &format!("  {} errors, {} warnings\n", self.errors.len(), self.warnings.len());
        out
    }
}
