//! segda: domain-adaptive semantic segmentation, synthetic → real, on burn.
pub mod bench;
pub mod config;
pub mod data;
pub mod demo;
pub mod engine;
pub mod error;
pub mod eval;
pub mod kernels;
pub mod methods;
pub mod model;
pub mod nn;
pub mod optim;
pub mod report;
pub mod runtime;
pub mod ui;

pub use error::{Error, Result};
