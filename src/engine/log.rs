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
    /// Open (appending, so a resumed run continues the same file).
    pub fn open(run: &Path) -> Result<Self> {
        let path = run.join("metrics.jsonl");
        let f = OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
        Ok(RunLog { path, jsonl: BufWriter::new(f), tb: EventWriter::create(run)? })
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

/// Read `metrics.jsonl` back (for reports); unparsable lines are skipped.
pub fn read_metrics(run: &Path) -> Result<Vec<Value>> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).at(&path)?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
