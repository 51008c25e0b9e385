//! Cityscapes: `leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME_leftImg8bit.png` with
//! `gtFine/SPLIT/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png` (8-bit labelIds).
use super::classes::{label_id_lut, NUM_LABEL_IDS};
use super::io;
use super::layout::{map_ids, require_dir, DecodedLabel, Item, Split};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const IMG_SUFFIX: &str = "_leftImg8bit.png";

pub fn image_path(root: &Path, split: &str, name: &str) -> PathBuf {
    root.join("leftImg8bit").join(split).join(city(name)).join(format!("{name}{IMG_SUFFIX}"))
}

/// `gtFine` file of `name` of the given type (`labelIds`, `instanceIds`, `color`).
pub fn gt_path(root: &Path, split: &str, name: &str, kind: &str) -> PathBuf {
    root.join("gtFine").join(split).join(city(name)).join(format!("{name}_gtFine_{kind}.png"))
}

fn city(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

pub fn list(root: &Path, split: Split) -> Result<Vec<Item>> {
    if split == Split::All {
        return Err(Error::format(root, "Cityscapes has splits train, val and test; choose one"));
    }
    let s = split.as_str();
    let img_dir = root.join("leftImg8bit").join(s);
    require_dir(&img_dir, "Cityscapes images, leftImg8bit/SPLIT/CITY/")?;
    let gt_dir = root.join("gtFine").join(s);
    let labelled = gt_dir.is_dir();
    let mut cities: Vec<PathBuf> = std::fs::read_dir(&img_dir)
        .map_err(|e| Error::io(&img_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cities.sort();
    let mut items = Vec::new();
    for c in cities {
        for img in super::layout::files_with_ext(&c, &["png"])? {
            let file = img.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(IMG_SUFFIX) else { continue };
            let label = if labelled {
                let l = gt_path(root, s, name, "labelIds");
                if !l.is_file() {
                    return Err(Error::format(&l, format!("missing label of {}", img.display())));
                }
                Some(l)
            } else {
                None
            };
            items.push(Item { name: name.to_string(), image: img.clone(), label });
        }
    }
    Ok(items)
}

/// labelIds 0..=33 are defined; 255 is the -1 (license plate) id stored as a byte.
pub fn decode_label(bytes: &[u8]) -> Result<DecodedLabel, String> {
    let raw = io::decode_index_label(bytes)?;
    let lut = label_id_lut();
    let (w, h) = raw.dimensions();
    Ok(map_ids(w, h, raw.into_raw().into_iter().map(usize::from), |v| {
        (v < NUM_LABEL_IDS || v == 255).then_some(lut[v])
    }))
}
