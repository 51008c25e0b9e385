//! The networks' activations on the CPU backend: ReLU, ReLU6 and LeakyReLU as one piecewise-linear
//! op (slope below 0, identity up to a cap). One pass, in place where the tensor is not shared,
//! over both threads; under autodiff the backward is one pass too, computed from the output.
//! burn-flex's unary ops run on one thread (ReLU6 takes two of them), and under autodiff burn's
//! ReLU + clamp_max and LeakyReLU run mask passes and keep masks and intermediates for the
//! backward. A residual block's sum and activation are one
//! pass too (`apply_residual`): burn's add ran on one thread, over every block's output.
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// y = slope·x for x ≤ 0, x for 0 < x < cap, cap above (NaN kept, as PyTorch's activations).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piecewise {
    pub slope: f32,
    pub cap: f32,
}

#[backend_extension(Flex, Autodiff)]
pub trait ActExt: burn::backend::Backend {
    fn act_ext(x: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
    /// `act_ext(x + r)`, x and r of one shape.
    fn act_residual_ext(x: FloatTensor<Self>, r: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
    /// The input gradient of `act_ext` from its output `y`: grad where 0 < y < cap, slope·grad
    /// where y ≤ 0, 0 at the cap (PyTorch's ReLU, hardtanh and LeakyReLU backward).
    fn act_ext_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self>;
}

const CHUNK: usize = 1 << 15;

impl ActExt for Flex {
    fn act_ext(x: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let mut x = super::contiguous_owned(x);
        let n = x.layout().num_elements();
        // storage_mut copies first when the data is shared
        x.storage_mut::<f32>()[..n]
            .par_chunks_mut(CHUNK)
            .for_each(|s| pulp::Arch::new().dispatch(Forward { s, r: None, f }));
        x
    }
    fn act_residual_ext(x: FlexTensor, r: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let mut x = super::contiguous_owned(x);
        let r = r.to_contiguous();
        let rs = super::f32s(&r);
        x.storage_mut::<f32>()[..rs.len()]
            .par_chunks_mut(CHUNK)
            .zip(rs.par_chunks(CHUNK))
            .for_each(|(s, r)| pulp::Arch::new().dispatch(Forward { s, r: Some(r), f }));
        x
    }
    fn act_ext_backward(y: FlexTensor, grad: FlexTensor, slope: f32, cap: f32) -> FlexTensor {
        let f = Piecewise { slope, cap };
        let y = y.to_contiguous();
        let mut g = super::contiguous_owned(grad);
        let ys = super::f32s(&y);
        // in place in the output gradient (the autodiff graph hands it over; copied first if shared)
        g.storage_mut::<f32>()[..ys.len()]
            .par_chunks_mut(CHUNK)
            .zip(ys.par_chunks(CHUNK))
            .for_each(|(g, y)| pulp::Arch::new().dispatch(Back { g, y, f }));
        g
    }
}

/// One chunk, compiled for the machine's vector width (the crate's baseline is SSE2, and
/// `f32::max`/`min` do not vectorise): selects only, which LLVM turns into compares and blends.
struct Forward<'a> {
    s: &'a mut [f32],
    /// Added to `s` first (a residual).
    r: Option<&'a [f32]>,
    f: Piecewise,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Forward { s, r, f: Piecewise { slope, cap } } = self;
        if let Some(r) = r {
            s.iter_mut().zip(r).for_each(|(v, r)| *v += r);
        }
        // slope 0 separately: −∞ · 0 would be NaN where ReLU gives 0
        if slope == 0.0 {
            for v in s {
                let x = *v;
                *v = if x > 0.0 {
                    if x < cap {
                        x
                    } else {
                        cap
                    }
                } else if x.is_nan() {
                    x
                } else {
                    0.0
                };
            }
        } else {
            for v in s {
                let x = *v;
                *v = if x > 0.0 {
                    if x < cap {
                        x
                    } else {
                        cap
                    }
                } else {
                    x * slope
                };
            }
        }
    }
}

struct Back<'a> {
    g: &'a mut [f32],
    y: &'a [f32],
    f: Piecewise,
}

