//! Small building blocks shared by the backbones.
use burn::module::{Module, ParamGroup};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use super::act_ext::{self, Piecewise};

/// Convolution with PyTorch's defaults: symmetric padding, Kaiming-uniform init.
#[allow(clippy::too_many_arguments)]
pub fn conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, dilation: usize, groups: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_dilation([dilation, dilation])
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
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
    super::conv_ext::conv2d(x, weight, shift, options)
}

/// `conv.forward(x)`, through `conv_ext`'s faster paths where they apply.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match (conv_options(conv), &conv.bias) {
        (Some(options), Some(bias)) => super::conv_ext::conv2d(x, conv.weight.val(), bias.val(), options),
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
    if super::extension_applies(&x) {
        return act_ext::apply(x, Piecewise { slope: 0.0, cap: f32::INFINITY });
    }
    burn::tensor::activation::relu(x)
}

/// relu(x + r): a residual block's output (one pass on the CPU).
pub fn relu_residual(x: Tensor<4>, r: Tensor<4>) -> Tensor<4> {
    if super::extension_applies(&x) && super::extension_applies(&r) && x.dims() == r.dims() {
        return act_ext::apply_residual(x, r, Piecewise { slope: 0.0, cap: f32::INFINITY });
    }
    burn::tensor::activation::relu(x + r)
}

/// min(max(x, 0), 6). On the CPU one pass each way (`act_ext`); elsewhere ReLU first and a
/// one-sided clamp (burn's ReLU is fused, each side of a clamp a comparison and a mask fill).
pub fn relu6(x: Tensor<4>) -> Tensor<4> {
    if super::extension_applies(&x) {
        return act_ext::apply(x, Piecewise { slope: 0.0, cap: 6.0 });
    }
    burn::tensor::activation::relu(x).clamp_max(6.0)
}

