//! DeepLab-v2's classifier: the sum of parallel dilated 3×3 convolutions (ASPP-v2).
use crate::nn::layers::{conv_forward, conv_normal};
use burn::nn::conv::Conv2d;
use burn::prelude::*;

pub const DILATIONS: [usize; 4] = [6, 12, 18, 24];

#[derive(Module, Debug)]
pub struct AsppV2 {
    /// `conv2d_list` in the reference code; always four, so checkpoints load either way.
    pub convs: Vec<Conv2d>,
    /// Branches summed: 4 (DeepLab-v2) or 2 (AdaptSegNet's code, which returns early).
    pub branches: usize,
}

impl AsppV2 {
    pub fn new(cin: usize, classes: usize, branches: usize, device: &Device) -> Self {
        let convs = DILATIONS.iter().map(|&d| conv_normal(cin, classes, 3, d, 0.01, device)).collect();
        AsppV2 { convs, branches: branches.clamp(1, 4) }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = conv_forward(&self.convs[0], x.clone());
        for c in &self.convs[1..self.branches] {
            out = out + conv_forward(c, x.clone());
        }
        out
    }
}
