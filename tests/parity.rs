//! Numerical parity with PyTorch on tiny networks (fixtures written by scripts/make_fixtures.py):
//! forward outputs, the upsampled logits, the segmentation loss and two SGD steps.
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use segda::config::TrainConfig;
use segda::methods::Forward;
use segda::model::aspp::AsppV2;
use segda::model::resnet::ResNetConfig;
use segda::model::{import, Backbone, BackboneKind, BnMode, Head, ModelConfig, SegNet};
use segda::optim;
use std::collections::BTreeMap;
use std::path::Path;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

struct Io(BTreeMap<String, (Vec<usize>, Vec<f32>)>, Vec<i64>);

fn read_io(name: &str) -> Io {
    let bytes = std::fs::read(Path::new(FIX).join(format!("{name}_io.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut m = BTreeMap::new();
    let mut labels = vec![];
    for (k, v) in st.tensors() {
        let d = v.data();
        match v.dtype() {
            safetensors::Dtype::F32 => {
                m.insert(
                    k.to_string(),
                    (
                        v.shape().to_vec(),
                        d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
                    ),
                );
            }
            safetensors::Dtype::I64 => {
                labels = d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            }
            t => panic!("{k}: unexpected dtype {t:?}"),
        }
    }
    Io(m, labels)
}

impl Io {
    fn f(&self, k: &str) -> &(Vec<usize>, Vec<f32>) {
        self.0.get(k).unwrap_or_else(|| panic!("fixture has no `{k}`"))
    }
    fn tensor4(&self, k: &str, dev: &Device) -> Tensor<4> {
        let (s, v) = self.f(k);
        Tensor::from_data(TensorData::new(v.clone(), [s[0], s[1], s[2], s[3]]), dev)
    }
}

fn assert_close(what: &str, ours: &[f32], theirs: &[f32], rel: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: sizes");
    let scale = theirs.iter().fold(0f32, |a, &b| a.max(b.abs())).max(1e-12);
    let err = ours.iter().zip(theirs).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(err <= rel * scale, "{what}: max abs error {err} > {rel} × {scale}");
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Parameter values by PyTorch-style path (enum variant names dropped, BN gamma/beta as
/// weight/bias).
#[derive(Default)]
struct Collect {
    path: Vec<String>,
    out: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container: &str) {
        if !container.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container: &str) {
        if !container.starts_with("Enum:") {
            self.path.pop();
        }
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let key = self.path.join(".").replace(".gamma", ".weight").replace(".beta", ".bias");
        self.out.insert(key, values(p.val()));
    }
}

fn params(net: &SegNet) -> BTreeMap<String, Vec<f32>> {
    let mut c = Collect::default();
    net.visit(&mut c);
    c.out
}

/// Our name of a PyTorch state-dict key.
fn our_key(backbone: BackboneKind, torch_key: &str) -> String {
    let mut k = torch_key.to_string();
    for (from, to) in import::remap_rules(backbone, &[torch_key.to_string(), "layer6.x".into()]) {
        k = regex::Regex::new(&from).unwrap().replace_all(&k, to.as_str()).into_owned();
    }
    k
}

fn check(name: &str, net: SegNet, cfg: &ModelConfig) {
    let dev = Device::flex().autodiff();
    let io = read_io(name);
    let (net, report) = import::load_weights(net, &Path::new(FIX).join(format!("{name}.pth")), cfg).unwrap();
    assert!(report.missing.is_empty(), "{report}");
    assert!(report.unused.is_empty(), "{report}");
    let mut net = net.with_bn_mode(BnMode::Frozen);

    // forward
    let x = io.tensor4("input", &dev);
    let [n, _, h, w] = x.dims();
    let y = Tensor::<3, Int>::from_data(TensorData::new(io.1.clone(), [n, h, w]), &dev);
    let fwd = Forward::run(&net, x.clone());
    assert_close(&format!("{name} main"), &values(fwd.logits.main.clone()), &io.f("main").1, 1e-4);
    assert_close(&format!("{name} aux"), &values(fwd.logits.aux.clone().unwrap()), &io.f("aux").1, 1e-4);
    let sub = fwd
        .up
        .main
        .clone()
        .slice([0..n, 0..19, 0..h])
        .slice_dim(2, burn::tensor::s![..;8])
        .slice_dim(3, burn::tensor::s![..;8]);
    assert_close(&format!("{name} main upsampled"), &values(sub), &io.f("main_up_sub").1, 1e-4);
    let loss = fwd.seg_loss(&y, 0.1);
    assert_close(&format!("{name} loss"), &values(loss.clone()), &io.f("loss").1, 1e-5);

    // two SGD steps (backbone lr 0.01, heads 0.1, momentum 0.9 without dampening, wd 5e-4)
    let before = params(&net);
    let tc = TrainConfig { lr: 0.01, head_lr_mult: 10.0, max_iters: u64::MAX / 2, ..Default::default() };
    let mut opt = optim::sgd(&tc);
    let mut loss = loss;
    for it in 0..2 {
        if it == 1 {
            loss = Forward::run(&net, x.clone()).seg_loss(&y, 0.1);
            assert_close(&format!("{name} loss at step 2"), &values(loss.clone()), &io.f("loss_step2").1, 1e-6);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let lr = optim::net_lr(&tc, optim::Clock::run(&tc, it), net.classifier_group());
        net = opt.step(lr, net, grads);
        loss = Tensor::zeros([1], &dev);
    }
    let after = params(&net);
    let mut checked = 0;
    for (k, (_, theirs)) in io.0.iter().filter(|(k, _)| k.starts_with("after2.")) {
        let tk = k.trim_start_matches("after2.");
        let ok = our_key(cfg.backbone, tk);
        let (a, b) = (&after[&ok], &before[&ok]);
        // compare the updates, which are far smaller than the weights
        let ours: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let want: Vec<f32> = theirs.iter().zip(b).map(|(x, y)| x - y).collect();
        if want.iter().all(|&d| d == 0.0) {
            assert!(ours.iter().all(|&d| d == 0.0), "{tk}: frozen in PyTorch, changed here");
        } else {
            assert_close(&format!("{name} update of {tk}"), &ours, &want, 2e-3);
        }
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
}

#[test]
fn resnet_deeplab_matches_pytorch() {
    let dev = Device::flex().autodiff();
    let rc = ResNetConfig::new([1, 1, 1, 1], true).with_width(8).with_stride_in_1x1(true);
    let (aux_c, main_c) = rc.out_channels();
    let net = SegNet {
        backbone: Backbone::ResNet(rc.init(&dev)),
        head: Head::Aspp(AsppV2::new(main_c, 19, 4, &dev)),
        aux_head: Some(AsppV2::new(aux_c, 19, 4, &dev)),
    };
    check("resnet_tiny", net, &ModelConfig { backbone: BackboneKind::Resnet101, ..Default::default() });
}

#[test]
fn mobilenet_deeplab_matches_pytorch() {
    let dev = Device::flex().autodiff();
    let cfg =
        ModelConfig { backbone: BackboneKind::MobilenetV2, width_mult: 0.25, output_stride: 8, ..Default::default() };
    check("mobilenet_tiny", SegNet::new(&cfg, &dev).unwrap(), &cfg);
}

#[test]
fn legacy_pickle_checkpoints_load() {
    // torchvision's downloads are legacy (non-zip) pickles; this one holds the stem and layer1
    let dev = Device::flex();
    let rc = ResNetConfig::new([1, 1, 1, 1], true).with_width(8);
    let (aux_c, main_c) = rc.out_channels();
    let net = SegNet {
        backbone: Backbone::ResNet(rc.init(&dev)),
        head: Head::Aspp(AsppV2::new(main_c, 19, 4, &dev)),
        aux_head: Some(AsppV2::new(aux_c, 19, 4, &dev)),
    };
    let cfg = ModelConfig { backbone: BackboneKind::Resnet101, ..Default::default() };
    let (net, report) = import::load_weights(net, &Path::new(FIX).join("resnet_tiny_legacy.pth"), &cfg).unwrap();
    assert!(report.applied.iter().any(|a| a.contains("layer1")), "{report}");
    assert!(report.missing.iter().any(|m| m.contains("layer4")), "{report}");
    // the loaded tensors equal the full (zip) file's
    let full = SegNet {
        backbone: Backbone::ResNet(rc.init(&dev)),
        head: Head::Aspp(AsppV2::new(main_c, 19, 4, &dev)),
        aux_head: Some(AsppV2::new(aux_c, 19, 4, &dev)),
    };
    let (full, _) = import::load_weights(full, &Path::new(FIX).join("resnet_tiny.pth"), &cfg).unwrap();
    let (a, b) = (params(&net), params(&full));
    assert_eq!(a["backbone.conv1.weight"], b["backbone.conv1.weight"]);
    assert_eq!(a["backbone.layer1.0.conv3.weight"], b["backbone.layer1.0.conv3.weight"]);
}

#[test]
fn import_errors_name_the_file() {
    let dev = Device::flex();
    let cfg = ModelConfig { backbone: BackboneKind::MobilenetV2, width_mult: 0.25, ..Default::default() };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.pth");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let e = import::load_weights(SegNet::new(&cfg, &dev).unwrap(), &bad, &cfg).unwrap_err().to_string();
    assert!(e.contains("broken.pth"), "{e}");
    let e = import::load_weights(SegNet::new(&cfg, &dev).unwrap(), &dir.path().join("nope.pth"), &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.pth") && e.contains("not found"), "{e}");
}
