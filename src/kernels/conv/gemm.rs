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

/// dst[m × n] = (accumulate ? dst : 0) + A[m × k] · B[k × n]; gemm's own threads.
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

/// `gemm_into` for the weight gradients, whose B operand (the inputs or their columns, with the
/// positions, i.e. the inner dimension, contiguous) gemm must transpose into packed panels: it
/// does that on the calling thread before its threads start (`do_prepack_lhs`), with the other
/// cores idle. Split into one column range of the result per thread instead, each range packs
/// its own part of B.
pub(super) fn gemm_into_by_columns([m, n, k]: [usize; 3], dst: Out, a: Operand, b: Operand) {
    let threads = rayon::current_num_threads().min(n.div_ceil(64)).max(1);
    let per = n.div_ceil(threads);
    // raw pointers are not Send: carried across as addresses
    let (dst_rs, read) = (dst.row_stride, dst.accumulate);
    let (dst, ap, bp, (a_cs, a_rs), (b_cs, b_rs)) =
        (dst.ptr as usize, a.0 as usize, b.0 as usize, (a.1, a.2), (b.1, b.2));
    (0..threads).into_par_iter().for_each(|t| {
        let (j0, j1) = (t * per, ((t + 1) * per).min(n));
        if j0 >= j1 {
            return;
        }
        let d = (dst as *mut f32).wrapping_add(j0);
        let bj = (bp as *const f32).wrapping_offset(j0 as isize * b_cs);
        // SAFETY: column range [j0, j1) of the caller's extents; the ranges are disjoint
        unsafe {
            gemm::gemm(
                m,
                j1 - j0,
                k,
                d,
                1,
                dst_rs as isize,
                read,
                ap as *const f32,
                a_cs,
                a_rs,
                bj,
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split into column ranges (n = 200: one per thread), accumulating onto the destination,
    /// with B given transposed as the weight gradients give it: a plain triple loop's result.
    #[test]
    fn gemm_by_columns_matches_the_definition() {
        let (m, n, k) = (7, 200, 33);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.0).collect();
        // B[k × n] stored as Bᵀ rows: element (p, j) at j·k + p
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 53) % 19) as f32 * 0.1 - 0.9).collect();
        let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        let mut dst = start.clone();
        gemm_into_by_columns(
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
}
