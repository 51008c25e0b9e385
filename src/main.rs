mod cli;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use cli::{Cli, Cmd};
use segda::config::Config;
use segda::data::classes::Protocol;
use segda::data::{validate, Dataset, DatasetKind, Split};
use segda::engine::{checkpoint, trainer};
use segda::eval::runner::{evaluate, evaluate_predictions, EvalSpec, Export};
use segda::eval::EvalReport;
use std::path::Path;

fn main() {
    let cli = Cli::parse();
    ctrlc::set_handler(|| {
        if trainer::stop_requested() {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint, then stopping (press Ctrl-C again to quit at once)");
        trainer::request_stop();
    })
    .ok();
    match segda::runtime::pool::install(|| run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn device(spec: &str) -> Result<burn::prelude::Device> {
    Ok(segda::runtime::device::parse(spec)?)
}

fn protocol(n: u32) -> Result<Protocol> {
    Protocol::from_count(n).ok_or_else(|| anyhow!("--protocol {n}: expected 19, 16 or 13"))
}

fn run(cli: Cli) -> Result<i32> {
    use segda::report::compare::{outcome_table, outcomes};
    match cli.cmd {
        Cmd::Synth(a) => {
            let opts = segda::data::synth::SynthOptions {
                seed: a.seed,
                width: a.width,
                gta5: a.gta5,
                synthia: a.synthia,
                city_train: a.train,
                city_val: a.val,
                shift: a.shift,
            };
            if a.width < 64 || a.width % 2 != 0 {
                bail!("--width {}: use an even width of at least 64", a.width);
            }
            segda::data::synth::generate(&a.out, &opts)?;
            println!("wrote {}/{{gta5,synthia,cityscapes}}", a.out.display());
            Ok(0)
        }
        Cmd::Prepare(a) => {
            let split = a.split.unwrap_or(match a.dataset {
                DatasetKind::Cityscapes => Split::Train,
                _ => Split::All,
            });
            let ds = Dataset::open(a.dataset, &a.root, split, a.list.as_deref())?;
            let stats = validate::validate(&ds);
            print!("{}", stats.render(&ds, protocol(a.protocol)?));
            Ok(if stats.errors.is_empty() { 0 } else { 2 })
        }
        Cmd::Train(a) => {
            let cfg = if a.resume && a.config.is_none() {
                Config::load(&a.out.join("config.toml"), &a.set)?
            } else {
                let c = a
                    .config
                    .as_ref()
                    .ok_or_else(|| anyhow!("--config is required (or --resume with an existing --out)"))?;
                Config::load(c, &a.set)?
            };
            let mut opts =
                trainer::TrainOptions { resume: a.resume, ..trainer::TrainOptions::new(&a.out, device(&a.device)?) };
            if let Some(dir) = &a.stages {
                opts.stages = dir.clone();
            }
            if let Some(list) = &a.devices {
                let specs: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
                segda::engine::parallel::check(&specs, cfg.train.batch)?;
                opts.parallel = specs.iter().map(|s| device(s)).collect::<Result<_>>()?;
                opts.device = opts.parallel[0].clone();
            }
            let s = segda::engine::train(cfg, &opts)?;
            if s.interrupted {
                println!(
                    "stopped at iteration {}; continue with: segda train --out {} --resume",
                    s.iters,
                    a.out.display()
                );
                return Ok(130);
            }
            if let Some(r) = &s.last {
                println!("{}", r.table());
            }
            if let Some((it, m)) = s.best {
                println!("best mIoU {m:.2} at iteration {it}; run in {}", a.out.display());
            }
            Ok(0)
        }
        Cmd::Eval(a) => eval(a),
        Cmd::Predict(a) => {
            let cfg = Config::load(&a.run.join("config.toml"), &[])?;
            let dev = device(&a.device)?;
            let net = load_run_net(&cfg, &a.run, &a.checkpoint, &dev)?;
            let ds = image_folder(&a.input)?;
            let spec = EvalSpec {
                resize: cfg.val.resize,
                normalize: cfg.model.normalize(),
                protocol: cfg.eval.protocol,
                limit: 0,
                progress: true,
            };
            let (label_ids, color) = if !a.labelids && !a.color { (true, true) } else { (a.labelids, a.color) };
            let failures = std::cell::RefCell::new(Vec::new());
            let export = Export { dir: &a.out, label_ids, color, failures: Some(&failures) };
            evaluate(&net, &ds, &spec, &dev, Some(export))?;
            let failures = failures.into_inner();
            for f in &failures {
                eprintln!("error: {f}");
            }
            println!(
                "wrote predictions of {} of {} images to {}",
                ds.len() - failures.len(),
                ds.len(),
                a.out.display()
            );
            Ok(if failures.is_empty() { 0 } else { 1 })
        }
        Cmd::Import(a) => {
            let cfg = segda::model::ModelConfig {
                backbone: a.arch,
                stride_in_1x1: !a.torchvision,
                multi_level: a.multi_level && a.arch != segda::model::BackboneKind::Vgg16,
                ..Default::default()
            };
            let dev = burn::prelude::Device::flex();
            let net = segda::model::SegNet::new(&cfg, &dev)?;
            let (net, report) = segda::model::import::load_weights(net, &a.from, &cfg)?;
            print!("{report}");
            match a.out.extension().and_then(|e| e.to_str()) {
                Some("bpk") => {
                    use burn::module::Module;
                    net.save_file(&a.out).map_err(|e| anyhow!("{}: {e}", a.out.display()))?
                }
                _ => segda::model::import::save_safetensors(&net, &a.out)?,
            }
            println!("wrote {}", a.out.display());
            Ok(0)
        }
        Cmd::FetchWeights(a) => {
            let k = match a.name.as_str() {
                "mobilenet_v2" => &segda::model::weights::MOBILENET_V2,
                other => bail!("unknown weights `{other}`; available: mobilenet_v2"),
            };
            let p = segda::model::weights::fetch(k)?;
            println!("{}", p.display());
            Ok(0)
        }
        Cmd::Sweep(a) => {
            if a.only.is_some_and(|k| k < 1 || k > a.seeds) {
                bail!("--only must name one of the seeds 1..={}", a.seeds);
            }
            let mut runs = Vec::new();
            for seed in (1..=a.seeds).filter(|s| a.only.is_none_or(|k| k == *s)) {
                let run = a.out.join(format!("seed{seed}"));
                let mut set = a.set.clone();
                set.push(format!("train.seed={seed}"));
                let cfg = Config::load(&a.config, &set)?;
                if checkpoint::finished(&run) {
                    eprintln!("{}: already complete", run.display());
                } else {
                    let resume = checkpoint::find(&run, "last").is_some();
                    eprintln!("{}: seed {seed}{}", run.display(), if resume { " (resuming)" } else { "" });
                    let stages = a.stages.clone().unwrap_or_else(|| trainer::default_stages(&a.out));
                    let s = segda::engine::train(
                        cfg,
                        &trainer::TrainOptions {
                            resume,
                            stages,
                            ..trainer::TrainOptions::new(&run, device(&a.device)?)
                        },
                    )?;
                    if s.interrupted {
                        return Ok(130);
                    }
                }
                runs.push(segda::report::compare::RunScore::load(&run, "best")?);
            }
            println!("{}", segda::report::compare::markdown(&runs, runs[0].report.protocol));
            let dirs: Vec<_> = runs.iter().map(|r| r.run.clone()).collect();
            let baseline = a.baseline.as_ref().map(|b| outcomes(std::slice::from_ref(b), &[])).transpose()?;
            println!("{}", outcome_table(&outcomes(&dirs, &[])?, baseline.as_deref()));
            if a.only.is_some() {
                return Ok(0); // one seed of several: the report waits for the whole sweep
            }
            let page = segda::report::write_report(
                &dirs,
                &a.out.join("report.html"),
                &segda::report::ReportOptions { images: 3, device: device(&a.device)?, relabel: vec![] },
            )?;
            println!("report: {}", page.display());
            Ok(0)
        }
        Cmd::Report(a) => {
            // a label may name the baseline's runs too; the page shows the runs given
            let given = segda::report::runs::run_dirs(&a.runs)?;
            let base =
                a.baseline.as_ref().map(|b| segda::report::runs::run_dirs(std::slice::from_ref(b))).transpose()?;
            segda::report::runs::check_relabel(&[given.clone(), base.unwrap_or_default()].concat(), &a.label)?;
            let page = segda::report::write_report(
                &a.runs,
                &a.out,
                &segda::report::ReportOptions {
                    images: a.images,
                    device: device(&a.device)?,
                    relabel: a.label.iter().filter(|l| segda::report::runs::holds_a_run(l, &given)).cloned().collect(),
                },
            )?;
            // the runs that have evaluated, as the adaptation tables of docs/benchmarks.md show them
            let runs = outcomes(&a.runs, &a.label)?;
            if !runs.is_empty() {
                let baseline = a.baseline.as_ref().map(|b| outcomes(std::slice::from_ref(b), &a.label)).transpose()?;
                println!("{}", outcome_table(&runs, baseline.as_deref()));
            }
            println!("wrote {}", page.display());
            Ok(0)
        }
        Cmd::Demo(a) => segda::demo::run(&a.out, a.iters, device(&a.device)?).map(|_| 0).map_err(Into::into),
        Cmd::Bench(a) => bench(a),
    }
}

fn bench(a: cli::BenchArgs) -> Result<i32> {
    use segda::bench::{self, BenchOptions, Net, StepKind};
    let size = |s: &str| -> Result<[usize; 2]> {
        let (h, w) = s.split_once('x').ok_or_else(|| anyhow!("size `{s}`: expected HEIGHTxWIDTH, e.g. 512x1024"))?;
        Ok([
            h.trim().parse().map_err(|_| anyhow!("size `{s}`: bad height"))?,
            w.trim().parse().map_err(|_| anyhow!("size `{s}`: bad width"))?,
        ])
    };
    let o = BenchOptions {
        nets: if a.nets.is_empty() { vec![Net::MobilenetV2, Net::Resnet101] } else { a.nets.clone() },
        steps: if a.steps.is_empty() {
            vec![StepKind::Train, StepKind::Adapt, StepKind::Apoda, StepKind::Infer]
        } else {
            a.steps.clone()
        },
        batch: a.batch,
        train_size: size(&a.train_size)?,
        infer_size: size(&a.infer_size)?,
        warmup: a.warmup,
        iters: a.iters.max(1),
        device: device(&a.device)?,
    };
    eprintln!("segda bench on {} ({} threads)", a.device, std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("{}", bench::header());
    let rows = bench::run(&o, |r| println!("{}", bench::line(r)))?;
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?).map_err(|e| anyhow!("{}: {e}", p.display()))?;
    }
    Ok(0)
}

/// The network of a run with the weights of one of its checkpoints, ready for inference.
fn load_run_net(cfg: &Config, run: &Path, which: &str, dev: &burn::prelude::Device) -> Result<segda::model::SegNet> {
    let ck = checkpoint::find(run, which)
        .ok_or_else(|| anyhow!("{}: no `{which}` checkpoint (has the run evaluated yet?)", run.display()))?;
    let mut c = cfg.clone();
    c.model.init = None;
    c.train.init_from = None;
    let net = trainer::build_net(&c, dev, false)?;
    let net = checkpoint::load_model(net, &ck)?;
    use burn::module::Module;
    Ok(net.valid())
}

/// A folder of images as an unlabelled dataset (searched recursively).
/// The images under `dir`, each named by its path below `dir` without the extension (and
/// Cityscapes' `_leftImg8bit`), so that predictions of a/x.png and b/x.png do not collide; two
/// files that differ only in their extension keep it (x_jpg).
fn image_folder(dir: &Path) -> Result<Dataset> {
    let mut items = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}: cannot read directory", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ["png", "jpg", "jpeg"].contains(&x.to_ascii_lowercase().as_str()))
            {
                let rel = p.strip_prefix(dir).unwrap_or(&p).with_extension("");
                let name = rel.to_string_lossy().trim_end_matches("_leftImg8bit").to_string();
                items.push(segda::data::layout::Item { name, image: p, label: None });
            }
        }
    }
    items.sort_by(|a, b| a.image.cmp(&b.image));
    let mut count = std::collections::HashMap::new();
    for it in &items {
        *count.entry(it.name.clone()).or_insert(0) += 1;
    }
    for it in &mut items {
        if count[&it.name] > 1 {
            let ext = it.image.extension().unwrap_or_default().to_string_lossy().to_ascii_lowercase();
            it.name = format!("{}_{ext}", it.name);
        }
    }
    if items.is_empty() {
        bail!("{}: no .png/.jpg images found", dir.display());
    }
    Ok(Dataset { kind: DatasetKind::Folder, root: dir.to_path_buf(), split: Split::All, items })
}

