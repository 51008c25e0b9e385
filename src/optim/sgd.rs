//! SGD with momentum and L2 weight decay, as `torch.optim.SGD(momentum, weight_decay)` (no
//! dampening, no Nesterov), with burn's `Sgd` arithmetic and state layout; on the CPU backend
//! the update is `kernels::sgd`'s two in-place passes per parameter.
//! The state is recorded under the names of burn's `SgdState { momentum: Option<MomentumState {
//! velocity }> }`, so checkpoints written with burn's SGD load unchanged.
use crate::kernels;
use burn::optim::{join_path, LearningRate, Optimizer, RecordState, StateSink, StateSource};
use burn::prelude::*;

#[derive(Clone, Debug)]
pub struct Sgd {
    /// 0: plain SGD, no velocity kept.
    pub momentum: f32,
    pub weight_decay: f32,
}

/// The velocity (none without momentum), recorded as burn's `SgdState` records it:
/// `{param}.momentum.velocity`.
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    pub velocity: Option<Tensor<D>>,
}

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(v) = &self.velocity {
            out.push_tensor(&join_path(prefix, "momentum"), "velocity", v.to_data());
        }
    }
    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = join_path(prefix, "momentum");
        let velocity = if src.has_under(&path) {
            Some(Tensor::from_data(src.take_tensor(&path, "velocity")?, device))
        } else {
            None
        };
        Some(SgdState { velocity })
    }
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        p: Tensor<D>,
        g: Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> (Tensor<D>, Option<SgdState<D>>) {
        let velocity = state.and_then(|s| s.velocity);
        let (m, wd) = (self.momentum, self.weight_decay);
        let (p, d) = if kernels::extension_applies(&p) {
            let fresh = velocity.is_none() || m == 0.0;
            let v = if fresh { g.clone() } else { velocity.unwrap() };
            let d = kernels::sgd::direction(v, g, p.clone(), m, wd, fresh);
            (kernels::sgd::apply(p, d.clone(), lr as f32), d)
        } else {
            // burn's Sgd, op for op (other devices)
            let g = if wd != 0.0 { p.clone().mul_scalar(wd).add(g) } else { g };
            let d = match velocity {
                Some(v) if m != 0.0 => g.mul_scalar(1.0).add(v.mul_scalar(m)),
                _ => g,
            };
            (p.clone() - d.clone().mul_scalar(lr), d)
        };
        (p, Some(SgdState { velocity: (m != 0.0).then_some(d) }))
    }

    fn to_device<const D: usize>(state: SgdState<D>, device: &Device) -> SgdState<D> {
        SgdState { velocity: state.velocity.map(|v| v.to_device(device)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::SgdConfig;
    use burn::tensor::Distribution;

    /// Bit for bit burn's SGD (momentum without dampening, weight decay), over steps with and
    /// without a velocity, with momentum and without; and the velocity survives a record round trip
    /// under burn's names.
    #[test]
    fn matches_burns_sgd_bit_for_bit() {
        let dev = Device::flex();
        for (m, wd) in [(0.9, 5e-4), (0.0, 5e-4), (0.9, 0.0)] {
            let mut burns = SgdConfig::new().with_weight_decay((wd > 0.0).then(|| WeightDecayConfig::new(wd as f32)));
            if m > 0.0 {
                burns = burns.with_momentum(Some(MomentumConfig::new().with_momentum(m).with_dampening(0.0)));
            }
            let burns = burns.build();
            let ours = Sgd { momentum: m as f32, weight_decay: wd as f32 };
            let mut p = Tensor::<2>::random([37, 1000], Distribution::Normal(0.0, 1.0), &dev);
            let mut q = p.clone().mul_scalar(1.0);
            let (mut sb, mut so) = (None, None);
            for step in 0..4 {
                let g = Tensor::<2>::random([37, 1000], Distribution::Normal(0.0, 1.0), &dev);
                let lr = 0.01 / (step + 1) as f64;
                let (pb, nb) = burns.step(lr, p, g.clone(), sb);
                let (po, no) = ours.step(lr, q, g.mul_scalar(1.0), so);
                assert_eq!(
                    pb.to_data().try_to_vec::<f32>().unwrap(),
                    po.to_data().try_to_vec::<f32>().unwrap(),
                    "m {m} wd {wd} step {step}"
                );
                let nb = nb.unwrap();
                let mut sink = StateSink::default();
                nb.state_flatten("w", &mut sink);
                let mut mine = StateSink::default();
                no.as_ref().unwrap().state_flatten("w", &mut mine);
                assert_eq!(
                    sink.tensors.iter().map(|t| &t.0).collect::<Vec<_>>(),
                    mine.tensors.iter().map(|t| &t.0).collect::<Vec<_>>()
                );
                for ((_, a), (_, b)) in sink.tensors.iter().zip(&mine.tensors) {
                    assert_eq!(a.try_to_vec::<f32>().unwrap(), b.try_to_vec::<f32>().unwrap());
                }
                let mut src = StateSource::default();
                for (name, data) in sink.tensors {
                    src.insert_tensor(name, data);
                }
                let back = SgdState::<2>::state_unflatten("w", &mut src, &dev).unwrap();
                assert_eq!(back.velocity.is_some(), m > 0.0);
                (p, q, sb, so) = (pb, po, Some(nb), Some(back));
            }
        }
    }
}
