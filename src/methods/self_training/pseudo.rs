//! The teacher's pseudo-labels of a target batch, with their confidence.
use crate::model::SegNet;
use burn::prelude::*;

/// Teacher predictions of a target batch at input size.
pub struct Pseudo {
    /// argmax class per pixel, [n·h·w]
    pub labels: Vec<u8>,
    /// max probability per pixel
    pub conf: Vec<f32>,
    /// per image: the share of pixels at least `threshold` confident (DAFormer's weight)
    pub weight: Vec<f32>,
}

/// Teacher pseudo-labels of a batch at input size, with DAFormer's per-image confidence weight.
pub fn pseudo_labels(teacher: &SegNet, x: Tensor<4>, threshold: f64) -> Pseudo {
    let [n, _, h, w] = x.dims();
    let logits = crate::nn::losses::upsample(teacher.forward(x).main, [h, w]);
    let p = crate::nn::losses::probs(logits);
    let conf: Vec<f32> = p.clone().max_dim(1).into_data().iter::<f32>().collect();
    let labels = label_bytes(p.argmax(1));
    let weight = (0..n)
        .map(|i| {
            conf[i * h * w..(i + 1) * h * w].iter().filter(|&&c| c as f64 >= threshold).count() as f32 / (h * w) as f32
        })
        .collect();
    Pseudo { labels, conf, weight }
}

/// A label map's classes as bytes (trainIds and 255 fit), on the host.
pub fn label_bytes<const D: usize>(y: Tensor<D, Int>) -> Vec<u8> {
    y.into_data().iter::<i64>().map(|v| v as u8).collect()
}
