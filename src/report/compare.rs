//! A run's scores and the Markdown comparison table of several runs.
use crate::config::Config;
use crate::data::classes::{Protocol, CLASS_NAMES};
use crate::error::{Error, IoContext, Result};
use crate::eval::EvalReport;
use crate::report::runs::{relabelled, Relabel};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stored evaluation of a run (`eval/best.json` or `eval/latest.json`).
#[derive(Clone, Debug)]
pub struct RunScore {
    pub run: PathBuf,
    /// Runs with the same group are seeds of one setting (`Config::label`).
    pub group: String,
    pub seed: u64,
    pub iter: u64,
    pub report: EvalReport,
}

impl RunScore {
    pub fn load(run: &Path, which: &str) -> Result<RunScore> {
        Self::read(run, &Config::load(&run.join("config.toml"), &[])?, which)
    }

    /// `load` with the run's config already read.
    pub fn read(run: &Path, cfg: &Config, which: &str) -> Result<RunScore> {
        let p = run.join("eval").join(format!("{which}.json"));
        let text = std::fs::read_to_string(&p).at(&p)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::format(&p, e.to_string()))?;
        let report: EvalReport = serde_json::from_value(v.clone()).map_err(|e| Error::format(&p, e.to_string()))?;
        Ok(RunScore {
            run: run.to_path_buf(),
            group: cfg.label(),
            seed: cfg.train.seed,
            iter: v["iter"].as_u64().unwrap_or(0),
            report,
        })
    }
}

/// Seeds of one setting are told apart from other settings by name alone (`Config::label`): two
/// runs with one name and one seed are two settings under one name (or one run listed twice by
/// two paths), and would be averaged into one row. An error naming both.
pub fn one_run_per_seed(runs: impl IntoIterator<Item = (PathBuf, String, u64)>) -> Result<()> {
    let mut seen: BTreeMap<(String, u64), PathBuf> = BTreeMap::new();
    for (run, group, seed) in runs {
        if let Some(first) = seen.get(&(group.clone(), seed)) {
            return Err(Error::Other(format!(
                "{} and {} are both seed {seed} of `{group}`: they would be averaged as one setting; \
                 name one of them apart (`segda report --label DIR=NAME`, or train it with \
                 --set name='\"…\"') or leave one out",
                first.display(),
                run.display()
            )));
        }
        seen.insert((group, seed), run);
    }
    Ok(())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Per group: its number of runs and (mean, std) for each of the protocol's classes, then the mIoU.
pub type Summary = BTreeMap<String, (usize, Vec<(f64, f64)>)>;

/// Mean and sample standard deviation per group for each class and the mIoU, under `protocol`.
pub fn summarize(runs: &[RunScore], protocol: Protocol) -> Summary {
    let mut groups: BTreeMap<String, Vec<&RunScore>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.group.clone()).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(g, rs)| {
            let mut cols = Vec::new();
            for &c in protocol.classes() {
                let vals: Vec<f64> = rs
                    .iter()
                    .map(|r| r.report.per_class.get(CLASS_NAMES[c as usize]).copied().flatten().unwrap_or(0.0))
                    .collect();
                cols.push(mean_std(&vals));
            }
            let mious: Vec<f64> = rs.iter().map(|r| miou_under(&r.report, protocol)).collect();
            cols.push(mean_std(&mious));
            (g, (rs.len(), cols))
        })
        .collect()
}

