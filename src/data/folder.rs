//! A generic folder: `images/NAME.{png,jpg}` with optional `labels/NAME.png` holding trainIds
//! (8-bit, 255 = ignore). `ROOT/SPLIT/images` is used when it exists, else `ROOT/images`.
use super::classes::{IGNORE, NUM_CLASSES};
use super::io;
use super::layout::{files_with_ext, map_ids, require_dir, stem, DecodedLabel, Item, Split};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub fn base(root: &Path, split: Split) -> PathBuf {
    let s = root.join(split.as_str());
    if s.join("images").is_dir() {
        s
    } else {
        root.to_path_buf()
    }
}

pub fn list(root: &Path, split: Split) -> Result<Vec<Item>> {
    let base = base(root, split);
    let dir = base.join("images");
    require_dir(&dir, "images/")?;
    let labels = base.join("labels");
    let labelled = labels.is_dir();
    files_with_ext(&dir, &["png", "jpg", "jpeg"])?
        .into_iter()
        .map(|img| {
            let name = stem(&img);
            let label = if labelled {
                let l = labels.join(format!("{name}.png"));
                if !l.is_file() {
                    return Err(Error::format(&l, format!("missing label of {}", img.display())));
                }
                Some(l)
            } else {
                None
            };
            Ok(Item { name, image: img, label })
        })
        .collect()
}

pub fn decode_label(bytes: &[u8]) -> Result<DecodedLabel, String> {
    let raw = io::decode_index_label(bytes)?;
    let (w, h) = raw.dimensions();
    Ok(map_ids(w, h, raw.into_raw().into_iter().map(usize::from), |v| {
        (v < NUM_CLASSES || v == IGNORE as usize).then_some(v as u8)
    }))
}
