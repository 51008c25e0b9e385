//! Line charts as inline SVG, for the HTML report.
//!
//! Hand-written rather than `plotters`: the report needs only line charts with axes, ticks, a
//! log option and a legend. plotters would bring a font stack and a dozen crates for that, and
//! its SVG output is no better; about 150 lines of SVG text keep the crate lean, the page
//! self-contained (no fonts, no scripts) and the text in the charts selectable and crisp at any
//! zoom.
use std::fmt::Write;

/// Distinguishable colours (matplotlib's tab10), cycled by index.
pub const COLOURS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

pub fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    Line,
    /// Thin and translucent, left out of the legend (raw values behind a smoothed line).
    Faint,
    /// A line with a dot (and a tooltip) at every point: for sparse curves such as evaluations.
    Markers,
    /// Dashed line with dots: a second cycle through the colours.
    DashedMarkers,
}

#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_y: bool,
    /// Start the y axis here (e.g. 0 for mIoU) instead of at the data's minimum.
    pub y_from: Option<f64>,
    pub width: f64,
    pub height: f64,
}

const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
const LEGEND_ROW: f64 = 18.0;

/// Tick positions covering [lo, hi] with a 1-2-5 step, about `n` of them.
fn ticks(lo: f64, hi: f64, n: usize) -> (f64, Vec<f64>) {
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = mag
        * match raw / mag {
            r if r < 1.5 => 1.0,
            r if r < 3.0 => 2.0,
            r if r < 7.0 => 5.0,
            _ => 10.0,
        };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (step, (first..=last).map(|k| k as f64 * step).collect())
}

/// A tick label: 12k for large round numbers, else as many decimals as the step needs.
fn label(v: f64, step: f64) -> String {
    if v.abs() >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        return format!("{}k", v / 1000.0);
    }
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

