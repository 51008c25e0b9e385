//! The segmentation network: a backbone, the main classifier and an optional auxiliary one.
use super::aspp::AsppV2;
use super::config::{BackboneKind, ModelConfig};
use super::feats::{Feats, Logits};
use super::mobilenet::{MobileNetV2, MobileNetV2Config};
use super::resnet::{ResNet, ResNetConfig};
use super::vgg::{Fcn8Head, Vgg16, Vgg16Config};
use crate::data::classes::NUM_CLASSES;
use crate::error::{Error, Result};
use burn::module::ParamGroup;
use burn::prelude::*;

#[derive(Module, Debug)]
pub enum Backbone {
    ResNet(ResNet),
    MobileNet(MobileNetV2),
    Vgg(Vgg16),
}

// One per network, never moved in a loop: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Head {
    Aspp(AsppV2),
    Fcn8(Fcn8Head),
}

#[derive(Module, Debug)]
pub struct SegNet {
    pub backbone: Backbone,
    pub head: Head,
    pub aux_head: Option<AsppV2>,
}

impl SegNet {
    /// A randomly initialised network (weights are loaded separately, see `model::import`).
    pub fn new(cfg: &ModelConfig, device: &Device) -> Result<SegNet> {
        let c = NUM_CLASSES;
        let (backbone, (aux_c, main_c)) = match cfg.backbone {
            BackboneKind::Resnet18 | BackboneKind::Resnet50 | BackboneKind::Resnet101 => {
                let depth = match cfg.backbone {
                    BackboneKind::Resnet18 => 18,
                    BackboneKind::Resnet50 => 50,
                    _ => 101,
                };
                let rc = ResNetConfig::depth(depth)
                    .expect("known depth")
                    .with_width((64.0 * cfg.width_mult).round().max(1.0) as usize)
                    .with_stride_in_1x1(cfg.stride_in_1x1);
                (Backbone::ResNet(rc.init(device)), rc.out_channels())
            }
            BackboneKind::MobilenetV2 => {
                if cfg.output_stride != 8 && cfg.output_stride != 16 {
                    return Err(Error::config(
                        "model.output_stride",
                        format!("must be 8 or 16, not {}", cfg.output_stride),
                    ));
                }
                let mc = MobileNetV2Config::new().with_output_stride(cfg.output_stride).with_width_mult(cfg.width_mult);
                (Backbone::MobileNet(mc.init(device)), mc.out_channels())
            }
            BackboneKind::Vgg16 => {
                let vc = Vgg16Config::new().with_width_mult(cfg.width_mult);
                let head = Head::Fcn8(Fcn8Head::new(&vc, c, device));
                if cfg.multi_level {
                    return Err(Error::config(
                        "model.multi_level",
                        "VGG16-FCN8s has no auxiliary level; set it to false",
                    ));
                }
                return Ok(SegNet { backbone: Backbone::Vgg(vc.init(device)), head, aux_head: None });
            }
        };
        if !(1..=4).contains(&cfg.aspp_branches) {
            return Err(Error::config(
                "model.aspp_branches",
                "must be between 1 and 4 (4 = DeepLab-v2, 2 = AdaptSegNet)",
            ));
        }
        Ok(SegNet {
            backbone,
            head: Head::Aspp(AsppV2::new(main_c, c, cfg.aspp_branches, device)),
            aux_head: cfg.multi_level.then(|| AsppV2::new(aux_c, c, cfg.aspp_branches, device)),
        })
    }

    /// The classifiers (main and auxiliary, every backbone's): what the protocol trains at
    /// `train.head_lr_mult` × lr. By parameter id, so no other parameter joins by its name.
    pub fn classifier_group(&self) -> ParamGroup {
        ParamGroup::ids_from_module(self.head.clone()).fuse(&ParamGroup::ids_from_module(self.aux_head.clone()))
    }

    /// Apply the configured BatchNorm behaviour (after weights are loaded).
    pub fn with_bn_mode(self, mode: super::config::BnMode) -> SegNet {
        use crate::nn::layers::bn_group;
        match mode {
            super::config::BnMode::Frozen => self.freeze_group(bn_group()),
            super::config::BnMode::FrozenAffine => self.set_require_grad_group(bn_group(), false),
            super::config::BnMode::Train => self,
        }
    }

    pub fn features(&self, x: Tensor<4>) -> Feats {
        match &self.backbone {
            Backbone::ResNet(r) => {
                let (l3, l4) = r.forward(x);
                Feats { main: l4, aux: self.aux_head.is_some().then_some(l3), skips: vec![] }
            }
            Backbone::MobileNet(m) => {
                let (a, f) = m.forward(x);
                Feats { main: f, aux: self.aux_head.is_some().then_some(a), skips: vec![] }
            }
            Backbone::Vgg(v) => v.forward(x),
        }
    }

    /// Logits of the main classifier from features (used on perturbed features too).
    pub fn classify_main(&self, f: &Feats) -> Tensor<4> {
        match &self.head {
            Head::Aspp(a) => a.forward(f.main.clone()),
            Head::Fcn8(h) => h.forward(f),
        }
    }

    pub fn classify(&self, f: &Feats) -> Logits {
        let aux = match (&self.aux_head, &f.aux) {
            (Some(h), Some(a)) => Some(h.forward(a.clone())),
            _ => None,
        };
        Logits { main: self.classify_main(f), aux }
    }

    pub fn forward(&self, x: Tensor<4>) -> Logits {
        self.classify(&self.features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param, ParamId};

    #[derive(Default)]
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.id);
        }
    }
    fn ids<M: Module>(m: &M) -> Vec<ParamId> {
        let mut v = Ids::default();
        m.visit(&mut v);
        v.0
    }

    /// Every classifier parameter (main and auxiliary) and nothing of the backbone, on every
    /// backbone.
    #[test]
    fn the_classifier_group_is_the_heads_and_only_them() {
        for backbone in [BackboneKind::Resnet18, BackboneKind::MobilenetV2, BackboneKind::Vgg16] {
            let cfg = ModelConfig {
                backbone,
                width_mult: 0.125,
                multi_level: backbone != BackboneKind::Vgg16,
                ..Default::default()
            };
            let net = SegNet::new(&cfg, &Device::flex()).unwrap();
            let group = net.classifier_group();
            let heads = [ids(&net.head), ids(&net.aux_head)].concat();
            assert!(!heads.is_empty() && heads.iter().all(|id| group.matches(id, None)), "{backbone:?}");
            assert!(
                ids(&net.backbone).iter().all(|id| !group.matches(id, None)),
                "{backbone:?}: a backbone parameter in the group"
            );
            assert_eq!(net.aux_head.is_some(), backbone != BackboneKind::Vgg16);
        }
    }
}
