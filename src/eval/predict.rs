//! Turning trainId maps into the files users and cityscapesscripts read.
use crate::data::classes::{label_id_lut, PALETTE, TRAIN_TO_LABEL_ID};
use crate::data::io;
use crate::error::{Error, Result};
use image::{GrayImage, RgbImage};
use std::path::{Path, PathBuf};

/// Cityscapes colours; ignore is black.
pub fn colorize(train_ids: &GrayImage) -> RgbImage {
    RgbImage::from_fn(train_ids.width(), train_ids.height(), |x, y| {
        let t = train_ids.get_pixel(x, y).0[0] as usize;
        image::Rgb(if t < PALETTE.len() { PALETTE[t] } else { [0, 0, 0] })
    })
}

/// trainIds → Cityscapes labelIds (ignore → 0, "unlabeled").
pub fn to_label_ids(train_ids: &GrayImage) -> GrayImage {
    GrayImage::from_fn(train_ids.width(), train_ids.height(), |x, y| {
        let t = train_ids.get_pixel(x, y).0[0] as usize;
        image::Luma([if t < TRAIN_TO_LABEL_ID.len() { TRAIN_TO_LABEL_ID[t] } else { 0 }])
    })
}

/// Where the exports of image `name` go. labelIds and colour files live in separate folders
/// because cityscapesscripts requires exactly one file per image to match `CITY_SEQ_FRAME`.
pub fn export_paths(out: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        out.join("labelIds").join(format!("{name}_pred_labelIds.png")),
        out.join("color").join(format!("{name}_pred_color.png")),
    )
}

pub fn export(out: &Path, name: &str, train_ids: &GrayImage, label_ids: bool, color: bool) -> Result<()> {
    let (l, c) = export_paths(out, name);
    if label_ids {
        io::write_gray8(&l, &to_label_ids(train_ids))?;
    }
    if color {
        io::write_rgb(&c, &colorize(train_ids))?;
    }
    Ok(())
}

/// Read a labelIds prediction (as exported, or any 8-bit labelIds PNG) back to trainIds.
pub fn read_label_id_prediction(path: &Path) -> Result<GrayImage> {
    let img = io::decode_index_label(&io::read_bytes(path)?).map_err(|m| Error::format(path, m))?;
    let lut = label_id_lut();
    Ok(GrayImage::from_fn(img.width(), img.height(), |x, y| image::Luma([lut[img.get_pixel(x, y).0[0] as usize]])))
}

/// Find the single prediction file among `files` whose name contains `name` (where several
/// match, the one file with `labelIds` in its name).
pub fn find_prediction(files: &[PathBuf], name: &str) -> Result<PathBuf> {
    let mut hits: Vec<&PathBuf> =
        files.iter().filter(|p| p.file_name().is_some_and(|f| f.to_string_lossy().contains(name))).collect();
    // a Cityscapes gtFine folder holds labelIds, instanceIds and color files: take the labelIds
    let label_ids: Vec<&PathBuf> = hits.iter().copied().filter(|p| p.to_string_lossy().contains("labelIds")).collect();
    if hits.len() > 1 && label_ids.len() == 1 {
        hits = label_ids;
    }
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Other(format!("no prediction for `{name}` (a file whose name contains it)"))),
        _ => Err(Error::Other(format!("several predictions match `{name}`: {:?}", hits))),
    }
}

/// Every .png below `dir`.
pub fn png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::classes::IGNORE;

    #[test]
    fn label_id_export_round_trips() {
        let t = GrayImage::from_fn(19, 2, |x, y| image::Luma([if y == 0 { x as u8 } else { IGNORE }]));
        let l = to_label_ids(&t);
        assert_eq!(l.get_pixel(13, 0).0[0], 26);
        assert_eq!(l.get_pixel(0, 1).0[0], 0);
        let dir = tempfile::tempdir().unwrap();
        export(dir.path(), "x_000000_000019", &t, true, true).unwrap();
        let (lp, cp) = export_paths(dir.path(), "x_000000_000019");
        assert_eq!(read_label_id_prediction(&lp).unwrap(), t);
        assert!(cp.is_file());
        let files = png_files(dir.path()).unwrap();
        // of a colour and a labelIds file, the labelIds one is taken
        assert_eq!(find_prediction(&files, "x_000000_000019").unwrap(), lp);
        let two = [cp.clone(), cp.with_file_name("x_000000_000019_other.png")];
        assert!(find_prediction(&two, "x_000000_000019").is_err());
        assert!(find_prediction(&files, "y_000000_000019").is_err());
    }
}
