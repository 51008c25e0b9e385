//! The training engine: exact resume, NaN handling, checkpoints and the run directory.
mod common;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use common::{segda, tiny_config, tiny_data};
use segda::engine::{checkpoint, train, TrainOptions};
use std::path::Path;

#[derive(Default)]
struct Values(Vec<f32>);
impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(p.val().into_data().iter::<f32>());
    }
}

fn weights(run: &Path, methods: &[&str], data: &Path) -> Vec<f32> {
    let cfg = tiny_config(data, methods, &[]);
    let net = segda::engine::trainer::build_net(&cfg, &Device::flex(), false).unwrap();
    let net = checkpoint::load_model(net, &run.join("checkpoints/last")).unwrap();
    let mut v = Values::default();
    net.visit(&mut v);
    v.0
}

fn inference(run: &Path, methods: &[&str], data: &Path) -> Vec<f32> {
    let cfg = tiny_config(data, methods, &[]);
    let net = segda::engine::trainer::build_net(&cfg, &Device::flex(), false).unwrap();
    let net = checkpoint::load_model(net, &run.join("checkpoints/last")).unwrap().valid();
    let x = Tensor::<4>::ones([1, 3, 32, 64], &Device::flex());
    net.forward(x).main.into_data().iter::<f32>().collect()
}

/// The logged training rows without their wall times (which differ from run to run).
fn train_losses(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter(|l| l.contains("\"kind\":\"train\""))
        .map(|l| {
            let mut row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
            row.retain(|k, _| !k.starts_with("time_"));
            serde_json::Value::Object(row).to_string()
        })
        .collect()
}

/// `segda train --config CFG --out OUT [--resume]` as a process of its own, on one thread.
fn train_command(cfg: &Path, out: &Path, resume: bool) -> std::process::Command {
    let mut cmd = segda();
    cmd.args(["train", "--config"]).arg(cfg).arg("--out").arg(out).env("RAYON_NUM_THREADS", "1");
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// Training rows a run has logged so far (0 before its metrics file exists).
fn logged_iterations(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.matches("\"kind\":\"train\"").count())
}

/// Waits until a run started elsewhere has logged `n` training rows (two minutes at most).
fn wait_for_iterations(run: &Path, n: usize) {
    let started = std::time::Instant::now();
    while logged_iterations(run) < n {
        assert!(started.elapsed().as_secs() < 120, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// burn's CPU random generator is global to the process: tests that train are serialised so
/// that one test's draws cannot interleave with another's.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn opts(out: &Path, resume: bool, stop_after: Option<u64>) -> TrainOptions {
    TrainOptions { resume, stop_after, ..TrainOptions::new(out, Device::flex()) }
}

fn assert_resume_is_exact(methods: &[&str]) {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    train(tiny_config(&data, methods, &[]), &opts(&a, false, None)).unwrap();
    let s = train(tiny_config(&data, methods, &[]), &opts(&b, false, Some(4))).unwrap();
    assert!(s.interrupted && s.iters == 4);
    // a resumed run without --resume is refused rather than overwritten
    let e = train(tiny_config(&data, methods, &[]), &opts(&b, false, None)).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    train(tiny_config(&data, methods, &[]), &opts(&b, true, None)).unwrap();
    assert!(weights(&a, methods, &data) == weights(&b, methods, &data), "weights differ after resume");
    // inference uses the BatchNorm running statistics: equal outputs, equal statistics
    assert!(inference(&a, methods, &data) == inference(&b, methods, &data), "BatchNorm statistics differ after resume");
    assert_eq!(train_losses(&a), train_losses(&b), "loss curves differ");
    assert_eq!(train_losses(&a).len(), 6);
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    assert_resume_is_exact(&["source_only"]);
}

#[test]
fn run_directory_has_config_metrics_events_checkpoints_and_eval() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let run = tmp.path().join("run");
    let s = train(tiny_config(&data, &["source_only"], &[]), &opts(&run, false, None)).unwrap();
    assert_eq!(s.iters, 6);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "checkpoints/last/model.bpk",
        "checkpoints/last/optim.bpk",
        "checkpoints/best/model.bpk",
        "eval/latest.json",
        "eval/best.md",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert!(std::fs::read_dir(&run).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("events.out.tfevents")));
    // the dumped config is complete and loads back as the same experiment
    let dumped = segda::config::Config::load(&run.join("config.toml"), &[]).unwrap();
    assert_eq!(dumped.train.iters, 6);
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(text.contains("max_iters"));
    // it opens with the thread count the digits depend on
    let threads = format!("# segda {}, {} CPU threads", env!("CARGO_PKG_VERSION"), rayon::current_num_threads());
    assert!(text.starts_with(&threads), "{text}");
    let evals =
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().filter(|l| l.contains("\"eval\"")).count();
    assert_eq!(evals, 2);
    // no temporary checkpoint directories are left behind
    let left: Vec<_> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn a_diverging_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let run = tmp.path().join("nan");
    let cfg = tiny_config(&data, &["source_only"], &["train.lr=1e12", "train.iters=40", "train.eval_every=1"]);
    let e = train(cfg, &opts(&run, false, None)).unwrap_err().to_string();
    assert!(e.contains("loss `seg_src`") && (e.contains("NaN") || e.contains("inf")), "{e}");
    assert!(e.contains("last good checkpoint"), "{e}");
    let ck = checkpoint::find(&run, "last").expect("a checkpoint from before the divergence");
    let p = checkpoint::read_progress(&ck).unwrap();
    assert!(p.iter >= 1, "{p:?}");
}

