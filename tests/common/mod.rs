//! Shared helpers for the integration tests: a tiny synthetic benchmark and a tiny config.
#![allow(dead_code)]
use segda::config::{apply_override, Config};
use segda::data::synth::{generate, SynthOptions};
use std::path::{Path, PathBuf};

/// Tiny GTA5/SYNTHIA/Cityscapes-layout datasets (64×32 target images).
pub fn tiny_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let opts = SynthOptions {
        seed: 5,
        width: 64,
        gta5: 6,
        synthia: 6,
        city_train: 6,
        city_val: 3,
        shift: segda::data::synth::style::Shift::Camera(1.0),
    };
    generate(&data, &opts).unwrap();
    data
}

/// A fast config on the tiny data: MobileNetV2 ×0.25, BN trained, 64×32 inputs.
pub fn tiny_config(data: &Path, methods: &[&str], extra: &[&str]) -> Config {
    let mut t = toml::Table::new();
    let methods: Vec<String> = methods.iter().map(|m| format!("\"{m}\"")).collect();
    let mut sets = vec![
        format!("methods=[{}]", methods.join(",")),
        format!("source.root=\"{}\"", data.join("gta5").display()),
        "source.kind=\"gta5\"".into(),
        "source.split=\"all\"".into(),
        "source.resize=[64, 36]".into(),
        "source.flip=true".into(),
        format!("target.root=\"{}\"", data.join("cityscapes").display()),
        "target.resize=[64, 32]".into(),
        format!("val.root=\"{}\"", data.join("cityscapes").display()),
        "val.resize=[64, 32]".into(),
        "model.backbone=\"mobilenet_v2\"".into(),
        "model.width_mult=0.25".into(),
        "model.output_stride=16".into(),
        "model.bn=\"train\"".into(),
        "train.iters=6".into(),
        "train.max_iters=100".into(),
        "train.batch=2".into(),
        "train.lr=0.01".into(),
        "train.eval_every=3".into(),
        "train.log_every=1".into(),
        "train.seed=7".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    for s in &sets {
        apply_override(&mut t, s).unwrap();
    }
    Config::from_table(t).unwrap()
}

pub fn segda() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_segda"))
}

/// Every method, with the settings that reach its pseudo-labels, rounds and extra streams within
/// a few iterations.
#[allow(dead_code)] // not every test binary trains every method
pub const METHODS: [(&str, &[&str]); 13] = [
    ("source_only", &[]),
    ("oracle", &[]),
    ("adaptsegnet", &[]),
    ("advent", &[]),
    ("minent", &[]),
    ("class_prior", &[]),
    ("apoda", &[]),
    ("selftrain", &[]),
    ("t2s", &[]),
    ("t2s", &["method.t2s.domain_generalisation=true"]),
    ("ass", &["method.ass.labelled=2"]),
    (
        "lse",
        &[
            "train.iters=1000",
            "method.lse.p_max=0.10",
            "method.lse.epochs_per_round=1",
            "method.lse.patches_per_image=1",
        ],
    ),
    ("pit", &[]),
];
