//! Class re-weighting: a running estimate of how well the student predicts each class, and the
//! query weights that favour the classes it predicts worst.
use crate::data::classes::NUM_CLASSES;
use serde::{Deserialize, Serialize};

/// A running per-class score and the weights derived from it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassWeights {
    pub score: Vec<f64>,
    pub seen: Vec<bool>,
}

impl ClassWeights {
    pub fn new() -> Self {
        ClassWeights { score: vec![0.0; NUM_CLASSES], seen: vec![false; NUM_CLASSES] }
    }

    /// Fold in this batch's score of class c (the first observation initialises it).
    pub fn observe(&mut self, c: usize, v: f64, momentum: f64) {
        self.score[c] = if self.seen[c] { momentum * self.score[c] + (1.0 - momentum) * v } else { v };
        self.seen[c] = true;
    }

    /// w_c ∝ (1 − score_c)^γ over the classes seen so far, normalised to mean 1 over them;
    /// classes not seen yet get 1.
    pub fn weights(&self, gamma: f64) -> Vec<f32> {
        let raw: Vec<f64> = self.score.iter().map(|s| (1.0 - s).clamp(1e-3, 1.0).powf(gamma)).collect();
        let seen: Vec<f64> = raw.iter().zip(&self.seen).filter(|(_, &s)| s).map(|(r, _)| *r).collect();
        let mean = if seen.is_empty() { 1.0 } else { seen.iter().sum::<f64>() / seen.len() as f64 };
        raw.iter().zip(&self.seen).map(|(r, &s)| if s { (r / mean) as f32 } else { 1.0 }).collect()
    }
}

impl Default for ClassWeights {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_favour_hard_classes_and_average_one() {
        let mut cw = ClassWeights::new();
        cw.observe(0, 0.9, 0.5); // easy
        cw.observe(5, 0.3, 0.5); // hard
        cw.observe(11, 0.6, 0.5);
        let w = cw.weights(1.0);
        let seen = [w[0], w[5], w[11]];
        assert!((seen.iter().sum::<f32>() / 3.0 - 1.0).abs() < 1e-6, "{seen:?}");
        assert!(w[5] > w[11] && w[11] > w[0]);
        assert_eq!(w[3], 1.0, "unseen classes keep weight 1");
        // running estimate: momentum folds the new value in
        cw.observe(0, 0.1, 0.5);
        assert!((cw.score[0] - 0.5).abs() < 1e-12);
        // γ = 0: uniform
        assert!(cw.weights(0.0).iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }
}
