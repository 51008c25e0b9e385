//! The pull loss: embeddings through a projection head, a per-class memory of source keys, and
//! a class-weighted InfoNCE over queries and keys sampled from label maps at feature resolution.
use crate::data::classes::{IGNORE, NUM_CLASSES};
use crate::nn::layers::{conv, materialize};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// 1×1 conv → ReLU → 1×1 conv, L2-normalised over channels.
#[derive(Module, Debug)]
pub struct ProjHead {
    pub convs: Vec<Conv2d>,
}

impl ProjHead {
    pub fn new(cin: usize, hidden: usize, dim: usize, device: &Device) -> Self {
        materialize(ProjHead { convs: vec![conv(cin, hidden, 1).init(device), conv(hidden, dim, 1).init(device)] })
    }

    pub fn forward(&self, f: Tensor<4>) -> Tensor<4> {
        let e = self.convs[1].forward(relu(self.convs[0].forward(f)));
        e.clone() / e.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12)
    }
}

/// Multi-positive InfoNCE: for a query q of class c with positives P and negatives N among the
/// keys, the mean over p ∈ P of −log(e^{q·p/τ} / (e^{q·p/τ} + Σ_{n∈N} e^{q·n/τ})). Queries are
/// weighted by `class_w[c]`; the result is the weighted mean over queries that have a positive
/// (None when none has).
pub fn info_nce(
    q: Tensor<2>,
    q_cls: &[u8],
    keys: Tensor<2>,
    k_cls: &[u8],
    tau: f64,
    class_w: &[f32],
) -> Option<Tensor<1>> {
    let device = q.device();
    let (nq, nk) = (q_cls.len(), k_cls.len());
    let mut pos = vec![0f32; nq * nk];
    let mut w = vec![0f32; nq];
    for (i, &c) in q_cls.iter().enumerate() {
        let mut any = false;
        for (j, &k) in k_cls.iter().enumerate() {
            if k == c {
                pos[i * nk + j] = 1.0;
                any = true;
            }
        }
        // a query with no positive key has nothing to be pulled to
        w[i] = if any { class_w[c as usize] } else { 0.0 };
    }
    let wsum: f32 = w.iter().sum();
    if wsum <= 0.0 {
        return None;
    }
    let pos = Tensor::<2>::from_data(TensorData::new(pos, [nq, nk]), &device);
    let neg = pos.clone().neg().add_scalar(1.0);
    let s = q.matmul(keys.transpose()).div_scalar(tau); // [nq, nk]
                                                        // |s| ≤ 1/τ: the exponentials stay finite in f32 for τ ≥ 0.02
    let e = s.clone().exp();
    let neg_sum = (e.clone() * neg).sum_dim(1); // [nq, 1]
    let per_pair = (e + neg_sum).log() - s; // −log(e^s / (e^s + Σneg))
    let per_query = (per_pair * pos.clone()).sum_dim(1) / pos.sum_dim(1).clamp_min(1.0);
    let w = Tensor::<2>::from_data(TensorData::new(w, [nq, 1]), &device);
    Some((per_query * w).sum().div_scalar(wsum as f64))
}

/// FIFO queues of source key embeddings, one per class.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassMemory {
    pub size: usize,
    pub queues: Vec<VecDeque<Vec<f32>>>,
}

impl ClassMemory {
    pub fn new(size: usize) -> Self {
        ClassMemory { size, queues: vec![VecDeque::new(); NUM_CLASSES] }
    }

    pub fn push(&mut self, c: usize, e: Vec<f32>) {
        let q = &mut self.queues[c];
        q.push_back(e);
        while q.len() > self.size {
            q.pop_front();
        }
    }

    /// Every stored embedding with its class.
    pub fn entries(&self) -> (Vec<f32>, Vec<u8>) {
        let mut v = Vec::new();
        let mut c = Vec::new();
        for (k, q) in self.queues.iter().enumerate() {
            for e in q {
                v.extend_from_slice(e);
                c.push(k as u8);
            }
        }
        (v, c)
    }
}

/// Labels at feature resolution (nearest: the pixel at each cell's top-left-aligned centre).
pub fn labels_at(labels: &[u8], n: usize, [h, w]: [usize; 2], [fh, fw]: [usize; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * fh * fw);
    for i in 0..n {
        for y in 0..fh {
            let sy = ((y as f64 + 0.5) * h as f64 / fh as f64) as usize;
            for x in 0..fw {
                let sx = ((x as f64 + 0.5) * w as f64 / fw as f64) as usize;
                out.push(labels[i * h * w + sy.min(h - 1) * w + sx.min(w - 1)]);
            }
        }
    }
    out
}

/// Rows [n·h·w, D] of an embedding map [n, D, h, w].
pub(super) fn rows(e: Tensor<4>) -> Tensor<2> {
    let [n, d, h, w] = e.dims();
    e.permute([0, 2, 3, 1]).reshape([n * h * w, d])
}

