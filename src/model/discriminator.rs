//! Fully convolutional discriminators. AdaptSegNet's on output maps: 5 convs k4 s2 p1,
//! 64-128-256-512-1, LeakyReLU(0.2) between. A pointwise one (1×1 convs) on feature maps, whose
//! verdict at a position depends on that position's feature only (APODA's per-position attacks).
//! Both output logit maps (BCE-with-logits is applied by the methods).
use crate::nn::layers::conv;
use crate::nn::layers::leaky_relu;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct FcDiscriminator {
    pub convs: Vec<Conv2d>,
}

impl FcDiscriminator {
    pub fn new(cin: usize, ndf: usize, device: &Device) -> Self {
        let chans = [cin, ndf, ndf * 2, ndf * 4, ndf * 8, 1];
        let convs = chans.windows(2).map(|c| conv(c[0], c[1], 4).stride(2).init(device)).collect();
        FcDiscriminator { convs }
    }

    /// 1×1 convolutions cin → widths… → 1.
    pub fn pointwise(cin: usize, widths: &[usize], device: &Device) -> Self {
        let chans: Vec<usize> = std::iter::once(cin).chain(widths.iter().copied()).chain([1]).collect();
        let convs = chans.windows(2).map(|c| conv(c[0], c[1], 1).init(device)).collect();
        FcDiscriminator { convs }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let n = self.convs.len();
        let mut x = x;
        for (i, c) in self.convs.iter().enumerate() {
            x = crate::nn::layers::conv_forward(c, x);
            if i + 1 < n {
                x = leaky_relu(x, 0.2);
            }
        }
        x
    }
}
