//! Segmentation networks split into `features` and `classify`, so methods can work on features.
pub mod act_ext;
pub mod aspp;
pub mod deeplab;
mod conv_direct;
pub mod conv_ext;
pub mod discriminator;
pub mod import;
pub mod layers;
pub mod mobilenet;
pub mod resnet;
pub mod softmax_ext;
pub mod vgg;
pub mod weights;

pub use deeplab::{Backbone, Head, SegNet};

/// f32 values on the CPU backend (with or without autodiff): where this crate's backend
/// extensions (`act_ext`, `conv_ext`, `softmax_ext`, `crate::resize`) replace burn's ops; the
/// extensions implement only Flex, so every other device keeps burn's. Never with
/// [`set_generic_ops`] on.
pub fn extension_applies<const D: usize>(x: &Tensor<D>) -> bool {
    !generic_ops() && x.device().inner() == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// 0: not decided yet (read `SEGDA_GENERIC_OPS`), 1: extensions on the CPU, 2: generic ops only.
static OP_PATH: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether every op takes burn's generic path, the one GPU backends run, on the CPU too
/// ([`set_generic_ops`], or the environment variable `SEGDA_GENERIC_OPS=1`).
pub fn generic_ops() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match OP_PATH.load(Relaxed) {
        0 => {
            let generic = std::env::var("SEGDA_GENERIC_OPS").is_ok_and(|v| v == "1" || v == "true");
            OP_PATH.store(if generic { 2 } else { 1 }, Relaxed);
            generic
        }
        path => path == 2,
    }
}

/// Routes every op of this process through burn's generic implementation (and the generic
/// bilinear resize) instead of the CPU extensions: how the GPU backends' code path is tested on
/// a machine without a GPU. Process-wide; set it before building networks.
pub fn set_generic_ops(on: bool) {
    OP_PATH.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
}

/// The values of a contiguous f32 Flex tensor, as the extensions' kernels read them.
pub(crate) fn f32s(t: &burn_flex::FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("backend extension: contiguous f32 tensors")
}

/// `t`, contiguous from offset 0: moved when it already is, so that `storage_mut` can then
/// update it in place where it is not shared (burn-flex's `to_contiguous` clones the handle,
/// which would make that update copy first).
pub(crate) fn contiguous_owned(t: burn_flex::FlexTensor) -> burn_flex::FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 { t } else { t.to_contiguous() }
}

use crate::data::transform::Normalize;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Per-level features of a batch.
#[derive(Clone, Debug)]
pub struct Feats {
    /// The classifier's input (layer4 / last MobileNetV2 block / fc7).
    pub main: Tensor<4>,
    /// The auxiliary level (layer3 / the 96-channel block), when the net is multi-level.
    pub aux: Option<Tensor<4>>,
    /// FCN skips [pool4, pool3] (VGG16-FCN8s only).
    pub skips: Vec<Tensor<4>>,
}

/// Per-level logits at feature resolution.
#[derive(Clone, Debug)]
pub struct Logits {
    pub main: Tensor<4>,
    pub aux: Option<Tensor<4>>,
}

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
    /// Weights to start from: an ImageNet/DeepLab .pth, a .safetensors or a segda .bpk.
    pub init: Option<PathBuf>,
    /// Input normalisation. Default: ImageNet RGB for MobileNetV2, Caffe BGR otherwise.
    pub normalize: Option<Normalize>,
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
            BackboneKind::Resnet18 => resnet::ResNetConfig::depth(18).expect("known").with_width(width).out_channels().1,
            BackboneKind::Resnet50 | BackboneKind::Resnet101 => resnet::ResNetConfig::depth(50).expect("known").with_width(width).out_channels().1,
            BackboneKind::MobilenetV2 => mobilenet::MobileNetV2Config::new().with_width_mult(self.width_mult).out_channels().1,
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
        let pretrained = ModelConfig { init: Some("w.safetensors".into()), ..Default::default() };
        assert_eq!(pretrained.bn_mode(false), BnMode::Frozen);
        let explicit = ModelConfig { bn: Some(BnMode::FrozenAffine), ..Default::default() };
        assert_eq!(explicit.bn_mode(true), BnMode::FrozenAffine);
    }
}
