//! Datasets in their real on-disk layouts, transforms, the loader and the synthetic benchmark.
pub mod classes;
pub mod dataset;
pub mod io;
pub mod layout;
pub mod cityscapes;
pub mod folder;
pub mod gta5;
pub mod synthia;
pub mod loader;
pub mod synth;
pub mod transform;
pub mod validate;

pub use dataset::{Dataset, DatasetKind, Sample};
pub use layout::Split;
