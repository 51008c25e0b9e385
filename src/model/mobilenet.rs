//! MobileNetV2 (torchvision layout) dilated to output stride 8 or 16, the light CPU backbone.
use crate::nn::layers::{conv, relu6, ConvBn};
use burn::prelude::*;

/// (expansion t, channels c, repeats n, stride s) of the 7 stages, as in the paper.
const STAGES: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Index (in `blocks`) of the last block of the stride-16 stage (96 channels): the auxiliary level.
pub const AUX_BLOCK: usize = 12;

#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// 8 or 16.
    #[config(default = 8)]
    pub output_stride: usize,
    /// Channel multiplier (1.0 for the ImageNet weights; smaller for tests).
    #[config(default = 1.0)]
    pub width_mult: f64,
}

fn make_divisible(v: f64, divisor: usize) -> usize {
    let new = ((v + divisor as f64 / 2.0) as usize / divisor * divisor).max(divisor);
    if (new as f64) < 0.9 * v {
        new + divisor
    } else {
        new
    }
}

impl MobileNetV2Config {
    pub fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.width_mult, 8)
    }

    /// Channels of the auxiliary (96) and main (320) feature levels.
    pub fn out_channels(&self) -> (usize, usize) {
        (self.channels(96), self.channels(320))
    }

    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let stem_c = self.channels(32);
        let stem = ConvBn::new(conv(3, stem_c, 3).stride(2).no_bias().init(device), device);
        let mut blocks = Vec::new();
        let (mut cin, mut current_stride, mut dilation) = (stem_c, 2, 1);
        for (t, c, n, s) in STAGES {
            let cout = self.channels(c);
            // past the output stride, a stage keeps the resolution and dilates instead
            // (torchvision's convention: every block of that stage uses the new dilation)
            let mut stage_stride = s;
            if s > 1 && current_stride >= self.output_stride {
                dilation *= s;
                stage_stride = 1;
            } else {
                current_stride *= s;
            }
            for i in 0..n {
                let stride = if i == 0 { stage_stride } else { 1 };
                blocks.push(InvertedResidual::new(cin, cout, stride, t, dilation, device));
                cin = cout;
            }
        }
        MobileNetV2 { stem, blocks }
    }
}

#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvBn>,
    pub dw: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

impl InvertedResidual {
    fn new(cin: usize, cout: usize, stride: usize, t: usize, d: usize, device: &Device) -> Self {
        let hidden = cin * t;
        InvertedResidual {
            expand: (t != 1).then(|| ConvBn::new(conv(cin, hidden, 1).no_bias().init(device), device)),
            dw: ConvBn::new(
                conv(hidden, hidden, 3).stride(stride).dilation(d).groups(hidden).no_bias().init(device),
                device,
            ),
            project: ConvBn::new(conv(hidden, cout, 1).no_bias().init(device), device),
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = relu6(e.forward(y));
        }
        y = self.project.forward(relu6(self.dw.forward(y)));
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// torchvision `features.0`.
    pub stem: ConvBn,
    /// torchvision `features.1` … `features.17`.
    pub blocks: Vec<InvertedResidual>,
}

impl MobileNetV2 {
    /// (96-channel, 320-channel) features.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = relu6(self.stem.forward(x));
        let mut aux = None;
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(x);
            if i == AUX_BLOCK {
                aux = Some(x.clone());
            }
        }
        (aux.expect("aux level exists"), x)
    }
}
