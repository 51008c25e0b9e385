//! Every shipped experiment file parses, names only known methods and keys, and builds.
use segda::config::Config;
use std::path::Path;

#[test]
fn every_shipped_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let p = f.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                files.push(p);
            }
        }
    }
    let stages = tempfile::tempdir().unwrap();
    let mut n = 0;
    for p in files {
        let cfg = Config::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // a stage's experiment loads and resolves too
        let (cfg, _) =
            segda::engine::stages::resolve(cfg, stages.path()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        segda::methods::build(&cfg, &burn::prelude::Device::flex().autodiff())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let net = segda::model::SegNet::new(&cfg.model, &burn::prelude::Device::flex());
        assert!(net.is_ok(), "{}: {:?}", p.display(), net.err());
        n += 1;
    }
    assert!(n >= 60, "only {n} configs found");
    // every method has a synthetic-benchmark config
    for m in segda::methods::names() {
        assert!(root.join("synth").join(format!("{m}.toml")).is_file(), "configs/synth/{m}.toml missing");
    }
}
