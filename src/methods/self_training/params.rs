//! The self-training base's constants (`[method.selftrain]`, and T2S-DA's `base`).
use serde::{Deserialize, Serialize};

/// How target pixels of the mixed image are weighted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PseudoWeight {
    /// Every pixel, weighted by its image's share of confident pixels (DAFormer, DACS).
    #[default]
    Image,
    /// Only pixels at least `pseudo_threshold` confident, weight 1; the rest ignored (the
    /// FixMatch/CBST-style hard threshold): a weak teacher's uncertain pixels cannot spread.
    Pixel,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// EMA coefficient of the teacher (ramped as min(1 − 1/(it + 1), alpha)).
    pub alpha: f64,
    /// Pixels at least this confident count towards an image's pseudo-label weight.
    pub pseudo_threshold: f64,
    pub pseudo_weight: PseudoWeight,
    /// Weight of the mixed-image loss.
    pub lambda_mix: f64,
    /// Colour jitter strength (brightness, contrast, saturation) and its probability.
    pub jitter: f64,
    pub jitter_p: f64,
    /// Gaussian blur probability (σ drawn in [0.15, 1.15] pixels).
    pub blur_p: f64,
    /// Iterations of source-only training (the teacher follows) before target pseudo-labels are
    /// used: short schedules from ImageNet weights otherwise reinforce the first, poor labels.
    pub warmup: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 0.999,
            pseudo_threshold: 0.968,
            pseudo_weight: PseudoWeight::Image,
            lambda_mix: 1.0,
            jitter: 0.2,
            jitter_p: 0.8,
            blur_p: 0.5,
            warmup: 0,
        }
    }
}