#[test]
fn a_bad_config_key_is_named_with_the_valid_keys() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("x.toml");
    std::fs::write(&cfg, "methods = [\"source_only\"]\n[train]\niters = 3\n").unwrap();
    let out = segda()
        .args(["train", "--config"])
        .arg(&cfg)
        .args(["--set", "train.iterz=3", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // the bad key came from --set: blamed on it, not on the file
    assert!(
        err.contains("train.iterz") && err.contains("max_iters") && err.contains("from --set train.iterz=3"),
        "{err}"
    );
    let out = segda()
        .args(["train", "--config"])
        .arg(&cfg)
        .args(["--set", "methods=[\"nope\"]", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown method `nope`") && err.contains("source_only"), "{err}");
    let out = segda()
        .args(["train", "--config"])
        .arg(tmp.path().join("missing.toml"))
        .args(["--out", "/tmp/x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing.toml"), "{err}");
}

#[test]
fn oracle_trains_on_labelled_target_only() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    // the source root does not exist: the oracle must not need it
    let cfg = tiny_config(&data, &["oracle"], &["source.root=\"/nonexistent\"", "train.iters=2", "train.eval_every=2"]);
    let run = tmp.path().join("oracle");
    train(cfg, &opts(&run, false, None)).unwrap();
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(m.contains("seg_tgt") && !m.contains("seg_src"), "{m}");
}

#[test]
fn resume_is_exact_with_discriminators() {
    assert_resume_is_exact(&["adaptsegnet"]);
}

#[test]
fn composed_methods_add_their_own_terms_once() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let run = tmp.path().join("both");
    train(
        tiny_config(&data, &["advent", "minent", "class_prior"], &["train.iters=2", "train.eval_every=2"]),
        &opts(&run, false, None),
    )
    .unwrap();
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(m.lines().next().unwrap()).unwrap();
    for k in ["seg_src", "advent_main", "advent_aux", "ent_main", "ent_aux", "cp", "advent_d_main", "advent_d_aux"] {
        assert!(first.get(k).is_some(), "{k} missing in {first}");
    }
    // constants are written back into the resolved config
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("[method.advent]") && cfg.contains("lambda_ent_main") && cfg.contains("lambda_cp"), "{cfg}");
}

#[test]
fn a_run_can_start_from_another_runs_checkpoint() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let a = tmp.path().join("a");
    train(tiny_config(&data, &["source_only"], &["train.iters=2", "train.eval_every=2"]), &opts(&a, false, None))
        .unwrap();
    let b = tmp.path().join("b");
    let from = format!("train.init_from=\"{}\"", a.join("checkpoints/last").display());
    // lr 0 and frozen BatchNorm: the weights must come out exactly as they went in
    let cfg = tiny_config(
        &data,
        &["minent"],
        &[&from, "train.lr=0", "model.bn=\"frozen\"", "train.iters=1", "train.eval_every=1"],
    );
    train(cfg, &opts(&b, false, None)).unwrap();
    assert!(weights(&a, &["source_only"], &data) == weights(&b, &["source_only"], &data));
}

