//! `segda report`: one self-contained HTML page comparing runs — per-class IoU by method, loss
//! and mIoU curves, and predictions on target images. Everything is inline (SVG charts, PNGs as
//! `data:` URIs, CSS), so the page can be mailed or archived and opens without a network.
use super::compare::RunScore;
use super::grid::{self, GridRow};
use super::runs::{load_all, RunData};
use super::svg::{self, esc, Chart, Series, Style};
use super::table::{class_table, runs_table};
use crate::data::classes::Protocol;
use crate::error::{IoContext, Result};
use crate::ui;
use burn::prelude::Device;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct ReportOptions {
    /// Validation images per run in the grid (0: no grid, no network is loaded).
    pub images: usize,
    /// Where the grid's predictions run.
    pub device: Device,
    /// `--label DIR=NAME`: settings named by directory instead of by their config's `name`.
    pub relabel: Vec<super::runs::Relabel>,
}

/// A run's grid, or why it has none (shown on the page instead of failing the report).
pub type Grid = std::result::Result<Vec<GridRow>, String>;

/// Read the runs (directories, or parents of run directories), predict their grids, write `out`.
pub fn write_report(args: &[PathBuf], out: &Path, opts: &ReportOptions) -> Result<PathBuf> {
    let runs = load_all(args, &opts.relabel)?;
    let mut grids = Vec::new();
    if opts.images > 0 {
        for r in &runs {
            ui::note(&format!("report: predicting {} images with {}", opts.images, r.dir.display()));
            grids.push(grid::rows(&r.dir, &r.cfg, opts.images, &opts.device).map_err(|e| {
                ui::warn(&format!("report: no image grid for {}: {e}", r.dir.display()));
                e.to_string()
            }));
        }
    }
    let page = render(&runs, &grids);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    std::fs::write(out, page).at(out)?;
    Ok(out.to_path_buf())
}

/// The protocol the runs are compared under: the narrowest any of them is evaluated with
/// (19 ⊃ 16 ⊃ 13, so every run has scores for its classes).
pub fn protocol(runs: &[RunData]) -> Protocol {
    runs.iter().map(|r| r.cfg.eval.protocol).min_by_key(|p| p.count()).unwrap_or(Protocol::P19)
}

