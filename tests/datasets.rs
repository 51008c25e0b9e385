//! The readers on tiny files in each exact on-disk format, and every kind of bad input.
mod common;
use common::{segda, tiny_data};
use segda::data::classes::IGNORE;
use segda::data::{Dataset, DatasetKind, Split};
use std::path::Path;

fn open(kind: DatasetKind, root: &Path, split: Split) -> Dataset {
    Dataset::open(kind, root, split, None).unwrap()
}

#[test]
fn each_layout_reads_its_labels_as_train_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    for (kind, root, split) in [
        (DatasetKind::Gta5, data.join("gta5"), Split::All),
        (DatasetKind::Synthia, data.join("synthia"), Split::All),
        (DatasetKind::Cityscapes, data.join("cityscapes"), Split::Train),
        (DatasetKind::Cityscapes, data.join("cityscapes"), Split::Val),
    ] {
        let ds = open(kind, &root, split);
        assert!(ds.has_labels());
        for i in 0..ds.len() {
            let s = ds.load(i).unwrap();
            let l = s.label.unwrap();
            assert_eq!(l.dimensions(), s.image.dimensions());
            assert!(l.pixels().all(|p| p.0[0] < 19 || p.0[0] == IGNORE), "{kind}: ids outside trainIds");
            // every scene has road and sky
            assert!(l.pixels().any(|p| p.0[0] == 0) && l.pixels().any(|p| p.0[0] == 10), "{kind} {}", s.name);
        }
    }
    // Cityscapes names are CITY_SEQ_FRAME and cities are found on disk
    let val = open(DatasetKind::Cityscapes, &data.join("cityscapes"), Split::Val);
    assert!(val.items.iter().all(|i| i.name.split('_').count() == 3));
    // SYNTHIA has no terrain/truck/train class: the source labels never contain them
    let syn = open(DatasetKind::Synthia, &data.join("synthia"), Split::All);
    for i in 0..syn.len() {
        let l = syn.load(i).unwrap().label.unwrap();
        assert!(l.pixels().all(|p| ![9u8, 14, 16].contains(&p.0[0])));
    }
}

#[test]
fn the_same_scene_reads_identically_from_the_gta5_and_cityscapes_formats() {
    // the generator writes one canvas per image; palette ids (GTA5) and labelIds (Cityscapes)
    // must decode to the same trainIds
    use segda::data::synth::{render, style::Domain, SynthOptions};
    let opts = SynthOptions { width: 64, ..Default::default() };
    let (_, canvas) = render(Domain::Gta5, &opts, 3);
    let tmp = tempfile::tempdir().unwrap();
    let img = image::GrayImage::from_raw(canvas.w as u32, canvas.h as u32, canvas.label.clone()).unwrap();
    let p = tmp.path().join("l.png");
    segda::data::io::write_palette(&p, &img, &segda::data::classes::PALETTE).unwrap();
    let gta = segda::data::gta5::decode_label(&std::fs::read(&p).unwrap()).unwrap();
    segda::data::io::write_gray8(&p, &img).unwrap();
    let cs = segda::data::cityscapes::decode_label(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(gta.train_ids, cs.train_ids);
}

fn corrupt(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 2]).unwrap();
}