#[test]
fn lse_runs_rounds_writes_pseudo_labels_and_resumes_mid_round() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let extra = [
        "train.iters=1000",
        "train.eval_every=1000",
        "method.lse.p_max=0.15",
        "method.lse.epochs_per_round=1",
        "method.lse.patches_per_image=2",
        "method.lse.lr_per_round=true",
    ];
    let a = tmp.path().join("a");
    let s = train(tiny_config(&data, &["lse"], &extra), &opts(&a, false, None)).unwrap();
    assert!(!s.interrupted && s.iters < 1000, "LSE ends after its last round ({} iterations)", s.iters);
    for r in 0..2 {
        let d = a.join(format!("lse/round_{r}"));
        let list = std::fs::read_to_string(d.join("selected.txt")).unwrap();
        let name = list.lines().next().unwrap().split('\t').next().unwrap();
        assert!(d.join("pseudo").join(format!("{name}.png")).is_file());
        assert!(d.join("preview").join(format!("{name}.png")).is_file());
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
        assert!(summary["scalars"]["lse_pseudo_acc"].as_f64().is_some(), "{summary}");
        assert!(summary["classes"]["road"]["share"].as_f64().is_some(), "{summary}");
    }
    assert!(!a.join("lse/round_2").exists(), "p_max 0.15 allows two rounds");
    let m = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert_eq!(m.lines().filter(|l| l.contains("\"kind\":\"round\"")).count(), 2);
    assert!(
        m.lines().filter(|l| l.contains("\"kind\":\"eval\"")).count() >= 2,
        "an evaluation at the end of each round"
    );
    // the poly schedule restarts at train.lr every round (lr_per_round) and falls within it
    let rows: Vec<serde_json::Value> = m.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let starts: Vec<u64> = rows.iter().filter(|r| r["kind"] == "round").map(|r| r["iter"].as_u64().unwrap()).collect();
    let lr: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| r["kind"] == "train")
        .map(|r| (r["iter"].as_u64().unwrap() - 1, r["lr"].as_f64().unwrap()))
        .collect();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(u64::MAX);
        let round: Vec<f64> = lr.iter().filter(|(it, _)| (s..end).contains(it)).map(|x| x.1).collect();
        assert_eq!(round[0], 0.01, "round {k} starts at train.lr: {round:?}");
        assert!(round.windows(2).all(|w| w[1] < w[0]), "round {k}: the lr falls within the round: {round:?}");
    }
    // stopped in the middle of round 0 and resumed: identical to the uninterrupted run
    let b = tmp.path().join("b");
    train(tiny_config(&data, &["lse"], &extra), &opts(&b, false, Some(1))).unwrap();
    train(tiny_config(&data, &["lse"], &extra), &opts(&b, true, None)).unwrap();
    assert!(weights(&a, &["lse"], &data) == weights(&b, &["lse"], &data), "weights differ after resuming mid-round");
    assert_eq!(train_losses(&a), train_losses(&b));
}

#[test]
fn lse_pseudo_labels_have_the_image_size_when_the_network_input_is_resized() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    // the images are 64x32; the network sees 48x24
    let extra = [
        "train.iters=1000",
        "target.resize=[48, 24]",
        "method.lse.p_max=0.10",
        "method.lse.epochs_per_round=1",
        "method.lse.patches_per_image=1",
    ];
    let a = tmp.path().join("a");
    train(tiny_config(&data, &["lse"], &extra), &opts(&a, false, None)).unwrap();
    let d = a.join("lse/round_0");
    let list = std::fs::read_to_string(d.join("selected.txt")).unwrap();
    for line in list.lines() {
        let (name, image) = line.split_once('\t').unwrap();
        let label = d.join("pseudo").join(format!("{name}.png"));
        assert_eq!(image::image_dimensions(&label).unwrap(), image::image_dimensions(image).unwrap(), "{name}");
    }
}

#[test]
fn resume_is_exact_with_a_labelled_target_stream() {
    assert_resume_is_exact(&["ass"]);
}

