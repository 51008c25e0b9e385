//! GTA5 ("Playing for Data"): `images/NNNNN.png` with `labels/NNNNN.png`, palette PNGs whose
//! palette *index* is the Cityscapes labelId.
use super::classes::{label_id_lut, NUM_LABEL_IDS};
use super::io;
use super::layout::{map_ids, paired_items, require_dir, DecodedLabel, Item};
use crate::error::Result;
use std::path::{Path, PathBuf};

pub fn image_path(root: &Path, name: &str) -> PathBuf {
    root.join("images").join(format!("{name}.png"))
}

pub fn label_path(root: &Path, name: &str) -> PathBuf {
    root.join("labels").join(format!("{name}.png"))
}

pub fn list(root: &Path) -> Result<Vec<Item>> {
    let dir = root.join("images");
    require_dir(&dir, "GTA5 images/")?;
    let labelled = root.join("labels").is_dir();
    paired_items(&dir, &["png", "jpg"], labelled, |name| label_path(root, name))
}

pub fn decode_label(bytes: &[u8]) -> Result<DecodedLabel, String> {
    let raw = io::decode_index_label(bytes)?;
    let lut = label_id_lut();
    let (w, h) = raw.dimensions();
    Ok(map_ids(w, h, raw.into_raw().into_iter().map(usize::from), |v| (v < NUM_LABEL_IDS).then_some(lut[v])))
}