fn print_report(r: &EvalReport, json: bool, what: &str) {
    if json {
        println!("{}", serde_json::to_string(r).expect("json"));
    } else {
        println!("{what}\n{}", r.table());
    }
}

fn eval(a: cli::EvalArgs) -> Result<i32> {
    let dev = device(&a.device)?;
    if let Some(pred) = &a.pred {
        let kind = a.dataset.ok_or_else(|| anyhow!("--pred needs --dataset and --root"))?;
        let root = a.root.as_ref().ok_or_else(|| anyhow!("--pred needs --dataset and --root"))?;
        let p = protocol(a.protocol.unwrap_or(19))?;
        let ds = Dataset::open(kind, root, a.split, None)?;
        let r = evaluate_predictions(pred, &ds, p)?.report(p);
        print_report(&r, a.json, &format!("{} on {} ({})", pred.display(), root.display(), a.split.as_str()));
        return Ok(0);
    }
    if a.run.len() > 1 && !a.ensemble {
        return compare(&a);
    }
    let (cfg, nets, what) = if let Some(run) = a.run.first() {
        let cfg = Config::load(&run.join("config.toml"), &[])?;
        let nets = a
            .run
            .iter()
            .map(|r| load_run_net(&Config::load(&r.join("config.toml"), &[])?, r, &a.checkpoint, &dev))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = a.run.iter().map(|r| r.display().to_string()).collect();
        (
            cfg,
            nets,
            format!(
                "{} ({} checkpoint{})",
                names.join(" + "),
                a.checkpoint,
                if a.ensemble { ", ensemble" } else { "" }
            ),
        )
    } else if let Some(w) = &a.weights {
        let mut cfg = match &a.config {
            Some(c) => Config::load(c, &[])?,
            None => Config::default(),
        };
        if let Some(arch) = a.arch {
            cfg.model.backbone = arch;
        }
        cfg.model.init = Some(segda::model::Init::File(w.clone()));
        cfg.train.init_from = None;
        let net = trainer::build_net(&cfg, &dev, !a.json)?;
        use burn::module::Module;
        (cfg, vec![net.valid()], w.display().to_string())
    } else {
        bail!("give --run DIR, --weights FILE (with --config or --arch), or --pred DIR");
    };
    let mut val = cfg.val.clone();
    if let Some(k) = a.dataset {
        val.kind = k;
    }
    if let Some(r) = &a.root {
        val.root = r.clone();
    }
    val.split = a.split;
    let p = match a.protocol {
        Some(n) => protocol(n)?,
        None => cfg.eval.protocol,
    };
    let ds = trainer::open_dataset(&val)?;
    let spec =
        EvalSpec { resize: val.resize, normalize: cfg.model.normalize(), protocol: p, limit: 0, progress: !a.json };
    let export = a.save.as_ref().map(|d| Export { dir: d.as_path(), label_ids: true, color: true, failures: None });
    let conf = segda::eval::runner::evaluate_ensemble(&nets, &ds, &spec, &dev, export)?
        .ok_or_else(|| anyhow!("{}: these images have no labels to score against", val.root.display()))?;
    let r = conf.report(p);
    print_report(&r, a.json, &format!("{what} on {} ({})", val.root.display(), val.split.as_str()));
    if !a.json {
        for extra in p.reported().iter().filter(|&&q| q != p) {
            println!("{}", conf.report(*extra).table());
        }
    }
    Ok(0)
}