/// LeakyReLU (the discriminators'); on the CPU one pass each way (`act_ext`).
pub fn leaky_relu(x: Tensor<4>, slope: f32) -> Tensor<4> {
    if super::extension_applies(&x) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// `ours` gives the output and gradients (input, weight, bias) of burn's conv2d with `opts`,
    /// on random input, weights and bias and a fixed non-uniform upstream gradient.
    fn matches_conv2d(ours: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>, x: [usize; 4], w: [usize; 4], opts: ConvOptions<2>) {
        let dev = Device::flex().autodiff();
        let x0 = Tensor::<4>::random(x, Distribution::Normal(0.0, 1.0), &dev);
        let w0 = Tensor::<4>::random(w, Distribution::Normal(0.0, 1.0), &dev);
        let b0 = Tensor::<1>::random([w[0]], Distribution::Normal(0.0, 1.0), &dev);
        let run = |f: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>| {
            let (x, w, b) = (x0.clone().require_grad(), w0.clone().require_grad(), b0.clone().require_grad());
            let y = f(x.clone(), w.clone(), b.clone());
            let dims = y.dims();
            let up: Vec<f32> = (0..dims.iter().product::<usize>()).map(|k| ((k * 7919) % 13) as f32 / 6.5 - 1.0).collect();
            let g = (y.clone() * Tensor::<4>::from_data(TensorData::new(up, dims), &dev)).sum().backward();
            (y.into_data(), [x.grad(&g).unwrap().into_data(), w.grad(&g).unwrap().into_data(), b.grad(&g).unwrap().into_data()])
        };
        let (y_ref, g_ref) = run(&|x, w, b| burn::tensor::module::conv2d(x, w, Some(b), opts.clone()));
        let (y, g) = run(&ours);
        y.assert_approx_eq::<f32>(&y_ref, Tolerance::rel_abs(1e-4, 1e-4));
        // and without autodiff (inference routes some layers differently)
        let plain = Device::flex();
        let (xi, wi, bi) = (Tensor::from_data(x0.to_data(), &plain), Tensor::from_data(w0.to_data(), &plain), Tensor::from_data(b0.to_data(), &plain));
        ours(xi, wi, bi).into_data().assert_approx_eq::<f32>(&y_ref, Tolerance::rel_abs(1e-4, 1e-4));
        for (a, b) in g.iter().zip(&g_ref) {
            a.assert_approx_eq::<f32>(b, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }

    /// The depthwise extension, for the strides, dilations and paddings MobileNetV2 uses, with a
    /// batch of 2 (rows wider than its 16-lane dot product included).
    #[test]
    fn depthwise_matches_burns_convolution() {
        for (stride, dilation, pad, h, w) in [(1, 1, 1, 9, 13), (2, 1, 1, 10, 15), (1, 2, 2, 8, 11), (1, 4, 4, 12, 7), (2, 1, 0, 7, 9), (1, 1, 1, 5, 41), (2, 1, 1, 4, 40), (3, 1, 1, 11, 17)] {
            let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 5);
            matches_conv2d(|x, w, b| super::super::conv_ext::conv2d(x, w, b, opts.clone()), [2, 5, h, w], [5, 1, 3, 3], opts.clone());
        }
    }

    /// The dense forward and weight gradient (banded im2col + GEMM) and input gradient (stride 1:
    /// a convolution with the flipped kernel; strided or padded beyond the kernel's reach: GEMM
    /// and col2im), for the discriminators' 4×4 stride-2 layers, dilated 3×3 ones (an ASPP
    /// dilation wider than the image included), unpadded and even kernels, strided 1×1 and 3×3
    /// (strides 2 and 3, odd widths), with a band height that splits the rows; more output
    /// channels than `conv_direct` takes.
    #[test]
    fn dense_matches_burns_convolution() {
        for (k, stride, dilation, pad, h, w) in [(4, 2, 1, 1, 9, 14), (3, 1, 2, 2, 8, 11), (3, 2, 1, 1, 7, 40), (3, 1, 6, 6, 5, 9), (4, 1, 1, 1, 9, 14), (3, 1, 1, 0, 7, 9), (3, 1, 1, 3, 6, 8), (1, 2, 1, 0, 7, 9), (3, 2, 2, 2, 9, 17), (1, 1, 1, 1, 5, 6), (3, 3, 1, 1, 10, 16)] {
            let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 1);
            matches_conv2d(|x, w, b| super::super::conv_ext::conv2d(x, w, b, opts.clone()), [2, 3, h, w], [36, 3, k, k], opts.clone());
        }
    }

    /// The few-output-channel direct forward (`conv_direct`): output channels not a multiple of
    /// its register block, rows of more than one column chunk, dilations up to wider than the
    /// image, even and 1-wide kernels, and no padding; gradients are the dense ones.
    #[test]
    fn direct_forward_matches_burns_convolution() {
        for (co, kh, kw, dilation, pad, h, w) in [(7, 3, 3, 1, 1, 6, 70), (19, 3, 3, 6, 6, 5, 9), (12, 3, 3, 2, 0, 9, 150), (5, 4, 4, 1, 1, 7, 20), (3, 3, 1, 1, 1, 8, 33), (1, 1, 1, 1, 0, 4, 17)] {
            let opts = ConvOptions::new([1, 1], [pad, if kw == 1 { 0 } else { pad }], [dilation, dilation], 1);
            matches_conv2d(|x, w, b| super::super::conv_ext::conv2d(x, w, b, opts.clone()), [2, 6, h, w], [co, 6, kh, kw], opts.clone());
        }
    }

    /// The inference activations agree with burn's, NaN included, on a shared tensor too.
    #[test]
    fn inference_activations_match_burns() {
        let dev = Device::flex();
        let mut v: Vec<f32> = (0..3 * 5 * 7 * 11).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.0).collect();
        v[17] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(v, [3, 5, 7, 11]), &dev);
        let want_relu = burn::tensor::activation::relu(x.clone()).into_data();
        let want_relu6 = burn::tensor::activation::relu(x.clone()).clamp_max(6.0).into_data();
        assert!(!x.device().is_autodiff());
        // x is shared here (the clone), so the kernel must not write into it
        let kept = x.clone();
        for (got, want) in [(relu(x.clone()), want_relu), (relu6(x), want_relu6)] {
            let (got, want) = (got.into_data().try_to_vec::<f32>().unwrap(), want.try_to_vec::<f32>().unwrap());
            assert!(got.iter().zip(&want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        }
        assert!(kept.into_data().try_to_vec::<f32>().unwrap().iter().any(|v| *v < 0.0));
    }

    /// Under autodiff: the same values and gradients as burn's ReLU, ReLU-then-clamp and
    /// LeakyReLU (values on both sides of each bound, none on it); the input, shared with the
    /// graph, is left as it was.
    #[test]
    fn activations_and_their_gradients_match_burns() {
        let dev = Device::flex().autodiff();
        let v: Vec<f32> = (0..3 * 5 * 7 * 11).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.05).collect();
        let x0 = Tensor::<4>::from_data(TensorData::new(v.clone(), [3, 5, 7, 11]), &dev);
        let up: Vec<f32> = (0..v.len()).map(|k| ((k * 31) % 17) as f32 - 8.0).collect();
        let up = Tensor::<4>::from_data(TensorData::new(up, [3, 5, 7, 11]), &dev);
        let reference: [fn(Tensor<4>) -> Tensor<4>; 3] = [burn::tensor::activation::relu, |x| burn::tensor::activation::relu(x).clamp_max(6.0), |x| burn::tensor::activation::leaky_relu(x, 0.2)];
        let ours: [fn(Tensor<4>) -> Tensor<4>; 3] = [relu, relu6, |x| leaky_relu(x, 0.2)];
        for (ours, theirs) in ours.into_iter().zip(reference) {
            let run = |f: fn(Tensor<4>) -> Tensor<4>| {
                let x = x0.clone().require_grad();
                let y = f(x.clone());
                let g = (y.clone() * up.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data(), x.into_data())
            };
            let ((y, gx, x), (want_y, want_gx, _)) = (run(ours), run(theirs));
            y.assert_eq(&want_y, true);
            gx.assert_eq(&want_gx, true);
            x.assert_eq(&TensorData::new(v.clone(), [3, 5, 7, 11]), true);
        }
    }

    /// relu(x + r) fused: burn's values and both gradients, with r a graph input of its own and
    /// with r computed from x (the identity path, where the two gradients meet); both inputs are
    /// left as they were.
    #[test]
    fn residual_activation_and_its_gradients_match_burns() {
        let dev = Device::flex().autodiff();
        let shape = [2, 3, 7, 11];
        let n = 2 * 3 * 7 * 11;
        let v: Vec<f32> = (0..n).map(|k| ((k * 7919) % 101) as f32 / 6.0 - 8.05).collect();
        let u: Vec<f32> = (0..n).map(|k| ((k * 104729) % 97) as f32 / 5.0 - 9.1).collect();
        let up = Tensor::<4>::from_data(TensorData::new((0..n).map(|k| ((k * 31) % 17) as f32 - 8.0).collect::<Vec<_>>(), shape), &dev);
        for from_x in [false, true] {
            let run = |f: fn(Tensor<4>, Tensor<4>) -> Tensor<4>| {
                let x = Tensor::<4>::from_data(TensorData::new(v.clone(), shape), &dev).require_grad();
                let r0 = Tensor::<4>::from_data(TensorData::new(u.clone(), shape), &dev).require_grad();
                let r = if from_x { x.clone().mul_scalar(0.5) + r0.clone() } else { r0.clone() };
                let y = f(x.clone() * 1.0, r);
                let g = (y.clone() * up.clone()).sum().backward();
                (y.into_data(), x.grad(&g).unwrap().into_data(), r0.grad(&g).unwrap().into_data(), x.into_data(), r0.into_data())
            };
            let (ours, theirs) = (run(relu_residual), run(|x, r| burn::tensor::activation::relu(x + r)));
            ours.0.assert_eq(&theirs.0, true);
            ours.1.assert_eq(&theirs.1, true);
            ours.2.assert_eq(&theirs.2, true);
            ours.3.assert_eq(&TensorData::new(v.clone(), shape), true);
            ours.4.assert_eq(&TensorData::new(u.clone(), shape), true);
        }
    }

    #[test]
    fn pointwise_matches_burns_convolution() {
        // more output channels than conv_direct takes, and few (which conv_direct would take)
        for co in [36, 4] {
            let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
            matches_conv2d(|x, w, b| super::super::conv_ext::conv2d(x, w, b, opts.clone()), [2, 6, 5, 7], [co, 6, 1, 1], opts.clone());
        }
    }
}
