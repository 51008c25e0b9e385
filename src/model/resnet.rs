//! Dilated ResNet-{18,50,101} as in DeepLab-v2: layer3 dilation 2, layer4 dilation 4, output
//! stride 8; the Caffe variant strides in the first 1×1 of a bottleneck, torchvision in the 3×3.
use crate::nn::layers::{bn, conv, conv_bn, relu, relu_residual};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Blocks per stage: [2,2,2,2] (18), [3,4,6,3] (50), [3,4,23,3] (101).
    pub blocks: [usize; 4],
    /// Bottleneck blocks (50/101) or basic blocks (18).
    pub bottleneck: bool,
    /// Channels of the stem and of stage 1 (64 in the real networks; smaller for tests).
    #[config(default = 64)]
    pub width: usize,
    /// Caffe/DeepLab style: the stride sits in the first 1×1 conv of a bottleneck.
    #[config(default = true)]
    pub stride_in_1x1: bool,
}

impl ResNetConfig {
    pub fn depth(depth: usize) -> Option<Self> {
        match depth {
            18 => Some(Self::new([2, 2, 2, 2], false)),
            50 => Some(Self::new([3, 4, 6, 3], true)),
            101 => Some(Self::new([3, 4, 23, 3], true)),
            _ => None,
        }
    }

    fn expansion(&self) -> usize {
        if self.bottleneck {
            4
        } else {
            1
        }
    }

    /// Channels of layer3 and layer4 outputs.
    pub fn out_channels(&self) -> (usize, usize) {
        (self.width * 4 * self.expansion(), self.width * 8 * self.expansion())
    }

    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.width;
        let mut inplanes = w;
        let mut stage = |planes: usize, n: usize, stride: usize, dilation: usize| {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let s = if i == 0 { stride } else { 1 };
                let down = i == 0 && (s != 1 || inplanes != planes * self.expansion() || dilation > 1);
                v.push(Block::new(self, inplanes, planes, s, dilation, down, device));
                inplanes = planes * self.expansion();
            }
            v
        };
        let layer1 = stage(w, self.blocks[0], 1, 1);
        let layer2 = stage(w * 2, self.blocks[1], 2, 1);
        let layer3 = stage(w * 4, self.blocks[2], 1, 2);
        let layer4 = stage(w * 8, self.blocks[3], 1, 4);
        ResNet {
            conv1: conv(3, w, 7).stride(2).no_bias().init(device),
            bn1: bn(w, device),
            // ceil_mode as in the DeepLab-v2 PyTorch ports (1024×512 → 129×65 features)
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_ceil_mode(true)
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A bottleneck (1×1, 3×3, 1×1) or basic (3×3, 3×3) residual block.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

impl Block {
    fn new(
        cfg: &ResNetConfig,
        cin: usize,
        planes: usize,
        stride: usize,
        d: usize,
        down: bool,
        device: &Device,
    ) -> Self {
        let out = planes * cfg.expansion();
        let downsample = down
            .then(|| Downsample { conv: conv(cin, out, 1).stride(stride).no_bias().init(device), bn: bn(out, device) });
        if cfg.bottleneck {
            let (s1, s3) = if cfg.stride_in_1x1 { (stride, 1) } else { (1, stride) };
            Block {
                conv1: conv(cin, planes, 1).stride(s1).no_bias().init(device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, 3).stride(s3).dilation(d).no_bias().init(device),
                bn2: bn(planes, device),
                conv3: Some(conv(planes, out, 1).no_bias().init(device)),
                bn3: Some(bn(out, device)),
                downsample,
            }
        } else {
            Block {
                conv1: conv(cin, planes, 3).stride(stride).dilation(d).no_bias().init(device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, 3).dilation(d).no_bias().init(device),
                bn2: bn(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(ds) => conv_bn(&ds.conv, &ds.bn, x.clone()),
            None => x.clone(),
        };
        let mut y = relu(conv_bn(&self.conv1, &self.bn1, x));
        y = conv_bn(&self.conv2, &self.bn2, y);
        if let (Some(c3), Some(b3)) = (&self.conv3, &self.bn3) {
            y = conv_bn(c3, b3, relu(y));
        }
        relu_residual(y, identity)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
}

impl ResNet {
    /// (layer3, layer4) features.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = self.maxpool.forward(relu(conv_bn(&self.conv1, &self.bn1, x)));
        for b in self.layer1.iter().chain(&self.layer2).chain(&self.layer3) {
            x = b.forward(x);
        }
        let l3 = x.clone();
        for b in &self.layer4 {
            x = b.forward(x);
        }
        (l3, x)
    }
}
