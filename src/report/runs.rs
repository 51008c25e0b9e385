//! What the report reads from a run directory: config, logged curves, stored evaluation, progress.
use super::compare::RunScore;
use crate::config::Config;
use crate::engine::checkpoint::{self, Progress};
use crate::engine::log::read_metrics;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub struct RunData {
    pub dir: PathBuf,
    /// Short name: the path below the runs' common parent.
    pub label: String,
    pub cfg: Config,
    /// Loss term → (iteration, value), one value per iteration (a resumed run's latest).
    pub losses: BTreeMap<String, Vec<(f64, f64)>>,
    /// The other logged scalars (learning rates, the methods' `stat/…`), likewise.
    pub stats: BTreeMap<String, Vec<(f64, f64)>>,
    /// Mean seconds per iteration and of them waiting for data, over the logged windows.
    pub seconds: Option<(f64, f64)>,
    /// (iteration, mIoU) of every logged evaluation.
    pub miou: Vec<(f64, f64)>,
    /// `eval/best.json`, if the run has evaluated.
    pub best: Option<RunScore>,
    /// `eval/latest.json`: the last evaluation, with no selection on the validation set.
    pub latest: Option<RunScore>,
    /// `checkpoints/last/progress.json`, if the run has saved a checkpoint.
    pub progress: Option<Progress>,
}

impl RunData {
    pub fn load(dir: &Path, label: String) -> Result<RunData> {
        let cfg = Config::load(&dir.join("config.toml"), &[])?;
        let mut losses: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
        let mut stats: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
        let mut miou: BTreeMap<u64, f64> = BTreeMap::new();
        // a run that has not logged yet has no metrics file: empty curves, not an error
        let lines = if dir.join("metrics.jsonl").is_file() { read_metrics(dir)? } else { Vec::new() };
        for v in &lines {
            let Some(it) = v["iter"].as_u64() else { continue };
            match v["kind"].as_str() {
                Some("train") => {
                    for (k, x) in v.as_object().into_iter().flatten() {
                        let Some(x) = x.as_f64() else { continue };
                        match scalar_kind(k) {
                            Scalar::Loss => losses.entry(k.clone()).or_default().insert(it, x),
                            Scalar::Stat => stats.entry(k.clone()).or_default().insert(it, x),
                            Scalar::Other => None,
                        };
                    }
                }
                Some("eval") => {
                    if let Some(m) = v["miou"].as_f64() {
                        miou.insert(it, m);
                    }
                }
                _ => {}
            }
        }
        let score = |which: &str| -> Result<Option<RunScore>> {
            Ok(if dir.join(format!("eval/{which}.json")).is_file() {
                Some(RunScore::read(dir, &cfg, which)?)
            } else {
                None
            })
        };
        let seconds = crate::engine::log::mean_seconds(&lines);
        let progress = checkpoint::find(dir, "last").map(|c| checkpoint::read_progress(&c)).transpose()?;
        let points = |m: BTreeMap<u64, f64>| m.into_iter().map(|(i, v)| (i as f64, v)).collect();
        let curves = |c: BTreeMap<String, BTreeMap<u64, f64>>| c.into_iter().map(|(k, m)| (k, points(m))).collect();
        let (best, latest) = (score("best")?, score("latest")?);
        Ok(RunData {
            dir: dir.to_path_buf(),
            label,
            cfg,
            losses: curves(losses),
            stats: curves(stats),
            seconds,
            miou: points(miou),
            best,
            latest,
            progress,
        })
    }

    /// The setting's label (the grouping `compare` uses).
    pub fn method(&self) -> String {
        self.cfg.label()
    }
}

enum Scalar {
    Loss,
    Stat,
    Other,
}

/// What a training row's key holds: a loss term, a scalar that is not a loss (learning rates and
/// the methods' `stat/…`, see `methods::method::stat`), or bookkeeping.
fn scalar_kind(key: &str) -> Scalar {
    if ["iter", "kind"].contains(&key) || key.starts_with("time_") {
        Scalar::Other
    } else if key.starts_with("lr") || key.starts_with("stat/") {
        Scalar::Stat
    } else {
        Scalar::Loss
    }
}

