//! glibc's allocator, set up for a process that allocates and frees tens of megabytes per op.
//!
//! By default glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh
//! mmap and returns it with munmap when freed. A 19 × 512 × 1024 logit map is 40 MiB, so at
//! inference every such tensor cost page faults on first touch and, on free, a TLB shootdown
//! (an inter-processor interrupt, expensive in a VM). With the settings below, large blocks come
//! from the heap and freed memory stays there for the next op (docs/benchmarks.md has the
//! figures).

/// Serve every allocation from the heap (no mmap) and never shrink the heap on free.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes glibc's allocation policy (under the arena's lock)
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
