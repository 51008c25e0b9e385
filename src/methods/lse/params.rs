//! LSE's constants (`[method.lse]`): the rounds' schedule, the examples and the loss.
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Selection proportion of the first round.
    pub p_start: f64,
    /// Added to the proportion every round.
    pub p_step: f64,
    /// Last proportion (rounds stop beyond it: 0.10 … 0.40 = 7 rounds).
    pub p_max: f64,
    /// Per class, keep ceil(p · n_c / divisor) images (1 = the paper; the reference code uses 19).
    pub per_class_divisor: f64,
    /// Iterations per round = selected images × epochs × patches (the reference's 2 × 4).
    pub epochs_per_round: u64,
    pub patches_per_image: u64,
    /// Crop size as a fraction of the network input (the reference: 512×256 of 1024×512).
    pub crop_fraction: f64,
    /// Enlargement of the crop (×2 in the paper).
    pub upscale: u32,
    /// β of CE + β·focal on the target examples.
    pub focal_weight: f64,
    /// γ of the focal term.
    pub focal_gamma: f64,
    /// Weight of the target loss.
    pub lambda_target: f64,
    /// Classes never used for selection (SYNTHIA: terrain, truck, train = [9, 14, 16]).
    pub skip_classes: Vec<u8>,
    /// Restart the poly schedule at `train.lr` every round and decay it to 0 by the round's end,
    /// as the reference code does; false: one schedule over `train.max_iters`.
    pub lr_per_round: bool,
    /// Diagnostic: keep the selection and the thresholds but label the kept pixels with the
    /// held target labels (needs a target labelled at the image size), which separates what
    /// the pseudo-labels' errors do from what the rest of the method does.
    pub oracle_labels: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            p_start: 0.10,
            p_step: 0.05,
            p_max: 0.40,
            per_class_divisor: 1.0,
            epochs_per_round: 2,
            patches_per_image: 4,
            crop_fraction: 0.5,
            upscale: 2,
            focal_weight: 0.1,
            focal_gamma: 3.0,
            lambda_target: 1.0,
            skip_classes: vec![],
            lr_per_round: false,
            oracle_labels: false,
        }
    }
}
