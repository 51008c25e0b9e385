//! A run's scores and the Markdown comparison table of several runs.
use crate::config::Config;
use crate::data::classes::{Protocol, CLASS_NAMES};
use crate::error::{Error, IoContext, Result};
use crate::eval::EvalReport;
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
        let cfg = Config::load(&run.join("config.toml"), &[])?;
        let p = run.join("eval").join(format!("{which}.json"));
        let text = std::fs::read_to_string(&p).at(&p)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::format(&p, e.to_string()))?;
        let report: EvalReport = serde_json::from_value(v.clone()).map_err(|e| Error::format(&p, e.to_string()))?;
        Ok(RunScore { run: run.to_path_buf(), group: cfg.label(), seed: cfg.train.seed, iter: v["iter"].as_u64().unwrap_or(0), report })
    }
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
                let vals: Vec<f64> = rs.iter().map(|r| r.report.per_class.get(CLASS_NAMES[c as usize]).copied().flatten().unwrap_or(0.0)).collect();
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
    let v: Vec<f64> = p.classes().iter().filter_map(|&c| r.per_class.get(CLASS_NAMES[c as usize]).copied().flatten()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Markdown: one row per class (best group in bold), the mIoU last; columns are groups.
pub fn markdown(runs: &[RunScore], protocol: Protocol) -> String {
    let s = summarize(runs, protocol);
    let names: Vec<&String> = s.keys().collect();
    let mut out = format!("| class ({protocol}) | {} |\n|---|{}\n", names.iter().map(|n| format!("{n} (n={})", s[*n].0)).collect::<Vec<_>>().join(" | "), "---|".repeat(names.len()));
    let labels: Vec<String> = protocol.classes().iter().map(|&c| CLASS_NAMES[c as usize].to_string()).chain(["**mIoU**".to_string()]).collect();
    for (i, label) in labels.iter().enumerate() {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                let cell = cell(&s, n, i);
                if is_best(&s, n, i) { format!("**{cell}**") } else { cell }
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
    if *n > 1 { format!("{m:.2} ± {sd:.2}") } else { format!("{m:.2}") }
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
                let per_class: serde_json::Map<String, serde_json::Value> = p.classes().iter().zip(&cols).map(|(&c, &v)| (CLASS_NAMES[c as usize].to_string(), ms(v))).collect();
                json!({"method": g, "n": n, "miou": ms(cols[cols.len() - 1]), "per_class": per_class})
            })
            .collect()
    };
    let per_run: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| json!({"run": r.run, "method": r.group, "seed": r.seed, "iter": r.iter, "miou": miou_under(&r.report, protocol), "per_class": r.report.per_class, "pixel_acc": r.report.pixel_acc}))
        .collect();
    let narrower: serde_json::Map<String, serde_json::Value> = protocol.reported().iter().filter(|&&q| q != protocol).map(|&q| (q.to_string(), json!(groups(q)))).collect();
    json!({"protocol": protocol, "runs": per_run, "methods": groups(protocol), "narrower": narrower})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(group: &str, seed: u64, road: f64) -> RunScore {
        let per_class = CLASS_NAMES.iter().map(|n| (n.to_string(), Some(if *n == "road" { road } else { 0.0 }))).collect();
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
}
