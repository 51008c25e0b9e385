//! GEMM throughput of the `gemm` crate (the kernels behind segda's convolutions on the CPU) on
//! the matrix shapes of the ResNet-101 DeepLab's convolutions at 256×512 (forward W·cols, and
//! the two gradients' shapes). `bench/gemm_compare.sh` runs it beside PyTorch's `a @ b` on the
//! same shapes and threads. Prints `m k n best_ms gflops`, one line per shape.
use std::time::Instant;

/// (m, k, n): C[m × n] = A[m × k] · B[k × n], row-major. Kept in step with bench/torch_gemm.py.
const SHAPES: [(usize, usize, usize); 12] = [
    (64, 576, 8192),
    (128, 1152, 2048),
    (256, 2304, 2048),
    (256, 1024, 2048),
    (1024, 256, 2048),
    (512, 4608, 2048),
    (512, 2048, 2048),
    (2048, 512, 2048),
    (2304, 256, 2048),
    (256, 2048, 2304),
    (4608, 512, 2048),
    (512, 2048, 4608),
];

fn main() {
    for (m, k, n) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut c = vec![0f32; m * n];
        let mut best = f64::MAX;
        for _ in 0..6 {
            let t = Instant::now();
            // SAFETY: the three buffers hold the row-major extents passed
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{m} {k} {n} {:.2} {:.1}", best * 1e3, 2.0 * (m * k * n) as f64 / best / 1e9);
    }
}
