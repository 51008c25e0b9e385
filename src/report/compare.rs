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
    /// Runs with the same group are seeds of one setting (the methods, joined with '+').
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
        Ok(RunScore { run: run.to_path_buf(), group: cfg.methods.join("+"), seed: cfg.train.seed, iter: v["iter"].as_u64().unwrap_or(0), report })
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Mean and sample standard deviation per group for each class and the mIoU, under `protocol`.
pub fn summarize(runs: &[RunScore], protocol: Protocol) -> BTreeMap<String, (usize, Vec<(f64, f64)>)> {
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
        let best = names.iter().map(|n| s[*n].1[i].0).fold(f64::MIN, f64::max);
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                let (m, sd) = s[*n].1[i];
                let cell = if s[*n].0 > 1 { format!("{m:.2} ± {sd:.2}") } else { format!("{m:.2}") };
                if names.len() > 1 && (m - best).abs() < 1e-9 { format!("**{cell}**") } else { cell }
            })
            .collect();
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    out
}
