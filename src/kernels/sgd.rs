//! SGD's update as two parallel in-place passes per parameter on the CPU backend (burn's `Sgd`
//! runs seven single-threaded element-wise ops, each into a fresh buffer); the arithmetic is
//! burn's, operation for operation, so results agree bit for bit (`optim::sgd`'s test).
use super::{contiguous_owned, f32s};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

#[backend_extension(Flex)]
pub trait SgdExt: burn::backend::Backend {
    /// d = g + wd·p, then v ← d (`fresh`) or v ← d + m·v; returns v (v's buffer, in place
    /// where it is not shared).
    fn sgd_direction(
        v: FloatTensor<Self>,
        g: FloatTensor<Self>,
        p: FloatTensor<Self>,
        momentum: f32,
        weight_decay: f32,
        fresh: bool,
    ) -> FloatTensor<Self>;
    /// p ← p − lr·d, in place where p is not shared.
    fn sgd_apply(p: FloatTensor<Self>, d: FloatTensor<Self>, lr: f32) -> FloatTensor<Self>;
}

const CHUNK: usize = 1 << 14;

impl SgdExt for Flex {
    fn sgd_direction(v: FlexTensor, g: FlexTensor, p: FlexTensor, m: f32, wd: f32, fresh: bool) -> FlexTensor {
        let (mut v, g, p) = (contiguous_owned(v), contiguous_owned(g), contiguous_owned(p));
        let n = v.layout().num_elements();
        let (gs, ps) = (f32s(&g), f32s(&p));
        // the same operations, in the same order, as burn's WeightDecay and Momentum (dampening 0)
        v.storage_mut::<f32>()[..n].par_chunks_mut(CHUNK).zip(gs.par_chunks(CHUNK).zip(ps.par_chunks(CHUNK))).for_each(
            |(v, (g, p))| {
                for ((v, &g), &p) in v.iter_mut().zip(g).zip(p) {
                    let d = if wd != 0.0 { p * wd + g } else { g };
                    *v = if fresh { d } else { d * 1.0 + *v * m };
                }
            },
        );
        v
    }
    fn sgd_apply(p: FlexTensor, d: FlexTensor, lr: f32) -> FlexTensor {
        let (mut p, d) = (contiguous_owned(p), contiguous_owned(d));
        let n = p.layout().num_elements();
        let ds = f32s(&d);
        p.storage_mut::<f32>()[..n].par_chunks_mut(CHUNK).zip(ds.par_chunks(CHUNK)).for_each(|(p, d)| {
            for (p, &d) in p.iter_mut().zip(d) {
                *p -= d * lr;
            }
        });
        p
    }
}

/// The update direction d = g + wd·p, then the velocity v ← d (`fresh`) or v ← d + m·v; returns v.
pub fn direction<const D: usize>(
    v: Tensor<D>,
    g: Tensor<D>,
    p: Tensor<D>,
    momentum: f32,
    weight_decay: f32,
    fresh: bool,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SgdExt>::sgd_direction(
        v.into_dispatch(),
        g.into_dispatch(),
        p.into_dispatch(),
        momentum,
        weight_decay,
        fresh,
    ))
}

/// p − lr·d, in place where p is not shared.
pub fn apply<const D: usize>(p: Tensor<D>, d: Tensor<D>, lr: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SgdExt>::sgd_apply(p.into_dispatch(), d.into_dispatch(), lr))
}