#[test]
fn ass_uses_the_same_labelled_images_as_a_target_subset() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let run = tmp.path().join("ass");
    let cfg = tiny_config(
        &data,
        &["ass"],
        &["method.ass.labelled=2", "method.ass.labelled_seed=4", "train.iters=2", "train.eval_every=2"],
    );
    train(cfg.clone(), &opts(&run, false, None)).unwrap();
    let listed: Vec<String> =
        std::fs::read_to_string(run.join("ass/labelled.txt")).unwrap().lines().map(String::from).collect();
    let mut target = cfg.target.clone();
    target.subset = Some(2);
    target.subset_seed = 4;
    let subset: Vec<String> = target.open().unwrap().items.into_iter().map(|i| i.name).collect();
    assert_eq!(listed, subset);
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(m.contains("ass_tgt_ce") && m.contains("ass_sem") && m.contains("ass_d_sem"), "{m}");
}

#[test]
fn resume_is_exact_with_pivots_and_an_image_head() {
    assert_resume_is_exact(&["pit"]);
}

#[test]
fn resume_is_exact_with_a_teacher_projection_head_and_memory() {
    assert_resume_is_exact(&["t2s"]);
}

#[test]
fn t2s_generalisation_never_opens_the_target_and_logs_class_weights() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let run = tmp.path().join("dg");
    // the target's training images do not exist: domain generalisation must not need them
    let cfg =
        tiny_config(&data, &["t2s"], &["method.t2s.domain_generalisation=true", "target.root=\"/nonexistent/target\""]);
    train(cfg, &opts(&run, false, None)).unwrap();
    let m = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(m.contains("\"pull\"") && m.contains("\"seg_style\"") && m.contains("\"stat/t2s_weight_road\""), "{m}");
    assert!(!m.contains("\"mix\""), "DG has no mixed target images: {m}");
}

#[test]
fn lse_oracle_labels_are_the_held_labels_on_the_kept_pixels() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let extra = [
        "train.iters=1000",
        "method.lse.p_max=0.10",
        "method.lse.epochs_per_round=1",
        "method.lse.patches_per_image=1",
    ];
    let summary = |run: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("lse/round_0/summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train(tiny_config(&data, &["lse"], &extra), &opts(&a, false, None)).unwrap();
    let mut with_oracle = extra.to_vec();
    with_oracle.push("method.lse.oracle_labels=true");
    train(tiny_config(&data, &["lse"], &with_oracle), &opts(&b, false, None)).unwrap();
    let (sa, sb) = (summary(&a), summary(&b));
    // the same selection, relabelled with the truth: every kept pixel is right
    assert_eq!(sa["selected"], sb["selected"]);
    assert!(sa["scalars"]["lse_pseudo_acc"].as_f64().unwrap() < 100.0, "{sa}");
    assert_eq!(sb["scalars"]["lse_pseudo_acc"].as_f64(), Some(100.0), "{sb}");
}

#[test]
fn measuring_pits_pseudo_labels_reads_the_target_labels_and_changes_nothing_else() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // every confident-enough pixel a seed, so that pseudo-labels exist from the first iteration
    let plain = ["method.pit.seed_confidence=0.0"];
    let measured = ["method.pit.seed_confidence=0.0", "method.pit.measure_pseudo=true"];
    train(tiny_config(&data, &["pit"], &plain), &opts(&a, false, None)).unwrap();
    train(tiny_config(&data, &["pit"], &measured), &opts(&b, false, None)).unwrap();
    let rows = |run: &Path| -> Vec<String> {
        train_losses(run)
            .iter()
            .map(|l| {
                let mut row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
                let measures = ["stat/pit_pseudo_precision", "stat/pit_teacher_accuracy"];
                let had = measures.iter().filter(|k| row.remove(**k).is_some()).count();
                format!("{had} {}", serde_json::Value::Object(row))
            })
            .collect()
    };
    let (ra, rb) = (rows(&a), rows(&b));
    // the same training, iteration for iteration; only the measured run logs the measures
    assert_eq!(ra.iter().map(|r| &r[2..]).collect::<Vec<_>>(), rb.iter().map(|r| &r[2..]).collect::<Vec<_>>());
    assert!(ra.iter().all(|r| r.starts_with("0 ")), "{ra:?}");
    assert!(rb.iter().all(|r| r.starts_with("2 ")), "{rb:?}");
    assert!(weights(&a, &["pit"], &data) == weights(&b, &["pit"], &data));
    // the measured run keeps its per-class counts with its state, as a table too
    let table = |run: &Path| std::fs::read_to_string(run.join("checkpoints/last/methods/pit/pit_pseudo_labels.md"));
    assert!(table(&a).is_err(), "only a measured run writes the table");
    let t = table(&b).unwrap();
    assert!(t.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| class")).count() > 0, "{t}");
    // an unlabelled target (a folder of the same images) is no error: nothing to measure
    let images = tmp.path().join("unlabelled/images");
    std::fs::create_dir_all(&images).unwrap();
    let target = segda::engine::trainer::open_dataset(&tiny_config(&data, &["pit"], &[]).target).unwrap();
    for item in &target.items {
        std::fs::copy(&item.image, images.join(format!("{}.png", item.name))).unwrap();
    }
    let c = tmp.path().join("c");
    let root = format!("target.root=\"{}\"", tmp.path().join("unlabelled").display());
    let unlabelled = [measured[0], measured[1], "target.kind=\"folder\"", root.as_str()];
    train(tiny_config(&data, &["pit"], &unlabelled), &opts(&c, false, None)).unwrap();
    assert!(rows(&c).iter().all(|r| r.starts_with("0 ")), "{:?}", rows(&c));
}

