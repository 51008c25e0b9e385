//! The network's configuration (`[model]`): backbone, levels, BatchNorm mode, weights.
use super::{mobilenet, resnet, vgg};
use crate::data::transform::Normalize;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    Resnet18,
    Resnet50,
    Resnet101,
    MobilenetV2,
    Vgg16,
}

impl BackboneKind {
    pub const ALL: [&'static str; 5] = ["resnet18", "resnet50", "resnet101", "mobilenet_v2", "vgg16"];
}

/// How BatchNorm layers behave during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnMode {
    /// Running statistics, affine parameters not trained (the DeepLab-v2 protocol as specified).
    Frozen,
    /// Batch statistics (running stats updated), affine not trained: what the AdaptSegNet and
    /// ADVENT code actually does, since it calls `model.train()` on a batch of one.
    FrozenAffine,
    /// Everything trained (networks trained from scratch).
    Train,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub backbone: BackboneKind,
    /// Auxiliary classifier on the layer3-level features (AdaptSegNet/ADVENT multi-level).
    pub multi_level: bool,
    /// ASPP-v2 branches summed: 4 (DeepLab-v2) or 2 (AdaptSegNet's code).
    pub aspp_branches: usize,
    /// MobileNetV2 only: 8 or 16 (ResNets are always 8, VGG16-FCN8s 8 via skips).
    pub output_stride: usize,
    /// Channel multiplier (1.0 = the published network).
    pub width_mult: f64,
    /// BatchNorm handling. Default: `frozen` when `init` or `train.init_from` is set, else `train`.
    pub bn: Option<BnMode>,
    /// ResNet bottleneck stride in the 1×1 conv (Caffe DeepLab weights) instead of the 3×3
    /// (torchvision weights).
    pub stride_in_1x1: bool,
    /// Weights to start from: `"imagenet"` (the ImageNet weights segda fetches itself: MobileNetV2),
    /// an ImageNet/DeepLab .pth, a .safetensors or a segda .bpk; `"none"` = random.
    pub init: Option<Init>,
    /// Input normalisation. Default: ImageNet RGB for MobileNetV2, Caffe BGR otherwise.
    pub normalize: Option<Normalize>,
}

/// The weights `model.init` names: a file, or the ImageNet weights segda fetches itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Imagenet,
    File(PathBuf),
}

impl Serialize for Init {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Init::Imagenet => s.serialize_str("imagenet"),
            Init::File(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Init {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PathBuf::deserialize(d)?;
        Ok(if p == Path::new("imagenet") { Init::Imagenet } else { Init::File(p) })
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            backbone: BackboneKind::Resnet101,
            multi_level: true,
            aspp_branches: 4,
            output_stride: 8,
            width_mult: 1.0,
            bn: None,
            stride_in_1x1: true,
            init: None,
            normalize: None,
        }
    }
}

impl ModelConfig {
    pub fn normalize(&self) -> Normalize {
        self.normalize.unwrap_or(match self.backbone {
            BackboneKind::MobilenetV2 => Normalize::ImagenetRgb,
            _ => Normalize::CaffeBgr,
        })
    }
    /// Channels of the main feature level (the classifier's input).
    pub fn feature_channels(&self) -> usize {
        let width = (64.0 * self.width_mult).round().max(1.0) as usize;
        match self.backbone {
            BackboneKind::Resnet18 => {
                resnet::ResNetConfig::depth(18).expect("known").with_width(width).out_channels().1
            }
            BackboneKind::Resnet50 | BackboneKind::Resnet101 => {
                resnet::ResNetConfig::depth(50).expect("known").with_width(width).out_channels().1
            }
            BackboneKind::MobilenetV2 => {
                mobilenet::MobileNetV2Config::new().with_width_mult(self.width_mult).out_channels().1
            }
            BackboneKind::Vgg16 => vgg::Vgg16Config::new().with_width_mult(self.width_mult).fc_channels(),
        }
    }

    /// `bn`, or by default frozen when the network starts from trained weights (`model.init`,
    /// or another run's checkpoint: `started_from_run`) and trained otherwise. Statistics of
    /// batches of 1–2 would overwrite the trained ones within a few iterations.
    pub fn bn_mode(&self, started_from_run: bool) -> BnMode {
        self.bn.unwrap_or(if self.init.is_some() || started_from_run { BnMode::Frozen } else { BnMode::Train })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batchnorm_is_frozen_by_default_whenever_training_starts_from_weights() {
        let scratch = ModelConfig::default();
        assert_eq!(scratch.bn_mode(false), BnMode::Train);
        // continuing another run (e.g. adaptation from the source-only model) keeps its statistics
        assert_eq!(scratch.bn_mode(true), BnMode::Frozen);
        let pretrained = ModelConfig { init: Some(Init::File("w.safetensors".into())), ..Default::default() };
        assert_eq!(pretrained.bn_mode(false), BnMode::Frozen);
        let explicit = ModelConfig { bn: Some(BnMode::FrozenAffine), ..Default::default() };
        assert_eq!(explicit.bn_mode(true), BnMode::FrozenAffine);
    }
}
