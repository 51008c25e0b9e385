//! The GPU code path, on the device `SEGDA_TEST_DEVICE` names (`wgpu:cpu`, Mesa's software Vulkan
//! driver, in CI; `cuda:0` or `wgpu` on a GPU machine), checked against the CPU backend:
//! forward and backward parity of every backbone and of the losses, one training step of every
//! method, a checkpoint written on one backend resumed and evaluated on the other, eval and predict.
//!
//! Without `SEGDA_TEST_DEVICE` the tests say so and pass, unless `SEGDA_REQUIRE_GPU_TESTS=1`
//! (which `scripts/test.sh` and the CUDA check set): then a missing device fails them.
mod common;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{tiny_config, tiny_data, METHODS};
use segda::engine::{checkpoint, train, TrainOptions};
use segda::eval::runner::{evaluate, EvalSpec, Export};
use segda::model::{BackboneKind, BnMode, ModelConfig, SegNet};
use std::path::Path;

/// The device under test, or None (with a note) when none is configured.
fn gpu() -> Option<Device> {
    match std::env::var("SEGDA_TEST_DEVICE") {
        Ok(spec) => Some(segda::runtime::device::parse(&spec).unwrap_or_else(|e| panic!("SEGDA_TEST_DEVICE: {e}"))),
        Err(_) => {
            assert!(
                std::env::var("SEGDA_REQUIRE_GPU_TESTS").is_err(),
                "SEGDA_REQUIRE_GPU_TESTS is set but SEGDA_TEST_DEVICE names no device"
            );
            eprintln!("no GPU device: set SEGDA_TEST_DEVICE (e.g. wgpu:cpu, cuda:0) to run this test");
            None
        }
    }
}

/// The tests share one device and burn's process-wide random generator: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How far a GPU result may be from the CPU's: ‖a − b‖∞ ≤ REL · ‖b‖∞ + ABS per tensor, plus, where
/// BatchNorm uses batch statistics, SENSITIVITY times what a change of one part in a million in
/// the input does to the CPU's own result. f32 sums run in another order on a GPU (tree
/// reductions, other GEMM blockings): a few ulps per op. With frozen statistics every backbone
/// agrees to ~4e-6 of the scale. Batch statistics of a tiny batch make some gradients
/// ill-conditioned (a BatchNorm's shift before another BatchNorm has a gradient that cancels to
/// rounding noise; deep ResNets amplify a 1e-6 input change to 0.2 of some gradients' scale), so
/// there the CPU's own sensitivity sets the bar.
const REL: f32 = 1e-4;
const ABS: f32 = 1e-6;
const SENSITIVITY: f32 = 10.0;

/// The largest |a − b|, the largest |b|, and whether `a` is finite everywhere.
fn difference(a: &TensorData, b: &TensorData) -> (f32, f32, bool) {
    let (a, b): (Vec<f32>, Vec<f32>) = (a.iter::<f32>().collect(), b.iter::<f32>().collect());
    assert_eq!(a.len(), b.len(), "sizes differ");
    let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (err, b.iter().fold(0f32, |m, v| m.max(v.abs())), a.iter().all(|v| v.is_finite()))
}

fn assert_close(what: &str, got: &TensorData, want: &TensorData, slack: f32) {
    let (err, scale, finite) = difference(got, want);
    assert!(finite, "{what}: non-finite values on the device");
    assert!(
        err <= REL * scale + ABS + slack,
        "{what}: max |gpu - cpu| = {err:e} against a scale of {scale:e} (allowed {:e})",
        REL * scale + ABS + slack
    );
}

/// Every parameter's gradient, in visiting order (named by its position).
struct Grads<'a>(&'a burn::tensor::Gradients, Vec<TensorData>);
impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if let Some(g) = p.val().grad(self.0) {
            self.1.push(g.into_data());
        }
    }
}

fn net_config(backbone: BackboneKind, bn: BnMode) -> ModelConfig {
    ModelConfig {
        backbone,
        width_mult: 0.125,
        multi_level: backbone != BackboneKind::Vgg16,
        output_stride: 8,
        bn: Some(bn),
        ..Default::default()
    }
}