/// A stage (`train.init_from = { experiment = … }`) is trained for the run's seed before the run,
/// resumed across when it was interrupted, recorded in the run's config, reused by another
/// experiment naming it (not trained twice), and trained again for another seed.
#[test]
fn a_stage_is_trained_once_shared_and_resumed_across() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let so = tmp.path().join("so.toml");
    std::fs::write(&so, tiny_config(&data, &["source_only"], &["train.iters=2", "train.eval_every=2"]).to_toml())
        .unwrap();
    let spec = format!("train.init_from={{ experiment = \"{}\" }}", so.display());
    let cfg = |m: &str, seed: &str| tiny_config(&data, &[m], &[&spec, "train.iters=2", "train.eval_every=2", seed]);
    let root = tmp.path().join("runs");
    let stage_runs = |seed: &str| -> Vec<std::path::PathBuf> {
        let Ok(dirs) = std::fs::read_dir(root.join("stages")) else { return vec![] };
        dirs.map(|d| d.unwrap().path().join(seed)).filter(|d| d.is_dir()).collect()
    };
    // interrupted in the stage's first iteration, then resumed across it
    let a = root.join("minent");
    let s = train(cfg("minent", "train.seed=7"), &opts(&a, false, Some(1))).unwrap();
    assert!(s.interrupted && s.iters == 0, "{s:?}");
    let stage = stage_runs("seed7");
    assert_eq!(stage.len(), 1, "one stage run: {stage:?}");
    let progress = |d: &Path| checkpoint::read_progress(&checkpoint::find(d, "last").unwrap()).unwrap();
    assert!(progress(&stage[0]).iter == 1 && !progress(&stage[0]).finished);
    let s = train(cfg("minent", "train.seed=7"), &opts(&a, true, None)).unwrap();
    assert!(!s.interrupted && s.iters == 2, "{s:?}");
    assert!(progress(&stage[0]).finished && progress(&stage[0]).iter == 2);
    // the run's resolved config records the stage's run
    let dumped = segda::config::Config::load(&a.join("config.toml"), &[]).unwrap();
    let Some(segda::config::InitFrom::Stage(st)) = dumped.train.init_from else {
        panic!("no stage in the dumped config")
    };
    assert_eq!(st.run.as_deref(), Some(stage[0].as_path()));
    // another experiment naming the same stage and seed reuses it
    let stamp = std::fs::metadata(stage[0].join("checkpoints/last/progress.json")).unwrap().modified().unwrap();
    train(cfg("advent", "train.seed=7"), &opts(&root.join("advent"), false, None)).unwrap();
    assert_eq!(
        std::fs::metadata(stage[0].join("checkpoints/last/progress.json")).unwrap().modified().unwrap(),
        stamp,
        "the stage was trained again"
    );
    assert_eq!(stage_runs("seed7").len(), 1);
    // another seed: its own stage run
    train(cfg("minent", "train.seed=8"), &opts(&root.join("minent8"), false, None)).unwrap();
    assert_eq!(stage_runs("seed8").len(), 1);
    // resuming a run that has nothing to resume is refused
    let e = train(cfg("minent", "train.seed=9"), &opts(&root.join("nothing"), true, None)).unwrap_err().to_string();
    assert!(e.contains("nothing to resume"), "{e}");
}

