//! Comparing runs: per-class tables grouped by method with mean ± std over seeds.
pub mod compare;
