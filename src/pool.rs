//! The program's thread is one of the compute pool's workers.
//!
//! Every kernel of the CPU backend (our extensions, gemm, burn-flex) splits its work with rayon.
//! Called from a thread outside the pool, each such call injects a job, wakes a worker (a futex
//! wake, an inter-processor interrupt in a VM) and sleeps until the job is done; a training step
//! makes thousands of them, and the caller's own serial work competes with all the workers for
//! the cores. With the main thread as worker 0 the same calls are local fork-joins: a ResNet-101
//! training step went 2.96 / 2.82 → 2.80 / 2.71 s, an adversarial step 6.76 / 6.33 → 6.20 /
//! 5.72 s (A/B, docs/benchmarks.md change 12, 2026-12-05).
//!
//! Why this thread, rather than handing each step to some worker: burn's BatchNorm keeps its
//! running statistics per thread (`RunningState`, keyed by thread id) and averages the threads'
//! copies when it syncs. Steps on whichever worker picked them up made those statistics depend
//! on scheduling (seen as run-to-run differences in evaluation); one thread keeps them exact.
//!
//! A consequence: jobs injected from outside the pool are not run by this thread while it waits
//! on something else, so code it waits on (the data loaders) must not need the pool; they decode
//! with their own (`data::loader`).

/// Make the calling thread worker 0 of rayon's global pool (`RAYON_NUM_THREADS` or one per
/// core, this thread included). Call once at the start of `main`, before anything uses rayon;
/// a no-op if the pool exists.
pub fn init() {
    rayon::ThreadPoolBuilder::new().use_current_thread().build_global().ok();
}
