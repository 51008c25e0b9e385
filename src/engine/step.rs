//! One training iteration, shared by the training loop and `segda bench` (so that the benchmark
//! times exactly what training runs).
use crate::config::Config;
use crate::error::Result;
use crate::methods::{After, DomainBatch, Method, Needs, Step};
use crate::model::SegNet;
use crate::nn::losses::value;
use crate::optim::{self, ModuleOptimizer};
use burn::optim::GradientsParams;

// The network is moved through, once per iteration: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// The updated network and the iteration's scalars (loss terms, then the methods' own).
    Stepped { net: SegNet, scalars: Vec<(String, f64)> },
    /// A loss term was NaN or infinite: nothing was updated.
    NonFinite { term: String, value: f64 },
}

/// Where iteration `it` stands in the poly schedule: over the run, or over a method's own window
/// (LSE's rounds).
pub fn clock(methods: &[Box<dyn Method>], cfg: &Config, it: u64) -> optim::Clock {
    methods
        .iter()
        .find_map(|m| m.lr_window())
        .map_or(optim::Clock::run(&cfg.train, it), |w| optim::Clock::window(it, w))
}

/// What an iteration updates besides the network: its optimiser and the methods, with what
/// they need and the experiment.
pub struct Learner<'a> {
    pub optim: &'a mut ModuleOptimizer,
    pub methods: &'a mut [Box<dyn Method>],
    pub needs: Needs,
    pub cfg: &'a Config,
}

/// The methods' terms (and the supervised CE the union of their needs asks for), one backward
/// of their sum, the network's optimiser step, then the methods' own updates.
pub fn iterate(
    net: SegNet,
    learner: &mut Learner,
    it: u64,
    src: Option<&DomainBatch>,
    tgt: Option<&DomainBatch>,
) -> Result<Outcome> {
    let Learner { optim, methods, needs, cfg } = learner;
    let (needs, cfg) = (*needs, *cfg);
    let clock = clock(methods, cfg, it);
    let mut step = Step::new(&net, it, cfg.train.seed, src, tgt);
    let mut terms = Vec::new();
    if needs.source_ce {
        let y = src.and_then(|b| b.y.clone()).expect("labelled source");
        terms.push(("seg_src".to_string(), step.source_fwd().seg_loss(&y, cfg.train.seg_aux_weight)));
    }
    if needs.target_ce {
        let y = tgt.and_then(|b| b.y.clone()).expect("labelled target");
        terms.push(("seg_tgt".to_string(), step.target_fwd().seg_loss(&y, cfg.train.seg_aux_weight)));
    }
    for m in methods.iter_mut() {
        terms.extend(m.losses(&mut step)?);
    }
    drop(step);
    let values: Vec<(String, f64)> = terms.iter().map(|(k, t)| (k.clone(), value(t))).collect();
    if let Some((k, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
        return Ok(Outcome::NonFinite { term: k.clone(), value: *v });
    }
    let total = terms.into_iter().map(|(_, t)| t).reduce(|a, b| a + b);
    let mut grads = total.map(|loss| loss.backward());
    let mut net = net;
    if let Some(g) = grads.as_mut() {
        let mine = GradientsParams::from_module(g, &net);
        let lr = optim::net_lr(&cfg.train, clock, net.classifier_group());
        net = optim.step(lr, net, mine);
    }
    let mut scalars = values;
    let lr = clock.lr(&cfg.train);
    for m in methods.iter_mut() {
        let mut after = After { it, lr_d: optim::d_lr(&cfg.train, clock), lr, grads: grads.as_mut() };
        scalars.extend(m.after_step(&mut after)?);
    }
    Ok(Outcome::Stepped { net, scalars })
}
