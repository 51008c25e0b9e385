//! `segda bench`: time the steps training and inference run, on the networks of the published
//! protocols, with the same engine code (`engine::step::iterate`) that training uses.
//! `bench/torch_reference.py` times the identical PyTorch networks and steps; `bench/compare.sh`
//! runs both and prints the ratios.
use crate::config::Config;
use crate::engine::step::{iterate, Learner, Outcome};
use crate::error::{Error, Result};
use crate::methods::{self, DomainBatch, Needs};
use crate::model::SegNet;
use crate::optim;
use burn::prelude::*;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum StepKind {
    /// Source-only training step: forward, CE (main + aux), backward, SGD.
    Train,
    /// AdaptSegNet step: + target forward, output-space fooling terms, two discriminators (Adam).
    Adapt,
    /// APODA step: + feature attacks (extra backward passes through the classifier).
    Apoda,
    /// Inference of one batch.
    Infer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Net {
    /// DeepLab-v2 head on MobileNetV2 (OS 8, multi-level): the demo network.
    MobilenetV2,
    /// DeepLab-v2 ResNet-101 (OS 8, multi-level, ASPP ×4): the published protocol.
    Resnet101,
}

pub struct BenchOptions {
    pub nets: Vec<Net>,
    pub steps: Vec<StepKind>,
    pub batch: usize,
    pub train_size: [usize; 2],
    pub infer_size: [usize; 2],
    pub warmup: usize,
    pub iters: usize,
    pub device: Device,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub net: Net,
    pub step: StepKind,
    pub batch: usize,
    pub size: [usize; 2],
    /// Median seconds per step over `iters` timed steps.
    pub median_s: f64,
    pub min_s: f64,
    /// Peak resident memory of the process during this row (MiB; Linux), reset before the row.
    pub peak_rss_mib: Option<f64>,
    /// GPU memory the backend's allocator holds after the row (MiB; GPU backends only), its pools
    /// cleared before the row.
    pub device_mib: Option<f64>,
}

fn config(net: Net, step: StepKind) -> Result<Config> {
    let methods = match step {
        StepKind::Train | StepKind::Infer => "source_only",
        StepKind::Adapt => "adaptsegnet",
        StepKind::Apoda => "apoda",
    };
    let model = match net {
        Net::MobilenetV2 => "backbone = \"mobilenet_v2\"\noutput_stride = 8",
        Net::Resnet101 => "backbone = \"resnet101\"\naspp_branches = 4",
    };
    let text = format!("methods = [\"{methods}\"]\n[model]\n{model}\nmulti_level = true\nbn = \"frozen\"\n[train]\nlr = 2.5e-4\nmax_iters = 1000\n");
    Config::from_table(toml::from_str(&text).map_err(|e| Error::Other(e.to_string()))?)
}

/// A deterministic batch: smooth images and labels over all 19 classes (some ignored).
fn batch(n: usize, [h, w]: [usize; 2], seed: f32, device: &Device) -> DomainBatch {
    let x: Vec<f32> = (0..n * 3 * h * w).map(|i| ((i as f32) * 0.001 + seed).sin() * 50.0).collect();
    let y: Vec<i64> =
        (0..n * h * w).map(|i| if i % 31 == 0 { 255 } else { ((i / w / 16 + i % w / 16) % 19) as i64 }).collect();
    DomainBatch {
        x: Tensor::from_data(TensorData::new(x, [n, 3, h, w]), device),
        y: Some(Tensor::from_data(TensorData::new(y, [n, h, w]), device)),
        names: vec![],
        indices: vec![],
    }
}

/// Peak RSS since the last reset (VmHWM), in MiB.
fn peak_rss() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn reset_peak_rss() {
    // glibc keeps freed heap pages resident: hand them back first, or the previous row's memory
    // counts towards this row's peak
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases free memory of glibc's own heap
        unsafe {
            malloc_trim(0);
        }
    }
    // "5" resets the peak RSS counter (Linux ≥ 4.0); elsewhere the peak is the process's
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Wait for the device to finish queued work (timings of asynchronous backends).
fn sync(device: &Device) {
    let _ = device.sync();
}

fn time_row(net_kind: Net, step: StepKind, o: &BenchOptions) -> Result<Row> {
    let cfg = methods::resolve(config(net_kind, step)?)?;
    let size = if step == StepKind::Infer { o.infer_size } else { o.train_size };
    let mut times = Vec::with_capacity(o.iters);
    reset_peak_rss();
    o.device.memory_cleanup();
    if step == StepKind::Infer {
        let net = SegNet::new(&cfg.model, &o.device)?.with_bn_mode(cfg.model.bn_mode(false)).valid();
        let b = batch(o.batch, size, 0.0, &o.device);
        for i in 0..o.warmup + o.iters {
            let t = Instant::now();
            let out = net.forward(b.x.clone()).main;
            let _ = crate::nn::losses::upsample(out, size).argmax(1).into_data();
            sync(&o.device);
            if i >= o.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
    } else {
        let device = o.device.clone().autodiff();
        let mut methods = methods::build(&cfg, &device)?;
        let needs = methods.iter().fold(Needs::default(), |a, m| a.union(m.needs()));
        let mut net = SegNet::new(&cfg.model, &device)?.with_bn_mode(cfg.model.bn_mode(false));
        let mut opt = optim::sgd(&cfg.train);
        let src = batch(o.batch, size, 0.0, &device);
        let tgt = batch(o.batch, size, 1.0, &device);
        for i in 0..o.warmup + o.iters {
            let t = Instant::now();
            match iterate(
                net,
                &mut Learner { optim: &mut opt, methods: &mut methods, needs, cfg: &cfg },
                i as u64,
                Some(&src),
                needs.target.then_some(&tgt),
            )? {
                Outcome::Stepped { net: n, .. } => net = n,
                Outcome::NonFinite { term, value } => {
                    return Err(Error::Other(format!("bench: loss {term} = {value}")))
                }
            }
            sync(&device);
            if i >= o.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let min_s = times.iter().copied().fold(f64::INFINITY, f64::min);
    let device_mib = o.device.memory_pool_usage().map(|u| u.bytes_reserved as f64 / 1048576.0);
    Ok(Row {
        net: net_kind,
        step,
        batch: o.batch,
        size,
        median_s: median(times),
        min_s,
        peak_rss_mib: peak_rss(),
        device_mib,
    })
}

/// Times every (network, step) on a worker of the compute pool, as training runs.
pub fn run(o: &BenchOptions, mut on_row: impl FnMut(&Row) + Send) -> Result<Vec<Row>> {
    crate::runtime::pool::install(|| {
        let mut rows = Vec::new();
        for &n in &o.nets {
            for &s in &o.steps {
                let r = time_row(n, s, o)?;
                on_row(&r);
                rows.push(r);
            }
        }
        Ok(rows)
    })
}

pub fn header() -> String {
    format!(
        "{:<13} {:<6} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "net", "step", "batch", "size", "median s", "min s", "peak MiB", "GPU MiB"
    )
}

/// The name a value has on the command line (`--net mobilenet_v2`).
fn name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value().map_or(String::new(), |p| p.get_name().to_string())
}

pub fn line(r: &Row) -> String {
    format!(
        "{:<13} {:<6} {:>5} {:>10} {:>10.4} {:>10.4} {:>10} {:>10}",
        name(r.net),
        name(r.step),
        r.batch,
        format!("{}x{}", r.size[0], r.size[1]),
        r.median_s,
        r.min_s,
        r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
        r.device_mib.map_or("-".into(), |m| format!("{m:.0}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_kind_runs_on_a_small_network() {
        // the timing numbers are not tested (no timings in unit tests); that each step runs is
        let o = BenchOptions {
            nets: vec![Net::MobilenetV2],
            steps: vec![StepKind::Train, StepKind::Adapt, StepKind::Apoda, StepKind::Infer],
            batch: 1,
            train_size: [32, 64],
            infer_size: [32, 64],
            warmup: 0,
            iters: 1,
            device: Device::flex(),
        };
        let rows = run(&o, |_| {}).unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.median_s > 0.0));
        assert!(line(&rows[0]).starts_with("mobilenet_v2  train"), "{}", line(&rows[0]));
    }
}
