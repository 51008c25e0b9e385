//! The two supervised baselines. Their only loss is the supervised segmentation loss, which
//! the engine computes for the streams a method asks for.
use super::method::{Method, Needs, Step, Terms};
use crate::error::Result;

/// Train on labelled source images, evaluate on the target.
pub struct SourceOnly;

impl Method for SourceOnly {
    fn name(&self) -> &'static str {
        "source_only"
    }
    fn needs(&self) -> Needs {
        Needs { source_ce: true, ..Default::default() }
    }
    fn losses(&mut self, _step: &mut Step) -> Result<Terms> {
        Ok(vec![])
    }
}

/// Train on the labelled target training set (the upper bound).
pub struct Oracle;

impl Method for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }
    fn needs(&self) -> Needs {
        Needs { target_ce: true, ..Default::default() }
    }
    fn losses(&mut self, _step: &mut Step) -> Result<Terms> {
        Ok(vec![])
    }
}
