//! The GEMMs of the dense and 1×1 kernels (the `gemm` crate, which burn-flex uses too), and the
//! output buffers they accumulate onto.
use rayon::prelude::*;

/// `planes` planes of `l` values, plane i filled with bias[i mod len]: the output buffer a GEMM
/// then accumulates onto, written once (no clearing pass first).
pub(super) fn bias_planes(bias: &[f32], planes: usize, l: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(planes * l);
    y.spare_capacity_mut()[..planes * l].par_chunks_mut(l.max(1)).enumerate().for_each(|(i, plane)| {
        let b = bias[i % bias.len()];
        plane.iter_mut().for_each(|v| _ = v.write(b));
    });
    // SAFETY: every one of the planes·l values was written above
    unsafe { y.set_len(planes * l) };
    y
}

/// A strided matrix operand as gemm takes it: (pointer, column stride, row stride).
pub(super) type Operand = (*const f32, isize, isize);

/// Where a product goes: its first element, its row stride, and whether it is added onto what
/// the destination holds (or written over it, unread).
pub(super) struct Out {
    pub ptr: *mut f32,
    pub row_stride: usize,
    pub accumulate: bool,
}

/// dst[m × n] = (accumulate ? dst : 0) + A[m × k] · B[k × n]; gemm's own threads. One call
/// for the whole product: gemm's own split gives the same bits on any number of threads (tested),
/// while a product split into column ranges here is rounded differently at the ranges' edges,
/// so ranges that followed the thread count made a run's digits follow the machine's cores.
pub(super) fn gemm_into([m, n, k]: [usize; 3], dst: Out, a: Operand, b: Operand) {
    // SAFETY: the callers pass pointers into live slices that hold the strided extents
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            dst.row_stride as isize,
            dst.accumulate,
            a.0,
            a.1,
            a.2,
            b.0,
            b.1,
            b.2,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B given transposed, as the weight gradients give it, accumulated onto the destination: a
    /// plain triple loop's result.
    #[test]
    fn gemm_into_matches_the_definition() {
        let (m, n, k) = (7, 200, 33);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.0).collect();
        // B[k × n] stored as Bᵀ rows: element (p, j) at j·k + p
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 53) % 19) as f32 * 0.1 - 0.9).collect();
        let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        let mut dst = start.clone();
        gemm_into(
            [m, n, k],
            Out { ptr: dst.as_mut_ptr(), row_stride: n, accumulate: true },
            (a.as_ptr(), 1, k as isize),
            (bt.as_ptr(), k as isize, 1),
        );
        for i in 0..m {
            for j in 0..n {
                let want = start[i * n + j] + (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum::<f32>();
                assert!((dst[i * n + j] - want).abs() < 1e-4, "({i}, {j}): {} vs {want}", dst[i * n + j]);
            }
        }
    }

    /// A weight gradient's sums do not depend on how many threads compute them: the same bits
    /// on 1, 2, 3 and 8 threads (a pointwise layer's shape: 24 × 96 over 2496 positions; split
    /// into a column range per thread, 2224 of its 2304 values differed on 2 threads).
    #[test]
    fn gemm_into_gives_the_same_bits_on_any_number_of_threads() {
        let (m, n, k) = (24, 96, 2496);
        let a: Vec<f32> = (0..m * k).map(|i| (((i * 7919) % 1013) as f32 / 1013.0 - 0.5) * 1e-3).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 997) as f32 / 997.0 * 6.0).collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut dst = vec![0f32; m * n];
            pool.install(|| {
                gemm_into(
                    [m, n, k],
                    Out { ptr: dst.as_mut_ptr(), row_stride: n, accumulate: false },
                    (a.as_ptr(), 1, k as isize),
                    (bt.as_ptr(), k as isize, 1),
                )
            });
            dst.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let one = on(1);
        for threads in [2, 3, 8] {
            let differ = on(threads).iter().zip(&one).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{differ} of {} values differ on {threads} threads", one.len());
        }
    }
}