/// The page; `grids` is empty (no image section) or holds one entry per run.
pub fn render(runs: &[RunData], grids: &[Grid]) -> String {
    let p = protocol(runs);
    let methods: std::collections::BTreeSet<String> = runs.iter().map(|r| r.method()).collect();
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>segda report</title><style>{CSS}</style></head><body>");
    let _ = write!(
        h,
        "<h1>segda report</h1><p class=\"sub\">{} run{} · {} method{} · {}-class protocol · <a href=\"#iou-latest\">per-class IoU</a> · <a href=\"#curves\">curves</a>{}</p>",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        methods.len(),
        if methods.len() == 1 { "" } else { "s" },
        p,
        if grids.is_empty() { "" } else { " · <a href=\"#images\">images</a>" }
    );

    // the last evaluation first: the best one is selected on the validation set (optimistic)
    for (which, title) in [
        ("latest", "final checkpoint (no selection on val)"),
        ("best", "best checkpoint (selected on val: optimistic)"),
    ] {
        let scores: Vec<RunScore> =
            runs.iter().filter_map(|r| if which == "best" { r.best.clone() } else { r.latest.clone() }).collect();
        let _ = write!(h, "<h2 id=\"iou-{which}\">Per-class IoU (%), {title}, mean ± std over seeds</h2>");
        if scores.is_empty() {
            let _ = write!(h, r#"<p class="none">No evaluation yet: no run has <code>eval/{which}.json</code>.</p>"#);
            continue;
        }
        for &q in p.reported() {
            let _ = write!(h, "<h3>{q} classes</h3>{}", class_table(&scores, q));
        }
        if scores.len() < runs.len() {
            let _ = write!(
                h,
                r#"<p class="none">{} of {} runs have no evaluation yet and are left out of this table.</p>"#,
                runs.len() - scores.len(),
                runs.len()
            );
        }
    }
    let _ = write!(h, "<h3>Runs</h3>{}", runs_table(runs, p));

    h.push_str(r#"<h2 id="curves">Curves</h2>"#);
    h.push_str(&miou_chart(runs).unwrap_or_else(|| {
        r#"<p class="none">No evaluation yet: no mIoU logged in <code>metrics.jsonl</code>.</p>"#.into()
    }));
    h.push_str(r#"<div class="cards">"#);
    for r in runs {
        let chart = loss_chart(r)
            .unwrap_or_else(|| format!(r#"<p class="none">{}: no training logged yet.</p>"#, esc(&r.label)));
        let _ = write!(h, r#"<div class="card">{chart}</div>"#);
        if let Some(chart) = stats_chart(r) {
            let _ = write!(h, r#"<div class="card">{chart}</div>"#);
        }
    }
    h.push_str("</div>");

    if !grids.is_empty() {
        images_section(&mut h, runs, grids, p);
    }
    let _ = write!(
        h,
        "<footer>segda {} · self-contained page: no scripts, no external resources</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// mIoU against iteration, one line per run, coloured by run (dashed after ten colours).
fn miou_chart(runs: &[RunData]) -> Option<String> {
    let series: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: r.label.clone(),
            colour: svg::colour(i).into(),
            points: r.miou.clone(),
            style: if i < svg::COLOURS.len() { Style::Markers } else { Style::DashedMarkers },
        })
        .collect();
    let c = Chart {
        title: "Target mIoU (validation)",
        x_label: "iteration",
        y_label: "mIoU (%)",
        log_y: false,
        y_from: Some(0.0),
        width: 1000.0,
        height: 320.0,
    };
    svg::line_chart(&c, &series)
}

/// A run's training losses: raw values faint, a moving average on top; log scale when the
/// terms span orders of magnitude (adversarial terms next to the segmentation loss).
fn loss_chart(r: &RunData) -> Option<String> {
    let mut series = Vec::new();
    for (i, (name, pts)) in r.losses.iter().enumerate() {
        let colour = svg::colour(i).to_string();
        if pts.len() > 20 {
            series.push(Series {
                name: format!("{name} raw"),
                colour: colour.clone(),
                points: pts.clone(),
                style: Style::Faint,
            });
            series.push(Series { name: name.clone(), colour, points: svg::smooth(pts), style: Style::Line });
        } else {
            series.push(Series { name: name.clone(), colour, points: pts.clone(), style: Style::Markers });
        }
    }
    run_chart(&format!("{} — training losses", r.label), "loss", &r.losses, &series)
}

/// A per-run card's chart of `curves`; log scale when they are positive and span orders of
/// magnitude (adversarial terms next to the segmentation loss, a learning rate next to a
/// coverage).
fn run_chart(
    title: &str,
    y_label: &str,
    curves: &std::collections::BTreeMap<String, Vec<(f64, f64)>>,
    series: &[Series],
) -> Option<String> {
    let vals = || curves.values().flatten().map(|p| p.1).filter(|v| v.is_finite());
    let (lo, hi) = vals().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let log_y = vals().all(|v| v > 0.0) && hi / lo > 30.0;
    let c = Chart { title, x_label: "iteration", y_label, log_y, y_from: None, width: 660.0, height: 260.0 };
    svg::line_chart(&c, series)
}

/// A run's other scalars (learning rates, the methods' statistics), on their own axes.
fn stats_chart(r: &RunData) -> Option<String> {
    let series: Vec<Series> = r
        .stats
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| Series {
            name: name.trim_start_matches("stat/").to_string(),
            colour: svg::colour(i).into(),
            points: pts.clone(),
            style: if pts.len() > 20 { Style::Line } else { Style::Markers },
        })
        .collect();
    run_chart(&format!("{} — other scalars", r.label), "value", &r.stats, &series)
}

fn images_section(h: &mut String, runs: &[RunData], grids: &[Grid], p: Protocol) {
    h.push_str(r#"<h2 id="images">Target images: image | ground truth | prediction (best checkpoint) | errors</h2><p class="legend">"#);
    for (name, [r, g, b]) in grid::legend(p) {
        let _ = write!(h, r#"<span><i style="background:rgb({r},{g},{b})"></i>{}</span>"#, esc(name));
    }
    let [wr, wg, wb] = grid::WRONG;
    let [ir, ig, ib] = grid::IGNORED;
    let _ = write!(
        h,
        r#"</p><p class="legend">error map: <span><i style="background:rgb({wr},{wg},{wb})"></i>wrong</span><span><i style="background:rgb({ir},{ig},{ib})"></i>ignored / unlabelled</span><span><i style="background:#ccc"></i>right</span></p>"#
    );
    for (r, g) in runs.iter().zip(grids) {
        let when = r.best.as_ref().map_or(String::new(), |b| format!(" · best checkpoint @ {}", b.iter));
        let _ = write!(h, "<h3>{} <small>{}{when}</small></h3>", esc(&r.label), esc(&r.method()));
        match g {
            Err(e) => {
                let _ = write!(h, r#"<p class="none">No images: {}</p>"#, esc(e));
            }
            Ok(rows) => {
                h.push_str(r#"<div class="grid"><b></b><b>image</b><b>ground truth</b><b>prediction</b><b>errors</b>"#);
                for row in rows {
                    let acc = row.pixel_acc.map_or(String::new(), |a| format!("<br>pixel acc. {a:.1}%"));
                    let img = |src: &Option<String>, alt: &str| {
                        src.as_ref().map_or(r#"<span class="none">no label</span>"#.to_string(), |s| {
                            format!(r#"<img src="{s}" alt="{alt}">"#)
                        })
                    };
                    let _ = write!(
                        h,
                        r#"<div class="name">{}{acc}</div><img src="{}" alt="image">{}"#,
                        esc(&row.name).replace('_', "_<wbr>"),
                        row.image,
                        img(&row.truth, "ground truth")
                    );
                    let _ =
                        write!(h, r#"<img src="{}" alt="prediction">{}"#, row.prediction, img(&row.error, "errors"));
                }
                h.push_str("</div>");
            }
        }
    }
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1360px;padding:0 16px;color:#222}
h1{margin:0 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}h3 small,.sub{color:#666;font-weight:normal}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}tbody th{text-align:left;font-weight:normal}table.runs th,table.runs td:first-child,table.runs td:nth-child(2),table.runs td:last-child{text-align:left}
td.best{background:#c9f0c9;font-weight:bold}tr.miou th,tr.miou td{border-top:2px solid #999;font-weight:bold}
.none{color:#a33;font-style:italic}code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e4e4e4;padding:6px}
.grid{display:grid;grid-template-columns:150px repeat(4,minmax(0,300px));gap:4px;align-items:center;font-size:12px}
.grid img{width:100%;image-rendering:pixelated;display:block}.grid .name{color:#444}
.legend{font-size:12px;display:flex;flex-wrap:wrap;gap:4px 14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle;border:1px solid #888}
footer{margin-top:40px;color:#999;font-size:12px}
"#;
