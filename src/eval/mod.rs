//! Evaluation exactly as cityscapesscripts does it, and prediction export.
pub mod confusion;
pub mod predict;
pub mod runner;

pub use confusion::{Confusion, EvalReport};