impl pulp::WithSimd for Back<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Back { g, y, f: Piecewise { slope, cap } } = self;
        for (g, &y) in g.iter_mut().zip(y) {
            *g = if y > 0.0 {
                if y < cap {
                    *g
                } else {
                    0.0
                }
            } else if y <= 0.0 {
                *g * slope
            } else {
                0.0
            };
        }
    }
}

impl<B: Backend + ActExt, C: CheckpointStrategy> ActExt for Autodiff<B, C> {
    fn act_ext(x: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ActBackward;

        impl<B: Backend + ActExt> Backward<B, 1> for ActBackward {
            /// The forward's output, the slope and the cap.
            type State = (FloatTensor<B>, f32, f32);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, slope, cap) = ops.state;
                if let Some(node) = parent {
                    grads.register::<B>(node.id, B::act_ext_backward(y, grad, slope, cap));
                }
            }
        }

        match ActBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::act_ext(x.into_primitive(), slope, cap);
                prep.finish((y.clone(), slope, cap), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::act_ext(x.into_primitive(), slope, cap)),
        }
    }
    fn act_residual_ext(x: FloatTensor<Self>, r: FloatTensor<Self>, slope: f32, cap: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ActResidualBackward;

        impl<B: Backend + ActExt> Backward<B, 2> for ActResidualBackward {
            /// The forward's output, the slope and the cap.
            type State = (FloatTensor<B>, f32, f32);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [px, pr] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, slope, cap) = ops.state;
                // both summands get the activation's input gradient
                let g = B::act_ext_backward(y, grad, slope, cap);
                match (px, pr) {
                    (Some(a), Some(b)) => {
                        grads.register::<B>(a.id, g.clone());
                        grads.register::<B>(b.id, g);
                    }
                    (Some(n), None) | (None, Some(n)) => grads.register::<B>(n.id, g),
                    (None, None) => {}
                }
            }
        }

        match ActResidualBackward.prepare::<C>([x.node(), r.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::act_residual_ext(x.into_primitive(), r.into_primitive(), slope, cap);
                prep.finish((y.clone(), slope, cap), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::act_residual_ext(x.into_primitive(), r.into_primitive(), slope, cap))
            }
        }
    }
    fn act_ext_backward(_: FloatTensor<Self>, _: FloatTensor<Self>, _: f32, _: f32) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// `f` on `ActExt`, with or without autodiff (callers check `model::extension_applies`).
pub fn apply(x: Tensor<4>, f: Piecewise) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::act_ext(x.into_dispatch(), f.slope, f.cap))
}