/// Logits, loss and every parameter's gradient: [logits, loss, gradients...].
type Outputs = Vec<TensorData>;

/// The two-level segmentation loss of `net` on `device`, its logits and its gradients.
fn forward_backward(net: SegNet, x: &TensorData, y: &TensorData, device: &Device) -> Outputs {
    let x = Tensor::<4>::from_data(x.clone(), device);
    let y = Tensor::<3, Int>::from_data(y.clone(), device);
    let [_, h, w] = y.dims();
    let logits = net.forward(x);
    let ce = |l: Tensor<4>| segda::nn::losses::cross_entropy(segda::nn::losses::upsample(l, [h, w]), y.clone());
    let loss =
        ce(logits.main.clone()) + logits.aux.map_or_else(|| Tensor::zeros([1], device), |a| ce(a).mul_scalar(0.1));
    let grads = loss.backward();
    let mut g = Grads(&grads, Vec::new());
    net.visit(&mut g);
    [vec![logits.main.into_data(), loss.into_data()], g.1].concat()
}

/// Every backbone gives the CPU backend's logits, loss and gradient of every parameter: with
/// frozen BatchNorm statistics (folded into the convolutions, the protocol's mode), and for
/// ResNet-18 and MobileNetV2 also with batch statistics (training from scratch).
#[test]
fn every_backbone_matches_the_cpu_forward_and_backward() {
    let Some(dev) = gpu() else { return };
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cpu = Device::flex().autodiff();
    cpu.seed(1);
    let x = Tensor::<4>::random([2, 3, 32, 48], Distribution::Normal(0.0, 1.0), &Device::flex()).into_data();
    // the same input, one part in a million off: how sensitive the CPU's own answer is
    let nudged: Vec<f32> =
        x.iter::<f32>().enumerate().map(|(k, v)| v * (1.0 + 1e-6 * ((k * 7919 % 13) as f32 - 6.0) / 6.0)).collect();
    let nudged = TensorData::new(nudged, [2, 3, 32, 48]);
    let y: Vec<i64> = (0..2 * 32 * 48).map(|k| if k % 23 == 0 { 255 } else { (k * 7 / 13 % 19) as i64 }).collect();
    let y = TensorData::new(y, [2, 32, 48]);
    let cases = [
        BackboneKind::Resnet18,
        BackboneKind::Resnet50,
        BackboneKind::Resnet101,
        BackboneKind::MobilenetV2,
        BackboneKind::Vgg16,
    ]
    .map(|b| (b, BnMode::Frozen))
    .into_iter()
    .chain([(BackboneKind::Resnet18, BnMode::Train), (BackboneKind::MobilenetV2, BnMode::Train)]);
    for (backbone, bn) in cases {
        let cfg = net_config(backbone, bn);
        let file = tmp.path().join("net.bpk");
        segda::nn::layers::materialize(SegNet::new(&cfg, &cpu).unwrap()).valid().save_file(&file).unwrap();
        let run = |x: &TensorData, device: &Device| {
            forward_backward(SegNet::new(&cfg, device).unwrap().load_file(&file).with_bn_mode(bn), x, &y, device)
        };
        let want = run(&x, &cpu);
        let sensitivity: Vec<f32> = if bn == BnMode::Train {
            run(&nudged, &cpu).iter().zip(&want).map(|(a, b)| difference(a, b).0).collect()
        } else {
            vec![0.0; want.len()]
        };
        let got = run(&x, &dev.clone().autodiff());
        assert_eq!(got.len(), want.len(), "{backbone:?}: parameters with a gradient");
        for (k, ((g, w), s)) in got.iter().zip(&want).zip(sensitivity).enumerate() {
            let what = match k {
                0 => "logits".to_string(),
                1 => "loss".to_string(),
                k => format!("gradient of parameter {}", k - 2),
            };
            assert_close(&format!("{backbone:?} ({bn:?} BatchNorm): {what}"), g, w, SENSITIVITY * s);
        }
    }
}

