//! The host kernels as burn ops on the `Flex` CPU backend: a plain forward on `Flex`, and on
//! `Autodiff<Flex, C>` (every checkpointing strategy `C`) one autodiff node whose backward
//! computes both gradients with [`host::backward`] (burn 0.21's own backward would run flex's
//! slow `conv_transpose2d` and a feature-map-sized "kernel" convolution). Which backend a call
//! is on, [`crate::dispatch`] decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::host::{self, ConvElement, ConvGeometry};
use crate::flex_interop::{primitive, to_flex, with_values, Pod};

/// Nanoseconds spent in the host forward and backward kernels, for profiles.
static FORWARD_NANOS: AtomicU64 = AtomicU64::new(0);
static BACKWARD_NANOS: AtomicU64 = AtomicU64::new(0);

/// Time spent so far in this process in the host convolution's forward and backward.
pub fn host_time() -> (Duration, Duration) {
    let read = |counter: &AtomicU64| Duration::from_nanos(counter.load(Ordering::Relaxed));
    (read(&FORWARD_NANOS), read(&BACKWARD_NANOS))
}

fn timed<R>(counter: &AtomicU64, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    counter.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    result
}

/// `conv2d(input, weight)` (no bias) on `Flex`, with the host kernels.
pub(super) fn conv2d(
    input: Tensor<Flex, 4>,
    weight: Tensor<Flex, 4>,
    geometry: ConvGeometry,
) -> Tensor<Flex, 4> {
    let output = forward(&primitive(input), &primitive(weight), &geometry);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

fn output_shape(g: &ConvGeometry) -> [usize; 4] {
    [g.batch, g.out_channels, g.output[0], g.output[1]]
}

fn forward(x: &FlexTensor, w: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    timed(&FORWARD_NANOS, || forward_untimed(x, w, g))
}

fn forward_untimed(x: &FlexTensor, w: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    match x.dtype() {
        DType::F64 => to_flex(
            with_values::<f64, _>(&[x, w], |v| host::forward(g, v[0], v[1])),
            output_shape(g),
        ),
        _ => to_flex(
            with_values::<f32, _>(&[x, w], |v| host::forward(g, v[0], v[1])),
            output_shape(g),
        ),
    }
}

fn backward(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    g: &ConvGeometry,
    want: [bool; 2],
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    fn run<T: ConvElement + Pod>(
        x: &FlexTensor,
        w: &FlexTensor,
        dy: &FlexTensor,
        g: &ConvGeometry,
        [want_x, want_w]: [bool; 2],
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let (dx, dw) = with_values::<T, _>(&[x, w, dy], |v| {
            host::backward(g, v[0], v[1], v[2], want_x, want_w)
        });
        let x_shape = [g.batch, g.in_channels, g.input[0], g.input[1]];
        let w_shape = [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]];
        (
            dx.map(|dx| to_flex(dx, x_shape)),
            dw.map(|dw| to_flex(dw, w_shape)),
        )
    }
    timed(&BACKWARD_NANOS, || match x.dtype() {
        DType::F64 => run::<f64>(x, w, dy, g, want),
        _ => run::<f32>(x, w, dy, g, want),
    })
}

/// The autodiff node: both gradients from one [`host::backward`] call.
#[derive(Debug)]
struct HostConv2dBackward;

impl Backward<Flex, 2> for HostConv2dBackward {
    type State = (FlexTensor, FlexTensor, ConvGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, geometry) = ops.state;
        let (dx, dw) = backward(&x, &w, &dy, &geometry, [node_x.is_some(), node_w.is_some()]);
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

/// `conv2d(input, weight)` (no bias) on `Autodiff<Flex, C>` as one node with the host
/// backward, for every checkpointing strategy `C`.
pub(super) fn autodiff_conv2d<C: CheckpointStrategy>(
    input: Tensor<Autodiff<Flex, C>, 4>,
    weight: Tensor<Autodiff<Flex, C>, 4>,
    geometry: ConvGeometry,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let x = primitive(input);
    let w = primitive(weight);
    let output = match HostConv2dBackward
        .prepare::<C>([x.node.clone(), w.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = forward(&x.primitive, &w.primitive, &geometry);
            prep.finish((x.primitive, w.primitive, geometry), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&x.primitive, &w.primitive, &geometry)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
