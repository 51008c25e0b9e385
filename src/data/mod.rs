//! Datasets in their real on-disk layouts, transforms, the loader and the synthetic benchmark.
pub mod cityscapes;
pub mod classes;
pub mod dataset;
pub mod folder;
pub mod gta5;
pub mod io;
pub mod layout;
pub mod loader;
pub mod synth;
pub mod synthia;
pub mod transform;
pub mod validate;

pub use dataset::{Dataset, DatasetKind, Sample};
pub use layout::Split;
