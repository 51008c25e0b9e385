//! What a network hands to the methods: features and logits per level.
use burn::prelude::*;

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
