//! A labelled stream a method trains on besides the engine's source and target streams (ASS's
//! labelled target images, LSE's scale-invariant examples): its loader, where it stands (saved
//! with the method's state, so that a resumed run draws the same batches) and its batches as
//! tensors on the training device.
use crate::config::Config;
use crate::data::loader::{Loader, LoaderSpec};
use crate::data::transform::{Augment, Normalize};
use crate::data::Dataset;
use crate::error::{Error, Result};
use burn::prelude::*;
use std::sync::Arc;

pub struct ExtraStream {
    pub normalize: Normalize,
    pub batch: usize,
    /// The run's seed (`train.seed`); a stream shuffles with a seed derived from it.
    pub seed: u64,
    /// Weight of the auxiliary level's loss (`train.seg_aux_weight`).
    pub aux_weight: f64,
    device: Device,
    loader: Option<Loader>,
    /// Batches drawn so far: where a reopened stream continues.
    pub position: u64,
}

impl ExtraStream {
    pub fn new(cfg: &Config, device: &Device) -> Self {
        ExtraStream {
            normalize: cfg.model.normalize(),
            batch: cfg.train.batch,
            seed: cfg.train.seed,
            aux_weight: cfg.train.seg_aux_weight,
            device: device.clone(),
            loader: None,
            position: 0,
        }
    }

    /// Stream `ds`, shuffled with `seed`, from batch `position` on.
    pub fn open(&mut self, ds: Arc<Dataset>, augment: Augment, seed: u64, position: u64) {
        let spec = LoaderSpec::train(self.batch, augment, self.normalize, true, seed);
        self.loader = Some(Loader::new(ds, spec, position));
        self.position = position;
    }

    pub fn is_open(&self) -> bool {
        self.loader.is_some()
    }

    pub fn close(&mut self) {
        self.loader = None;
    }

    /// The next batch's images and labels on the training device; `what` names the stream in
    /// errors.
    pub fn next(&mut self, what: &str) -> Result<(Tensor<4>, Tensor<3, Int>)> {
        let loader = self.loader.as_mut().ok_or_else(|| Error::Other(format!("{what}: the stream is not open")))?;
        let b = loader.next_batch().ok_or_else(|| Error::Other(format!("{what}: the stream ended")))??;
        self.position = loader.position();
        let labels = b.label_ids().ok_or_else(|| Error::Other(format!("{what}: a batch without labels")))?;
        let y = Tensor::<3, Int>::from_data(TensorData::new(labels, [b.n, b.h, b.w]), &self.device);
        let x = Tensor::<4>::from_data(TensorData::new(b.images, [b.n, 3, b.h, b.w]), &self.device);
        Ok((x, y))
    }
}
