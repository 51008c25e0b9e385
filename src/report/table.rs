//! HTML tables of the report: per-class IoU by method (from `compare`) and the runs' status.
use super::compare::{cell, is_best, miou_under, summarize, RunScore};
use super::runs::RunData;
use super::svg::esc;
use crate::data::classes::{Protocol, CLASS_NAMES};
use std::fmt::Write;

/// One row per class and the mIoU last; one column per method (mean ± std over its seeds); the
/// best method of each row is marked `class="best"`.
pub fn class_table(runs: &[RunScore], protocol: Protocol) -> String {
    let s = summarize(runs, protocol);
    let mut h = String::from(r#"<table class="iou"><thead><tr><th>class</th>"#);
    for (g, (n, _)) in &s {
        let _ = write!(h, "<th>{}<br><small>n = {n}</small></th>", esc(g));
    }
    h.push_str("</tr></thead><tbody>");
    let labels = protocol.classes().iter().map(|&c| CLASS_NAMES[c as usize]).chain(["mIoU"]);
    for (i, label) in labels.enumerate() {
        let row_class = if label == "mIoU" { r#" class="miou""# } else { "" };
        let _ = write!(h, "<tr{row_class}><th>{}</th>", esc(label));
        for g in s.keys() {
            let best = if is_best(&s, g, i) { r#" class="best""# } else { "" };
            let _ = write!(h, "<td{best}>{}</td>", cell(&s, g, i));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    h
}

/// Every run: method, seed, how far it got, its final and best evaluations (or that it has
/// none), and its cost in seconds per iteration.
pub fn runs_table(runs: &[RunData], protocol: Protocol) -> String {
    let mut h = String::from(
        r#"<table class="runs"><thead><tr><th>run</th><th>method</th><th>seed</th><th>iterations</th><th>final mIoU</th><th>best mIoU</th><th>best pixel acc.</th><th>s / iteration (data)</th><th>directory</th></tr></thead><tbody>"#,
    );
    for r in runs {
        let done = match &r.progress {
            Some(p) => format!("{} / {}{}", p.iter, r.cfg.train.iters, if p.finished { " ✓" } else { "" }),
            None => format!("0 / {}", r.cfg.train.iters),
        };
        let (miou, acc) = match &r.best {
            Some(b) => (
                format!("{:.2} <small>@ {}</small>", miou_under(&b.report, protocol), b.iter),
                format!("{:.2}", b.report.pixel_acc),
            ),
            None => (r#"<span class="none">no evaluation yet</span>"#.to_string(), "–".to_string()),
        };
        let last = r.latest.as_ref().map_or("–".to_string(), |l| {
            format!("{:.2} <small>@ {}</small>", miou_under(&l.report, protocol), l.iter)
        });
        let time = r.seconds.map_or("–".to_string(), |(it, data)| format!("{it:.3} ({data:.3})"));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{done}</td><td>{last}</td><td>{miou}</td><td>{acc}</td><td>{time}</td><td><code>{}</code></td></tr>",
            esc(&r.label),
            esc(&r.method()),
            r.cfg.train.seed,
            esc(&r.dir.display().to_string())
        );
    }
    h.push_str("</tbody></table>");
    h
}
