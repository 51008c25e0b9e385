//! The HTML report (`segda report`), the multi-run `segda eval`, and the report at the end of
//! `segda sweep`.
mod common;
use burn::prelude::Device;
use common::{segda, tiny_config, tiny_data};
use segda::data::classes::{Protocol, CLASS_NAMES};
use segda::engine::{train, TrainOptions};
use segda::eval::EvalReport;
use segda::report::{write_report, ReportOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn opts(images: usize) -> ReportOptions {
    ReportOptions { images, device: Device::flex(), relabel: vec![] }
}

fn report(args: &[PathBuf], images: usize) -> String {
    let out = tempfile::tempdir().unwrap();
    let page = write_report(args, &out.path().join("sub/report.html"), &opts(images)).unwrap();
    std::fs::read_to_string(page).unwrap()
}

/// Nothing on the page may be fetched from the network.
fn assert_self_contained(html: &str) {
    assert!(!html.contains("http://") && !html.contains("https://"), "the page references the network");
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>"));
}

/// The `<table class="iou">` tables of a page.
fn iou_tables(html: &str) -> Vec<&str> {
    html.match_indices(r#"<table class="iou">"#)
        .map(|(i, _)| &html[i..i + html[i..].find("</table>").unwrap()])
        .collect()
}

/// A run directory written by hand: config, loss and mIoU lines, and a stored best evaluation.
fn fake_run(dir: &Path, method: &str, seed: u64, scale: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg =
        tiny_config(Path::new("/nonexistent-data"), &[method], &[&format!("train.seed={seed}"), "train.iters=300"]);
    std::fs::write(dir.join("config.toml"), cfg.to_toml()).unwrap();
    let mut lines = String::new();
    for it in (10..=300).step_by(10) {
        let loss = 2.0 * (-(it as f64) / 100.0).exp() + 0.05 * ((it / 10) % 3) as f64;
        lines.push_str(&format!(
            "{{\"iter\":{it},\"kind\":\"train\",\"lr\":0.01,\"seg_src\":{loss},\"ent_main\":{}}}\n",
            loss / 500.0
        ));
        if it % 100 == 0 {
            lines.push_str(&format!(
                "{{\"iter\":{it},\"kind\":\"eval\",\"miou\":{},\"pixel_acc\":50.0,\"per_class\":{{}}}}\n",
                scale * it as f64 / 30.0
            ));
        }
    }
    std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
    let per_class = CLASS_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), Some(scale * (i + 1) as f64 + seed as f64 * 0.1)))
        .collect::<std::collections::BTreeMap<_, _>>();
    let miou = per_class.values().flatten().sum::<f64>() / 19.0;
    let r = EvalReport { protocol: Protocol::P19, miou, per_class, pixel_acc: 50.0, pixels: 1000 };
    segda::engine::trainer::write_eval(dir, "best", &r, 300).unwrap();
    // the last evaluation scores lower than the best: the report shows both, final first
    let latest = EvalReport {
        per_class: r.per_class.iter().map(|(n, v)| (n.clone(), v.map(|v| v * 0.9))).collect(),
        miou: miou * 0.9,
        ..r
    };
    segda::engine::trainer::write_eval(dir, "latest", &latest, 300).unwrap();
}

#[test]
fn a_run_without_evaluation_renders_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fresh");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), tiny_config(tmp.path(), &["source_only"], &[]).to_toml()).unwrap();
    // no metrics file at all, then an empty one: the page renders and says what is missing
    for metrics in [None, Some(""), Some("{\"iter\":1,\"kind\":\"train\",\"seg_src\":1.5}\n{\"iter\":2,\"kind\":\"train\",\"seg_src\":1.2}\n{\"iter\":3,\"ki")] {
        if let Some(m) = metrics {
            std::fs::write(run.join("metrics.jsonl"), m).unwrap();
        }
        let html = report(std::slice::from_ref(&run), 3);
        assert_self_contained(&html);
        assert!(html.contains("No evaluation yet"), "{html}");
        assert!(html.contains("no evaluation yet"), "the runs table marks the run");
        assert!(html.contains("no best checkpoint yet"), "the grid says why it is empty");
        assert!(iou_tables(&html).is_empty());
        let logged = metrics.is_some_and(|m| !m.is_empty());
        // the two complete train lines (the torn last line is skipped) make a loss chart
        assert_eq!(html.contains("<polyline"), logged, "{html}");
        assert_eq!(html.contains("no training logged yet"), !logged);
    }
}

