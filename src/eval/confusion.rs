//! Confusion matrix over a whole evaluation set → per-class IoU, mIoU, pixel accuracy.
//!
//! Matches cityscapesscripts' `evalPixelLevelSemanticLabeling`: ground-truth pixels of ignored
//! classes are not counted at all; a prediction of an ignored id is a miss (a false negative of
//! the true class, a false positive of nothing); IoU = TP / (TP + FP + FN); a class with
//! TP + FP + FN = 0 has no score (NaN) and is left out of the mean (`averageScoreClasses`).
use crate::data::classes::{Protocol, CLASS_NAMES, NUM_CLASSES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rows: ground-truth trainId; columns: predicted trainId, plus one column for "void"
/// predictions (any id outside the evaluated classes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Counts")]
pub struct Confusion {
    pub protocol: Protocol,
    counts: Vec<u64>,
}

const COLS: usize = NUM_CLASSES + 1;

/// A confusion matrix as read from a file, before its shape is checked.
#[derive(Deserialize)]
struct Counts {
    protocol: Protocol,
    counts: Vec<u64>,
}

impl TryFrom<Counts> for Confusion {
    type Error = String;
    fn try_from(c: Counts) -> Result<Self, String> {
        let want = NUM_CLASSES * COLS;
        if c.counts.len() != want {
            return Err(format!(
                "expected {want} counts ({NUM_CLASSES} classes × {COLS} columns), found {}",
                c.counts.len()
            ));
        }
        Ok(Confusion { protocol: c.protocol, counts: c.counts })
    }
}

impl Confusion {
    pub fn new(protocol: Protocol) -> Self {
        Confusion { protocol, counts: vec![0; NUM_CLASSES * COLS] }
    }

    /// Add one image: `gt` and `pred` are trainIds of equal length (255 / unknown = ignore/void).
    pub fn add(&mut self, gt: &[u8], pred: &[u8]) {
        assert_eq!(gt.len(), pred.len(), "prediction and label sizes differ");
        let mask = self.protocol.mask();
        for (&g, &p) in gt.iter().zip(pred) {
            if (g as usize) < NUM_CLASSES && mask[g as usize] {
                let col = if (p as usize) < NUM_CLASSES && mask[p as usize] { p as usize } else { NUM_CLASSES };
                self.counts[g as usize * COLS + col] += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Confusion) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn get(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * COLS + pred]
    }

    /// The pixels of true class `c`, whatever was predicted (void included).
    pub fn true_pixels(&self, c: usize) -> u64 {
        (0..COLS).map(|p| self.get(c, p)).sum()
    }

    /// The pixels predicted `c`, over the evaluated true classes.
    pub fn predicted_pixels(&self, c: usize) -> u64 {
        (0..NUM_CLASSES).map(|g| self.get(g, c)).sum()
    }

    /// IoU of trainId `c` in [0, 1]; None when the class is neither present nor predicted.
    pub fn iou(&self, c: usize) -> Option<f64> {
        let tp = self.get(c, c);
        let fn_ = self.true_pixels(c) - tp;
        let fp = self.predicted_pixels(c) - tp;
        let denom = tp + fp + fn_;
        (denom > 0).then(|| tp as f64 / denom as f64)
    }

    /// Evaluated pixels (ground truth of an evaluated class).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn report(&self, protocol: Protocol) -> EvalReport {
        let mut c = self.clone();
        if protocol != self.protocol {
            // a narrower protocol: drop rows of classes it does not evaluate and turn predictions
            // of those classes into void (they cannot be right)
            c = Confusion::new(protocol);
            let mask = protocol.mask();
            for g in 0..NUM_CLASSES {
                for p in 0..COLS {
                    if mask[g] {
                        let col = if p < NUM_CLASSES && mask[p] { p } else { NUM_CLASSES };
                        c.counts[g * COLS + col] += self.get(g, p);
                    }
                }
            }
        }
        let mut per_class = BTreeMap::new();
        let mut scores = Vec::new();
        for &k in protocol.classes() {
            let iou = c.iou(k as usize).map(|v| v * 100.0);
            per_class.insert(CLASS_NAMES[k as usize].to_string(), iou);
            scores.extend(iou);
        }
        let miou = if scores.is_empty() { f64::NAN } else { scores.iter().sum::<f64>() / scores.len() as f64 };
        let total = c.total();
        let correct: u64 = (0..NUM_CLASSES).map(|k| c.get(k, k)).sum();
        EvalReport {
            protocol,
            miou,
            per_class,
            pixel_acc: if total > 0 { 100.0 * correct as f64 / total as f64 } else { f64::NAN },
            pixels: total,
        }
    }
}

/// Scores in percent, as papers report them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub protocol: Protocol,
    /// Mean IoU over the protocol's classes that have a score.
    #[serde(with = "nan_as_null")]
    pub miou: f64,
    /// Class name → IoU (null when the class is neither present nor predicted).
    pub per_class: BTreeMap<String, Option<f64>>,
    #[serde(with = "nan_as_null")]
    pub pixel_acc: f64,
    pub pixels: u64,
}

