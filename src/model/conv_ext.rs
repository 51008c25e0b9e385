//! Convolution kernels that burn's CPU backend is slow at, as a burn backend extension
//! (`#[backend_extension]`, burn's mechanism for custom ops; no fork of burn).
//!
//! - **Depthwise** (groups = channels): burn computes a grouped convolution's weight gradient
//!   group by group, i.e. one convolution per channel whose "kernel" is the whole output-gradient
//!   plane and whose output is 3×3, which burn-flex runs nine outputs at a time (~10 % of a
//!   MobileNetV2 step). Here: the weight gradient as vectorised dot products, the input gradient
//!   as per-tap row updates, and the strided forward likewise; burn-flex's stride-1 forward is as
//!   fast and is kept.
//! - **Dense** (groups = 1): burn runs the weight gradient as a convolution over the swapped
//!   batch and channel axes, which at batch 1 is again a huge-kernel direct loop; its forward
//!   packs the whole weight again for every 512-position tile of a channels-last copy of the
//!   input. Here both are im2col in bands of output rows and one GEMM per band, the forward's
//!   written straight into the output planes (1.2–2.3× burn-flex's forward on the backbone and
//!   discriminator layers). The stride-1 input gradient is burn-flex's forward convolution with
//!   the flipped kernel (the same kernel) instead of burn's conv-transpose.
//! - **1×1, stride 1** (most of ResNet's and MobileNetV2's layers): a matrix product per image
//!   on the NCHW planes and both gradients plain GEMMs; no im2col, no col2im.
//! - **Few output channels** (the classifier, stride 1): forward and weight gradient through
//!   `conv_direct`'s kernels; the input gradient is the dense one (its column buffer is small).
//!
//! Routed only for Flex tensors (and autodiff over Flex); other devices (CUDA) keep burn's
//! convolution.
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    NodeId,
};
use burn::backend::ops::conv::calculate_conv_output_size;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;
use super::{conv_direct, f32s};
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait ConvExt: burn::backend::Backend {
    /// conv2d(x, weight, bias) with groups = 1 or groups = channels (depthwise).
    fn conv2d_ext(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self>;
    /// The input gradient of `conv2d_ext` given the output gradient.
    fn conv2d_ext_x_grad(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self>;
    /// The weight gradient of `conv2d_ext` given the output gradient.
    fn conv2d_ext_weight_grad(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self>;
}

impl ConvExt for Flex {
    fn conv2d_ext(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let wdims = weight.layout().shape().dims::<4>();
        let dense = options.groups == 1;
        let pointwise = dense && is_pointwise(&wdims, &options);
        let direct = dense && !pointwise && conv_direct::suits(wdims[0], options.stride);
        if !dense && options.stride == [1, 1] {
            return Flex::conv2d(x, weight, Some(bias), options);
        }
        let (x, w, b) = (x.to_contiguous(), weight.to_contiguous(), bias.to_contiguous());
        let [n, c, h, wd] = x.layout().shape().dims::<4>();
        let out = |len: usize, k: usize, d: usize| calculate_conv_output_size(k, options.stride[d], options.padding_begin()[d], options.dilation[d], len);
        let geo = Geometry::new([n, c, h, wd], [out(h, wdims[2], 0), out(wd, wdims[3], 1)], wdims, &options);
        let y = if direct {
            conv_direct::forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else if pointwise {
            pointwise_forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else if dense {
            dense_forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        } else {
            forward(f32s(&x), f32s(&w), f32s(&b), &geo)
        };
        FlexTensor::from_data(TensorData::new(y, [n, geo.co, geo.oh, geo.ow]))
    }
    fn conv2d_ext_x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if options.groups == 1 && is_pointwise(&weight.layout().shape().dims::<4>(), &options) {
            let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
            let geo = Geometry::new(x.layout().shape().dims::<4>(), g.layout().shape().dims::<4>()[2..].try_into().unwrap(), w.layout().shape().dims::<4>(), &options);
            return FlexTensor::from_data(TensorData::new(pointwise_x_grad(f32s(&w), f32s(&g), &geo), [geo.n, geo.c, geo.h, geo.w]));
        }
        if options.groups == 1 {
            return dense_x_grad(x, weight, grad, options);
        }
        let [_, _, h, wd] = x.layout().shape().dims::<4>();
        let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
        let [n, c, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new([n, c, h, wd], [oh, ow], w.layout().shape().dims::<4>(), &options);
        let gx = x_grad(f32s(&w), f32s(&g), &geo);
        FlexTensor::from_data(TensorData::new(gx, [n, c, h, wd]))
    }
    fn conv2d_ext_weight_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let (x, g) = (x.to_contiguous(), grad.to_contiguous());
        let wdims = weight.layout().shape().dims::<4>();
        let [_, _, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new(x.layout().shape().dims::<4>(), [oh, ow], wdims, &options);
        let pointwise = options.groups == 1 && is_pointwise(&wdims, &options);
        let direct = (options.groups == 1 && !pointwise && conv_direct::suits(geo.co, options.stride) && !options.is_asymmetric()).then(|| conv_direct::weight_grad(f32s(&x), f32s(&g), &geo)).flatten();
        let out = match direct {
            Some(dw) => dw,
            None if pointwise => pointwise_weight_grad(f32s(&x), f32s(&g), &geo),
            None if options.groups == 1 => dense_weight_grad(f32s(&x), f32s(&g), &geo),
            None => weight_grad(f32s(&x), f32s(&g), &geo),
        };
        FlexTensor::from_data(TensorData::new(out, wdims))
    }
}

/// Input gradient of a dense convolution. At stride 1 it is the forward convolution of the
/// output gradient with the flipped, channel-transposed kernel (padding d·(k−1) − p): im2col
/// over the *output* channels plus one GEMM into the input channels (`dense_forward`).
/// burn's own path (conv-transpose) is a GEMM whose inner dimension is the layer's output
/// channels, e.g. 19 for a classifier over 2048 channels, followed by a col2im pass over a
/// column buffer k·k times the input gradient's size.
fn dense_x_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let [_, _, kh, kw] = weight.layout().shape().dims::<4>();
    let reach = [options.dilation[0] * (kh - 1), options.dilation[1] * (kw - 1)];
    let pad = options.padding_begin();
    if options.is_asymmetric() {
        return Flex::conv2d_x_backward(x, weight, grad, options);
    }
    if options.stride != [1, 1] || pad[0] > reach[0] || pad[1] > reach[1] {
        let (w, g) = (weight.to_contiguous(), grad.to_contiguous());
        let [_, _, oh, ow] = g.layout().shape().dims::<4>();
        let geo = Geometry::new(x.layout().shape().dims::<4>(), [oh, ow], w.layout().shape().dims::<4>(), &options);
        let gx = dense_x_grad_col2im(f32s(&w), f32s(&g), &geo);
        return FlexTensor::from_data(TensorData::new(gx, [geo.n, geo.c, geo.h, geo.w]));
    }
    let co = weight.layout().shape()[0];
    let transposed = ConvOptions::new([1, 1], [reach[0] - pad[0], reach[1] - pad[1]], options.dilation, 1);
    let (g, w) = (grad.to_contiguous(), flip_transposed(&weight.to_contiguous()));
    let [n, c, h, wd] = x.layout().shape().dims::<4>();
    let geo = Geometry::new(g.layout().shape().dims::<4>(), [h, wd], [c, co, kh, kw], &transposed);
    let zero = vec![0.0; c];
    // also for the classifier's gradient (19 channels in, 2048 out): its column buffer is small
    // and the GEMM beat the direct kernel there (ResNet-101 train 2.65 -> 2.58 s, A/B)
    let gx = dense_forward(f32s(&g), &w, &zero, &geo);
    FlexTensor::from_data(TensorData::new(gx, [n, c, h, wd]))
}

/// W[co, ci, i, j] → W'[ci, co, kh−1−i, kw−1−j], over both threads (burn's swap_dims + flip +
/// to_contiguous walked a strided iterator on one thread: ~1.5 % of a ResNet-101 step).
fn flip_transposed(w: &FlexTensor) -> Vec<f32> {
    let [co, ci, kh, kw] = w.layout().shape().dims::<4>();
    let (ws, taps) = (f32s(w), kh * kw);
    let mut out = vec![0f32; ws.len()];
    out.par_chunks_mut(co * taps).enumerate().for_each(|(c, dst)| {
        for (o, d) in dst.chunks_exact_mut(taps).enumerate() {
            let src = &ws[(o * ci + c) * taps..][..taps];
            for (t, v) in d.iter_mut().enumerate() {
                *v = src[taps - 1 - t];
            }
        }
    });
    out
}

impl<B: Backend + ConvExt, C: CheckpointStrategy> ConvExt for Autodiff<B, C> {
    fn conv2d_ext(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvBackward;

        impl<B: Backend + ConvExt> Backward<B, 3> for ConvBackward {
            type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_w, node_b] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, w_state, b_state, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let w = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
                let b = checkpointer.retrieve_node_output::<FloatTensor<B>>(b_state);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::conv2d_ext_x_grad(x.clone(), w.clone(), grad.clone(), options.clone()));
                }
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, B::conv2d_ext_weight_grad(x.clone(), w, grad.clone(), options));
                }
                if let Some(node) = node_b {
                    grads.register::<B>(node.id, B::conv2d_bias_backward(x, b, grad));
                }
            }
        }

        match ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), prep.checkpoint(&bias), options.clone());
                prep.finish(state, B::conv2d_ext(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_ext(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options)),
        }
    }
    fn conv2d_ext_x_grad(_: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>, _: ConvOptions<2>) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
    fn conv2d_ext_weight_grad(_: FloatTensor<Self>, _: FloatTensor<Self>, _: FloatTensor<Self>, _: ConvOptions<2>) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}

