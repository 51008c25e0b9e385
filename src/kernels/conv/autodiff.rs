//! The convolution extension under autodiff: the forward on the inner backend, and a backward
//! that asks the inner backend for the input and weight gradients (burn's default for the bias).
use super::ConvExt;
use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff, NodeId,
};
use burn::backend::tensor::FloatTensor;
use burn::backend::Backend;
use burn::tensor::ops::ConvOptions;

impl<B: Backend + ConvExt, C: CheckpointStrategy> ConvExt for Autodiff<B, C> {
    fn conv2d_ext(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
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
                    grads.register::<B>(
                        node.id,
                        B::conv2d_ext_x_grad(x.clone(), w.clone(), grad.clone(), options.clone()),
                    );
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
                prep.finish(
                    state,
                    B::conv2d_ext(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options),
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv2d_ext(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options))
            }
        }
    }
    fn conv2d_ext_x_grad(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
    fn conv2d_ext_weight_grad(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        unreachable!("gradients are computed on the inner backend")
    }
}
