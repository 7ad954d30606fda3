//! The host max pool as burn ops on `Flex` (forward only) and `Autodiff<Flex, C>` (one node
//! whose backward scatters the gradient to the recorded maxima). burn 0.21's flex max pool
//! took over half of a GoogLeNet eval forward at 227 px.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::host::{self, PoolGeometry};
use crate::element::ConvElement;
use crate::flex_interop::{primitive, to_flex, with_values, Pod};

/// `(pooled, argmax)` of `x` `[n, c, h, w]`.
fn forward(x: &FlexTensor, g: &PoolGeometry, shape: [usize; 4]) -> (FlexTensor, Vec<u32>) {
    fn run<T: ConvElement + Pod + PartialOrd>(
        x: &FlexTensor,
        g: &PoolGeometry,
        [n, c, _, _]: [usize; 4],
    ) -> (FlexTensor, Vec<u32>) {
        let (y, argmax) = with_values::<T, _>(&[x], |v| host::forward(g, v[0]));
        (to_flex(y, [n, c, g.output[0], g.output[1]]), argmax)
    }
    match x.dtype() {
        DType::F64 => run::<f64>(x, g, shape),
        _ => run::<f32>(x, g, shape),
    }
}

#[derive(Debug)]
struct HostMaxPoolBackward;

impl Backward<Flex, 1> for HostMaxPoolBackward {
    /// The argmax per output, the geometry, the input's shape and dtype.
    type State = (std::sync::Arc<Vec<u32>>, PoolGeometry, [usize; 4], DType);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (argmax, g, shape, dtype) = ops.state;
        let Some(node) = node else { return };
        let dx = match dtype {
            DType::F64 => to_flex(
                with_values::<f64, _>(&[&dy], |v| host::backward(&g, v[0], &argmax)),
                shape,
            ),
            _ => to_flex(
                with_values::<f32, _>(&[&dy], |v| host::backward(&g, v[0], &argmax)),
                shape,
            ),
        };
        grads.register::<Flex>(node.id, dx);
    }
}

/// Whether the host pool takes tensors of `dtype` (f32, f64).
pub(super) fn covers(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

/// The pool on `Flex`, with the host kernels ([`covers`] the dtype).
pub(super) fn max_pool(input: Tensor<Flex, 4>, geometry: PoolGeometry) -> Tensor<Flex, 4> {
    let shape = input.dims();
    let (y, _) = forward(&primitive(input), &geometry, shape);
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// The pool on `Autodiff<Flex, C>` (every checkpointing strategy `C`) as one node with the
/// host backward ([`covers`] the dtype).
pub(super) fn autodiff_max_pool<C: CheckpointStrategy>(
    input: Tensor<Autodiff<Flex, C>, 4>,
    geometry: PoolGeometry,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let dtype = input.dtype();
    let shape = input.dims();
    let x = primitive(input);
    let (y, argmax) = forward(&x.primitive, &geometry, shape);
    let output = match HostMaxPoolBackward
        .prepare::<C>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            prep.finish((std::sync::Arc::new(argmax), geometry, shape, dtype), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