/// conv2d(x, weight, bias, options), on the fastest path this crate has for it. On the CPU
/// backend, depthwise layers and dense ones (groups = 1) use the extension's kernels. Everything
/// else, and every other device, is burn's conv2d.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, options: ConvOptions<2>) -> Tensor<4> {
    let depthwise = options.groups == x.dims()[1] && weight.dims()[1] == 1 && options.groups > 1;
    let dense = options.groups == 1;
    if !super::extension_applies(&x) || options.is_asymmetric() || !(depthwise || dense) {
        return burn::tensor::module::conv2d(x, weight, Some(bias), options);
    }
    Tensor::from_dispatch(<Dispatch as ConvExt>::conv2d_ext(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), options))
}

/// A 1×1 convolution at stride 1 without padding: on the NCHW planes it is a matrix product
/// per image, Y[co, h·w] = W[co, ci] · X[ci, h·w], and both of its gradients are GEMMs as well,
/// with neither im2col nor col2im. (Through burn's matmul each of the three GEMMs' outputs cost a
/// zeroed allocation plus a copy into an aligned one, and the bias a pass of its own.)
fn is_pointwise(wdims: &[usize; 4], options: &ConvOptions<2>) -> bool {
    wdims[2..] == [1, 1] && options.stride == [1, 1] && options.padding_begin() == [0, 0] && !options.is_asymmetric()
}