/// Two trainings into one directory: the second is refused naming the first (both ran and
/// interleaved their logs before), and touches nothing.
#[test]
fn a_second_training_into_the_same_directory_is_refused() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let out = tmp.path().join("run");
    let held = segda::engine::lock::RunLock::acquire(&out).unwrap();
    let cfg = || tiny_config(&data, &["source_only"], &["train.iters=1", "train.eval_every=1"]);
    let e = train(cfg(), &opts(&out, false, None)).unwrap_err().to_string();
    assert!(e.contains("another segda process") && e.contains(&std::process::id().to_string()), "{e}");
    assert!(!out.join("config.toml").exists() && !out.join("metrics.jsonl").exists());
    drop(held);
    assert!(train(cfg(), &opts(&out, false, None)).is_ok());
}

/// A checkpoint damaged on disk (truncated weights, a garbled progress file) is an error that
/// names the file when resuming, never a panic. Resumed by the binary: burn reads weights
/// lazily on threads of its own, so a failed load is kept out of this test process.
#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_file() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let out = tmp.path().join("run");
    let cfg = tiny_config(&data, &["source_only"], &["train.iters=4", "train.eval_every=2"]);
    let file = tmp.path().join("so.toml");
    std::fs::write(&file, cfg.to_toml()).unwrap();
    let s = train(cfg, &opts(&out, false, Some(2))).unwrap();
    assert!(s.interrupted);
    let resume = || {
        let o = train_command(&file, &out, true).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let last = checkpoint::find(&out, "last").unwrap();
    let model = last.join("model.bpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    let (code, err) = resume();
    assert!(code == Some(1) && err.contains("model.bpk") && !err.contains("panicked"), "{code:?} {err}");
    std::fs::write(&model, &bytes).unwrap();
    std::fs::write(last.join("progress.json"), "{\"iter\": tw").unwrap();
    let (code, err) = resume();
    assert!(code == Some(1) && err.contains("progress.json") && !err.contains("panicked"), "{code:?} {err}");
}

/// A run's digits do not depend on how many CPU threads compute them: the same weights on 1 and
/// 3 threads. A full-width network at the protocol's input size (wide layers, long sums over
/// positions) and AdaptSegNet's discriminators. (The GEMM's own test in `kernels::conv::gemm`
/// is the one shown to fail on a split that followed the thread count.)
#[test]
fn a_run_ends_with_the_same_weights_on_any_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("adapt.toml");
    let c = tiny_config(
        &data,
        &["adaptsegnet"],
        &[
            "model.width_mult=1.0",
            "model.output_stride=8",
            "source.resize=[192, 104]",
            "train.iters=20",
            "train.eval_every=1000",
        ],
    );
    std::fs::write(&cfg, c.to_toml()).unwrap();
    let weights_on = |threads: &str| {
        let out = tmp.path().join(format!("threads-{threads}"));
        let status = train_command(&cfg, &out, false).env("RAYON_NUM_THREADS", threads).status().unwrap();
        assert!(status.success());
        let net = segda::engine::trainer::build_net(&c, &Device::flex(), false).unwrap();
        let net = checkpoint::load_model(net, &out.join("checkpoints/last")).unwrap();
        let mut v = Values::default();
        net.visit(&mut v);
        v.0.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
    };
    let one = weights_on("1");
    let three = weights_on("3");
    let differ = one.iter().zip(&three).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} of {} weights differ between 1 and 3 threads", one.len());
}

/// A real Ctrl-C (SIGINT to `segda train`) mid-run writes a checkpoint and exits 130; `--resume`
/// then ends where the uninterrupted run ends, with every iteration logged once.
#[cfg(unix)]
#[test]
fn sigint_then_resume_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("so.toml");
    let c = tiny_config(&data, &["source_only"], &["train.iters=60", "train.eval_every=1000", "train.max_iters=60"]);
    std::fs::write(&cfg, c.to_toml()).unwrap();
    let run = |out: &Path, resume: bool| train_command(&cfg, out, resume);
    let whole = tmp.path().join("whole");
    assert!(run(&whole, false).status().unwrap().success());
    let cut = tmp.path().join("cut");
    let mut child = run(&cut, false).stderr(std::process::Stdio::null()).spawn().unwrap();
    // wait until it is training (a few iterations logged), then interrupt it
    wait_for_iterations(&cut, 5);
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let stopped = checkpoint::read_progress(&checkpoint::find(&cut, "last").expect("a checkpoint on Ctrl-C")).unwrap();
    eprintln!("interrupted at iteration {} of 60", stopped.iter);
    if stopped.finished {
        return; // the run beat the signal: nothing to resume (a slow machine's race, not a failure)
    }
    assert_eq!(status.code(), Some(130), "Ctrl-C exits with 130");
    assert!(run(&cut, true).status().unwrap().success());
    assert_eq!(train_losses(&cut), train_losses(&whole), "resumed after SIGINT = uninterrupted");
}

