//! The pivots — one embedding per class shared across domains, an EMA of source class
//! centroids — and the pixel–pivot relation maps computed from them.
use crate::data::classes::NUM_CLASSES;
use crate::error::{Error, Result};
use crate::methods::ass::class_mean_features;
use crate::methods::state::{load_json, save_json};
use burn::prelude::*;
use std::path::Path;

/// [K, C] pivots (rows of unseen classes stay zero) and whether each was seen.
#[derive(Clone)]
pub(super) struct Pivots {
    pub(super) rows: Vec<Vec<f32>>,
    pub(super) seen: Vec<bool>,
    channels: usize,
}

impl Pivots {
    pub(super) fn new(channels: usize) -> Self {
        Pivots { rows: vec![vec![0.0; channels]; NUM_CLASSES], seen: vec![false; NUM_CLASSES], channels }
    }

    fn tensor(&self, device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = self.rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [NUM_CLASSES, self.channels]), device)
    }

    /// Relation logits cos(F, pivot_c) / τ, [N, K, h, w].
    pub(super) fn relation(&self, f: Tensor<4>, temperature: f64) -> Tensor<4> {
        let [n, c, h, w] = f.dims();
        let fn_ = f.clone() / f.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        let pv = self.tensor(&fn_.device());
        let pn = pv.clone() / pv.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        let rel = pn.unsqueeze_dim::<3>(0).expand([n, NUM_CLASSES, c]).matmul(fn_.reshape([n, c, h * w]));
        rel.reshape([n, NUM_CLASSES, h, w]).div_scalar(temperature)
    }

    /// The teacher's pivots after `student`'s: a copy the first time, then θ ← a·θ + (1 − a)·θ_s
    /// (a = 1: frozen), as the teacher network's weights move.
    pub(super) fn follow(teacher: Option<Pivots>, student: &Pivots, a: f64) -> Pivots {
        match teacher {
            None => student.clone(),
            Some(t) if a >= 1.0 => t,
            Some(mut t) => {
                let a = a as f32;
                for (tr, sr) in t.rows.iter_mut().zip(&student.rows) {
                    for (p, &x) in tr.iter_mut().zip(sr) {
                        *p = a * *p + (1.0 - a) * x;
                    }
                }
                t.seen = student.seen.clone();
                t
            }
        }
    }

    /// As JSON: the rows and which classes were seen.
    pub(super) fn save(&self, p: &Path) -> Result<()> {
        save_json(&(&self.rows, &self.seen), p)
    }

    pub(super) fn load(&mut self, p: &Path) -> Result<()> {
        let (rows, seen): (Vec<Vec<f32>>, Vec<bool>) = load_json(p)?;
        if rows.len() != NUM_CLASSES || seen.len() != NUM_CLASSES || rows.iter().any(|r| r.len() != self.channels) {
            return Err(Error::format(p, format!("expected {NUM_CLASSES} pivots of {} channels", self.channels)));
        }
        (self.rows, self.seen) = (rows, seen);
        Ok(())
    }

    /// Fold the class means of a labelled batch's features in (a class's first mean sets it).
    pub(super) fn update(&mut self, f: Tensor<4>, y: Tensor<3, Int>, momentum: f64) {
        let (v, classes) = class_mean_features(f.detach(), y);
        let vals: Vec<f32> = v.into_data().iter::<f32>().collect();
        let m = momentum as f32;
        for (i, &k) in classes.iter().enumerate() {
            let row = &vals[i * self.channels..(i + 1) * self.channels];
            if self.seen[k] {
                for (p, &x) in self.rows[k].iter_mut().zip(row) {
                    *p = m * *p + (1.0 - m) * x;
                }
            } else {
                self.rows[k] = row.to_vec();
                self.seen[k] = true;
            }
        }
    }
}