/// `planes` planes of `l` values, plane i filled with bias[i mod len]: the output buffer a GEMM
/// then accumulates onto, written once (no clearing pass first).
fn bias_planes(bias: &[f32], planes: usize, l: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(planes * l);
    y.spare_capacity_mut()[..planes * l].par_chunks_mut(l.max(1)).enumerate().for_each(|(i, plane)| {
        let b = bias[i % bias.len()];
        plane.iter_mut().for_each(|v| _ = v.write(b));
    });
    // SAFETY: every one of the planes·l values was written above
    unsafe { y.set_len(planes * l) };
    y
}

/// y[b] = bias + W · x[b], the bias written first and the GEMM accumulated onto it.
fn pointwise_forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let mut y = bias_planes(bs, geo.n * geo.co, l);
    for b in 0..geo.n {
        let dst = y[b * geo.co * l..].as_mut_ptr();
        gemm_into(geo.co, l, geo.c, dst, l, true, (ws.as_ptr(), 1, geo.c as isize), (xs[b * geo.c * l..].as_ptr(), 1, l as isize));
    }
    y
}

/// gx[b] = Wᵀ · g[b].
fn pointwise_x_grad(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let len = geo.n * geo.c * l;
    let mut gx: Vec<f32> = Vec::with_capacity(len);
    for b in 0..geo.n {
        // SAFETY: in bounds of the capacity; written, never read, by the GEMM (read_dst = false)
        let dst = unsafe { gx.as_mut_ptr().add(b * geo.c * l) };
        gemm_into(geo.c, l, geo.co, dst, l, false, (ws.as_ptr(), geo.c as isize, 1), (gs[b * geo.co * l..].as_ptr(), 1, l as isize));
    }
    // SAFETY: the n GEMMs wrote all n·c·l values
    unsafe { gx.set_len(len) };
    gx
}

