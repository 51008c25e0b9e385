//! The one training loop every method runs on.
use super::checkpoint::{self, Progress};
use super::log::{brief, RunLog};
use super::step::{iterate, Learner, Outcome};
use super::{parallel, stages};
use crate::config::{Config, DataConfig, InitFrom};
use crate::data::loader::{Batch, Loader, LoaderSpec};
use crate::data::transform::Augment;
use crate::data::Dataset;
use crate::error::{Error, IoContext, Result};
use crate::eval::runner::{evaluate, EvalSpec};
use crate::eval::EvalReport;
use crate::methods::{self, Before, DomainBatch, Needs};
use crate::model::{import, weights, Init, SegNet};
use crate::optim;
use crate::ui;
use burn::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ask running training loops to checkpoint and stop (called from the Ctrl-C handler).
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[derive(Clone)]
pub struct TrainOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// The compute device (autodiff is added by the trainer).
    pub device: Device,
    /// Stop after this many iterations of this invocation (tests of resume); None = run to the end.
    pub stop_after: Option<u64>,
    /// Data-parallel training over these devices (the first is `device`; see `engine::parallel`);
    /// empty: `device` alone.
    pub parallel: Vec<Device>,
    /// Where stages are trained and found (`engine::stages`).
    pub stages: PathBuf,
}

impl TrainOptions {
    /// A new run (not resumed) in `out` on `device`, to its end, with stages in `stages/` beside
    /// `out`.
    pub fn new(out: impl Into<PathBuf>, device: Device) -> Self {
        let out = out.into();
        let stages = default_stages(&out);
        TrainOptions { out, resume: false, device, stop_after: None, parallel: Vec::new(), stages }
    }
}

/// `stages/` beside a run's (or a sweep's) output directory.
pub fn default_stages(out: &Path) -> PathBuf {
    out.parent().unwrap_or(Path::new(".")).join("stages")
}

#[derive(Debug)]
pub struct RunSummary {
    pub iters: u64,
    pub last: Option<EvalReport>,
    pub best: Option<(u64, f64)>,
    pub seconds: f64,
    /// Stopped by Ctrl-C or `stop_after` before `train.iters`.
    pub interrupted: bool,
}

pub fn open_dataset(d: &DataConfig) -> Result<Dataset> {
    d.open()
}

fn augment(d: &DataConfig) -> Augment {
    Augment { resize: d.resize, crop: d.crop, flip: d.flip, upscale: None }
}

/// The comment that opens a run's config dump: what the config cannot say. A CPU run's digits
/// do not depend on the thread count (tests/engine.rs), only its seconds do; the kernels pick
/// their SIMD code by the CPU, and another instruction set may sum in another order.
pub fn run_header() -> String {
    format!(
        "# segda {}, {} CPU threads (RAYON_NUM_THREADS): a CPU run repeats digit for digit on any count of the same CPU instruction set\n",
        env!("CARGO_PKG_VERSION"),
        rayon::current_num_threads()
    )
}

/// Build the network for a config: architecture, then `model.init` or `train.init_from` weights
/// (a stage's run must be resolved first, `engine::stages`).
pub fn build_net(cfg: &Config, device: &Device, verbose: bool) -> Result<SegNet> {
    let mut net = SegNet::new(&cfg.model, device)?;
    if let Some(from) = &cfg.train.init_from {
        let w = match from {
            InitFrom::Weights(p) => checkpoint::resolve_weights(p)?,
            InitFrom::Stage(st) => {
                let run = st
                    .run
                    .as_ref()
                    .ok_or_else(|| Error::config("train.init_from", "the stage has not been trained yet"))?;
                let ck = checkpoint::find(run, &st.checkpoint)
                    .ok_or_else(|| Error::format(run, format!("the stage has no `{}` checkpoint", st.checkpoint)))?;
                checkpoint::resolve_weights(&ck)?
            }
        };
        net = net.try_load_file(&w).map_err(|e| Error::format(&w, format!("cannot start from these weights: {e}")))?;
        if verbose {
            ui::note(&format!("starting from {}", w.display()));
        }
    } else if let Some(init) = &cfg.model.init {
        let p = match init {
            Init::File(p) => p.clone(),
            Init::Imagenet => weights::imagenet(&cfg.model)?,
        };
        let (n, report) = import::load_weights(net, &p, &cfg.model)?;
        net = n;
        if verbose {
            ui::note(&report.to_string());
        }
    }
    Ok(net.with_bn_mode(cfg.model.bn_mode(cfg.train.init_from.is_some())))
}

