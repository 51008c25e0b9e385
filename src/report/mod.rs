//! Comparing runs: per-class tables grouped by method with mean ± std over seeds, and the
//! self-contained HTML report (curves, tables, prediction grids).
pub mod compare;
pub mod grid;
pub mod html;
pub mod runs;
pub mod svg;
pub mod table;

pub use html::{write_report, ReportOptions};