#[test]
fn many_runs_render_grouped_by_method_with_the_best_highlighted() {
    let tmp = tempfile::tempdir().unwrap();
    // twelve runs: three methods × four seeds; minent scores highest on every class
    for (method, scale) in [("source_only", 1.0), ("minent", 1.5), ("advent", 1.2)] {
        for seed in 1..=4 {
            fake_run(&tmp.path().join(method).join(format!("seed{seed}")), method, seed, scale);
        }
    }
    let args: Vec<PathBuf> = ["source_only", "minent", "advent"].iter().map(|m| tmp.path().join(m)).collect();
    let html = report(&args, 0);
    assert_self_contained(&html);
    assert!(html.contains("12 runs · 3 methods · 19-class protocol"), "{}", &html[..600]);
    // one mIoU chart (a line per run, dashed past ten colours), a loss chart and a chart of the
    // other scalars (the learning rate) per run
    assert_eq!(html.matches("<svg").count(), 25);
    assert!(html.contains("minent/seed4 — other scalars"));
    assert!(html.contains("stroke-dasharray"));
    assert!(html.contains("minent/seed4") && html.contains(">ent_main<"));
    // the adversarial-size term next to the segmentation loss puts the losses on a log axis
    assert!(html.contains("loss (log)"));
    let tables = iou_tables(&html);
    assert_eq!(tables.len(), 2, "the final and the best checkpoint");
    assert!(
        html.find("final checkpoint (no selection on val)").unwrap()
            < html.find("best checkpoint (selected on val").unwrap()
    );
    let t = tables[1];
    assert_eq!(t.matches("n = 4").count(), 3);
    assert!(t.contains("±"), "mean ± std over seeds");
    let rows: Vec<&str> = t.split("<tr").skip(2).collect();
    assert_eq!(rows.len(), 20, "19 classes and the mIoU");
    for row in rows {
        // columns are advent, minent, source_only: the best is the second data cell
        let cells: Vec<&str> = row.split("<td").skip(1).collect();
        assert_eq!(cells.len(), 3);
        assert!(
            cells[1].starts_with(r#" class="best""#) && !cells[0].contains("best") && !cells[2].contains("best"),
            "{row}"
        );
    }
    // no image section was asked for
    assert!(!html.contains("id=\"images\""));
}

/// Two sweeps of one config (one name, the same seeds) are one setting twice: an error naming
/// both, until `--label` names one of them apart; a label that holds no run is an error too.
#[test]
fn label_names_runs_of_one_config_apart() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, scale) in [("before", 1.0), ("after", 1.3)] {
        for seed in 1..=2 {
            fake_run(&tmp.path().join(dir).join(format!("seed{seed}")), "advent", seed, scale);
        }
    }
    let args: Vec<PathBuf> = ["before", "after"].iter().map(|d| tmp.path().join(d)).collect();
    let out = tmp.path().join("r.html");
    let e = write_report(&args, &out, &opts(0)).unwrap_err().to_string();
    assert!(e.contains("before/seed1") && e.contains("after/seed1") && e.contains("--label"), "{e}");
    let relabel = |dir: &str, name: &str| format!("{}={name}", tmp.path().join(dir).display()).parse().unwrap();
    let labelled = ReportOptions { relabel: vec![relabel("before", "advent_before")], ..opts(0) };
    let html = std::fs::read_to_string(write_report(&args, &out, &labelled).unwrap()).unwrap();
    assert!(html.contains("4 runs · 2 methods"), "{}", &html[..600]);
    assert!(html.contains("advent_before") && html.contains("advent"));
    let typo = ReportOptions { relabel: vec![relabel("befor", "x")], ..opts(0) };
    let e = write_report(&args, &out, &typo).unwrap_err().to_string();
    assert!(e.contains("befor") && e.contains("no run"), "{e}");
}

/// Four tiny trained runs (trained once per test process): source_only seeds 1 and 2, minent,
/// and source_only scored under the 16-class protocol.
fn trained() -> &'static Path {
    static RUNS: OnceLock<PathBuf> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-runs");
        let _ = std::fs::remove_dir_all(&root);
        let data = tiny_data(&root);
        for (dir, method, extra) in [
            ("so/seed1", "source_only", "train.seed=1"),
            ("so/seed2", "source_only", "train.seed=2"),
            ("mi/seed1", "minent", "train.seed=1"),
            ("p16/seed1", "source_only", "eval.protocol=16"),
        ] {
            let cfg = tiny_config(&data, &[method], &[extra, "train.iters=4", "train.eval_every=2"]);
            train(cfg, &TrainOptions::new(root.join("runs").join(dir), Device::flex())).unwrap();
        }
        root.join("runs")
    })
}