struct Streams {
    source: Option<Loader>,
    target: Option<Loader>,
}

/// Trains a stage unless it is complete (resuming it if it was interrupted, waiting while
/// another process trains it); false when it was interrupted this time (Ctrl-C), so that
/// nothing after it runs.
fn train_stage(stage: stages::Pending, opts: &TrainOptions) -> Result<bool> {
    stage.wait_while_busy();
    if stage.finished() {
        return Ok(true);
    }
    let resume = checkpoint::find(&stage.dir, "last").is_some();
    let what = if resume { "resuming" } else { "training" };
    ui::note(&format!("{what} the stage {} (seed {})", stage.dir.display(), stage.cfg.train.seed));
    let opts = TrainOptions { out: stage.dir, resume, ..opts.clone() };
    Ok(!train_here(stage.cfg, &opts)?.interrupted)
}

/// Trains `cfg` into `opts.out`, on a worker of the compute pool as `segda train` does
/// (`runtime::pool`).
pub fn train(cfg: Config, opts: &TrainOptions) -> Result<RunSummary> {
    crate::runtime::pool::install(|| train_here(cfg, opts))
}

fn train_here(cfg: Config, opts: &TrainOptions) -> Result<RunSummary> {
    let run = &opts.out;
    let _lock = super::lock::RunLock::acquire(run)?;
    let last_ckpt = checkpoint::find(run, "last");
    if let Some(p) =
        last_ckpt.as_ref().and_then(|c| checkpoint::read_progress(c).ok()).filter(|p| p.finished && opts.resume)
    {
        return Err(Error::format(run, format!("this run finished at iteration {}; nothing to resume", p.iter)));
    }
    if last_ckpt.is_some() && !opts.resume {
        return Err(Error::format(
            run,
            "this run already has checkpoints: pass --resume to continue it, or choose another --out",
        ));
    }
    let (cfg, stage) = stages::resolve(cfg, &opts.stages)?;
    // resuming a run that never reached its first checkpoint is starting it again, unless what
    // it was doing is training its stage
    if opts.resume
        && last_ckpt.is_none()
        && !stage.as_ref().is_some_and(|s| !s.finished() && run.join("config.toml").is_file())
    {
        return Err(Error::format(run, "--resume: nothing to resume here (no checkpoints/last); start the run without --resume, or choose another --out"));
    }
    std::fs::create_dir_all(run).at(run)?;
    let cfg_path = run.join("config.toml");
    std::fs::write(&cfg_path, format!("{}{}", run_header(), cfg.to_toml())).at(&cfg_path)?;
    if let Some(stage) = stage {
        if !train_stage(stage, opts)? {
            return Ok(RunSummary { iters: 0, last: None, best: None, seconds: 0.0, interrupted: true });
        }
    }
    let device = opts.device.clone().autodiff();
    let seed = cfg.train.seed;
    device.seed(seed);
    let mut methods = methods::build(&cfg, &device)?;
    let needs = methods.iter().fold(Needs::default(), |a, m| a.union(m.needs()));

    // data
    let normalize = cfg.model.normalize();
    let mk = |d: &DataConfig, labels: bool| -> Result<Arc<Dataset>> {
        let ds = open_dataset(d)?;
        if labels && !ds.has_labels() {
            return Err(Error::format(&d.root, "this method needs labels here, but the dataset has none"));
        }
        Ok(Arc::new(ds))
    };
    let src_ds = if needs.source { Some(mk(&cfg.source, needs.source_ce)?) } else { None };
    let tgt_ds = if needs.target { Some(mk(&cfg.target, needs.target_ce)?) } else { None };
    // labels for a diagnostic are read where the target has them, and skipped where it has none
    let tgt_labels = needs.target_ce || (needs.target_labels && tgt_ds.as_ref().is_some_and(|d| d.has_labels()));
    let val_ds = open_dataset(&cfg.val)?;

    // network, optimiser, state
    let mut net = build_net(&cfg, &device, !opts.resume)?;
    let mut optim = optim::sgd(&cfg.train);
    let mut progress = Progress { version: env!("CARGO_PKG_VERSION").into(), ..Default::default() };
    if let Some(ck) = &last_ckpt {
        net = checkpoint::load_model(net, ck)?;
        optim = checkpoint::load_optim(optim, ck)?;
        for m in methods.iter_mut() {
            m.load(&ck.join("methods").join(m.name()))?;
        }
        progress = checkpoint::read_progress(ck)?;
        ui::note(&format!("resuming {} at iteration {}", run.display(), progress.iter));
    }
    let mut replicas = None;
    if !opts.parallel.is_empty() {
        let (n, r) = parallel::Replicas::start(net, &cfg, &opts.parallel, run, last_ckpt.as_deref())?;
        ui::note(&format!(
            "data-parallel over {} devices, {} images each per iteration",
            r.world(),
            cfg.train.batch / r.world()
        ));
        net = n;
        replicas = Some(r);
    }
    let world = replicas.as_ref().map_or(1, |r| r.world());

    let batch = cfg.train.batch;
    let mut streams = Streams {
        source: src_ds.map(|d| {
            let spec = LoaderSpec::train(batch, augment(&cfg.source), normalize, needs.source_ce, seed.wrapping_add(1));
            Loader::new(d, spec, progress.source_pos)
        }),
        target: tgt_ds.map(|d| {
            let spec = LoaderSpec::train(batch, augment(&cfg.target), normalize, tgt_labels, seed.wrapping_add(2));
            Loader::new(d, spec, progress.target_pos)
        }),
    };
    let mut log = RunLog::open(run, progress.iter)?;
    let eval_spec = EvalSpec {
        resize: cfg.val.resize,
        normalize,
        protocol: cfg.eval.protocol,
        limit: cfg.train.eval_images,
        progress: false,
    };
    let eval_every = if cfg.train.eval_every == 0 { cfg.train.iters } else { cfg.train.eval_every };

    let total = cfg.train.iters;
    let pb = ui::bar(total, "train");
    pb.set_position(progress.iter);
    let started = Instant::now();
    let start_iter = progress.iter;
    let mut last_report = None;
    let mut interrupted = false;
    let mut running: Vec<(String, f64)> = Vec::new();
    // wall time of the iterations since the last logged one (evaluation and checkpoints apart),
    // and the part of it spent waiting for data
    let (mut window_iters, mut window_s, mut window_data_s) = (0u32, 0f64, 0f64);

    while progress.iter < total {
        if stop_requested() || opts.stop_after.is_some_and(|n| progress.iter - start_iter >= n) {
            interrupted = true;
            break;
        }
        let it = progress.iter;
        let iteration_started = Instant::now();
        // every random draw inside a step depends on (seed, iteration) only: exact resume
        device.seed(seed ^ it.wrapping_mul(0x9E37_79B9));
        let mut hook_scalars = Vec::new();
        for m in methods.iter_mut() {
            hook_scalars.extend(m.before_step(&Before { it, net: &net, run, device: &opts.device, cfg: &cfg })?);
        }
        if methods.iter().any(|m| m.finished()) {
            break;
        }
        if !hook_scalars.is_empty() {
            log.scalars("round", it, &hook_scalars, None)?;
        }
        let waiting = Instant::now();
        let (src, tgt) = (next(&mut streams.source)?, next(&mut streams.target)?);
        window_data_s += waiting.elapsed().as_secs_f64();
        if let Some(r) = &replicas {
            r.send(it, src.as_ref(), tgt.as_ref())?;
        }
        let mine = |b: Batch| DomainBatch::upload(if world > 1 { parallel::slice(&b, 0, world) } else { b }, &device);
        let (src, tgt) = (src.map(mine), tgt.map(mine));
        let mut outcome = iterate(
            net,
            &mut Learner { optim: &mut optim, methods: &mut methods, needs, cfg: &cfg },
            it,
            src.as_ref(),
            tgt.as_ref(),
        )?;
        if let (Some(r), Outcome::Stepped { scalars, .. }) = (&replicas, &mut outcome) {
            match r.collect()? {
                Ok(others) => *scalars = parallel::mean(&[vec![scalars.clone()], others].concat()),
                Err((term, value)) => outcome = Outcome::NonFinite { term, value },
            }
        }
        let scalars = match outcome {
            Outcome::Stepped { net: n, scalars } => {
                net = n;
                scalars
            }
            Outcome::NonFinite { term, value } => {
                pb.abandon();
                let kept = match checkpoint::find(run, "last").and_then(|c| checkpoint::read_progress(&c).ok()) {
                    Some(p) => format!(
                        "The last good checkpoint is {} (iteration {}).",
                        checkpoint::dir(run, "last").display(),
                        p.iter
                    ),
                    None => "No checkpoint was written before it.".to_string(),
                };
                return Err(Error::Other(format!("loss `{term}` is {value} at iteration {}; stopped without saving. {kept} Lower train.lr or check the data.", it + 1)));
            }
        };
        progress.iter += 1;
        progress.source_pos = streams.source.as_ref().map_or(0, |l| l.position());
        progress.target_pos = streams.target.as_ref().map_or(0, |l| l.position());
        running = smooth(&running, &scalars);
        pb.set_position(progress.iter);
        pb.set_message(brief(&running));
        (window_iters, window_s) = (window_iters + 1, window_s + iteration_started.elapsed().as_secs_f64());
        if progress.iter.is_multiple_of(cfg.train.log_every.max(1)) || progress.iter == total {
            let mut s = scalars.clone();
            s.push(("lr".into(), super::step::clock(&methods, &cfg, it).lr(&cfg.train)));
            let n = f64::from(window_iters);
            s.extend([("time_iter_s".to_string(), window_s / n), ("time_data_s".to_string(), window_data_s / n)]);
            (window_iters, window_s, window_data_s) = (0, 0.0, 0.0);
            log.scalars("train", progress.iter, &s, None)?;
        }
        let round_end = methods.iter().any(|m| m.eval_now());
        if progress.iter.is_multiple_of(eval_every) || progress.iter == total || round_end {
            let report = validate(&net, &val_ds, &eval_spec, &opts.device)?;
            log.scalars(
                "eval",
                progress.iter,
                &[("miou".into(), report.miou), ("pixel_acc".into(), report.pixel_acc)],
                Some(serde_json::json!({ "per_class": report.per_class })),
            )?;
            write_eval(run, "latest", &report, progress.iter)?;
            if progress.best_miou.is_none_or(|b| report.miou > b) {
                progress.best_miou = Some(report.miou);
                progress.best_iter = Some(progress.iter);
                checkpoint::save(run, "best", &net, None, &[], &progress)?;
                write_eval(run, "best", &report, progress.iter)?;
            }
            ui::note(&format!(
                "iter {:>7}  mIoU {:.2}  (best {:.2} @ {})",
                progress.iter,
                report.miou,
                progress.best_miou.unwrap_or(f64::NAN),
                progress.best_iter.unwrap_or(0)
            ));
            last_report = Some(report);
            checkpoint::save(run, "last", &net, Some(&optim), &methods, &progress)?;
        }
    }
    if let Some(r) = replicas {
        r.finish();
    }
    if interrupted {
        checkpoint::save(run, "last", &net, Some(&optim), &methods, &progress)?;
        pb.abandon_with_message(format!("stopped at iteration {}; checkpoint saved", progress.iter));
    } else {
        progress.finished = true;
        checkpoint::save(run, "last", &net, Some(&optim), &methods, &progress)?;
        pb.finish_with_message("done");
    }
    Ok(RunSummary {
        iters: progress.iter,
        last: last_report,
        best: progress.best_iter.zip(progress.best_miou),
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
    })
}

