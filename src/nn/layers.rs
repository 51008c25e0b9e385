//! Small building blocks shared by the backbones.
use crate::kernels::{
    self,
    activation::{self as act_ext, Piecewise},
};
use burn::module::{Module, ParamGroup};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// A k×k convolution from `cin` to `cout` channels with PyTorch's defaults (Kaiming-uniform
/// init, a bias, stride 1) and "same" padding, dilation·(k − 1)/2 on every side, as every
/// network here pads: `conv(64, 128, 3).stride(2).no_bias().init(device)`.
pub fn conv(cin: usize, cout: usize, k: usize) -> ConvSpec {
    ConvSpec { cin, cout, k, stride: 1, dilation: 1, groups: 1, bias: true }
}

/// A convolution being described (see [`conv`]).
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    groups: usize,
    bias: bool,
}

impl ConvSpec {
    pub fn stride(self, stride: usize) -> Self {
        ConvSpec { stride, ..self }
    }
    /// Dilation d (the padding grows with it: d·(k − 1)/2).
    pub fn dilation(self, dilation: usize) -> Self {
        ConvSpec { dilation, ..self }
    }
    pub fn groups(self, groups: usize) -> Self {
        ConvSpec { groups, ..self }
    }
    pub fn no_bias(self) -> Self {
        ConvSpec { bias: false, ..self }
    }
    pub fn init(self, device: &Device) -> Conv2d {
        let pad = self.dilation * (self.k - 1) / 2;
        Conv2dConfig::new([self.cin, self.cout], [self.k, self.k])
            .with_stride([self.stride, self.stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_dilation([self.dilation, self.dilation])
            .with_groups(self.groups)
            .with_bias(self.bias)
            .init(device)
    }
}

/// A 3×3 (or k×k) convolution initialised N(0, std), as DeepLab's classifiers are.
pub fn conv_normal(cin: usize, cout: usize, k: usize, dilation: usize, std: f64, device: &Device) -> Conv2d {
    let pad = dilation * (k - 1) / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_dilation([dilation, dilation])
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

/// BatchNorm with PyTorch's eps and momentum.
pub fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(1e-5).with_momentum(0.1).init(device)
}

#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    pub fn new(conv: Conv2d, device: &Device) -> Self {
        let c = conv.weight.shape().dims::<4>()[0];
        ConvBn { conv, bn: bn(c, device) }
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn(&self.conv, &self.bn, x)
    }
}

/// `bn(conv(x))`. When the BatchNorm uses its running statistics (frozen, or at inference) it
/// is an affine map per channel, folded into the convolution: conv(x, W·s) + (b·s + t) with
/// s = γ/√(var + ε), t = β − mean·s. Four full-size element-wise passes (and their backward)
/// become weight-sized ones; gradients still reach W (and γ, β where they are trained).
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let Some(options) = conv_options(conv) else { return bn.forward(conv.forward(x)) };
    if x.device().is_autodiff() && bn.training.is_enabled() {
        return bn.forward(conv.forward(x));
    }
    let device = x.device();
    let var = bn.running_var.value().to_device(&device);
    let mean = bn.running_mean.value().to_device(&device);
    let scale = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
    let mut shift = bn.beta.val() - mean * scale.clone();
    if let Some(b) = &conv.bias {
        shift = shift + b.val() * scale.clone();
    }
    let c = scale.dims()[0];
    let weight = conv.weight.val() * scale.reshape([c, 1, 1, 1]);
    kernels::conv::conv2d(x, weight, shift, options)
}

/// `conv.forward(x)`, through `conv_ext`'s faster paths where they apply.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match (conv_options(conv), &conv.bias) {
        (Some(options), Some(bias)) => kernels::conv::conv2d(x, conv.weight.val(), bias.val(), options),
        _ => conv.forward(x),
    }
}

/// The functional options of a convolution with explicit (or no) padding.
fn conv_options(conv: &Conv2d) -> Option<ConvOptions<2>> {
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => return None,
    };
    Some(ConvOptions::new_with_padding(conv.stride, pad, conv.dilation, conv.groups))
}

pub fn relu(x: Tensor<4>) -> Tensor<4> {
    if kernels::extension_applies(&x) {
        return act_ext::apply(x, Piecewise { slope: 0.0, cap: f32::INFINITY });
    }
    burn::tensor::activation::relu(x)
}

/// relu(x + r): a residual block's output (one pass on the CPU).
pub fn relu_residual(x: Tensor<4>, r: Tensor<4>) -> Tensor<4> {
    if kernels::extension_applies(&x) && kernels::extension_applies(&r) && x.dims() == r.dims() {
        return act_ext::apply_residual(x, r, Piecewise { slope: 0.0, cap: f32::INFINITY });
    }
    burn::tensor::activation::relu(x + r)
}

/// min(max(x, 0), 6). On the CPU one pass each way (`act_ext`); elsewhere ReLU first and a
/// one-sided clamp (burn's ReLU is fused, each side of a clamp a comparison and a mask fill).
pub fn relu6(x: Tensor<4>) -> Tensor<4> {
    if kernels::extension_applies(&x) {
        return act_ext::apply(x, Piecewise { slope: 0.0, cap: 6.0 });
    }
    burn::tensor::activation::relu(x).clamp_max(6.0)
}

/// LeakyReLU (the discriminators'); on the CPU one pass each way (`act_ext`).
pub fn leaky_relu(x: Tensor<4>, slope: f32) -> Tensor<4> {
    if kernels::extension_applies(&x) {
        return act_ext::apply(x, Piecewise { slope, cap: f32::INFINITY });
    }
    burn::tensor::activation::leaky_relu(x, slope as f64)
}

/// Every BatchNorm of a network (fields named `bn`, `bn1`, … by convention in this crate).
pub fn bn_group() -> ParamGroup {
    ParamGroup::from_regex(r"(^|\.)bn\d*\.").expect("valid regex")
}

/// Initialise every lazily-created parameter now. burn draws parameters on first use; a
/// `no_grad()` copy of a module whose parameters were never drawn would share (and alter) the
/// original's pending initialisation.
pub fn materialize<M: Module>(m: M) -> M {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    m.visit(&mut Touch);
    m
}