/// A disk that fills up while a checkpoint is written (simulated with a file-size limit: writes
/// past it fail with EFBIG, as on a full disk): the run stops with an error naming the file, the
/// previous checkpoint stays whole, and the run resumes from it once there is room.
#[cfg(unix)]
#[test]
fn a_full_disk_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("so.toml");
    let c = tiny_config(&data, &["source_only"], &["train.iters=8", "train.eval_every=4"]);
    std::fs::write(&cfg, c.to_toml()).unwrap();
    let out = tmp.path().join("run");
    let train_cmd = |limit_kb: Option<u64>, extra: &str| {
        let limit = limit_kb.map_or(String::new(), |k| format!("trap '' XFSZ; ulimit -f {k}; "));
        let line = format!(
            "{limit}exec '{}' train --config '{}' --out '{}' {extra}",
            env!("CARGO_BIN_EXE_segda"),
            cfg.display(),
            out.display()
        );
        std::process::Command::new("bash").args(["-c", &line]).env("RAYON_NUM_THREADS", "1").output().unwrap()
    };
    // four of the eight iterations and their checkpoint
    {
        let _serial = serial();
        assert!(train(c.clone(), &opts(&out, false, Some(4))).unwrap().interrupted);
    }
    let last = checkpoint::find(&out, "last").unwrap();
    let model = std::fs::read(last.join("model.bpk")).unwrap();
    let progress = checkpoint::read_progress(&last).unwrap();
    assert_eq!(progress.iter, 4);
    // resumed under a limit that a new model file cannot fit in
    let limit = (model.len() as u64 / 1024 / 2).max(1);
    let full = train_cmd(Some(limit), "--resume");
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("File too large") || err.contains("too large") || err.contains("No space"), "{err}");
    let still = checkpoint::find(&out, "last").unwrap();
    assert_eq!(std::fs::read(still.join("model.bpk")).unwrap(), model, "the previous checkpoint is whole");
    assert_eq!(checkpoint::read_progress(&still).unwrap().iter, 4);
    // room again: the run resumes from iteration 4 and ends
    let again = train_cmd(None, "--resume");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(checkpoint::read_progress(&checkpoint::find(&out, "last").unwrap()).unwrap().iter, 8);
}

/// `kill -9` mid-run, then `--resume`: the run continues from its last checkpoint (the stale
/// lock of the dead process is taken over) and its log holds every iteration exactly once.
#[cfg(unix)]
#[test]
fn kill_9_then_resume_logs_every_iteration_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("so.toml");
    let c = tiny_config(&data, &["source_only"], &["train.iters=40", "train.max_iters=40", "train.eval_every=5"]);
    std::fs::write(&cfg, c.to_toml()).unwrap();
    let out = tmp.path().join("run");
    let run = |resume: bool| train_command(&cfg, &out, resume);
    let mut child = run(false).stderr(std::process::Stdio::null()).spawn().unwrap();
    // killed after a checkpoint (every 5 iterations) and a few iterations more
    wait_for_iterations(&out, 8);
    child.kill().unwrap();
    child.wait().unwrap();
    let Some(last) = checkpoint::find(&out, "last") else { return }; // killed before any checkpoint
    eprintln!(
        "killed after {} logged iterations, checkpoint at {}",
        logged_iterations(&out),
        checkpoint::read_progress(&last).unwrap().iter
    );
    if checkpoint::read_progress(&last).unwrap().finished {
        return; // the run beat the kill (a slow machine's race, not a failure)
    }
    assert!(out.join(".lock").exists(), "a killed process leaves its lock behind");
    let o = run(true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let iters: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"train\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, (1..=40).collect::<Vec<_>>(), "every iteration once, in order");
}
