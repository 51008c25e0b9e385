//! Run logging: one JSON object per line in `metrics.jsonl`, the same scalars as TensorBoard
//! events, and the progress bar's message.
use super::tensorboard::EventWriter;
use crate::error::{IoContext, Result};
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct RunLog {
    path: PathBuf,
    jsonl: BufWriter<File>,
    tb: EventWriter,
}

impl RunLog {
    /// Open for a run that continues from iteration `from` (0: a fresh start). What an earlier
    /// process logged after `from` (it died after its last checkpoint) is cut: `metrics.jsonl`
    /// keeps the lines up to `from` (rewritten atomically), and the new TensorBoard file starts
    /// with a session restart at `from + 1`, which makes TensorBoard drop the older files' later
    /// points.
    pub fn open(run: &Path, from: u64) -> Result<Self> {
        let path = run.join("metrics.jsonl");
        if path.is_file() {
            let text = std::fs::read_to_string(&path).at(&path)?;
            let keep: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Value>(l).ok().and_then(|v| v["iter"].as_u64()).is_some_and(|i| i <= from)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            if keep.len() != text.len() {
                let tmp = run.join("metrics.jsonl.partial");
                std::fs::write(&tmp, keep).at(&tmp)?;
                std::fs::rename(&tmp, &path).at(&path)?;
            }
        }
        let f = OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
        let mut tb = EventWriter::create(run)?;
        if from > 0 {
            tb.restart(from + 1)?;
        }
        Ok(RunLog { path, jsonl: BufWriter::new(f), tb })
    }

    /// Log named scalars at an iteration (`kind` = "train" or "eval").
    pub fn scalars(&mut self, kind: &str, iter: u64, values: &[(String, f64)], extra: Option<Value>) -> Result<()> {
        let mut obj = Map::new();
        obj.insert("kind".into(), json!(kind));
        obj.insert("iter".into(), json!(iter));
        for (k, v) in values {
            obj.insert(k.clone(), if v.is_finite() { json!(v) } else { Value::Null });
            self.tb.scalar(&format!("{kind}/{k}"), iter, *v)?;
        }
        if let Some(Value::Object(m)) = extra {
            obj.extend(m);
        }
        writeln!(self.jsonl, "{}", Value::Object(obj)).at(&self.path)?;
        self.jsonl.flush().at(&self.path)?;
        self.tb.flush()
    }
}

/// Short text of running losses for the progress bar.
pub fn brief(values: &[(String, f64)]) -> String {
    values.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join("  ")
}

/// Mean seconds per iteration, and of them waiting for data, over a run's logged training rows
/// (`time_iter_s`, `time_data_s`); None before the first.
pub fn mean_seconds<'a>(rows: impl IntoIterator<Item = &'a Value>) -> Option<(f64, f64)> {
    let times: Vec<(f64, f64)> = rows
        .into_iter()
        .filter(|r| r["kind"] == "train")
        .filter_map(|r| Some((r["time_iter_s"].as_f64()?, r["time_data_s"].as_f64()?)))
        .collect();
    let n = times.len() as f64;
    (n > 0.0).then(|| (times.iter().map(|t| t.0).sum::<f64>() / n, times.iter().map(|t| t.1).sum::<f64>() / n))
}

/// Read `metrics.jsonl` back (for reports); unparsable lines are skipped.
pub fn read_metrics(run: &Path) -> Result<Vec<Value>> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).at(&path)?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process killed after its checkpoint at iteration 10 had logged up to 15 (and a torn
    /// line): the resumed run's log holds every iteration once (it held 11–15 twice before).
    #[test]
    fn a_resumed_log_is_cut_back_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = (1..=15).map(|i| format!("{{\"kind\":\"train\",\"iter\":{i},\"seg\":1.0}}\n")).collect();
        std::fs::write(dir.path().join("metrics.jsonl"), lines + "{\"kind\":\"tr").unwrap();
        let mut log = RunLog::open(dir.path(), 10).unwrap();
        log.scalars("train", 11, &[("seg".into(), 0.5)], None).unwrap();
        let iters: Vec<u64> = read_metrics(dir.path()).unwrap().iter().map(|v| v["iter"].as_u64().unwrap()).collect();
        assert_eq!(iters, (1..=11).collect::<Vec<_>>());
        // the new TensorBoard file opens with a session restart (SessionLog START) at 11
        let events: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("tfevents"))
            .collect();
        assert_eq!(events.len(), 1);
        let bytes = std::fs::read(&events[0]).unwrap();
        assert!(bytes.windows(5).any(|w| w == [0x10, 11, 0x3a, 0x02, 0x08]), "no restart at step 11");
        // a fresh start keeps nothing of an earlier attempt's lines
        drop(log);
        RunLog::open(dir.path(), 0).unwrap();
        assert!(read_metrics(dir.path()).unwrap().is_empty());
    }
}