#[test]
fn bad_inputs_are_errors_that_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    // missing root
    let e = Dataset::open(DatasetKind::Gta5, &tmp.path().join("nowhere"), Split::All, None).unwrap_err().to_string();
    assert!(e.contains("nowhere"), "{e}");
    // empty split
    std::fs::create_dir_all(data.join("cityscapes/leftImg8bit/test/x")).unwrap();
    let e =
        Dataset::open(DatasetKind::Cityscapes, &data.join("cityscapes"), Split::Test, None).unwrap_err().to_string();
    assert!(e.contains("no images"), "{e}");
    // truncated label
    let gta = open(DatasetKind::Gta5, &data.join("gta5"), Split::All);
    corrupt(gta.items[0].label.as_ref().unwrap());
    let e = gta.load(0).unwrap_err().to_string();
    assert!(e.contains(&gta.items[0].label.as_ref().unwrap().display().to_string()) && e.contains("PNG"), "{e}");
    // truncated image
    corrupt(&gta.items[1].image);
    let e = gta.load(1).unwrap_err().to_string();
    assert!(e.contains("00002.png"), "{e}");
    // a 16-bit label where an 8-bit one is expected
    let l = gta.items[2].label.clone().unwrap();
    segda::data::io::write_u16(&l, 4, 4, 1, &[7; 16]).unwrap();
    let e = gta.load(2).unwrap_err().to_string();
    assert!(e.contains("16-bit") && e.contains("00003.png"), "{e}");
    // an 8-bit label where SYNTHIA's 16-bit RGB is expected
    let syn = open(DatasetKind::Synthia, &data.join("synthia"), Split::All);
    segda::data::io::write_gray8(syn.items[0].label.as_ref().unwrap(), &image::GrayImage::new(4, 4)).unwrap();
    let e = syn.load(0).unwrap_err().to_string();
    assert!(e.contains("16-bit RGB") && e.contains("LABELS"), "{e}");
    // label/image size mismatch: an error for Cityscapes, a resize with a warning for GTA5
    let cs = open(DatasetKind::Cityscapes, &data.join("cityscapes"), Split::Train);
    segda::data::io::write_gray8(
        cs.items[0].label.as_ref().unwrap(),
        &image::GrayImage::from_pixel(10, 7, image::Luma([7])),
    )
    .unwrap();
    let e = cs.load(0).unwrap_err().to_string();
    assert!(e.contains("labelIds.png") && e.contains("10x7"), "{e}");
    segda::data::io::write_palette(
        gta.items[3].label.as_ref().unwrap(),
        &image::GrayImage::from_pixel(70, 40, image::Luma([7])),
        &[[0, 0, 0]; 34],
    )
    .unwrap();
    let s = gta.load(3).unwrap();
    assert_eq!(s.label.unwrap().dimensions(), s.image.dimensions());
    // missing label file of a labelled Cityscapes image
    std::fs::remove_file(cs.items[1].label.as_ref().unwrap()).unwrap();
    let e =
        Dataset::open(DatasetKind::Cityscapes, &data.join("cityscapes"), Split::Train, None).unwrap_err().to_string();
    assert!(e.contains("missing label"), "{e}");
}

#[test]
fn unknown_ids_are_ignored_with_a_count() {
    let bytes = {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("l.png");
        // 7 = road, 50 is no Cityscapes labelId
        segda::data::io::write_gray8(&p, &image::GrayImage::from_raw(3, 1, vec![7, 50, 26]).unwrap()).unwrap();
        std::fs::read(&p).unwrap()
    };
    let d = segda::data::cityscapes::decode_label(&bytes).unwrap();
    assert_eq!(d.unknown, 1);
    assert_eq!(d.train_ids.as_raw(), &vec![0, IGNORE, 13]);
}

#[test]
fn list_files_restrict_a_dataset_and_bad_entries_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let list = tmp.path().join("split.txt");
    std::fs::write(&list, "2\n00004.png\n").unwrap();
    let ds = Dataset::open(DatasetKind::Gta5, &data.join("gta5"), Split::All, Some(&list)).unwrap();
    assert_eq!(ds.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["00002", "00004"]);
    std::fs::write(&list, "00001\n99999\n").unwrap();
    let e = Dataset::open(DatasetKind::Gta5, &data.join("gta5"), Split::All, Some(&list)).unwrap_err().to_string();
    assert!(e.contains("split.txt") && e.contains("line 2"), "{e}");
}

