//! Discriminators shared by the adversarial methods (AdaptSegNet, AdvEnt, APODA, …): one per
//! level, each with its own Adam, the generator's term computed with D frozen, and D's update on
//! detached maps (source = 0, target = 1).
use super::method::{Forward, Terms};
use super::state::{load_module, load_optim, save_module, save_optim};
use crate::error::Result;
use crate::model::discriminator::FcDiscriminator;
use crate::nn::layers::materialize;
use crate::nn::losses::bce_with_logits;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const SOURCE: f32 = 0.0;
pub const TARGET: f32 = 1.0;

/// The GAN objective of the discriminators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Gan {
    /// BCE with logits (AdaptSegNet's and ADVENT's default).
    #[default]
    Vanilla,
    /// Least squares (AdaptSegNet's `--gan LS`).
    Ls,
}

impl Gan {
    pub fn loss(self, logits: Tensor<4>, label: f32) -> Tensor<1> {
        match self {
            Gan::Vanilla => bce_with_logits(logits, label),
            Gan::Ls => (logits.sub_scalar(label)).powi_scalar(2).mean(),
        }
    }
}

pub struct Level {
    pub name: &'static str,
    pub d: FcDiscriminator,
    opt: ModuleOptimizer,
    /// Detached (source, target) inputs of this iteration, for D's update.
    pending: Option<(Tensor<4>, Tensor<4>)>,
}

pub struct Discriminators {
    pub levels: Vec<Level>,
    pub gan: Gan,
}

impl Discriminators {
    /// AdaptSegNet's discriminators on `channels`-channel output maps; `levels`: 2 for a
    /// multi-level network (main, aux), else 1.
    pub fn output_space(levels: usize, channels: usize, gan: Gan, device: &Device) -> Self {
        Self::output_space_of_width(levels, channels, 64, gan, device)
    }

    /// The same with the discriminators' base width `ndf` (the reference's 64).
    pub fn output_space_of_width(levels: usize, channels: usize, ndf: usize, gan: Gan, device: &Device) -> Self {
        Self::new(&["main", "aux"][..levels], gan, || FcDiscriminator::new(channels, ndf, device))
    }

