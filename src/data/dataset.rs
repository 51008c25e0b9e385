//! A dataset = a list of (image, label, name) items in one of the supported layouts.
use super::layout::{DecodedLabel, Item, Split};
use super::{cityscapes, folder, gta5, io, synthia};
use crate::error::{Error, Result};
use crate::ui;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Gta5,
    Synthia,
    Cityscapes,
    Folder,
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            DatasetKind::Gta5 => "gta5",
            DatasetKind::Synthia => "synthia",
            DatasetKind::Cityscapes => "cityscapes",
            DatasetKind::Folder => "folder",
        };
        f.write_str(s)
    }
}

#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub image: RgbImage,
    /// trainIds (255 = ignore); None for unlabelled items.
    pub label: Option<GrayImage>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub root: PathBuf,
    pub split: Split,
    pub items: Vec<Item>,
}

impl Dataset {
    /// Open a dataset; `list` optionally restricts it to the names in a text file (one per line).
    pub fn open(kind: DatasetKind, root: &Path, split: Split, list: Option<&Path>) -> Result<Dataset> {
        if !root.is_dir() {
            return Err(Error::format(root, format!("{kind} root is not a directory")));
        }
        let mut items = match kind {
            DatasetKind::Cityscapes => cityscapes::list(root, split)?,
            DatasetKind::Gta5 => gta5::list(root)?,
            DatasetKind::Synthia => synthia::list(root)?,
            DatasetKind::Folder => folder::list(root, split)?,
        };
        if let Some(list) = list {
            items = restrict_to_list(items, list, kind)?;
        }
        if items.is_empty() {
            return Err(Error::format(
                root,
                format!("no images found for the {kind} layout, split `{}`", split.as_str()),
            ));
        }
        Ok(Dataset { kind, root: root.to_path_buf(), split, items })
    }

    /// `n` images drawn without replacement by `seed` (kept in dataset order); all if n ≥ len.
    pub fn subset(self, n: usize, seed: u64) -> Dataset {
        self.keep_drawn(n, seed, true)
    }

    /// The images `subset(n, seed)` leaves out (the unlabelled rest of a semi-supervised split).
    pub fn subset_rest(self, n: usize, seed: u64) -> Dataset {
        self.keep_drawn(n, seed, false)
    }