fn next(l: &mut Option<Loader>) -> Result<Option<Batch>> {
    match l {
        None => Ok(None),
        Some(l) => Ok(Some(l.next_batch().ok_or_else(|| Error::Other("data loader stopped unexpectedly".into()))??)),
    }
}

/// Exponential moving average of the logged scalars, for a steady progress-bar message.
fn smooth(prev: &[(String, f64)], cur: &[(String, f64)]) -> Vec<(String, f64)> {
    cur.iter()
        .map(|(k, v)| {
            let p = prev.iter().find(|(pk, _)| pk == k).map(|(_, pv)| *pv);
            (k.clone(), p.map_or(*v, |p| 0.9 * p + 0.1 * v))
        })
        .collect()
}

pub fn validate(net: &SegNet, ds: &Dataset, spec: &EvalSpec, device: &Device) -> Result<EvalReport> {
    let inf = net.valid();
    let conf = evaluate(&inf, ds, spec, device, None)?
        .ok_or_else(|| Error::format(&ds.root, "validation images have no labels"))?;
    Ok(conf.report(spec.protocol))
}

/// `eval/NAME.json` and `eval/NAME.md` in the run directory.
pub fn write_eval(run: &Path, name: &str, r: &EvalReport, iter: u64) -> Result<()> {
    let dir = run.join("eval");
    std::fs::create_dir_all(&dir).at(&dir)?;
    let mut j = serde_json::to_value(r).expect("serialisable");
    j["iter"] = serde_json::json!(iter);
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_string_pretty(&j).expect("json")).at(&p)?;
    let p = dir.join(format!("{name}.md"));
    std::fs::write(&p, format!("iteration {iter}\n\n| class | IoU |\n|---|---|\n{}", r.markdown_rows())).at(&p)?;
    Ok(())
}
