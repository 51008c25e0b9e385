//! The training engine: one loop, optimisers, checkpoints, logging.
pub mod checkpoint;
pub mod log;
pub mod optim;
pub mod parallel;
mod sgd;
pub mod step;
pub mod tensorboard;
pub mod trainer;

pub use trainer::{train, RunSummary, TrainOptions};