/// Escape text for SVG/HTML content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG of `series` (non-finite points, and non-positive ones on a log axis, are skipped).
/// Returns None when no series has a point to draw.
pub fn line_chart(c: &Chart, series: &[Series]) -> Option<String> {
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!c.log_y || y > 0.0);
    let series: Vec<Series> = series
        .iter()
        .map(|s| Series { points: s.points.iter().copied().filter(keep).collect(), ..s.clone() })
        .filter(|s| !s.points.is_empty())
        .collect();
    let all = || series.iter().flat_map(|s| s.points.iter());
    all().next()?;
    let fy = |y: f64| if c.log_y { y.log10() } else { y };
    let (mut x0, mut x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(fy(p.1)), b.max(fy(p.1))));
    x0 = x0.min(0.0);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if let Some(f) = c.y_from {
        y0 = y0.min(fy(f));
    }
    if y1 - y0 < 1e-12 {
        let pad = if c.log_y { 0.5 } else { y0.abs().max(1.0) * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let (ystep, yt) = if c.log_y {
        (y0, y1) = (y0.floor(), y1.ceil());
        (1.0, (y0 as i64..=y1 as i64).map(|k| k as f64).collect::<Vec<_>>())
    } else {
        let (s, _) = ticks(y0, y1, 5);
        (y0, y1) = ((y0 / s).floor() * s, (y1 / s).ceil() * s);
        ticks(y0, y1, 5)
    };
    let (mut xstep, mut xt) = ticks(x0, x1, 6);
    if xstep < 1.0 {
        // iterations are whole numbers
        (xstep, xt) = (1.0, (x0.ceil() as i64..=x1.floor() as i64).map(|k| k as f64).collect());
    }

    // legend: rows of equal-width items under the plot
    let legend: Vec<&Series> = series.iter().filter(|s| s.style != Style::Faint).collect();
    let item_w = legend.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64 * 6.4 + 30.0;
    let per_row = ((c.width - LEFT) / item_w).floor().max(1.0) as usize;
    let rows = legend.len().div_ceil(per_row);
    let height = c.height + rows as f64 * LEGEND_ROW + if rows > 0 { 8.0 } else { 0.0 };
    let (pw, ph) = (c.width - LEFT - RIGHT, c.height - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (fy(y) - y0) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="11">"#,
        w = c.width
    );
    let _ = write!(s, r##"<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{}</text>"##, esc(c.title));
    let _ = write!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>"##);
    for &t in &yt {
        let y = TOP + ph - (t - y0) / (y1 - y0) * ph;
        let text = if c.log_y { label(10f64.powf(t), 10f64.powf(t)) } else { label(t, ystep) };
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            y + 4.0
        );
    }
    for &t in &xt {
        let x = px(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#e4e4e4"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 15.0,
            label(t, xstep)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        TOP + ph + 32.0,
        esc(c.x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}{}</text>"#,
        TOP + ph / 2.0,
        esc(c.y_label),
        if c.log_y { " (log)" } else { "" }
    );
    for se in &series {
        let pts: Vec<String> = se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let (width, extra) = match se.style {
            Style::Faint => (1.0, r#" stroke-opacity="0.25""#),
            Style::DashedMarkers => (1.8, r#" stroke-dasharray="5 3""#),
            _ => (1.8, ""),
        };
        let _ = write!(
            s,
            r#"<polyline class="series" fill="none" stroke="{}" stroke-width="{width}"{extra} points="{}"/>"#,
            se.colour,
            pts.join(" ")
        );
        if matches!(se.style, Style::Markers | Style::DashedMarkers) {
            for &(x, y) in &se.points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.8" fill="{}"><title>{}: {} at iteration {x}</title></circle>"#,
                    px(x),
                    py(y),
                    se.colour,
                    esc(&se.name),
                    label(y, 0.01)
                );
            }
        }
    }
    for (i, se) in legend.iter().enumerate() {
        let x = LEFT + (i % per_row) as f64 * item_w;
        // below the x axis label
        let y = c.height + 14.0 + (i / per_row) as f64 * LEGEND_ROW;
        let dash = if se.style == Style::DashedMarkers { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 20.0,
            y - 4.0,
            y - 4.0,
            se.colour,
            x + 25.0,
            y,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// Exponential moving average with a span that grows with the number of points.
pub fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let alpha = 2.0 / ((points.len() as f64 / 20.0).max(1.0) + 1.0);
    let mut acc: Option<f64> = None;
    points
        .iter()
        .map(|&(x, y)| {
            let v = acc.map_or(y, |a| a + alpha * (y - a));
            acc = Some(v);
            (x, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_y: bool) -> Chart<'static> {
        Chart {
            title: "t <1>",
            x_label: "iteration",
            y_label: "loss",
            log_y,
            y_from: None,
            width: 400.0,
            height: 240.0,
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (step, t) = ticks(0.0, 800.0, 6);
        assert_eq!(step, 100.0);
        assert_eq!(t.first(), Some(&0.0));
        assert_eq!(t.last(), Some(&800.0));
        let (step, _) = ticks(0.31, 1.64, 5);
        assert_eq!(step, 0.2);
        assert_eq!(label(0.4, 0.2), "0.4");
        assert_eq!(label(120_000.0, 20_000.0), "120k");
    }

    #[test]
    fn draws_one_polyline_per_series_and_escapes_names() {
        let s = vec![
            Series {
                name: "a&b".into(),
                colour: colour(0).into(),
                points: vec![(10.0, 1.5), (20.0, 1.0), (30.0, f64::NAN)],
                style: Style::Line,
            },
            Series {
                name: "raw".into(),
                colour: colour(0).into(),
                points: vec![(10.0, 1.6), (20.0, 0.9)],
                style: Style::Faint,
            },
        ];
        let svg = line_chart(&chart(false), &s).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&amp;b") && svg.contains("t &lt;1&gt;") && !svg.contains("NaN"));
        // the faint series stays out of the legend
        assert!(!svg.contains(">raw<"));
    }

    #[test]
    fn log_axis_skips_non_positive_values_and_empty_input_draws_nothing() {
        let s = vec![Series {
            name: "x".into(),
            colour: colour(1).into(),
            points: vec![(1.0, 0.0), (2.0, 0.01), (3.0, 10.0)],
            style: Style::Markers,
        }];
        let svg = line_chart(&chart(true), &s).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">0.01<") && svg.contains(">10<"), "{svg}");
        let empty = vec![Series {
            name: "x".into(),
            colour: colour(1).into(),
            points: vec![(1.0, f64::NAN)],
            style: Style::Line,
        }];
        assert!(line_chart(&chart(false), &empty).is_none());
        // a single point still gets a valid, finite chart
        let one = vec![Series {
            name: "x".into(),
            colour: colour(1).into(),
            points: vec![(2.0, 2.0)],
            style: Style::Markers,
        }];
        let svg = line_chart(&chart(false), &one).unwrap();
        assert!(!svg.contains("NaN"));
        // two iterations: ticks at whole iterations only
        assert!(svg.contains(">1</text>") && !svg.contains(">0.5</text>"), "{svg}");
    }

    #[test]
    fn smoothing_keeps_length_and_starts_at_the_first_value() {
        let p: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { 3.0 })).collect();
        let s = smooth(&p);
        assert_eq!(s.len(), 100);
        assert_eq!(s[0].1, 1.0);
        assert!((s[99].1 - 2.0).abs() < 0.5);
    }
}