/// A `train.init_from` override naming a one-iteration source-only run trained on the CPU in
/// `dir/start` (trained weights: a network drawn at random would take its draws from another
/// point of the random stream).
fn start_from_trained(dir: &Path, data: &Path) -> String {
    let start = dir.join("start");
    let cfg = tiny_config(data, &["source_only"], &["train.iters=1", "train.eval_every=1"]);
    train(cfg, &opts(&start, false, &Device::flex())).unwrap();
    format!("train.init_from=\"{}\"", start.join("checkpoints/last").display())
}

fn opts(out: &Path, resume: bool, device: &Device) -> TrainOptions {
    TrainOptions { resume, ..TrainOptions::new(out, device.clone()) }
}

/// The losses a run logged, one map per logged iteration.
fn logged(run: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    // without the wall times, which differ from run to run
    let rows =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|r| r["kind"] == "train");
    rows.map(|r| r.as_object().unwrap().clone().into_iter().filter(|(k, _)| !k.starts_with("time_")).collect())
        .collect()
}

/// One training step and more of every method on the device, through the engine as `segda train`
/// runs it; all from the same CPU-written start, so the first iteration's supervised loss equals
/// the CPU backend's (the methods' own modules draw their weights on each device, so their terms
/// differ).
#[test]
fn every_method_trains_on_the_device() {
    let Some(dev) = gpu() else { return };
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let from = start_from_trained(tmp.path(), &data);
    for (method, extra) in METHODS {
        let mut sets = vec![from.as_str(), "train.iters=3", "train.eval_every=3", "model.bn=\"frozen\""];
        sets.extend(extra);
        let name = format!("{method}{}", extra.len());
        let (on_gpu, on_cpu) = (tmp.path().join(format!("gpu-{name}")), tmp.path().join(format!("cpu-{name}")));
        let started = std::time::Instant::now();
        let s = train(tiny_config(&data, &[method], &sets), &opts(&on_gpu, false, &dev))
            .unwrap_or_else(|e| panic!("{method} {extra:?} on the device: {e}"));
        eprintln!(
            "{method} {extra:?}: {} iterations on the device in {:.1} s",
            s.iters,
            started.elapsed().as_secs_f64()
        );
        // LSE ends with its last round: on the tiny data one iteration
        assert!(
            s.iters >= if method == "lse" { 1 } else { 3 } && s.last.is_some(),
            "{method}: {} iterations, evaluated: {}",
            s.iters,
            s.last.is_some()
        );
        let rows = logged(&on_gpu);
        for row in &rows {
            for (k, v) in row {
                if let Some(v) = v.as_f64() {
                    assert!(v.is_finite(), "{method}: `{k}` = {v} on the device");
                }
            }
        }
        train(
            tiny_config(&data, &[method], &[sets.as_slice(), &["train.iters=1"]].concat()),
            &opts(&on_cpu, false, &Device::flex()),
        )
        .unwrap();
        let cpu = logged(&on_cpu);
        for key in ["seg_src", "seg_tgt"] {
            if let (Some(g), Some(c)) =
                (rows[0].get(key).and_then(|v| v.as_f64()), cpu[0].get(key).and_then(|v| v.as_f64()))
            {
                assert!(
                    (g - c).abs() <= 1e-3 * c.abs() + 1e-5,
                    "{method}: first `{key}` {g} on the device, {c} on the CPU"
                );
            }
        }
    }
}