#[test]
fn prepare_prints_statistics_and_flags_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    for (kind, root) in [("gta5", "gta5"), ("synthia", "synthia"), ("cityscapes", "cityscapes")] {
        let out = segda().args(["prepare", "--dataset", kind, "--root"]).arg(data.join(root)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{kind}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("road") && text.contains("pixels%") && text.contains("0 errors"), "{text}");
    }
    let out = segda()
        .args(["prepare", "--dataset", "synthia", "--protocol", "13", "--root"])
        .arg(data.join("synthia"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("  wall ") && text.contains("(13 classes"), "{text}");
    corrupt(&data.join("gta5/images/00001.png"));
    let out = segda().args(["prepare", "--dataset", "gta5", "--root"]).arg(data.join("gta5")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("00001.png") && text.contains("1 errors"), "{text}");
    // the file is named once on its line (it was printed twice)
    let line = text.lines().find(|l| l.contains("error:")).unwrap();
    assert_eq!(line.matches("00001.png").count(), 1, "{line}");
}

#[test]
fn ground_truth_scored_against_itself_is_100() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let root = data.join("cityscapes");
    let out = segda()
        .args(["eval", "--json", "--dataset", "cityscapes", "--pred"])
        .arg(root.join("gtFine/val"))
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("match no image"),
        "color and instanceIds files belong to images"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["miou"].as_f64().unwrap(), 100.0);
    assert_eq!(v["pixel_acc"].as_f64().unwrap(), 100.0);
    assert_eq!(v["protocol"], 19);
    assert!(v["per_class"]["road"].as_f64().is_some());
    // a prediction file no image matches is said, not silently skipped
    let pred = tmp.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    for f in
        std::fs::read_dir(root.join("gtFine/val")).unwrap().flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
    {
        let f = f.unwrap().path();
        std::fs::copy(&f, pred.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::copy(
        pred.read_dir()
            .unwrap()
            .find_map(|f| f.ok().map(|f| f.path()).filter(|p| p.to_string_lossy().ends_with("_labelIds.png")))
            .unwrap(),
        pred.join("stray_000000_000000_gtFine_labelIds.png"),
    )
    .unwrap();
    let out = segda()
        .args(["eval", "--dataset", "cityscapes", "--pred"])
        .arg(&pred)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("match no image") && err.contains("stray_"), "{err}");
}

#[test]
fn a_subset_that_selects_nothing_is_an_error_naming_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let root = data.join("cityscapes");
    let mut d =
        segda::config::DataConfig { root: root.clone(), subset: Some(50), subset_rest: true, ..Default::default() };
    let e = d.open().unwrap_err().to_string();
    assert!(e.contains(&root.display().to_string()) && e.contains("no images selected"), "{e}");
    d.subset = Some(2);
    assert_eq!(d.open().unwrap().len(), 4, "the rest of a draw of 2 of the 6 train images");
}

#[test]
fn the_class_ratio_counts_every_labelled_pixel_and_names_a_bad_label() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_data(tmp.path());
    let gta = open(DatasetKind::Gta5, &data.join("gta5"), Split::All);
    let ratio = segda::data::validate::class_ratio(&gta).unwrap();
    // counted by hand from the decoded labels, ignore left out
    let mut counts = [0u64; 19];
    for i in 0..gta.len() {
        for p in gta.load_label(i).unwrap().unwrap().train_ids.pixels() {
            if let Some(n) = counts.get_mut(p.0[0] as usize) {
                *n += 1;
            }
        }
    }
    let all: u64 = counts.iter().sum();
    for c in 0..19 {
        assert!((ratio[c] - counts[c] as f64 / all as f64).abs() < 1e-12, "class {c}: {ratio:?}");
    }
    assert!(ratio[0] > 0.0 && ratio[10] > 0.0, "every scene has road and sky");
    // an unreadable label stops the count with the file's name
    corrupt(gta.items[2].label.as_ref().unwrap());
    let e = segda::data::validate::class_ratio(&gta).unwrap_err().to_string();
    assert!(e.contains("00003.png"), "{e}");
}