#[test]
fn trained_runs_report_has_curves_tables_and_a_prediction_grid() {
    let runs = trained();
    // a directory of runs stands for its runs
    let html = report(&[runs.join("so"), runs.join("mi/seed1")], 2);
    assert_self_contained(&html);
    assert!(html.contains("3 runs · 2 methods"));
    assert_eq!(html.matches("<svg").count(), 7, "an mIoU chart, three loss charts and three of the learning rate");
    assert!(html.contains("Target mIoU") && html.matches("<polyline").count() >= 4);
    let tables = iou_tables(&html);
    assert_eq!(tables.len(), 2, "final and best");
    for c in CLASS_NAMES {
        assert!(tables[0].contains(&format!("<th>{c}</th>")), "{c} missing");
    }
    assert!(tables[0].contains("source_only<br><small>n = 2") && tables[0].contains("minent<br><small>n = 1"));
    // image | ground truth | prediction | errors, two images for each of three runs, all PNG data URIs
    let imgs: Vec<&str> = html.split("<img src=\"").skip(1).collect();
    assert_eq!(imgs.len(), 3 * 2 * 4);
    assert!(imgs.iter().all(|s| s.starts_with("data:image/png;base64,iVBORw0KGgo")), "inline PNGs");
    assert_eq!(html.matches("pixel acc. ").count(), 6);
    assert!(html.contains("best checkpoint @ 4") || html.contains("best checkpoint @ 2"));
}

#[test]
fn the_table_follows_the_runs_protocol() {
    let runs = trained();
    let html = report(&[runs.join("so/seed1"), runs.join("p16/seed1")], 1);
    assert!(html.contains("16-class protocol"));
    let tables = iou_tables(&html);
    assert_eq!(tables.len(), 4, "16 classes, then the 13 it implies, for the final and the best checkpoint");
    for pair in tables.chunks(2) {
        assert_eq!(pair[0].split("<tr").count() - 2, 17);
        assert_eq!(pair[1].split("<tr").count() - 2, 14);
    }
    // terrain, truck and train are not SYNTHIA classes: not in the tables, nor in the grid legend
    assert!(!html.contains(">terrain<") && !html.contains(">truck<"));
}

#[test]
fn segda_report_and_multi_run_eval_on_the_command_line() {
    let runs = trained();
    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("r.html");
    let o = segda()
        .arg("report")
        .arg(runs.join("so"))
        .arg(runs.join("mi"))
        .arg("--out")
        .arg(&page)
        .args(["--images", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("r.html") && page.is_file());
    // the adaptation table, with --baseline paired by seed
    assert!(stdout.contains("| setting | seeds | final mIoU | best mIoU |"), "{stdout}");
    let o = segda()
        .arg("report")
        .arg(runs.join("mi"))
        .arg("--baseline")
        .arg(runs.join("so"))
        .arg("--out")
        .arg(&page)
        .args(["--images", "0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("final − source_only (paired)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // --label may name the baseline's runs as well as the runs shown
    let o = segda()
        .arg("report")
        .arg(runs.join("mi"))
        .arg("--baseline")
        .arg(runs.join("so"))
        .arg("--label")
        .arg(format!("{}=base", runs.join("so").display()))
        .arg("--label")
        .arg(format!("{}=mine", runs.join("mi").display()))
        .arg("--out")
        .arg(&page)
        .args(["--images", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("final − base (paired)") && stdout.contains("| mine | 1 |"), "{stdout}");

    let run_args = |c: &mut std::process::Command| {
        for r in ["so/seed1", "so/seed2", "mi/seed1"] {
            c.arg("--run").arg(runs.join(r));
        }
    };
    let mut c = segda();
    c.arg("eval");
    run_args(&mut c);
    let o = c.output().unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && md.contains("| class (19) | minent (n=1) | source_only (n=2) |")
            && md.contains("| **mIoU** |"),
        "{md}"
    );
    let mut c = segda();
    c.args(["eval", "--json"]);
    run_args(&mut c);
    let o = c.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["protocol"], 19);
    assert_eq!(v["runs"].as_array().unwrap().len(), 3);
    let so = v["methods"].as_array().unwrap().iter().find(|m| m["method"] == "source_only").unwrap();
    assert_eq!(so["n"], 2);
    assert!(so["miou"]["mean"].as_f64().is_some() && so["miou"]["std"].as_f64().is_some());
    assert_eq!(so["per_class"].as_object().unwrap().len(), 19);
    // the mean is the mean of the two seeds' mIoU
    let seeds: Vec<f64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "source_only")
        .map(|r| r["miou"].as_f64().unwrap())
        .collect();
    assert!((so["miou"]["mean"].as_f64().unwrap() - (seeds[0] + seeds[1]) / 2.0).abs() < 1e-9);

    // a run still in progress (a config, no evaluation yet) is left out with a warning
    let busy = out.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::copy(runs.join("mi/seed1/config.toml"), busy.join("config.toml")).unwrap();
    let mut c = segda();
    c.arg("eval");
    run_args(&mut c);
    let o = c.arg("--run").arg(&busy).output().unwrap();
    let (md, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && md.contains("| minent (n=1) | source_only (n=2) |"), "{md}{err}");
    assert!(err.contains("busy") && err.contains("no evaluation stored yet"), "{err}");
    // only runs in progress: an error
    let o = segda().arg("eval").arg("--run").arg(&busy).arg("--run").arg(&busy).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("none of the 2 runs"));
}

