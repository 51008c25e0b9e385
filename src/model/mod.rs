//! Segmentation networks split into `features` and `classify`, so methods can work on features.
pub mod aspp;
pub mod config;
pub mod deeplab;
pub mod discriminator;
pub mod feats;
pub mod import;
pub mod mobilenet;
pub mod resnet;
pub mod vgg;
pub mod weights;

pub use config::{BackboneKind, BnMode, Init, ModelConfig};
pub use deeplab::{Backbone, Head, SegNet};
pub use feats::{Feats, Logits};