/// Resolve the command-line arguments to run directories: a directory with `config.toml` is a
/// run; one without it stands for its subdirectories that have one (a sweep's `seedK`).
pub fn run_dirs(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for a in args {
        if !a.is_dir() {
            return Err(Error::format(a, "not a directory (expected a run directory with config.toml)"));
        }
        if a.join("config.toml").is_file() {
            out.push(a.clone());
            continue;
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(a)
            .map_err(|e| Error::io(a, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.toml").is_file())
            .collect();
        if subs.is_empty() {
            return Err(Error::format(a, "not a run directory: no config.toml here or in its subdirectories"));
        }
        subs.sort();
        out.extend(subs);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// Labels: each path below the deepest directory all runs share (a lone run: its own name).
pub fn labels(dirs: &[PathBuf]) -> Vec<String> {
    let parts: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .filter(|c| !matches!(c, Component::CurDir))
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let shortest = parts.iter().map(|p| p.len()).min().unwrap_or(0);
    // keep at least the last component of every run
    let mut common = (0..shortest.saturating_sub(1)).take_while(|&i| parts.iter().all(|p| p[i] == parts[0][i])).count();
    if dirs.len() == 1 {
        common = parts[0].len().saturating_sub(1);
    }
    parts.iter().map(|p| p[common.min(p.len().saturating_sub(1))..].join("/")).collect()
}

/// `--label DIR=NAME`: the runs under DIR are the setting NAME in the tables, whatever their
/// config's `name` (which the tables group by otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct Relabel {
    pub dir: PathBuf,
    pub name: String,
}

impl std::str::FromStr for Relabel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Relabel, String> {
        match s.rsplit_once('=') {
            Some((dir, name)) if !dir.is_empty() && !name.trim().is_empty() => {
                Ok(Relabel { dir: PathBuf::from(dir), name: name.trim().to_string() })
            }
            _ => Err(format!("`{s}`: expected DIR=NAME, e.g. runs/adapt/pit_old=pit_before")),
        }
    }
}

/// A path's components without `.`, so that `./runs/a` and `runs/a` compare equal.
fn plain(p: &Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The setting name `relabel` gives the run in `dir`, if any (the deepest DIR that holds it).
pub fn relabelled(dir: &Path, relabel: &[Relabel]) -> Option<String> {
    relabel
        .iter()
        .filter(|r| plain(dir).starts_with(plain(&r.dir)))
        .max_by_key(|r| plain(&r.dir).components().count())
        .map(|r| r.name.clone())
}

/// Whether the label's directory holds one of the runs in `dirs`.
pub fn holds_a_run(r: &Relabel, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| plain(d).starts_with(plain(&r.dir)))
}

/// Every `--label` must name a directory that holds one of the runs: a typo is an error, not a
/// silently ignored label.
pub fn check_relabel(dirs: &[PathBuf], relabel: &[Relabel]) -> Result<()> {
    for r in relabel {
        if !holds_a_run(r, dirs) {
            return Err(Error::format(&r.dir, format!("--label {}: no run given lies in this directory", r.name)));
        }
    }
    Ok(())
}

/// Load every run named on the command line (errors name the offending path), renamed by
/// `relabel`.
pub fn load_all(args: &[PathBuf], relabel: &[Relabel]) -> Result<Vec<RunData>> {
    let dirs = run_dirs(args)?;
    if dirs.is_empty() {
        return Err(Error::Other("no run directories given".into()));
    }
    check_relabel(&dirs, relabel)?;
    let mut runs: Vec<RunData> =
        dirs.iter().zip(labels(&dirs)).map(|(d, l)| RunData::load(d, l)).collect::<Result<_>>()?;
    for r in &mut runs {
        if let Some(name) = relabelled(&r.dir, relabel) {
            r.cfg.name = Some(name);
        }
    }
    super::compare::one_run_per_seed(runs.iter().map(|r| (r.dir.clone(), r.method(), r.cfg.train.seed)))?;
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::{labels, relabelled, Relabel};
    use std::path::{Path, PathBuf};

    /// `DIR=NAME` parses (the last `=` splits, so a directory may hold one); the deepest
    /// directory that holds a run names it, with or without a leading `./`.
    #[test]
    fn a_label_names_the_runs_in_its_directory() {
        let r: Vec<Relabel> = ["runs/a=x", "./runs/a/b=y", "runs/c=d=z"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(r[2], Relabel { dir: PathBuf::from("runs/c=d"), name: "z".into() });
        assert_eq!(relabelled(Path::new("runs/a/seed1"), &r).as_deref(), Some("x"));
        assert_eq!(relabelled(Path::new("runs/a/b/seed1"), &r).as_deref(), Some("y"));
        assert_eq!(relabelled(Path::new("./runs/a/seed2"), &r).as_deref(), Some("x"));
        assert_eq!(relabelled(Path::new("runs/ab/seed1"), &r), None, "whole components only");
        for bad in ["runs/a", "=x", "runs/a="] {
            assert!(bad.parse::<Relabel>().unwrap_err().contains("DIR=NAME"), "{bad}");
        }
    }

    #[test]
    fn labels_drop_the_shared_parent() {
        let l = labels(&[PathBuf::from("runs/bench/so/seed1"), PathBuf::from("runs/bench/adv/seed1")]);
        assert_eq!(l, ["so/seed1", "adv/seed1"]);
        assert_eq!(labels(&[PathBuf::from("./demo/runs/source_only")]), ["source_only"]);
        // one run inside another's directory keeps a non-empty name
        assert_eq!(labels(&[PathBuf::from("a/b"), PathBuf::from("a/b/c")]), ["b", "b/c"]);
    }
}