/// mIoU of a stored report restricted to a narrower protocol's classes.
pub fn miou_under(r: &EvalReport, p: Protocol) -> f64 {
    if r.protocol == p {
        return r.miou;
    }
    let v: Vec<f64> =
        p.classes().iter().filter_map(|&c| r.per_class.get(CLASS_NAMES[c as usize]).copied().flatten()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Markdown: one row per class (best group in bold), the mIoU last; columns are groups.
pub fn markdown(runs: &[RunScore], protocol: Protocol) -> String {
    let s = summarize(runs, protocol);
    let names: Vec<&String> = s.keys().collect();
    let mut out = format!(
        "| class ({protocol}) | {} |\n|---|{}\n",
        names.iter().map(|n| format!("{n} (n={})", s[*n].0)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(names.len())
    );
    let labels: Vec<String> = protocol
        .classes()
        .iter()
        .map(|&c| CLASS_NAMES[c as usize].to_string())
        .chain(["**mIoU**".to_string()])
        .collect();
    for (i, label) in labels.iter().enumerate() {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                let cell = cell(&s, n, i);
                if is_best(&s, n, i) {
                    format!("**{cell}**")
                } else {
                    cell
                }
            })
            .collect();
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    out
}

/// "mean ± std" of row `row` for `group` (the mean alone for a single run).
pub fn cell(s: &Summary, group: &str, row: usize) -> String {
    let (n, cols) = &s[group];
    let (m, sd) = cols[row];
    if *n > 1 {
        format!("{m:.2} ± {sd:.2}")
    } else {
        format!("{m:.2}")
    }
}

/// Whether `group` has the best mean of row `row` and beats at least one other group (so
/// nothing is marked with a single group, or where all tie, e.g. a class nobody finds).
pub fn is_best(s: &Summary, group: &str, row: usize) -> bool {
    let (lo, hi) = s.values().map(|(_, c)| c[row].0).fold((f64::MAX, f64::MIN), |(a, b), m| (a.min(m), b.max(m)));
    hi - lo > 1e-9 && (s[group].1[row].0 - hi).abs() < 1e-9
}

/// The comparison for scripts: each run's scores, and each group's mean and std per class and
/// for the mIoU under `protocol` (`methods`) and the narrower protocols it implies (`narrower`).
pub fn json(runs: &[RunScore], protocol: Protocol) -> serde_json::Value {
    use serde_json::json;
    let ms = |(m, sd): (f64, f64)| json!({"mean": m, "std": sd});
    let groups = |p: Protocol| -> Vec<serde_json::Value> {
        summarize(runs, p)
            .into_iter()
            .map(|(g, (n, cols))| {
                let per_class: serde_json::Map<String, serde_json::Value> = p
                    .classes()
                    .iter()
                    .zip(&cols)
                    .map(|(&c, &v)| (CLASS_NAMES[c as usize].to_string(), ms(v)))
                    .collect();
                json!({"method": g, "n": n, "miou": ms(cols[cols.len() - 1]), "per_class": per_class})
            })
            .collect()
    };
    let per_run: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| json!({"run": r.run, "method": r.group, "seed": r.seed, "iter": r.iter, "miou": miou_under(&r.report, protocol), "per_class": r.report.per_class, "pixel_acc": r.report.pixel_acc}))
        .collect();
    let narrower: serde_json::Map<String, serde_json::Value> =
        protocol.reported().iter().filter(|&&q| q != protocol).map(|&q| (q.to_string(), json!(groups(q)))).collect();
    json!({"protocol": protocol, "runs": per_run, "methods": groups(protocol), "narrower": narrower})
}

/// What the adaptation tables say of one run: its final mIoU (the last evaluation, no selection
/// on val), its best, and its wall time per iteration.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub group: String,
    pub seed: u64,
    pub finished: bool,
    pub last: f64,
    pub best: f64,
    /// Mean seconds per training iteration, and of those waiting for data (from `metrics.jsonl`).
    pub seconds: Option<(f64, f64)>,
    /// What the run started from (`start`): a difference to the baseline is paired only between
    /// runs that started from the same model.
    pub start: String,
}

/// What a run started from, for pairing: the stage (its experiment, checkpoint and overrides;
/// the seed is paired apart) or the weights of `train.init_from`, or else the network's own
/// initialisation (`model.init`).
fn start(cfg: &Config) -> String {
    match &cfg.train.init_from {
        Some(crate::config::InitFrom::Stage(st)) => {
            format!("stage {} {} {:?}", st.experiment.display(), st.checkpoint, st.set)
        }
        Some(crate::config::InitFrom::Weights(p)) => format!("weights {}", p.display()),
        None => format!("model.init {:?}", cfg.model.init),
    }
}

impl Outcome {
    pub fn load(run: &Path) -> Result<Outcome> {
        let cfg = Config::load(&run.join("config.toml"), &[])?;
        let last = RunScore::read(run, &cfg, "latest")?;
        let best = RunScore::read(run, &cfg, "best")?;
        let finished = crate::engine::checkpoint::finished(run);
        let seconds = crate::engine::log::mean_seconds(&crate::engine::log::read_metrics(run)?);
        Ok(Outcome {
            group: last.group,
            seed: last.seed,
            finished,
            last: last.report.miou,
            best: best.report.miou,
            seconds,
            start: start(&cfg),
        })
    }
}

