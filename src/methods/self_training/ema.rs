//! The mean teacher: an EMA copy of a module in inference mode, updated from the student.
use crate::error::Result;
use crate::model::SegNet;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use std::path::Path;

/// An EMA copy of a module in inference mode, θ_T ← a·θ_T + (1 − a)·θ_S (the mean teacher).
pub struct Ema<M> {
    pub net: Option<M>,
}

/// The EMA teacher of the segmentation network.
pub type Teacher = Ema<SegNet>;

#[derive(Default)]
struct Collect(Vec<Tensor<1>>);
impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let t = p.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend<'a> {
    student: &'a [Tensor<1>],
    next: usize,
    a: f64,
}
impl ModuleMapper for Blend<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let s = self.student[self.next].clone();
        self.next += 1;
        let a = self.a;
        p.map(|t| {
            let dims = t.dims();
            t.mul_scalar(a) + s.reshape(dims).mul_scalar(1.0 - a)
        })
    }
}

/// An empty network of `model`'s architecture in inference mode, for loading a saved teacher.
pub fn teacher_template(model: &crate::model::ModelConfig, device: &Device) -> Result<SegNet> {
    Ok(SegNet::new(model, device)?.valid())
}

/// The teacher's coefficient at iteration `it` (DAFormer's ramp).
pub fn ema_coefficient(alpha: f64, it: u64) -> f64 {
    (1.0 - 1.0 / (it as f64 + 1.0)).min(alpha)
}

impl<M: Module> Ema<M> {
    pub fn new() -> Self {
        Ema { net: None }
    }

    /// Update from the student (first call: a copy of it; a = 1 afterwards: frozen, nothing to do).
    pub fn update(&mut self, student: &M, a: f64) {
        if a >= 1.0 && self.net.is_some() {
            return;
        }
        let s = student.valid();
        self.net = Some(match self.net.take() {
            None => s,
            Some(t) => {
                let mut c = Collect::default();
                s.visit(&mut c);
                t.map(&mut Blend { student: &c.0, next: 0, a })
            }
        });
    }

    pub fn get(&self) -> &M {
        self.net.as_ref().expect("the teacher is created at the first iteration")
    }

    /// As `dir/NAME.bpk`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        crate::methods::state::save_module(self.get(), dir, name)
    }

    pub fn load(&mut self, dir: &Path, name: &str, like: M) -> Result<()> {
        self.net = Some(crate::methods::state::load_module(like, dir, name)?);
        Ok(())
    }
}

impl<M: Module> Default for Ema<M> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_blends_parameters_and_starts_as_a_copy() {
        let dev = Device::flex();
        let student = burn::nn::LinearConfig::new(3, 2).init(&dev);
        let mut ema = Ema::new();
        ema.update(&student, ema_coefficient(0.99, 0));
        let w = |m: &burn::nn::Linear| m.weight.val().into_data().iter::<f32>().collect::<Vec<f32>>();
        assert_eq!(w(ema.get()), w(&student), "the first update copies");
        // the student moves: θ_T ← a·θ_T + (1 − a)·θ_S
        let moved = burn::nn::Linear {
            weight: Param::from_tensor(student.weight.val().add_scalar(1.0)),
            bias: student.bias.clone(),
        };
        ema.update(&moved, 0.9);
        for (t, s) in w(ema.get()).iter().zip(w(&student)) {
            assert!((t - (s + 0.1)).abs() < 1e-6, "{t} vs {s}");
        }
        // the ramp: min(1 − 1/(it + 1), α)
        assert_eq!(ema_coefficient(0.999, 0), 0.0);
        assert!((ema_coefficient(0.999, 9) - 0.9).abs() < 1e-12);
        assert_eq!(ema_coefficient(0.99, 10_000), 0.99);
    }
}