/// dW = Σ_b g[b] · x[b]ᵀ.
fn pointwise_weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.h * geo.w;
    let len = geo.co * geo.c;
    if l == 0 || geo.n == 0 {
        return vec![0f32; len];
    }
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    for b in 0..geo.n {
        // the first GEMM writes every value (no clearing pass), the others accumulate
        gemm_into_by_columns(geo.co, geo.c, l, dw.as_mut_ptr(), geo.c, b > 0, (gs[b * geo.co * l..].as_ptr(), 1, l as isize), (xs[b * geo.c * l..].as_ptr(), l as isize, 1));
    }
    // SAFETY: the first GEMM wrote all co·c values
    unsafe { dw.set_len(len) };
    dw
}

/// Shapes of a convolution (NCHW; `c` input and `co` output channels; the padding is the
/// leading one, both sides for the kernels that take only symmetric padding).
pub(super) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// From the input's, the output's (spatial) and the weight's shapes.
    pub fn new([n, c, h, w]: [usize; 4], [oh, ow]: [usize; 2], [co, _, kh, kw]: [usize; 4], o: &ConvOptions<2>) -> Self {
        Geometry { n, c, h, w, co, oh, ow, kernel: [kh, kw], stride: o.stride, pad: o.padding_begin(), dilation: o.dilation }
    }

    /// Output rows per band of a column buffer with `k` rows: about 16 MiB of columns (a few
    /// rows in tests, so that the banding itself is checked), at least one row.
    fn band_rows(&self, k: usize) -> usize {
        let budget = if cfg!(test) { 64 } else { 1 << 22 };
        (budget / (k * self.ow).max(1)).clamp(1, self.oh.max(1))
    }

    /// The input row of output row `y` under kernel row `i`, if inside the image.
    fn in_row(&self, y: usize, i: usize) -> Option<usize> {
        let iy = (y * self.stride[0] + i * self.dilation[0]).checked_sub(self.pad[0])?;
        (iy < self.h).then_some(iy)
    }

    /// For kernel column `j`: the output columns lo..hi whose input column x·s + j·d − p lies in
    /// the row, and the input column of `lo`.
    fn cols(&self, j: usize) -> Option<(usize, usize, usize)> {
        let (off, pad, s) = (j * self.dilation[1], self.pad[1], self.stride[1]);
        let lo = pad.saturating_sub(off).div_ceil(s);
        let hi = (self.w + pad).saturating_sub(off).div_ceil(s).min(self.ow);
        (lo < hi).then(|| (lo, hi, lo * s + off - pad))
    }

    /// Every (output row y, input row, tap index, output columns lo..hi, input column of lo)
    /// where a kernel tap meets the image: the loop all three kernels share.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        let [kh, kw] = self.kernel;
        for y in 0..self.oh {
            for i in 0..kh {
                let Some(iy) = self.in_row(y, i) else { continue };
                for j in 0..kw {
                    if let Some((lo, hi, start)) = self.cols(j) {
                        f(y, iy, i * kw + j, lo, hi, start);
                    }
                }
            }
        }
    }
}