/// Several runs: their stored evaluations side by side, seeds of a method averaged.
fn compare(a: &cli::EvalArgs) -> Result<i32> {
    use segda::report::compare::{markdown, RunScore};
    let which = if a.checkpoint == "last" { "latest" } else { "best" };
    let mut runs = Vec::new();
    for r in &a.run {
        // a run still in progress has no stored evaluation yet: leave it out, say so
        if !r.join("eval").join(format!("{which}.json")).is_file() && r.join("config.toml").is_file() {
            eprintln!("warning: {}: no evaluation stored yet (eval/{which}.json), left out", r.display());
            continue;
        }
        runs.push(RunScore::load(r, which)?);
    }
    if runs.is_empty() {
        bail!("none of the {} runs has an evaluation stored (eval/{which}.json)", a.run.len());
    }
    segda::report::compare::one_run_per_seed(runs.iter().map(|r| (r.run.clone(), r.group.clone(), r.seed)))?;
    let p = match a.protocol {
        Some(n) => protocol(n)?,
        // the narrowest protocol among the runs (19 ⊃ 16 ⊃ 13): every run has scores for it
        None => runs.iter().map(|r| r.report.protocol).min_by_key(|q| q.count()).expect("several runs"),
    };
    if a.json {
        println!("{}", segda::report::compare::json(&runs, p));
    } else {
        println!("{}", markdown(&runs, p));
        for extra in p.reported().iter().filter(|&&q| q != p) {
            println!("{}", markdown(&runs, *extra));
        }
    }
    Ok(0)
}
