//! VGG16-FCN8s, the second backbone of LSE and APODA. Convolutions use padding 1 (no
//! FCN's padding-100 + crop trick, which only re-aligns what padding 1 keeps aligned); fc6/fc7
//! are 7×7 and 1×1 convolutions; the skip scores use FCN-8s-at-once's 0.01 / 0.0001 scaling and
//! the fixed bilinear upsampling it trains with.
use super::feats::Feats;
use crate::nn::layers::{conv, conv_forward, conv_normal, relu};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;

/// Convolutions per block of VGG16.
const BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];

#[derive(Config, Debug)]
pub struct Vgg16Config {
    /// Channel multiplier (1.0 = the real network; smaller for tests).
    #[config(default = 1.0)]
    pub width_mult: f64,
}

impl Vgg16Config {
    fn ch(&self, c: usize) -> usize {
        ((c as f64 * self.width_mult).round() as usize).max(4)
    }
    pub fn fc_channels(&self) -> usize {
        self.ch(4096)
    }
    /// Channels of (pool3, pool4).
    pub fn skip_channels(&self) -> (usize, usize) {
        (self.ch(256), self.ch(512))
    }
    pub fn init(&self, device: &Device) -> Vgg16 {
        let widths = [64, 128, 256, 512, 512].map(|c| self.ch(c));
        let mut convs = Vec::new();
        let mut cin = 3;
        for (b, &n) in BLOCKS.iter().enumerate() {
            for _ in 0..n {
                convs.push(conv(cin, widths[b], 3).init(device));
                cin = widths[b];
            }
        }
        let fc = self.fc_channels();
        Vgg16 {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).with_ceil_mode(true).init(),
            fc6: conv(cin, fc, 7).init(device),
            fc7: conv(fc, fc, 1).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Vgg16 {
    /// The 13 convolutions (torchvision `features.{0,2,5,…,28}`).
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub fc6: Conv2d,
    pub fc7: Conv2d,
}

impl Vgg16 {
    pub fn forward(&self, x: Tensor<4>) -> Feats {
        let mut x = x;
        let mut k = 0;
        let mut skips = Vec::new();
        for (b, &n) in BLOCKS.iter().enumerate() {
            for _ in 0..n {
                x = relu(conv_forward(&self.convs[k], x));
                k += 1;
            }
            x = self.pool.forward(x);
            if b == 2 || b == 3 {
                skips.push(x.clone());
            }
        }
        // Dropout of fc6/fc7 is left out: with batch 1 and frozen statistics it only adds noise
        // to the adaptation losses; say so in docs/methods.
        let x = relu(conv_forward(&self.fc7, relu(conv_forward(&self.fc6, x))));
        skips.reverse(); // [pool4, pool3]
        Feats { main: x, aux: None, skips }
    }
}

#[derive(Module, Debug)]
pub struct Fcn8Head {
    pub score_fr: Conv2d,
    pub score_pool4: Conv2d,
    pub score_pool3: Conv2d,
}

impl Fcn8Head {
    pub fn new(cfg: &Vgg16Config, classes: usize, device: &Device) -> Self {
        let (c3, c4) = cfg.skip_channels();
        Fcn8Head {
            score_fr: conv_normal(cfg.fc_channels(), classes, 1, 1, 0.01, device),
            score_pool4: conv_normal(c4, classes, 1, 1, 0.01, device),
            score_pool3: conv_normal(c3, classes, 1, 1, 0.01, device),
        }
    }

    /// Stride-8 logits.
    pub fn forward(&self, f: &Feats) -> Tensor<4> {
        let up = |x: Tensor<4>, like: &Tensor<4>| {
            let [_, _, h, w] = like.dims();
            crate::nn::resize::bilinear_half_pixel(x, [h, w])
        };
        let s = conv_forward(&self.score_fr, f.main.clone());
        let p4 = conv_forward(&self.score_pool4, f.skips[0].clone().mul_scalar(0.01));
        let s = up(s, &p4) + p4;
        let p3 = conv_forward(&self.score_pool3, f.skips[1].clone().mul_scalar(0.0001));
        up(s, &p3) + p3
    }
}