/// A plane with its columns split by phase modulo the column stride s (phase r holds columns
/// r, r + s, …), so that every strided row access becomes a contiguous slice. For s = 1 it is
/// the plane itself.
struct Phased<'a> {
    buf: std::borrow::Cow<'a, [f32]>,
    h: usize,
    wp: usize,
    s: usize,
}

/// Where column x of row y sits in a phased buffer (h rows, wp columns per phase, stride s).
fn phased_at(s: usize, h: usize, wp: usize, y: usize, x: usize) -> usize {
    ((x % s) * h + y) * wp + x / s
}

/// The inverse of the phase split: `plane` [h, w] from its phased layout `phased` (column
/// k·s + r of row y sits at slot k of phase r's row y).
fn unphase(phased: &[f32], plane: &mut [f32], h: usize, w: usize, s: usize) {
    let wp = w.div_ceil(s);
    if s == 2 {
        let (even, odd) = phased.split_at(h * wp);
        for ((row, e), o) in plane.chunks_exact_mut(w).zip(even.chunks_exact(wp)).zip(odd.chunks_exact(wp)) {
            for ((pair, e), o) in row.chunks_exact_mut(2).zip(e).zip(o) {
                pair[0] = *e;
                pair[1] = *o;
            }
            if w % 2 == 1 {
                row[w - 1] = e[wp - 1];
            }
        }
        return;
    }
    for (r, phase) in phased.chunks_exact(h * wp).enumerate() {
        for (row, src) in plane.chunks_exact_mut(w).zip(phase.chunks_exact(wp)) {
            row[r.min(w)..].iter_mut().step_by(s).zip(src).for_each(|(d, v)| *d = *v);
        }
    }
}

impl<'a> Phased<'a> {
    fn new(plane: &'a [f32], h: usize, w: usize, s: usize) -> Self {
        if s == 1 {
            return Phased { buf: plane.into(), h, wp: w, s };
        }
        let wp = w.div_ceil(s);
        let mut buf = vec![0f32; s * h * wp];
        if s == 2 {
            // the common case, as one deinterleaving pass that vectorises
            let (even, odd) = buf.split_at_mut(h * wp);
            for ((row, e), o) in plane.chunks_exact(w).zip(even.chunks_exact_mut(wp)).zip(odd.chunks_exact_mut(wp)) {
                for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
                if w % 2 == 1 {
                    e[wp - 1] = row[w - 1];
                }
            }
        } else {
            for (r, phase) in buf.chunks_exact_mut(h * wp).enumerate() {
                for (row, dst) in plane.chunks_exact(w).zip(phase.chunks_exact_mut(wp)) {
                    dst.iter_mut().zip(row[r.min(w)..].iter().step_by(s)).for_each(|(d, v)| *d = *v);
                }
            }
        }
        Phased { buf: buf.into(), h, wp, s }
    }

    /// The input columns start, start + s, … (len of them) of row y.
    fn run(&self, y: usize, start: usize, len: usize) -> &[f32] {
        &self.buf[phased_at(self.s, self.h, self.wp, y, start)..][..len]
    }
}

/// y[n, c] = b[c] + Σ_ij w[c, i, j] · shift_ij(x[n, c]): row by row, one axpy per tap. Used for
/// strided layers; burn-flex's own kernel is as fast at stride 1.
fn forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let mut out = vec![0f32; geo.n * geo.c * geo.oh * geo.ow];
    out.par_chunks_mut(geo.oh * geo.ow).enumerate().for_each(|(nc, plane)| {
        let ch = nc % geo.c;
        let x = Phased::new(&xs[nc * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1]);
        let taps = &ws[ch * kh * kw..][..kh * kw];
        plane.fill(bs[ch]);
        geo.for_each_tap(|y, iy, k, lo, hi, start| {
            let row = &mut plane[y * geo.ow..][lo..hi];
            row.iter_mut().zip(x.run(iy, start, hi - lo)).for_each(|(o, v)| *o += taps[k] * v);
        });
    });
    out
}

