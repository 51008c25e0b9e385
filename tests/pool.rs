//! The thread layout of `segda::runtime::pool`: loops run on a worker of rayon's global pool.
//! Its own process, since the global pool is built once.
mod common;
use segda::data::loader::{Loader, LoaderSpec};
use segda::data::transform::Augment;
use std::sync::Arc;
use std::time::Duration;

/// With one thread (RAYON_NUM_THREADS=1) the pool's only worker is the one that waits on the
/// loader (ASS and LSE draw batches inside a training step): a loader that decoded on the global
/// pool would never deliver.
#[test]
fn a_loader_feeds_the_only_worker_of_the_global_pool() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = common::tiny_data(tmp.path());
    let cfg = common::tiny_config(&data, &["source_only"], &[]);
    let ds = Arc::new(cfg.source.open().unwrap());
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("the loader delivered nothing in 120 s: it waits on the blocked worker");
        std::process::abort();
    });
    segda::runtime::pool::install(|| {
        assert_eq!(rayon::current_thread_index(), Some(0), "the loop runs on the pool's worker");
        let augment = Augment { resize: cfg.source.resize, crop: None, flip: true, upscale: None };
        let mut loader = Loader::new(ds, LoaderSpec::train(2, augment, cfg.model.normalize(), true, 1), 0);
        for _ in 0..3 {
            let b = loader.next_batch().expect("an endless stream").unwrap();
            assert_eq!(b.n, 2);
        }
    });
}
