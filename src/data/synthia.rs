//! SYNTHIA-RAND-CITYSCAPES: `RGB/NNNNNNN.png` with `GT/LABELS/NNNNNNN.png`, 16-bit RGB labels
//! whose R channel is the SYNTHIA class id (G/B hold instance ids).
use super::classes::{synthia_id_to_train_id, SYNTHIA_MAX_ID};
use super::io;
use super::layout::{map_ids, paired_items, require_dir, DecodedLabel, Item};
use crate::error::Result;
use std::path::{Path, PathBuf};

pub fn image_path(root: &Path, name: &str) -> PathBuf {
    root.join("RGB").join(format!("{name}.png"))
}

pub fn label_path(root: &Path, name: &str) -> PathBuf {
    root.join("GT").join("LABELS").join(format!("{name}.png"))
}

pub fn list(root: &Path) -> Result<Vec<Item>> {
    let dir = root.join("RGB");
    require_dir(&dir, "SYNTHIA images, RGB/")?;
    let labelled = root.join("GT").join("LABELS").is_dir();
    paired_items(&dir, &["png"], labelled, |name| label_path(root, name))
}

pub fn decode_label(bytes: &[u8]) -> Result<DecodedLabel, String> {
    let (w, h, ids) = io::decode_synthia_label(bytes)?;
    Ok(map_ids(w, h, ids.into_iter().map(usize::from), |v| {
        (v <= SYNTHIA_MAX_ID as usize).then(|| synthia_id_to_train_id(v as u16))
    }))
}