/// dx[n, c] = Σ_ij w[c, i, j] · (g[n, c] scattered back through tap ij), accumulated by phase.
fn x_grad(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let s = geo.stride[1];
    let wp = geo.w.div_ceil(s);
    let mut out = vec![0f32; geo.n * geo.c * geo.h * geo.w];
    out.par_chunks_mut(geo.h * geo.w).enumerate().for_each(|(nc, plane)| {
        let ch = nc % geo.c;
        let g = &gs[nc * geo.oh * geo.ow..][..geo.oh * geo.ow];
        let taps = &ws[ch * kh * kw..][..kh * kw];
        let mut phased = if s == 1 { Vec::new() } else { vec![0f32; s * geo.h * wp] };
        let acc: &mut [f32] = if s == 1 { plane } else { &mut phased };
        geo.for_each_tap(|y, iy, k, lo, hi, start| {
            let run = &mut acc[phased_at(s, geo.h, wp, iy, start)..][..hi - lo];
            run.iter_mut().zip(&g[y * geo.ow..][lo..hi]).for_each(|(o, v)| *o += taps[k] * v);
        });
        if s > 1 {
            unphase(&phased, plane, geo.h, geo.w, s);
        }
    });
    out
}

/// dW[c, i, j] = Σ_{n, y, x} g[n, c, y, x] · x[n, c, y·s + i·d − p, x·s + j·d − p] (zero outside).
fn weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let mut out = vec![0f32; geo.c * kh * kw];
    out.par_chunks_mut(kh * kw).enumerate().for_each(|(ch, acc)| {
        let mut sums = vec![0f64; kh * kw];
        for b in 0..geo.n {
            let x = Phased::new(&xs[(b * geo.c + ch) * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1]);
            let g = &gs[(b * geo.c + ch) * geo.oh * geo.ow..][..geo.oh * geo.ow];
            geo.for_each_tap(|y, iy, k, lo, hi, start| {
                sums[k] += dot(&g[y * geo.ow..][lo..hi], x.run(iy, start, hi - lo)) as f64;
            });
        }
        acc.iter_mut().zip(&sums).for_each(|(a, s)| *a = *s as f32);
    });
    out
}

/// The im2col of a dense convolution's input, a band of output rows at a time (at most ~16 MiB):
/// calls `f(b, y0, lc, cols)` per band of image b, with cols[(ci, i, j), lc] over the band's
/// lc = rows · ow output positions (zero where a tap falls outside the image).
fn for_each_band(xs: &[f32], geo: &Geometry, mut f: impl FnMut(usize, usize, usize, &[f32])) {
    let taps = geo.kernel[0] * geo.kernel[1];
    let k = geo.c * taps;
    let band = geo.band_rows(k);
    let [kh, kw] = geo.kernel;
    let mut cols = Scratch::take(k * band * geo.ow);
    for b in 0..geo.n {
        let planes: Vec<Phased> = (0..geo.c).into_par_iter().map(|ci| Phased::new(&xs[(b * geo.c + ci) * geo.h * geo.w..][..geo.h * geo.w], geo.h, geo.w, geo.stride[1])).collect();
        for y0 in (0..geo.oh).step_by(band) {
            let rows = band.min(geo.oh - y0);
            let lc = rows * geo.ow;
            cols[..k * lc].par_chunks_mut(taps * lc).zip(&planes).for_each(|(chunk, x)| {
                // every element written once: the tap's run of the input row, zeros around it
                for y in y0..y0 + rows {
                    for i in 0..kh {
                        let iy = geo.in_row(y, i);
                        for j in 0..kw {
                            let dst = &mut chunk[(i * kw + j) * lc + (y - y0) * geo.ow..][..geo.ow];
                            match (iy, geo.cols(j)) {
                                (Some(iy), Some((lo, hi, start))) => {
                                    dst[..lo].fill(0.0);
                                    dst[lo..hi].copy_from_slice(x.run(iy, start, hi - lo));
                                    dst[hi..].fill(0.0);
                                }
                                _ => dst.fill(0.0),
                            }
                        }
                    }
                }
            });
            f(b, y0, lc, &cols[..k * lc]);
        }
    }
}

thread_local!(static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) });

