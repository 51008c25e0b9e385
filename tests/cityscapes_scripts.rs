//! segda's evaluation must equal cityscapesscripts' `evalPixelLevelSemanticLabeling`
//! (averageScoreClasses and every class IoU) on the same imperfect predictions.
//!
//! Needs a Python with `cityscapesscripts` (set SEGDA_PYTHON, as scripts/test.sh does). Without
//! one the test says so and passes, unless SEGDA_REQUIRE_CSSCRIPTS=1 (CI), where it fails.
use image::GrayImage;
use rand::{Rng, SeedableRng};
use segda::data::classes::{Protocol, TRAIN_TO_LABEL_ID};
use segda::data::synth::{generate, SynthOptions};
use segda::data::{Dataset, DatasetKind, Split};
use segda::eval::runner::evaluate_predictions;
use std::path::Path;
use std::process::Command;

fn python() -> Option<String> {
    let py = std::env::var("SEGDA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import cityscapesscripts"]).output().is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        assert!(
            std::env::var("SEGDA_REQUIRE_CSSCRIPTS").as_deref() != Ok("1"),
            "cityscapesscripts is required (SEGDA_REQUIRE_CSSCRIPTS=1) but `{py} -c 'import cityscapesscripts'` failed"
        );
        eprintln!("skipping: no Python with cityscapesscripts (set SEGDA_PYTHON; scripts/test.sh does)");
        None
    }
}

/// Imperfect predictions: ground truth with blocks replaced by other classes, some void
/// predictions, one class predicted that is absent from the ground truth.
fn perturb(gt: &GrayImage, rng: &mut impl Rng) -> GrayImage {
    let mut p = gt.clone();
    let (w, h) = p.dimensions();
    for px in p.pixels_mut() {
        // ignored ground truth (0..6, 9, 10, …) must still get some valid prediction
        if !TRAIN_TO_LABEL_ID.contains(&px.0[0]) {
            px.0[0] = TRAIN_TO_LABEL_ID[rng.gen_range(0..19)];
        }
    }
    for _ in 0..12 {
        let (bw, bh) = (rng.gen_range(4..w / 3), rng.gen_range(4..h / 3));
        let (x0, y0) = (rng.gen_range(0..w - bw), rng.gen_range(0..h - bh));
        // label 0 ("unlabeled") is a void prediction: a miss for the true class
        let v = if rng.gen_bool(0.2) { 0 } else { TRAIN_TO_LABEL_ID[rng.gen_range(0..17)] };
        for y in y0..y0 + bh {
            for x in x0..x0 + bw {
                p.put_pixel(x, y, image::Luma([v]));
            }
        }
    }
    p
}

#[test]
fn miou_equals_cityscapesscripts() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = SynthOptions {
        seed: 3,
        width: 128,
        gta5: 0,
        synthia: 0,
        city_train: 0,
        city_val: 6,
        shift: segda::data::synth::style::Shift::Camera(1.0),
    };
    generate(&data, &opts).unwrap();
    let root = data.join("cityscapes");
    let ds = Dataset::open(DatasetKind::Cityscapes, &root, Split::Val, None).unwrap();
    let results = tmp.path().join("results");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for item in &ds.items {
        let gt = segda::data::io::decode_index_label(&std::fs::read(item.label.as_ref().unwrap()).unwrap()).unwrap();
        let pred = perturb(&gt, &mut rng);
        segda::data::io::write_gray8(&results.join(format!("{}_pred_labelIds.png", item.name)), &pred).unwrap();
    }
    let ours = evaluate_predictions(&results, &ds, Protocol::P19).unwrap().report(Protocol::P19);

    let export = tmp.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    let out = Command::new(&py)
        .args(["-m", "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"])
        .env("CITYSCAPES_DATASET", &root)
        .env("CITYSCAPES_RESULTS", &results)
        .env("CITYSCAPES_EXPORT_DIR", &export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cityscapesscripts failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = read_json(&export.join("resultPixelLevelSemanticLabeling.json"));
    let avg = theirs["averageScoreClasses"].as_f64().unwrap();
    assert!((ours.miou / 100.0 - avg).abs() < 1e-6, "segda {} vs cityscapesscripts {}", ours.miou / 100.0, avg);
    let mut compared = 0;
    for (name, iou) in &ours.per_class {
        let t = &theirs["classScores"][name];
        match (iou, t.as_f64()) {
            (Some(a), Some(b)) => {
                assert!((a / 100.0 - b).abs() < 1e-6, "{name}: segda {} vs cityscapesscripts {b}", a / 100.0);
                compared += 1;
            }
            (None, None) => {}
            (a, b) => panic!("{name}: segda {a:?} vs cityscapesscripts {b:?}"),
        }
    }
    assert!(compared >= 12, "only {compared} classes had scores");
    assert!(ours.miou < 95.0, "the predictions should be imperfect");
}

/// cityscapesscripts writes bare `NaN`, which is not JSON.
fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap().replace("NaN", "null");
    serde_json::from_str(&text).unwrap()
}