/// A checkpoint written on one backend resumes and evaluates on the other: a run trained on the
/// device continues on the CPU and the reverse, and the device's evaluation of a checkpoint
/// equals the CPU's; `predict` writes the same label maps from either.
#[test]
fn checkpoints_cross_backends_and_eval_and_predict_agree() {
    let Some(dev) = gpu() else { return };
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    for (first, second) in [(dev.clone(), Device::flex()), (Device::flex(), dev.clone())] {
        let run = tmp.path().join(format!("run-{}", segda::runtime::device::is_cpu(&first)));
        let cfg = |iters: &str| tiny_config(&data, &["adaptsegnet"], &[iters, "train.eval_every=2"]);
        let s =
            train(cfg("train.iters=4"), &TrainOptions { stop_after: Some(2), ..opts(&run, false, &first) }).unwrap();
        assert!(s.interrupted && s.iters == 2);
        let s = train(cfg("train.iters=4"), &opts(&run, true, &second)).unwrap();
        assert_eq!(s.iters, 4, "resumed on the other backend");
        assert!(logged(&run).iter().all(|r| r["seg_src"].as_f64().is_some_and(f64::is_finite)));
    }
    // the same checkpoint, evaluated and exported on both backends
    let run = tmp.path().join("run-true");
    let cfg = segda::config::Config::load(&run.join("config.toml"), &[]).unwrap();
    let ds = segda::engine::trainer::open_dataset(&cfg.val).unwrap();
    let spec = EvalSpec {
        resize: cfg.val.resize,
        normalize: cfg.model.normalize(),
        protocol: cfg.eval.protocol,
        limit: 0,
        progress: false,
    };
    let mut scores = Vec::new();
    for (k, device) in [Device::flex(), dev.clone()].into_iter().enumerate() {
        let net = segda::engine::trainer::build_net(&cfg, &device, false).unwrap();
        let net = checkpoint::load_model(net, &run.join("checkpoints/last")).unwrap().valid();
        let out = tmp.path().join(format!("pred{k}"));
        let conf = evaluate(
            &net,
            &ds,
            &spec,
            &device,
            Some(Export { dir: &out, label_ids: true, color: false, failures: None }),
        )
        .unwrap()
        .unwrap();
        scores.push((conf.report(cfg.eval.protocol).miou, out));
    }
    let ((cpu_miou, cpu_pred), (gpu_miou, gpu_pred)) = (scores[0].clone(), scores[1].clone());
    assert!((cpu_miou - gpu_miou).abs() < 0.5, "mIoU {cpu_miou} on the CPU, {gpu_miou} on the device");
    let mut files = 0;
    for e in std::fs::read_dir(cpu_pred.join("labelIds")).unwrap() {
        let e = e.unwrap();
        let (a, b) = (
            image::open(e.path()).unwrap().to_luma8(),
            image::open(gpu_pred.join("labelIds").join(e.file_name())).unwrap().to_luma8(),
        );
        let differ = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
        assert!(differ * 200 <= a.len(), "{:?}: {differ} of {} pixels differ", e.file_name(), a.len());
        files += 1;
    }
    assert_eq!(files, ds.len());
}

/// Data-parallel training (burn's all-reduce, CUDA only) over one device is plain training: the
/// same losses iteration by iteration.
#[test]
fn data_parallel_over_one_device_equals_plain_training() {
    let Some(dev) = gpu() else { return };
    if !std::env::var("SEGDA_TEST_DEVICE").is_ok_and(|s| s.starts_with("cuda")) {
        eprintln!("data-parallel training needs CUDA (burn 0.22.1's all-reduce is NCCL's)");
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    // from trained weights: the replicas are made at another point of the random stream
    let from = start_from_trained(tmp.path(), &data);
    let cfg = || tiny_config(&data, &["adaptsegnet"], &[&from, "train.iters=3", "train.eval_every=3"]);
    let (plain, parallel) = (tmp.path().join("plain"), tmp.path().join("parallel"));
    train(cfg(), &opts(&plain, false, &dev)).unwrap();
    train(cfg(), &TrainOptions { parallel: vec![dev.clone()], ..opts(&parallel, false, &dev) }).unwrap();
    let (a, b) = (logged(&plain), logged(&parallel));
    assert_eq!(a.len(), b.len());
    for (ra, rb) in a.iter().zip(&b) {
        let (x, y) = (ra["seg_src"].as_f64().unwrap(), rb["seg_src"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4 * x.abs(), "seg_src {x} plain, {y} data-parallel");
    }
}