/// A buffer of floats kept per thread between calls, holding whatever the last user left in
/// it: for column buffers that are written whole before they are read (a fresh one per call
/// was a memset and page faults each time). Handed back to the thread when dropped.
struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    fn take(len: usize) -> Scratch {
        let mut buf = SCRATCH.take();
        if buf.len() < len {
            buf = vec![0f32; len];
        }
        Scratch { buf, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        SCRATCH.set(std::mem::take(&mut self.buf));
    }
}

/// dst[m × n] (row stride `dst_rs`) = (read ? dst : 0) + A[m × k] · B[k × n], with A and B given
/// by (pointer, column stride, row stride); gemm's own threads.
#[allow(clippy::too_many_arguments)]
fn gemm_into(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, read: bool, a: (*const f32, isize, isize), b: (*const f32, isize, isize)) {
    // SAFETY: the callers pass pointers into live slices that hold the strided extents
    unsafe {
        gemm::gemm(m, n, k, dst, 1, dst_rs as isize, read, a.0, a.1, a.2, b.0, b.1, b.2, 1.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
    }
}

/// `gemm_into` for the weight gradients, whose B operand (the inputs or their columns, with the
/// positions, i.e. the inner dimension, contiguous) gemm must transpose into packed panels: it
/// does that on the calling thread before its threads start (`do_prepack_lhs`), 3 % of an
/// adversarial ResNet-101 step with the other core idle. Split into one column range of the
/// result per thread instead, each range packs its own part of B.
#[allow(clippy::too_many_arguments)]
fn gemm_into_by_columns(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, read: bool, a: (*const f32, isize, isize), b: (*const f32, isize, isize)) {
    let threads = rayon::current_num_threads().min(n.div_ceil(64)).max(1);
    let per = n.div_ceil(threads);
    // raw pointers are not Send: carried across as addresses
    let (dst, ap, bp, (a_cs, a_rs), (b_cs, b_rs)) = (dst as usize, a.0 as usize, b.0 as usize, (a.1, a.2), (b.1, b.2));
    (0..threads).into_par_iter().for_each(|t| {
        let (j0, j1) = (t * per, ((t + 1) * per).min(n));
        if j0 >= j1 {
            return;
        }
        let d = (dst as *mut f32).wrapping_add(j0);
        let bj = (bp as *const f32).wrapping_offset(j0 as isize * b_cs);
        // SAFETY: column range [j0, j1) of the caller's extents; the ranges are disjoint
        unsafe {
            gemm::gemm(m, j1 - j0, k, d, 1, dst_rs as isize, read, ap as *const f32, a_cs, a_rs, bj, b_cs, b_rs, 1.0, 1.0, false, false, false, gemm::Parallelism::None);
        }
    });
}

/// y[b, co, band] = bias[co] + W[co, (ci, i, j)] · cols[(ci, i, j), band]: one GEMM per band,
/// written straight into the output planes. burn-flex's forward builds 512-position tiles of a
/// channels-last copy, packs the whole weight again for every tile and scatters each result.
fn dense_forward(xs: &[f32], ws: &[f32], bs: &[f32], geo: &Geometry) -> Vec<f32> {
    let l = geo.oh * geo.ow;
    let k = geo.c * geo.kernel[0] * geo.kernel[1];
    let mut y = bias_planes(bs, geo.n * geo.co, l);
    let out = y.as_mut_ptr();
    for_each_band(xs, geo, |b, y0, lc, cols| {
        let dst = out.wrapping_add(b * geo.co * l + y0 * geo.ow);
        gemm_into(geo.co, lc, k, dst, l, true, (ws.as_ptr(), 1, k as isize), (cols.as_ptr(), 1, lc as isize));
    });
    y
}

/// Input gradient of a dense convolution as columns and col2im: cols[(ci, i, j), band] =
/// Wᵀ · G[co, band], one GEMM per band of output rows, then every column row added back onto
/// the input row its tap reads (by phase, so strided columns are contiguous runs). burn's
/// strided path (conv-transpose) was 3–4 % of an adversarial step for the discriminators.
fn dense_x_grad_col2im(ws: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let [kh, kw] = geo.kernel;
    let taps = kh * kw;
    let k = geo.c * taps;
    let l = geo.oh * geo.ow;
    let s = geo.stride[1];
    let wp = geo.w.div_ceil(s);
    let band = geo.band_rows(k);
    let mut gx = vec![0f32; geo.n * geo.c * geo.h * geo.w];
    let mut acc = vec![0f32; geo.c * s * geo.h * wp];
    // the GEMM overwrites the columns it uses (it does not read them)
    let mut cols = Scratch::take(k * band * geo.ow);
    for b in 0..geo.n {
        acc.fill(0.0);
        for y0 in (0..geo.oh).step_by(band) {
            let rows = band.min(geo.oh - y0);
            let lc = rows * geo.ow;
            let g = gs[b * geo.co * l + y0 * geo.ow..].as_ptr();
            gemm_into(k, lc, geo.co, cols.as_mut_ptr(), lc, false, (ws.as_ptr(), k as isize, 1), (g, 1, l as isize));
            let cols = &cols[..k * lc];
            acc.par_chunks_mut(s * geo.h * wp).zip(cols.par_chunks(taps * lc)).for_each(|(a, c)| {
                for y in y0..y0 + rows {
                    for i in 0..kh {
                        let Some(iy) = geo.in_row(y, i) else { continue };
                        for j in 0..kw {
                            let Some((lo, hi, start)) = geo.cols(j) else { continue };
                            let src = &c[(i * kw + j) * lc + (y - y0) * geo.ow..][lo..hi];
                            a[phased_at(s, geo.h, wp, iy, start)..][..hi - lo].iter_mut().zip(src).for_each(|(a, v)| *a += v);
                        }
                    }
                }
            });
        }
        gx[b * geo.c * geo.h * geo.w..][..geo.c * geo.h * geo.w].par_chunks_mut(geo.h * geo.w).zip(acc.par_chunks(s * geo.h * wp)).for_each(|(plane, a)| unphase(a, plane, geo.h, geo.w, s));
    }
    gx
}

/// dW[co, (ci, i, j)] = Σ_n G_n[co, L] · cols_n[(ci, i, j), L]: one GEMM per band.
fn dense_weight_grad(xs: &[f32], gs: &[f32], geo: &Geometry) -> Vec<f32> {
    let k = geo.c * geo.kernel[0] * geo.kernel[1];
    let l = geo.oh * geo.ow;
    let len = geo.co * k;
    if l == 0 || geo.n == 0 {
        return vec![0f32; len];
    }
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    for_each_band(xs, geo, |b, y0, lc, cols| {
        // dw[co × k] += G[co × lc] · colsᵀ[lc × k]; G's rows are the full planes of batch b. The
        // first band's GEMM writes every value (no clearing pass), the others accumulate.
        let g = gs[(b * geo.co) * l + y0 * geo.ow..].as_ptr();
        gemm_into_by_columns(geo.co, k, lc, dw.as_mut_ptr(), k, b > 0 || y0 > 0, (g, 1, l as isize), (cols.as_ptr(), lc as isize, 1));
    });
    // SAFETY: the first band's GEMM wrote all co·k values (l > 0: there is a first band)
    unsafe { dw.set_len(len) };
    dw
}

/// A dot product with 16 independent partial sums, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split into column ranges (n = 200: one per thread), accumulating onto the destination,
    /// with B given transposed as the weight gradients give it: a plain triple loop's result.
    #[test]
    fn gemm_by_columns_matches_the_definition() {
        let (m, n, k) = (7, 200, 33);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.0).collect();
        // B[k × n] stored as Bᵀ rows: element (p, j) at j·k + p
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 53) % 19) as f32 * 0.1 - 0.9).collect();
        let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        let mut dst = start.clone();
        gemm_into_by_columns(m, n, k, dst.as_mut_ptr(), n, true, (a.as_ptr(), 1, k as isize), (bt.as_ptr(), k as isize, 1));
        for i in 0..m {
            for j in 0..n {
                let want = start[i * n + j] + (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum::<f32>();
                assert!((dst[i * n + j] - want).abs() < 1e-4, "({i}, {j}): {} vs {want}", dst[i * n + j]);
            }
        }
    }
}
