//! `segda demo`: the whole pipeline on the built-in benchmark, within minutes on a laptop CPU.
use crate::config::Config;
use crate::data::synth::{generate, SynthOptions};
use crate::engine::{train, TrainOptions};
use crate::error::{Error, Result};
use crate::model::weights;
use crate::ui;
use burn::prelude::Device;
use std::path::Path;

/// The synthetic-benchmark source-only experiment, as shipped in configs/.
pub const SOURCE_ONLY_TOML: &str = include_str!("../configs/synth/source_only.toml");

pub fn run(out: &Path, iters: Option<u64>, device: Device) -> Result<()> {
    let t0 = std::time::Instant::now();
    let data = out.join("data");
    if data.join("synth.json").is_file() {
        ui::note(&format!("using the benchmark already in {}", data.display()));
    } else {
        ui::note(&format!("1/3 writing the synthetic benchmark to {}", data.display()));
        generate(&data, &SynthOptions::default())?;
    }
    let mut overrides = vec![
        format!("source.root=\"{}\"", data.join("gta5").display()),
        format!("target.root=\"{}\"", data.join("cityscapes").display()),
        format!("val.root=\"{}\"", data.join("cityscapes").display()),
    ];
    match weights::fetch(&weights::MOBILENET_V2) {
        Ok(_) => {} // the shipped config starts from them
        Err(e) => {
            ui::warn(&format!("{e}\n  training MobileNetV2 from scratch instead (expect a lower mIoU); run `segda fetch-weights` when online"));
            overrides.extend(["model.init=\"none\"".into(), "model.bn=\"train\"".into()]);
        }
    }
    if let Some(n) = iters {
        overrides.push(format!("train.iters={n}"));
    }
    let mut table: toml::Table =
        toml::from_str(SOURCE_ONLY_TOML).map_err(|e| Error::Other(format!("built-in config: {e}")))?;
    for o in &overrides {
        crate::config::apply_override(&mut table, o)?;
    }
    let cfg = Config::from_table(table)?;
    let run_dir = out.join("runs").join("source_only");
    ui::note(&format!(
        "2/3 training source-only MobileNetV2-DeepLab for {} iterations on GTA5-like data",
        cfg.train.iters
    ));
    let previous = crate::engine::checkpoint::find(&run_dir, "last")
        .and_then(|c| crate::engine::checkpoint::read_progress(&c).ok());
    if previous.as_ref().is_some_and(|p| p.finished) {
        ui::note(&format!("the demo run in {} is complete; showing its evaluation", run_dir.display()));
    } else {
        let summary = train(
            cfg,
            &TrainOptions { resume: previous.is_some(), ..TrainOptions::new(run_dir.clone(), device.clone()) },
        )?;
        if summary.interrupted {
            ui::note(&format!("stopped; continue with: segda demo --out {}", out.display()));
            return Ok(());
        }
    }
    ui::note("3/3 evaluation on the Cityscapes-like target (val)");
    let last = crate::report::compare::RunScore::load(&run_dir, "latest")?;
    let best = crate::report::compare::RunScore::load(&run_dir, "best")?;
    println!("\nSource-only on the synthetic target (Cityscapes-like val), per-class IoU:\n{}", last.report.table());
    println!("best mIoU {:.2} at iteration {}", best.report.miou, best.iter);
    println!("run directory: {}   ({:.0} s)", run_dir.display(), t0.elapsed().as_secs_f64());
    let page = crate::report::write_report(
        std::slice::from_ref(&run_dir),
        &out.join("report.html"),
        &crate::report::ReportOptions { images: 3, device, relabel: vec![] },
    )?;
    println!("report: {}", page.display());
    // the adaptation protocol of docs/benchmarks.md: its configs read the benchmark from data/synth
    println!("\nnext, the adaptation protocol (a source-only stage per seed, then 400 iterations of the method; docs/benchmarks.md):");
    if !Path::new("data/synth/synth.json").is_file() {
        println!("  segda synth --out data/synth");
    }
    println!("  segda sweep --config configs/synth/adapt/so_cont.toml --seeds 3 --out runs/adapt/so_cont");
    println!("  segda sweep --config configs/synth/adapt/adaptsegnet.toml --seeds 3 --out runs/adapt/adaptsegnet --baseline runs/adapt/so_cont");
    Ok(())
}