#[test]
fn missing_or_malformed_run_dirs_are_errors_that_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r.html");
    let err = |p: &Path| write_report(&[p.to_path_buf()], &out, &opts(0)).unwrap_err().to_string();
    let missing = tmp.path().join("nope");
    assert!(err(&missing).contains("nope") && err(&missing).contains("not a directory"));
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(err(&empty).contains("empty") && err(&empty).contains("no config.toml"));
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("config.toml"), "methods = [").unwrap();
    assert!(err(&bad).contains("bad/config.toml"), "{}", err(&bad));
    let torn = tmp.path().join("torn");
    fake_run(&torn, "source_only", 1, 1.0);
    std::fs::write(torn.join("eval/best.json"), "{\"miou\": ").unwrap();
    assert!(err(&torn).contains("torn/eval/best.json"), "{}", err(&torn));
    assert!(!out.exists(), "nothing written on error");
    let o = segda().arg("report").arg(&missing).arg("--out").arg(&out).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn sweep_ends_by_writing_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("exp.toml");
    std::fs::write(&cfg, tiny_config(&data, &["source_only"], &["train.iters=2", "train.eval_every=2"]).to_toml())
        .unwrap();
    let out = tmp.path().join("sweep");
    let o = segda().args(["sweep", "--seeds", "2", "--config"]).arg(&cfg).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let page = out.join("report.html");
    assert!(stdout.contains(&format!("report: {}", page.display())), "{stdout}");
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("2 runs · 1 method") && html.contains("seed2"));
    assert_eq!(html.matches("<img src=\"data:image/png").count(), 2 * 3 * 4);
}

#[test]
fn sweep_only_runs_the_named_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let cfg = tmp.path().join("exp.toml");
    std::fs::write(&cfg, tiny_config(&data, &["source_only"], &["train.iters=2", "train.eval_every=2"]).to_toml())
        .unwrap();
    let out = tmp.path().join("sweep");
    let run = |only: &str| {
        segda()
            .args(["sweep", "--seeds", "3", "--only", only, "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run("2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("seed2/checkpoints/last").is_dir());
    assert!(!out.join("seed1").exists() && !out.join("seed3").exists());
    // a finished seed is skipped, a seed outside 1..=N is an error
    let again = run("2");
    assert!(again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already complete"));
    let bad = run("4");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--only"));
}

/// `segda predict` over a folder: outputs keep the inputs' relative paths (a/x.png, b/x.png and
/// b/x.jpg wrote one file before), an unreadable image is reported while the rest complete, and
/// the exit status says that one failed.
#[test]
fn predict_keeps_relative_names_and_goes_on_past_a_bad_image() {
    let runs = trained();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let img = image::RgbImage::from_fn(40, 20, |x, y| image::Rgb([(x * 6) as u8, (y * 12) as u8, 90]));
    for rel in ["a/x.png", "b/x.png", "b/x.jpg", "c/y_leftImg8bit.png"] {
        let p = input.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        img.save(&p).unwrap();
    }
    std::fs::write(input.join("c/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = tmp.path().join("out");
    let o = segda()
        .arg("predict")
        .arg("--run")
        .arg(runs.join("so/seed1"))
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--labelids")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "one image failed: {stderr}");
    assert!(stderr.contains("broken.png"), "the bad file is named: {stderr}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 of 5 images"));
    for name in ["a/x", "b/x_png", "b/x_jpg", "c/y"] {
        let p = out.join("labelIds").join(format!("{name}_pred_labelIds.png"));
        let (w, h) = image::image_dimensions(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!((w, h), (40, 20), "predicted at the input's size");
    }
}