/// `f(x + r)` on `ActExt` (same shapes; callers check `model::extension_applies`).
pub fn apply_residual(x: Tensor<4>, r: Tensor<4>, f: Piecewise) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ActExt>::act_residual_ext(x.into_dispatch(), r.into_dispatch(), f.slope, f.cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    // the activations as `nn::layers` calls them
    fn relu(x: Tensor<4>) -> Tensor<4> {
        apply(x, Piecewise { slope: 0.0, cap: f32::INFINITY })
    }
    fn relu6(x: Tensor<4>) -> Tensor<4> {
        apply(x, Piecewise { slope: 0.0, cap: 6.0 })
    }
    fn leaky_relu(x: Tensor<4>, slope: f32) -> Tensor<4> {
        apply(x, Piecewise { slope, cap: f32::INFINITY })
    }
    fn relu_residual(x: Tensor<4>, r: Tensor<4>) -> Tensor<4> {
        apply_residual(x, r, Piecewise { slope: 0.0, cap: f32::INFINITY })
    }

    /// The inference activations agree with burn's, NaN included, on a shared tensor too.
    #[test]
    fn inference_activations_match_burns() {
        let dev = Device::flex();
        let mut v: Vec<f32> = (0..3 * 5 * 7 * 11).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.0).collect();
        v[17] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(v, [3, 5, 7, 11]), &dev);
        let want_relu = burn::tensor::activation::relu(x.clone()).into_data();
        let want_relu6 = burn::tensor::activation::relu(x.clone()).clamp_max(6.0).into_data();
        assert!(!x.device().is_autodiff());
        // x is shared here (the clone), so the kernel must not write into it
        let kept = x.clone();
        for (got, want) in [(relu(x.clone()), want_relu), (relu6(x), want_relu6)] {
            let (got, want) = (got.into_data().try_to_vec::<f32>().unwrap(), want.try_to_vec::<f32>().unwrap());
            assert!(got.iter().zip(&want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        }
        assert!(kept.into_data().try_to_vec::<f32>().unwrap().iter().any(|v| *v < 0.0));
    }

    /// Under autodiff: the same values and gradients as burn's ReLU, ReLU-then-clamp and
    /// LeakyReLU (values on both sides of each bound, none on it); the input, shared with the
    /// graph, is left as it was.
    #[test]
    fn activations_and_their_gradients_match_burns() {
        let dev = Device::flex().autodiff();
        let v: Vec<f32> = (0..3 * 5 * 7 * 11).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.05).collect();
        let x0 = Tensor::<4>::from_data(TensorData::new(v.clone(), [3, 5, 7, 11]), &dev);
        let up: Vec<f32> = (0..v.len()).map(|k| ((k * 31) % 17) as f32 - 8.0).collect();
        let up = Tensor::<4>::from_data(TensorData::new(up, [3, 5, 7, 11]), &dev);
        let reference: [fn(Tensor<4>) -> Tensor<4>; 3] = [
            burn::tensor::activation::relu,
            |x| burn::tensor::activation::relu(x).clamp_max(6.0),
            |x| burn::tensor::activation::leaky_relu(x, 0.2),
        ];
        let ours: [fn(Tensor<4>) -> Tensor<4>; 3] = [relu, relu6, |x| leaky_relu(x, 0.2)];
        for (ours, theirs) in ours.into_iter().zip(reference) {
            let run = |f: fn(Tensor<4>) -> Tensor<4>| {
                let x = x0.clone().require_grad();
                let y = f(x.clone());
                let g = (y.clone() * up.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data(), x.into_data())
            };
            let ((y, gx, x), (want_y, want_gx, _)) = (run(ours), run(theirs));
            y.assert_eq(&want_y, true);
            gx.assert_eq(&want_gx, true);
            x.assert_eq(&TensorData::new(v.clone(), [3, 5, 7, 11]), true);
        }
    }

    /// relu(x + r) fused: burn's values and both gradients, with r a graph input of its own and
    /// with r computed from x (the identity path, where the two gradients meet); both inputs are
    /// left as they were.
    #[test]
    fn residual_activation_and_its_gradients_match_burns() {
        let dev = Device::flex().autodiff();
        let shape = [2, 3, 7, 11];
        let n = 2 * 3 * 7 * 11;
        let v: Vec<f32> = (0..n).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.05).collect();
        let u: Vec<f32> = (0..n).map(|k| ((k * 104729) % 97) as f32 / 5.0 - 9.1).collect();
        let up = Tensor::<4>::from_data(
            TensorData::new((0..n).map(|k| ((k * 31) % 17) as f32 - 8.0).collect::<Vec<_>>(), shape),
            &dev,
        );
        for from_x in [false, true] {
            let run = |f: fn(Tensor<4>, Tensor<4>) -> Tensor<4>| {
                let x = Tensor::<4>::from_data(TensorData::new(v.clone(), shape), &dev).require_grad();
                let r0 = Tensor::<4>::from_data(TensorData::new(u.clone(), shape), &dev).require_grad();
                let r = if from_x { x.clone().mul_scalar(0.5) + r0.clone() } else { r0.clone() };
                let y = f(x.clone() * 1.0, r);
                let g = (y.clone() * up.clone()).sum().backward();
                (
                    y.into_data(),
                    x.grad(&g).unwrap().into_data(),
                    r0.grad(&g).unwrap().into_data(),
                    x.into_data(),
                    r0.into_data(),
                )
            };
            let (ours, theirs) = (run(relu_residual), run(|x, r| burn::tensor::activation::relu(x + r)));
            ours.0.assert_eq(&theirs.0, true);
            ours.1.assert_eq(&theirs.1, true);
            ours.2.assert_eq(&theirs.2, true);
            ours.3.assert_eq(&TensorData::new(v.clone(), shape), true);
            ours.4.assert_eq(&TensorData::new(u.clone(), shape), true);
        }
    }
}