    /// Keep the images a seeded draw of `n` picks (`picked`) or the others, in their order.
    fn keep_drawn(mut self, n: usize, seed: u64, picked: bool) -> Dataset {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut idx: Vec<usize> = (0..self.items.len()).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let mut drawn = vec![false; self.items.len()];
        for &i in idx.iter().take(n) {
            drawn[i] = true;
        }
        let items = std::mem::take(&mut self.items);
        self.items = items.into_iter().zip(drawn).filter(|(_, d)| *d == picked).map(|(it, _)| it).collect();
        self
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn has_labels(&self) -> bool {
        self.items.iter().all(|i| i.label.is_some())
    }

    /// Decode the label of item `i` to trainIds (None if the item has no label file).
    pub fn load_label(&self, i: usize) -> Result<Option<DecodedLabel>> {
        let Some(path) = &self.items[i].label else { return Ok(None) };
        let bytes = io::read_bytes(path)?;
        let decoded = match self.kind {
            DatasetKind::Cityscapes => cityscapes::decode_label(&bytes),
            DatasetKind::Gta5 => gta5::decode_label(&bytes),
            DatasetKind::Synthia => synthia::decode_label(&bytes),
            DatasetKind::Folder => folder::decode_label(&bytes),
        };
        decoded.map(Some).map_err(|m| Error::format(path, m))
    }

    /// Decode image and label, reconciling their sizes the way the layout requires.
    pub fn load(&self, i: usize) -> Result<Sample> {
        let item = &self.items[i];
        let image = io::read_rgb(&item.image)?;
        let label = match self.load_label(i)? {
            None => None,
            Some(d) => {
                let path = item.label.as_ref().expect("label exists");
                if d.unknown > 0 {
                    ui::warn_once(&format!(
                        "{}: {} pixels have ids the {} layout does not define; they are ignored",
                        path.display(),
                        d.unknown,
                        self.kind
                    ));
                }
                Some(self.reconcile_size(item, &image, d.train_ids)?)
            }
        };
        Ok(Sample { name: item.name.clone(), image, label })
    }

    fn reconcile_size(&self, item: &Item, image: &RgbImage, label: GrayImage) -> Result<GrayImage> {
        let path = item.label.as_deref().expect("label exists");
        if image.dimensions() == label.dimensions() {
            return Ok(label);
        }
        let (iw, ih) = image.dimensions();
        let (lw, lh) = label.dimensions();
        // Cityscapes evaluates at label resolution, so an image of another size is fine there only
        // when the aspect ratio agrees (e.g. leftImg8bit downsampled by a user).
        let same_aspect = (iw as u64 * lh as u64) == (ih as u64 * lw as u64);
        match self.kind {
            DatasetKind::Gta5 => {
                // GTA5 has a few dozen image/label pairs that differ by a few pixels.
                ui::warn_once(&format!(
                    "{}: label is {lw}x{lh} but image is {iw}x{ih}; label resized (nearest)",
                    path.display()
                ));
                Ok(super::transform::resize_label(&label, iw, ih))
            }
            DatasetKind::Cityscapes if same_aspect => Ok(label),
            _ => Err(Error::format(
                path,
                format!("label is {lw}x{lh} but its image {} is {iw}x{ih}", item.image.display()),
            )),
        }
    }
}

fn restrict_to_list(items: Vec<Item>, list: &Path, kind: DatasetKind) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let wanted = list_entry_name(line, kind);
        match items.iter().find(|it| it.name == wanted) {
            Some(it) => out.push(it.clone()),
            None => {
                return Err(Error::format(list, format!("line {}: `{line}` is not an image of this dataset", ln + 1)))
            }
        }
    }
    Ok(out)
}

/// List files name images by stem; GTA5's split files may give bare numbers ("123" = 00123.png).
fn list_entry_name(line: &str, kind: DatasetKind) -> String {
    let file = line.rsplit('/').next().unwrap_or(line);
    let stem = file.split('.').next().unwrap_or(file);
    let stem = stem.strip_suffix("_leftImg8bit").unwrap_or(stem);
    match (kind, stem.parse::<u32>()) {
        (DatasetKind::Gta5, Ok(n)) => format!("{n:05}"),
        _ => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_and_its_rest_partition_the_dataset() {
        let items = (0..20).map(|i| Item { name: format!("{i:02}"), image: PathBuf::new(), label: None }).collect();
        let ds = Dataset { kind: DatasetKind::Folder, root: PathBuf::new(), split: Split::Train, items };
        let names = |d: Dataset| d.items.into_iter().map(|i| i.name).collect::<Vec<_>>();
        let (picked, rest) = (names(ds.clone().subset(6, 3)), names(ds.clone().subset_rest(6, 3)));
        assert_eq!((picked.len(), rest.len()), (6, 14));
        assert!(picked.iter().all(|n| !rest.contains(n)));
        // the same draw every time, and a different one for another seed
        assert_eq!(names(ds.clone().subset(6, 3)), picked);
        assert_ne!(names(ds.clone().subset(6, 4)), picked);
        assert_eq!(names(ds.clone().subset(30, 3)).len(), 20);
        assert!(names(ds.subset_rest(30, 3)).is_empty());
    }

    #[test]
    fn list_entries_accept_the_common_spellings() {
        assert_eq!(list_entry_name("123", DatasetKind::Gta5), "00123");
        assert_eq!(list_entry_name("00001.png", DatasetKind::Gta5), "00001");
        assert_eq!(list_entry_name("images/00007.png", DatasetKind::Gta5), "00007");
        assert_eq!(list_entry_name("0000042.png", DatasetKind::Synthia), "0000042");
        assert_eq!(
            list_entry_name("aachen/aachen_000000_000019_leftImg8bit.png", DatasetKind::Cityscapes),
            "aachen_000000_000019"
        );
    }
}