    pub fn new(names: &[&'static str], gan: Gan, build: impl Fn() -> FcDiscriminator) -> Self {
        let levels = names
            .iter()
            .map(|&name| Level { name, d: materialize(build()), opt: crate::optim::adam_d(), pending: None })
            .collect();
        Discriminators { levels, gan }
    }

    /// The generator's term at `level`: D (frozen) should take target maps for source ones.
    pub fn fool(&self, level: usize, target_map: Tensor<4>) -> Tensor<1> {
        self.frozen_loss(level, target_map, SOURCE)
    }

    /// L(D(x), label) with D frozen: gradients reach x, never D.
    pub fn frozen_loss(&self, level: usize, x: Tensor<4>, label: f32) -> Tensor<1> {
        let d = self.levels[level].d.clone().no_grad();
        self.gan.loss(d.forward(x), label)
    }

    /// The generator's adversarial terms, λ-weighted, for the maps `map(upsampled logits)` of
    /// each level (main, then aux), and the maps kept for the discriminators' update.
    pub fn adapt(
        &mut self,
        s: &Forward,
        t: &Forward,
        lambdas: [f64; 2],
        name: &str,
        map: impl Fn(Tensor<4>) -> Tensor<4>,
    ) -> Terms {
        let mut levels = vec![(s.up.main.clone(), t.up.main.clone())];
        if let (Some(sa), Some(ta)) = (&s.up.aux, &t.up.aux) {
            levels.push((sa.clone(), ta.clone()));
        }
        let mut terms = Vec::new();
        for (level, (sl, tl)) in levels.into_iter().enumerate().take(self.levels.len()) {
            let (sm, tm) = (map(sl), map(tl));
            terms.push((
                format!("{name}_{}", self.levels[level].name),
                self.fool(level, tm.clone()).mul_scalar(lambdas[level]),
            ));
            self.remember(level, sm, tm);
        }
        terms
    }

    /// Keep this iteration's maps (detached) for the discriminator's update.
    pub fn remember(&mut self, level: usize, source_map: Tensor<4>, target_map: Tensor<4>) {
        self.levels[level].pending = Some((source_map.detach(), target_map.detach()));
    }

    /// One Adam step per level: ½·L(D(source), 0) + ½·L(D(target), 1). Returns the D losses.
    pub fn update(&mut self, lr: f64, prefix: &str) -> Vec<(String, f64)> {
        let gan = self.gan;
        let mut out = Vec::new();
        for l in &mut self.levels {
            let Some((s, t)) = l.pending.take() else { continue };
            let loss = (gan.loss(l.d.forward(s), SOURCE) + gan.loss(l.d.forward(t), TARGET)).mul_scalar(0.5);
            out.push((format!("{prefix}d_{}", l.name), crate::nn::losses::value(&loss)));
            let grads = GradientsParams::from_grads(loss.backward(), &l.d);
            l.d = l.opt.step(lr, l.d.clone(), grads);
        }
        out
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        for l in &self.levels {
            save_module(&l.d, dir, &format!("d_{}", l.name))?;
            save_optim(&l.opt, dir, &format!("d_{}_optim", l.name))?;
        }
        Ok(())
    }

    pub fn load(&mut self, dir: &Path) -> Result<()> {
        for l in &mut self.levels {
            l.d = load_module(l.d.clone(), dir, &format!("d_{}", l.name))?;
            load_optim(&mut l.opt, crate::optim::adam_d, dir, &format!("d_{}_optim", l.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::losses::value;

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn map(seed: f32, d: &Device) -> Tensor<4> {
        let v: Vec<f32> = (0..3 * 32 * 32).map(|i| ((i as f32 * 0.37 + seed).sin() + 1.0) / 2.0).collect();
        Tensor::from_data(TensorData::new(v, [1, 3, 32, 32]), d)
    }

    #[test]
    fn the_generator_is_scored_against_the_source_label() {
        let d = dev();
        let discs = Discriminators::output_space(1, 3, Gan::Vanilla, &d);
        let m = map(0.0, &d);
        let logits = discs.levels[0].d.forward(m.clone());
        assert!((value(&discs.fool(0, m)) - value(&bce_with_logits(logits, SOURCE))).abs() < 1e-6);
    }

    #[test]
    fn descending_the_generator_term_makes_target_maps_look_like_source() {
        let d = dev();
        let discs = Discriminators::output_space(1, 3, Gan::Vanilla, &d);
        let m = map(1.0, &d).require_grad();
        let before = value(&discs.levels[0].d.forward(m.clone()).mean());
        let g = discs.fool(0, m.clone()).backward();
        let grad = m.grad(&g).unwrap();
        let moved = (m.detach() - grad.mul_scalar(50.0)).detach();
        let after = value(&discs.levels[0].d.forward(moved).mean());
        // D's logit is "target-ness" (target = 1): the generator's step must lower it
        assert!(after < before, "{before} -> {after}");
    }

    #[test]
    fn the_discriminator_step_separates_the_domains() {
        let d = dev();
        let mut discs = Discriminators::output_space(1, 3, Gan::Vanilla, &d);
        let (s, t) = (map(0.0, &d), map(2.0, &d));
        let gap = |discs: &Discriminators| {
            value(&(discs.levels[0].d.forward(t.clone()).mean() - discs.levels[0].d.forward(s.clone()).mean()))
        };
        let g0 = gap(&discs);
        for _ in 0..5 {
            discs.remember(0, s.clone(), t.clone());
            let logged = discs.update(1e-3, "");
            assert_eq!(logged[0].0, "d_main");
        }
        assert!(gap(&discs) > g0, "target logits should rise above source logits");
    }

    #[test]
    fn generator_and_discriminator_gradients_never_mix() {
        let d = dev();
        let cfg = crate::model::ModelConfig {
            backbone: crate::model::BackboneKind::MobilenetV2,
            width_mult: 0.25,
            output_stride: 16,
            ..Default::default()
        };
        let net = crate::model::SegNet::new(&cfg, &d).unwrap();
        let mut discs = Discriminators::output_space(2, 19, Gan::Vanilla, &d);
        let x = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
        let (s, t) = (Forward::run(&net, x.clone()), Forward::run(&net, x.flip([3])));
        let terms = discs.adapt(&s, &t, [0.001, 0.0002], "adv", crate::nn::losses::probs);
        assert_eq!(terms.len(), 2);
        let total = terms.into_iter().map(|(_, t)| t).reduce(|a, b| a + b).unwrap();
        let mut g = total.backward();
        // the generator's loss reaches the network but not the (frozen) discriminators
        assert!(!GradientsParams::from_module(&mut g, &net).is_empty());
        for l in &discs.levels {
            assert_eq!(GradientsParams::from_module(&mut g, &l.d).len(), 0);
        }
        // the discriminators' loss (on detached maps) reaches them and not the network
        for l in &mut discs.levels {
            let (s, t) = l.pending.clone().unwrap();
            let loss = discs.gan.loss(l.d.forward(s), SOURCE) + discs.gan.loss(l.d.forward(t), TARGET);
            let mut g = loss.backward();
            assert_eq!(GradientsParams::from_module(&mut g, &net).len(), 0);
            assert_eq!(GradientsParams::from_module(&mut g, &l.d).len(), 10);
        }
    }

    #[test]
    fn discriminators_save_and_load_exactly() {
        let d = dev();
        let mut a = Discriminators::output_space(2, 3, Gan::Ls, &d);
        a.remember(0, map(0.0, &d), map(1.0, &d));
        a.update(1e-3, "");
        let dir = tempfile::tempdir().unwrap();
        a.save(dir.path()).unwrap();
        let mut b = Discriminators::output_space(2, 3, Gan::Ls, &d);
        b.load(dir.path()).unwrap();
        let m = map(3.0, &d);
        assert_eq!(value(&a.levels[0].d.forward(m.clone()).sum()), value(&b.levels[0].d.forward(m).sum()));
    }
}
