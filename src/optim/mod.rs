//! Optimisers with PyTorch's semantics, parameter groups and the poly schedule: used by the
//! engine (the network) and by methods (their discriminators and heads).
mod sgd;

use crate::config::TrainConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::ParamGroup;
use burn::optim::AdamConfig;

pub use burn::optim::ModuleOptimizer;

/// lr · (1 − it / max_it)^power, as in DeepLab and every reference implementation.
pub fn poly(base: f64, it: u64, max_it: u64, power: f64) -> f64 {
    base * (1.0 - (it as f64 / max_it as f64).min(1.0)).powf(power)
}

/// SGD with momentum and **no dampening** (burn's default dampening is 0.1, PyTorch's 0) and
/// L2 weight decay, as `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`: burn's arithmetic,
/// fused on the CPU backend (`optim::sgd`).
pub fn sgd(cfg: &TrainConfig) -> ModuleOptimizer {
    ModuleOptimizer::from(sgd::Sgd { momentum: cfg.momentum as f32, weight_decay: cfg.weight_decay as f32 })
}

/// Adam as the discriminators use it: betas (0.9, 0.99), eps 1e-8 (burn's default eps is 1e-5).
pub fn adam_d() -> ModuleOptimizer {
    AdamConfig::new().with_beta_1(0.9).with_beta_2(0.99).with_epsilon(1e-8).init()
}

/// Where an iteration stands in the poly schedule: `it` of `max`. The whole run by default
/// ([`Clock::run`]); a method may restart the schedule over a window of its own (LSE's rounds,
/// as its reference code does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    pub it: u64,
    pub max: u64,
}

impl Clock {
    pub fn run(cfg: &TrainConfig, it: u64) -> Clock {
        Clock { it, max: cfg.max_iters }
    }
    /// Iteration `it` inside the window [start, end).
    pub fn window(it: u64, (start, end): (u64, u64)) -> Clock {
        Clock { it: it.saturating_sub(start), max: end.saturating_sub(start).max(1) }
    }
    /// `base` decayed to this point.
    pub fn poly(&self, base: f64, power: f64) -> f64 {
        poly(base, self.it, self.max, power)
    }
    /// The network's base learning rate.
    pub fn lr(&self, cfg: &TrainConfig) -> f64 {
        self.poly(cfg.lr, cfg.power)
    }
}

/// The network's learning rates: backbone at lr, the `classifiers` (`SegNet::classifier_group`)
/// at lr × mult.
pub fn net_lr(cfg: &TrainConfig, clock: Clock, classifiers: ParamGroup) -> ModuleLearningRate {
    let lr = clock.lr(cfg);
    ModuleLrScheduler::new(lr).with_group(classifiers, lr * cfg.head_lr_mult).step()
}

/// The discriminators' learning rate.
pub fn d_lr(cfg: &TrainConfig, clock: Clock) -> f64 {
    clock.poly(cfg.lr_d, cfg.power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poly_schedule() {
        assert_eq!(poly(2.5e-4, 0, 250_000, 0.9), 2.5e-4);
        assert!((poly(2.5e-4, 125_000, 250_000, 0.9) - 2.5e-4 * 0.5f64.powf(0.9)).abs() < 1e-15);
        assert_eq!(poly(1.0, 300, 250, 0.9), 0.0);
    }

    #[test]
    fn a_window_restarts_the_schedule() {
        let cfg = TrainConfig { lr: 0.01, max_iters: 1000, ..Default::default() };
        assert_eq!(Clock::window(500, (500, 600)).lr(&cfg), 0.01);
        assert!((Clock::window(550, (500, 600)).lr(&cfg) - 0.01 * 0.5f64.powf(cfg.power)).abs() < 1e-15);
        // the run's own schedule is further along at the same iteration
        assert!(Clock::run(&cfg, 550).lr(&cfg) < Clock::window(550, (500, 600)).lr(&cfg));
    }
}
