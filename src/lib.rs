//! segda: domain-adaptive semantic segmentation, synthetic → real, on burn.
pub mod alloc;
pub mod bench;
pub mod config;
pub mod data;
pub mod demo;
pub mod device;
pub mod engine;
pub mod error;
pub mod eval;
pub mod losses;
pub mod methods;
pub mod model;
pub mod pool;
pub mod report;
pub mod resize;
pub mod ui;

pub use error::{Error, Result};
