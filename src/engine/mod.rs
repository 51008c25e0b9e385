//! The training engine: one loop, checkpoints, logging, data-parallel replicas.
pub mod checkpoint;
pub mod lock;
pub mod log;
pub mod parallel;
pub mod stages;
pub mod step;
pub mod tensorboard;
pub mod trainer;

pub use trainer::{train, RunSummary, TrainOptions};
