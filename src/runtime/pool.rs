//! Every training and evaluation loop runs as a job on a worker of rayon's global pool, the pool
//! every CPU kernel (this crate's, gemm's, burn-flex's) splits its work on.
//!
//! Called from a thread outside the pool, each kernel's parallel split injects a job, wakes a
//! worker (a futex wake, an inter-processor interrupt in a VM) and sleeps until the job is done;
//! a training step makes thousands of them, and the caller's own serial work competes with all
//! the workers for the cores. On a worker the same splits are local fork-joins.
//!
//! Why the whole loop on one worker, rather than each step on whichever worker picks it up:
//! burn's BatchNorm keeps its running statistics per thread (`RunningState`, keyed by thread id)
//! and averages the threads' copies when it syncs. Steps on different workers made those
//! statistics depend on scheduling (run-to-run differences in evaluation); one thread keeps
//! them exact.
//!
//! A consequence: a worker that waits on something does not run injected jobs meanwhile, so what
//! a loop waits on (the data loaders) must not need this pool; the loaders decode on their own.

/// Runs `op` on a worker of the global pool (`RAYON_NUM_THREADS` threads, or one per core) and
/// returns its result; inline when the caller is a pool worker already. The first call also sets
/// up the allocator (`runtime::alloc`).
pub fn install<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(super::alloc::keep_freed_memory);
    // `scope` runs its closure on a worker (injected when called from outside the pool)
    rayon::scope(|_| op())
}