impl EvalReport {
    /// Per-class IoU in the protocol's class order.
    pub fn ordered(&self) -> Vec<(&'static str, Option<f64>)> {
        self.protocol
            .classes()
            .iter()
            .map(|&k| (CLASS_NAMES[k as usize], self.per_class.get(CLASS_NAMES[k as usize]).copied().flatten()))
            .collect()
    }

    /// Markdown table rows (class | IoU), then mIoU and pixel accuracy.
    pub fn markdown_rows(&self) -> String {
        let mut s = String::new();
        for (name, iou) in self.ordered() {
            s.push_str(&format!("| {name} | {} |\n", iou.map_or("n/a".to_string(), |v| format!("{v:.2}"))));
        }
        s.push_str(&format!(
            "| **mIoU ({})** | **{:.2}** |\n| pixel acc. | {:.2} |\n",
            self.protocol, self.miou, self.pixel_acc
        ));
        s
    }

    /// A two-column text table (class, IoU) ending with mIoU and pixel accuracy.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (name, iou) in self.ordered() {
            let v = iou.map_or("    n/a".to_string(), |v| format!("{v:7.2}"));
            s.push_str(&format!("  {name:<14} {v}\n"));
        }
        s.push_str(&format!("  {:<14} {:7.2}   ({} classes)\n", "mIoU", self.miou, self.protocol));
        s.push_str(&format!("  {:<14} {:7.2}\n", "pixel acc.", self.pixel_acc));
        s
    }
}

mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn hand_computed_iou() {
        // gt:   0 0 0 1 1 255 2
        // pred: 0 0 1 1 0   1 255(void)
        let gt = [0u8, 0, 0, 1, 1, 255, 2];
        let pr = [0u8, 0, 1, 1, 0, 1, 255];
        let mut c = Confusion::new(Protocol::P19);
        c.add(&gt, &pr);
        // class 0: tp 2, fn 1, fp 1 -> 2/4 ; class 1: tp 1, fn 1, fp 1 (ignored gt not counted) -> 1/3
        // class 2: tp 0, fn 1 (void prediction), fp 0 -> 0
        approx(c.iou(0).unwrap(), 0.5);
        approx(c.iou(1).unwrap(), 1.0 / 3.0);
        approx(c.iou(2).unwrap(), 0.0);
        assert_eq!(c.iou(3), None);
        let r = c.report(Protocol::P19);
        approx(r.miou, 100.0 * (0.5 + 1.0 / 3.0 + 0.0) / 3.0);
        approx(r.pixel_acc, 100.0 * 3.0 / 6.0);
        assert_eq!(r.per_class["wall"], None);
    }

    #[test]
    fn class_predicted_but_absent_scores_zero() {
        let mut c = Confusion::new(Protocol::P19);
        c.add(&[0, 0, 0], &[0, 0, 13]);
        approx(c.iou(13).unwrap(), 0.0);
        approx(c.report(Protocol::P19).miou, 100.0 * (2.0 / 3.0 + 0.0) / 2.0);
    }

    #[test]
    fn ground_truth_against_itself_is_100() {
        let gt: Vec<u8> = (0..19u8).chain([255, 255]).collect();
        let mut c = Confusion::new(Protocol::P19);
        c.add(&gt, &gt);
        let r = c.report(Protocol::P19);
        approx(r.miou, 100.0);
        approx(r.pixel_acc, 100.0);
    }

    #[test]
    fn narrower_protocols_ignore_other_classes() {
        // terrain (9) is not a SYNTHIA class: its ground truth is ignored, predicting it is void
        let gt = [9u8, 0, 0, 3];
        let pr = [0u8, 9, 0, 3];
        let mut c = Confusion::new(Protocol::P19);
        c.add(&gt, &pr);
        let r16 = c.report(Protocol::P16);
        approx(r16.per_class["road"].unwrap(), 50.0); // tp 1, fn 1 (void), fp 0 (terrain gt ignored)
        approx(r16.per_class["wall"].unwrap(), 100.0);
        let r13 = c.report(Protocol::P13);
        assert!(!r13.per_class.contains_key("wall"));
        approx(r13.miou, 50.0);
        // evaluating directly under 16 gives the same numbers
        let mut d = Confusion::new(Protocol::P16);
        d.add(&gt, &pr);
        assert_eq!(d.report(Protocol::P16), r16);
    }

    #[test]
    fn json_writes_missing_scores_as_null() {
        let c = Confusion::new(Protocol::P13);
        let j = serde_json::to_value(c.report(Protocol::P13)).unwrap();
        assert!(j["miou"].is_null());
        assert!(j["per_class"]["road"].is_null());
        assert_eq!(j["protocol"], 13);
    }
}
