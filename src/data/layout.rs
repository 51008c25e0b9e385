//! What every layout's reader builds on: splits, items, decoded labels and the file listing
//! helpers. The readers (`cityscapes`, `gta5`, `synthia`, `folder`) depend on this module and
//! `dataset` dispatches to them.
use super::classes::IGNORE;
use crate::error::{Error, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
    /// Every image (the synthetic sources have no split).
    All,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::All => "all",
        }
    }
}

/// One image of a dataset and where its label lives.
#[derive(Clone, Debug)]
pub struct Item {
    /// A stable name (Cityscapes: `CITY_SEQ_FRAME`; others: the file stem).
    pub name: String,
    pub image: PathBuf,
    pub label: Option<PathBuf>,
}

/// A decoded label in trainIds, and how many pixels had an id the layout does not define.
#[derive(Debug)]
pub struct DecodedLabel {
    pub train_ids: GrayImage,
    pub unknown: u64,
}

/// Map raw label values to trainIds with `lut` (None = unknown id → ignore, counted).
pub fn map_ids(
    width: u32,
    height: u32,
    raw: impl Iterator<Item = usize>,
    lut: impl Fn(usize) -> Option<u8>,
) -> DecodedLabel {
    let mut unknown = 0u64;
    let data: Vec<u8> = raw
        .map(|v| {
            lut(v).unwrap_or_else(|| {
                unknown += 1;
                IGNORE
            })
        })
        .collect();
    DecodedLabel { train_ids: GrayImage::from_raw(width, height, data).expect("sizes match"), unknown }
}

/// Sorted files in `dir` whose extension is one of `exts`.
pub fn files_with_ext(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Items of a flat layout: every image of `dir` with these extensions, paired with
/// `label_path(stem)` when the layout's label folder exists (`labelled`).
pub fn paired_items(
    dir: &Path,
    exts: &[&str],
    labelled: bool,
    label_path: impl Fn(&str) -> PathBuf,
) -> Result<Vec<Item>> {
    Ok(files_with_ext(dir, exts)?
        .into_iter()
        .map(|img| {
            let name = stem(&img);
            let label = labelled.then(|| label_path(&name));
            Item { name, image: img, label }
        })
        .collect())
}

pub fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn require_dir(p: &Path, what: &str) -> Result<()> {
    if p.is_dir() {
        Ok(())
    } else {
        Err(Error::format(p, format!("missing directory ({what})")))
    }
}
