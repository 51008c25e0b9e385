//! With `measure_pseudo`, per class over the run: what the pseudo-labels call each labelled
//! target pixel, and how often the image-level inference finds the classes an image contains.
//! Kept with the method's state (so a resumed run goes on counting) and written beside it as a
//! table, `pit_pseudo_labels.md`.
use crate::data::classes::{Protocol, CLASS_NAMES, IGNORE, NUM_CLASSES};
use crate::error::{Error, IoContext, Result};
use crate::eval::Confusion;
use crate::methods::state::{load_json, save_json};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// The confusion's void column: the pixels left unlabelled.
const UNLABELLED: usize = NUM_CLASSES;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Audit {
    /// Rows the true class, columns the pseudo-label; unlabelled pixels in the void column.
    confusion: Confusion,
    /// Per class: images that contain it, and of those how many the fused inference / the head
    /// alone (σ ≥ 0.5) says contain it; images without it, and of those the same two counts.
    presence: Vec<[u64; 6]>,
}

impl Audit {
    pub(super) fn new() -> Self {
        Audit { confusion: Confusion::new(Protocol::P19), presence: vec![[0; 6]; NUM_CLASSES] }
    }

    /// One batch's pseudo-labels against the target's labels (same length, IGNORE = none).
    pub(super) fn add_pixels(&mut self, pseudo: &[i64], truth: &[i64]) {
        let ids = |v: &[i64]| v.iter().map(|&x| u8::try_from(x).unwrap_or(IGNORE)).collect::<Vec<u8>>();
        self.confusion.add(&ids(truth), &ids(pseudo));
    }

    /// One image: which classes it contains, which the fused inference and the head alone found.
    pub(super) fn add_image(&mut self, contains: &[bool], inferred: &[bool], head: Option<&[bool]>) {
        for c in 0..NUM_CLASSES {
            let row = &mut self.presence[c];
            let at = if contains[c] { 0 } else { 3 };
            row[at] += 1;
            row[at + 1] += u64::from(inferred[c]);
            row[at + 2] += u64::from(head.is_some_and(|h| h[c]));
        }
    }

    /// A markdown table, one row per class the target's labels contain.
    pub(super) fn table(&self) -> String {
        let pct =
            |a: u64, b: u64| if b == 0 { "–".to_string() } else { format!("{:.1}", 100.0 * a as f64 / b as f64) };
        let mut s = String::from(
            "| class | pixels | pseudo-labelled % | recall % | precision % | most often labelled instead (% of its pixels) | \
             images with it | found: fused / head % | images without it | found: fused / head % |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        let m = &self.confusion;
        for (c, name) in CLASS_NAMES.iter().enumerate() {
            let total = m.true_pixels(c);
            let [with, wf, wh, without, of, oh] = self.presence[c];
            if total == 0 && with == 0 {
                continue;
            }
            let labelled = total - m.get(c, UNLABELLED);
            let called = m.predicted_pixels(c);
            let instead = (0..NUM_CLASSES).filter(|&k| k != c).max_by_key(|&k| (m.get(c, k), std::cmp::Reverse(k)));
            let instead = match instead {
                Some(k) if m.get(c, k) > 0 => format!("{} {}", CLASS_NAMES[k], pct(m.get(c, k), total)),
                _ => "–".to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {total} | {} | {} | {} | {instead} | {with} | {} / {} | {without} | {} / {} |",
                name,
                pct(labelled, total),
                pct(m.get(c, c), total),
                pct(m.get(c, c), called),
                pct(wf, with),
                pct(wh, with),
                pct(of, without),
                pct(oh, without),
            );
        }
        s
    }

    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("pit_pseudo_labels.json");
        save_json(self, &p)?;
        let p = dir.join("pit_pseudo_labels.md");
        let head = "Pseudo-labels against the target's labels, per class, over every batch since they \
                    started (an image drawn twice counts twice; pixels at the input's size; \
                    `measure_pseudo`, docs/methods/pit.md).\n\n";
        std::fs::write(&p, format!("{head}{}", self.table())).at(&p)
    }

    /// The counts saved in `dir`, or none when it has none (a run that did not measure).
    pub(super) fn load(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join("pit_pseudo_labels.json");
        if !p.is_file() {
            return Ok(None);
        }
        let a: Audit = load_json(&p)?;
        if a.presence.len() != NUM_CLASSES {
            return Err(Error::format(&p, format!("expected counts for {NUM_CLASSES} classes")));
        }
        Ok(Some(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_labelled_pixel_once_under_its_true_class() {
        let (i, mut a) = (IGNORE as i64, Audit::new());
        // true: road road road car car ignore; pseudo: road car none car car road
        a.add_pixels(&[0, 13, i, 13, 13, 0], &[0, 0, 0, 13, 13, i]);
        assert_eq!(a.confusion.get(0, 0), 1);
        assert_eq!(a.confusion.get(0, 13), 1);
        assert_eq!(a.confusion.get(0, UNLABELLED), 1);
        assert_eq!(a.confusion.get(13, 13), 2);
        assert_eq!(a.confusion.total(), 5, "the ignored pixel is not counted");
        let t = a.table();
        // road: 3 pixels, 2 labelled, 1 right; called road once, rightly; most often car instead
        assert!(t.contains("| road | 3 | 66.7 | 33.3 | 100.0 | car 33.3 |"), "{t}");
        // car: both right; called car three times, twice rightly
        assert!(t.contains("| car | 2 | 100.0 | 100.0 | 66.7 | – |"), "{t}");
        assert!(!t.contains("| bus |"), "a class the labels never show has no row");
    }

    #[test]
    fn presence_is_counted_apart_for_images_with_and_without_the_class() {
        let mut a = Audit::new();
        let mut contains = vec![false; NUM_CLASSES];
        contains[15] = true;
        let mut inferred = vec![false; NUM_CLASSES];
        inferred[15] = true;
        inferred[16] = true;
        let head = [true; NUM_CLASSES];
        a.add_image(&contains, &inferred, Some(&head));
        a.add_image(&contains, &[false; NUM_CLASSES], None);
        assert_eq!(a.presence[15], [2, 1, 1, 0, 0, 0]);
        assert_eq!(a.presence[16], [0, 0, 0, 2, 1, 1]);
        assert!(a.table().contains("| bus | 0 | – | – | – | – | 2 | 50.0 / 50.0 | 0 | – / – |"), "{}", a.table());
    }

    #[test]
    fn saved_counts_load_back_and_a_broken_file_is_named() {
        let dir = std::env::temp_dir().join(format!("segda-pit-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Audit::load(&dir).unwrap(), None);
        let mut a = Audit::new();
        a.add_pixels(&[1, 2], &[1, 1]);
        a.save(&dir).unwrap();
        assert_eq!(Audit::load(&dir).unwrap(), Some(a));
        assert!(std::fs::read_to_string(dir.join("pit_pseudo_labels.md")).unwrap().contains("| sidewalk | 2 |"));
        std::fs::write(dir.join("pit_pseudo_labels.json"), "{\"confusion\": []}").unwrap();
        let e = Audit::load(&dir).unwrap_err().to_string();
        assert!(e.contains("pit_pseudo_labels.json"), "{e}");
        // a confusion of the wrong shape is refused as it is read, naming the file
        let short = "{\"confusion\": {\"protocol\": 19, \"counts\": [1, 2]}, \"presence\": []}";
        std::fs::write(dir.join("pit_pseudo_labels.json"), short).unwrap();
        let e = Audit::load(&dir).unwrap_err().to_string();
        assert!(e.contains("pit_pseudo_labels.json") && e.contains("found 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