pub(super) fn pick(rows: Tensor<2>, idx: &[usize]) -> Tensor<2> {
    let device = rows.device();
    let i: Vec<i64> = idx.iter().map(|&v| v as i64).collect();
    rows.select(0, Tensor::<1, Int>::from_data(TensorData::new(i, [idx.len()]), &device))
}

/// Up to `k` random positions per class among `labels` where `ok`.
pub(super) fn sample_per_class(
    labels: &[u8],
    ok: impl Fn(usize) -> bool,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
    for (i, &c) in labels.iter().enumerate() {
        if c != IGNORE && (c as usize) < NUM_CLASSES && ok(i) {
            by_class[c as usize].push(i);
        }
    }
    let mut out = Vec::new();
    for mut v in by_class {
        v.shuffle(rng);
        out.extend(v.into_iter().take(k));
    }
    out
}

/// Up to `k` random positions overall among valid labels where `ok`.
pub(super) fn sample(labels: &[u8], ok: impl Fn(usize) -> bool, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut v: Vec<usize> =
        (0..labels.len()).filter(|&i| labels[i] != IGNORE && (labels[i] as usize) < NUM_CLASSES && ok(i)).collect();
    v.shuffle(rng);
    v.truncate(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: Vec<f32>, r: usize, c: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [r, c]), &Device::flex())
    }

    #[test]
    fn info_nce_matches_a_hand_computation() {
        // two unit queries, three unit keys in 2-D
        let q = t2(vec![1.0, 0.0, 0.0, 1.0], 2, 2);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let k = t2(vec![1.0, 0.0, s, s, 0.0, 1.0], 3, 2);
        let (qc, kc) = ([0u8, 1], [0u8, 0, 1]);
        let tau = 0.5;
        let w = vec![1.0f32; NUM_CLASSES];
        let got = crate::nn::losses::value(&info_nce(q, &qc, k, &kc, tau, &w).unwrap());
        // query 0 (class 0): positives k0 (sim 1), k1 (sim .707); negative k2 (sim 0)
        let e = |x: f64| (x / tau).exp();
        let s = 0.5f64.sqrt();
        let l0 = 0.5 * (-(e(1.0) / (e(1.0) + e(0.0))).ln() - (e(s) / (e(s) + e(0.0))).ln());
        // query 1 (class 1): positive k2 (sim 1); negatives k0 (0), k1 (.707)
        let l1 = -(e(1.0) / (e(1.0) + e(0.0) + e(s))).ln();
        let want = (l0 + l1) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // class weights weigh the queries; a query without positives is left out
        let mut w2 = vec![1.0f32; NUM_CLASSES];
        w2[1] = 3.0;
        let q = t2(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 3, 2);
        let k = t2(vec![1.0, 0.0, s as f32, s as f32, 0.0, 1.0], 3, 2);
        let got = crate::nn::losses::value(&info_nce(q, &[0, 1, 7], k, &kc, tau, &w2).unwrap());
        let want = (l0 + 3.0 * l1) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(info_nce(t2(vec![1.0, 0.0], 1, 2), &[5], t2(vec![1.0, 0.0], 1, 2), &[0], tau, &w).is_none());
    }

    #[test]
    fn pulling_a_query_to_its_class_lowers_the_loss() {
        let k = t2(vec![1.0, 0.0, 0.0, 1.0], 2, 2);
        let w = vec![1.0f32; NUM_CLASSES];
        let far =
            crate::nn::losses::value(&info_nce(t2(vec![0.0, 1.0], 1, 2), &[0], k.clone(), &[0, 1], 0.1, &w).unwrap());
        let near = crate::nn::losses::value(&info_nce(t2(vec![1.0, 0.0], 1, 2), &[0], k, &[0, 1], 0.1, &w).unwrap());
        assert!(near < 0.01 && far > 5.0, "near {near} far {far}");
    }

    #[test]
    fn memory_is_a_bounded_fifo_per_class() {
        let mut m = ClassMemory::new(2);
        for i in 0..3 {
            m.push(4, vec![i as f32]);
        }
        m.push(1, vec![9.0]);
        let (v, c) = m.entries();
        assert_eq!(c, vec![1, 4, 4]);
        assert_eq!(v, vec![9.0, 1.0, 2.0]);
    }

    #[test]
    fn labels_are_taken_at_feature_cell_centres() {
        // 1 image 4×4 with a left/right split, features 2×2
        let l: Vec<u8> = (0..16).map(|i| if i % 4 < 2 { 1 } else { 2 }).collect();
        assert_eq!(labels_at(&l, 1, [4, 4], [2, 2]), vec![1, 2, 1, 2]);
    }
}