/// The outcomes of the runs under `dirs` (run directories or directories of runs) that have
/// evaluated, for `outcome_table`, renamed by `relabel` (`--label`).
pub fn outcomes(dirs: &[PathBuf], relabel: &[Relabel]) -> Result<Vec<Outcome>> {
    let runs: Vec<PathBuf> =
        crate::report::runs::run_dirs(dirs)?.into_iter().filter(|d| d.join("eval/latest.json").is_file()).collect();
    let mut out: Vec<Outcome> = runs.iter().map(|d| Outcome::load(d)).collect::<Result<_>>()?;
    for (d, o) in runs.iter().zip(out.iter_mut()) {
        if let Some(name) = relabelled(d, relabel) {
            o.group = name;
        }
    }
    one_run_per_seed(runs.into_iter().zip(&out).map(|(d, o)| (d, o.group.clone(), o.seed)))?;
    Ok(out)
}

/// "mean ± std" of a few values (the value alone for one).
fn mean_pm(v: &[f64]) -> String {
    match v.len() {
        0 => "–".into(),
        1 => format!("{:.2}", v[0]),
        _ => {
            let (m, sd) = mean_std(v);
            format!("{m:.2} ± {sd:.2}")
        }
    }
}

/// The adaptation table: per setting its seeds, final and best mIoU (mean ± std, each seed's
/// final / best), with a `baseline` the final mIoU's difference to the baseline run of the same
/// seed as mean ± std — paired, so only where both started from the same model ("–" for a
/// setting that started elsewhere, as the oracle or the stage itself) — and seconds per
/// iteration (of which waiting for data). Unfinished runs are marked `*`.
pub fn outcome_table(runs: &[Outcome], baseline: Option<&[Outcome]>) -> String {
    let mut groups: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for r in runs {
        groups.entry(&r.group).or_default().push(r);
    }
    let base_name = baseline.and_then(|b| b.first()).map(|b| b.group.clone());
    let mut out = String::from("| setting | seeds | final mIoU | best mIoU | per seed: final / best |");
    let mut rule = String::from("|---|---|---|---|---|");
    if let Some(b) = &base_name {
        out.push_str(&format!(" final − {b} (paired) |"));
        rule.push_str("---|");
    }
    out.push_str(" s / iteration (data) |\n");
    out.push_str(&rule);
    out.push_str("---|\n");
    for (g, mut rs) in groups {
        rs.sort_by_key(|r| r.seed);
        let last: Vec<f64> = rs.iter().map(|r| r.last).collect();
        let best: Vec<f64> = rs.iter().map(|r| r.best).collect();
        let seeds: Vec<String> =
            rs.iter().map(|r| format!("{:.1} / {:.1}{}", r.last, r.best, if r.finished { "" } else { "*" })).collect();
        out.push_str(&format!(
            "| {g} | {} | {} | {} | {} |",
            rs.len(),
            mean_pm(&last),
            mean_pm(&best),
            seeds.join(", ")
        ));
        if let Some(base) = baseline {
            let gains: Vec<f64> = rs
                .iter()
                .filter_map(|r| base.iter().find(|b| b.seed == r.seed && b.start == r.start).map(|b| r.last - b.last))
                .collect();
            out.push_str(&format!(" {} |", if base_name.as_deref() == Some(g) { "–".into() } else { mean_pm(&gains) }));
        }
        let times: Vec<(f64, f64)> = rs.iter().filter_map(|r| r.seconds).collect();
        let time = if times.is_empty() {
            "–".into()
        } else {
            let n = times.len() as f64;
            format!(
                "{:.3} ({:.3})",
                times.iter().map(|t| t.0).sum::<f64>() / n,
                times.iter().map(|t| t.1).sum::<f64>() / n
            )
        };
        out.push_str(&format!(" {time} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(group: &str, seed: u64, road: f64) -> RunScore {
        let per_class =
            CLASS_NAMES.iter().map(|n| (n.to_string(), Some(if *n == "road" { road } else { 0.0 }))).collect();
        let report = EvalReport { protocol: Protocol::P19, miou: road / 19.0, per_class, pixel_acc: 50.0, pixels: 10 };
        RunScore { run: PathBuf::from(format!("{group}/seed{seed}")), group: group.into(), seed, iter: 100, report }
    }

    #[test]
    fn the_best_group_is_marked_but_not_ties_or_a_lone_group() {
        let runs = [score("a", 1, 80.0), score("a", 2, 90.0), score("b", 1, 70.0)];
        let s = summarize(&runs, Protocol::P19);
        assert!(is_best(&s, "a", 0) && !is_best(&s, "b", 0));
        // sidewalk: 0 everywhere, nobody is best
        assert!(!is_best(&s, "a", 1) && !is_best(&s, "b", 1));
        assert_eq!(cell(&s, "a", 0), "85.00 ± 7.07");
        assert!(markdown(&runs, Protocol::P19).contains("| road | **85.00 ± 7.07** | 70.00 |"));
        let lone = summarize(&runs[..2], Protocol::P19);
        assert!(!is_best(&lone, "a", 0));
    }

    #[test]
    fn json_has_runs_and_method_means_under_the_protocol_and_narrower_ones() {
        let mut runs = vec![score("a", 1, 80.0), score("a", 2, 90.0)];
        runs[0].report.protocol = Protocol::P16;
        let v = json(&runs, Protocol::P16);
        assert_eq!(v["protocol"], 16);
        assert_eq!(v["runs"].as_array().unwrap().len(), 2);
        let a = &v["methods"][0];
        assert_eq!((a["method"].as_str(), a["n"].as_u64()), (Some("a"), Some(2)));
        assert_eq!(a["per_class"]["road"]["mean"], 85.0);
        assert!(a["per_class"].get("terrain").is_none(), "terrain is not a 16-protocol class");
        assert_eq!(v["narrower"]["13"][0]["per_class"].as_object().unwrap().len(), 13);
    }

    #[test]
    fn two_runs_with_one_name_and_one_seed_are_an_error_naming_both() {
        let run = |dir: &str, group: &str, seed| (PathBuf::from(dir), group.to_string(), seed);
        let ok = [run("a/seed1", "pit", 1), run("a/seed2", "pit", 2), run("b/seed1", "so_cont", 1)];
        one_run_per_seed(ok).unwrap();
        let e = one_run_per_seed([run("a/seed1", "pit", 1), run("b/seed1", "pit", 1)]).unwrap_err().to_string();
        assert!(e.contains("a/seed1") && e.contains("b/seed1") && e.contains("seed 1 of `pit`"), "{e}");
    }

    fn outcome(group: &str, seed: u64, last: f64) -> Outcome {
        Outcome {
            group: group.into(),
            seed,
            finished: seed != 3,
            last,
            best: last + 1.0,
            seconds: Some((0.5, 0.1)),
            start: format!("stage seed{seed}"),
        }
    }

    /// The paired difference is taken seed by seed (not the difference of the means), and a run
    /// still going is marked.
    #[test]
    fn the_outcome_table_pairs_seeds_with_the_baseline() {
        let base = [outcome("so_cont", 1, 10.0), outcome("so_cont", 2, 20.0)];
        let runs = [outcome("apoda", 2, 23.0), outcome("apoda", 1, 12.0), outcome("apoda", 3, 50.0)];
        let t = outcome_table(&runs, Some(&base));
        assert!(t.contains("final − so_cont (paired)"), "{t}");
        // seeds 1 and 2 pair up: gains 2 and 3; seed 3 has no baseline run
        assert!(t.contains("| apoda | 3 | 28.33 ± 19.55 | 29.33 ± 19.55 | 12.0 / 13.0, 23.0 / 24.0, 50.0 / 51.0* | 2.50 ± 0.71 | 0.500 (0.100) |"), "{t}");
        // a setting that started from another model (the oracle, from ImageNet) is not paired
        let oracle = [Outcome { start: "model.init imagenet".into(), ..outcome("oracle", 1, 30.0) }];
        let t = outcome_table(&oracle, Some(&base));
        assert!(t.contains("| oracle | 1 | 30.00 | 31.00 | 30.0 / 31.0 | – | 0.500 (0.100) |"), "{t}");
    }
}
