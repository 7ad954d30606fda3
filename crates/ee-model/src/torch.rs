//! Convolution and BatchNorm on `Autodiff<LibTorch>` with PyTorch's own backward.
//!
//! burn-tch 0.21 runs PyTorch's convolution forward but leaves both of its gradients to
//! burn's generic `conv2d_x_backward` / `conv2d_weight_backward` (a transposed convolution,
//! and a convolution over swapped batch and channel axes), and burn's BatchNorm is a chain of
//! about a dozen tensor ops each way; a GoogLeNet training step took 1.36-1.43x PyTorch's on
//! the CPU. Here each such layer is one burn autodiff node: its forward runs under torch's
//! autograd, on leaves that require a gradient exactly where burn tracks one, and its
//! backward asks torch's autograd for those gradients (PyTorch's `convolution_backward` and
//! `native_batch_norm_backward`: oneDNN / cuDNN). torchvision's `BasicConv2d` (convolution,
//! BatchNorm, ReLU) in training mode is one such node for all three layers. The functions here
//! take the concrete backends' tensors (`Autodiff<LibTorch, C>` for every checkpointing
//! strategy `C`, and `LibTorch`); [`crate::dispatch`] decides which calls come here.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::{Autodiff, LibTorch};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

/// `Autodiff<LibTorch>` with checkpointing strategy `C`.
type Ad<C> = Autodiff<LibTorch, C>;

/// One burn autodiff node over `N` inputs whose forward ran under torch's autograd.
#[derive(Debug)]
struct TorchNode<const N: usize>;

impl<const N: usize> Backward<LibTorch, N> for TorchNode<N> {
    /// torch's leaves (one per input) and the output that carries torch's graph.
    type State = (Vec<TchTensor>, TchTensor);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<LibTorch>(&ops.node);
        let (leaves, output) = ops.state;
        // d(output . dy) / d(inputs) is the layer's backward applied to dy. A dot product of
        // the flattened tensors: one pass, no full-size temporary (`sum(output * dy)` made one
        // and a second full-size product in its backward).
        let kind = output.tensor.kind();
        let seeded = output
            .tensor
            .flatten(0, -1)
            .dot(&dy.tensor.to_kind(kind).flatten(0, -1));
        let wanted: Vec<usize> = (0..N).filter(|&i| ops.parents[i].is_some()).collect();
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|&i| &leaves[i].tensor).collect();
        let found = tch::Tensor::run_backward(&[seeded], &inputs, false, false);
        for (i, grad) in wanted.into_iter().zip(found) {
            let node = ops.parents[i].as_ref().expect("wanted");
            grads.register::<LibTorch>(node.id, TchTensor::new(grad));
        }
    }
}

/// The float tensor of `Autodiff<LibTorch>` (any rank, any checkpointing strategy): torch's
/// tensor and burn's node.
type AdPrimitive =
    <Autodiff<LibTorch> as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

fn primitive<C: CheckpointStrategy, const D: usize>(tensor: Tensor<Ad<C>, D>) -> AdPrimitive {
    tensor.into_primitive().tensor()
}

fn tensor<C: CheckpointStrategy, const D: usize>(primitive: AdPrimitive) -> Tensor<Ad<C>, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// A batch statistic computed by torch, as a tensor of `Autodiff<LibTorch, C>` outside any
/// graph.
fn statistic<C: CheckpointStrategy>(values: tch::Tensor) -> Tensor<Ad<C>, 1> {
    let inner =
        Tensor::<LibTorch, 1>::from_primitive(TensorPrimitive::Float(TchTensor::new(values)));
    Tensor::from_inner(inner)
}

/// `forward(inputs)` as one autodiff node with torch's backward.
fn apply<C: CheckpointStrategy, const N: usize>(
    inputs: [AdPrimitive; N],
    forward: impl Fn(&[tch::Tensor]) -> tch::Tensor,
) -> AdPrimitive {
    let nodes = inputs.each_ref().map(|x| x.node.clone());
    match TorchNode::<N>
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let leaves: Vec<tch::Tensor> = inputs
                .iter()
                .map(|x| {
                    let needs = !x.node.requirement.is_none();
                    x.primitive.tensor.detach().set_requires_grad(needs)
                })
                .collect();
            let output = tch::with_grad(|| forward(&leaves));
            // burn's graph continues from a detached copy: the ops after this one must not
            // build torch graphs of their own.
            let detached = TchTensor::new(output.detach());
            let leaves = leaves.into_iter().map(TchTensor::new).collect();
            prep.finish((leaves, TchTensor::new(output)), detached)
        }
        OpsKind::UnTracked(prep) => {
            let raw: Vec<tch::Tensor> = inputs
                .iter()
                .map(|x| x.primitive.tensor.shallow_clone())
                .collect();
            prep.finish(TchTensor::new(tch::no_grad(|| forward(&raw))))
        }
    }
}

/// The settings torch's `conv2d` takes (symmetric padding only; groups of 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TorchConv {
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
}

impl TorchConv {
    /// The layer's settings, or `None` when torch's `conv2d` cannot express them.
    pub(crate) fn of<B: Backend>(layer: &Conv2d<B>) -> Option<Self> {
        let padding = match layer.padding {
            PaddingConfig2d::Valid => [0, 0],
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == bottom && left == right =>
            {
                [top as i64, left as i64]
            }
            _ => return None,
        };
        (layer.groups == 1).then(|| TorchConv {
            stride: layer.stride.map(|s| s as i64),
            padding,
            dilation: layer.dilation.map(|d| d as i64),
        })
    }
}

/// `conv2d(input, weight)` (no bias) as one node with torch's backward.
pub(crate) fn conv2d<C: CheckpointStrategy>(
    input: Tensor<Ad<C>, 4>,
    weight: Tensor<Ad<C>, 4>,
    conv: TorchConv,
) -> Tensor<Ad<C>, 4> {
    let output = apply::<C, 2>([primitive(input), primitive(weight)], |t| {
        t[0].conv2d(
            &t[1],
            None::<tch::Tensor>,
            conv.stride,
            conv.padding,
            conv.dilation,
            1,
        )
    });
    tensor(output)
}

/// BatchNorm in training mode as one node with torch's backward, normalised with the batch
/// statistics: the output, and the batch mean and biased variance for burn's running update
/// (`crate::batch_norm::update_running`).
pub(crate) fn batch_norm_train<C: CheckpointStrategy>(
    input: Tensor<Ad<C>, 4>,
    [gamma, beta]: [Tensor<Ad<C>, 1>; 2],
    epsilon: f64,
) -> (Tensor<Ad<C>, 4>, [Tensor<Ad<C>, 1>; 2]) {
    let stats = std::cell::RefCell::new(None);
    let output = apply::<C, 3>([primitive(input), primitive(gamma), primitive(beta)], |t| {
        let (y, batch) = batch_norm_with_stats(&t[0], &t[1], &t[2], epsilon);
        *stats.borrow_mut() = Some(batch);
        y
    });
    let (mean, var) = stats.into_inner().expect("forward ran");
    (tensor(output), [statistic(mean), statistic(var)])
}

/// Training-mode `batch_norm(x)` and the batch's per-channel mean and biased variance.
///
/// The statistics come from torch's own pass over `x`: running buffers with momentum 1 end up
/// holding the batch mean and the unbiased variance, which is scaled back by `(n - 1) / n`
/// (a separate `var` was a second, Welford pass in f64 over every activation).
fn batch_norm_with_stats(
    x: &tch::Tensor,
    gamma: &tch::Tensor,
    beta: &tch::Tensor,
    epsilon: f64,
) -> (tch::Tensor, (tch::Tensor, tch::Tensor)) {
    let size = x.size();
    let options = (x.kind(), x.device());
    let mean = tch::Tensor::zeros([size[1]], options);
    let var = tch::Tensor::zeros([size[1]], options);
    let y = x.batch_norm(
        Some(gamma),
        Some(beta),
        Some(&mean),
        Some(&var),
        true,
        1.0,
        epsilon,
        true,
    );
    let n = size[0] * size[2] * size[3];
    // New tensors: torch's graph saved the buffers, and burn updates tensors it solely owns
    // in place (a changed saved tensor fails torch's backward).
    let (mean, biased) = tch::no_grad(|| (mean.copy(), var * ((n - 1) as f64 / n as f64)));
    (y, (mean, biased))
}

/// `relu(batch_norm(conv2d(input)))` in training mode (torchvision's `BasicConv2d`) as one
/// autodiff node with torch's backward, for a convolution without bias: the convolution's
/// output and the BatchNorm's never become burn tensors, and ReLU's backward is torch's one
/// `threshold_backward` instead of burn's comparison + masked fill. Returns the output and,
/// as [`batch_norm_train`] does, the batch statistics of the convolution's output.
pub(crate) fn conv_bn_relu_train<C: CheckpointStrategy>(
    input: Tensor<Ad<C>, 4>,
    weight: Tensor<Ad<C>, 4>,
    [gamma, beta]: [Tensor<Ad<C>, 1>; 2],
    settings: TorchConv,
    epsilon: f64,
) -> (Tensor<Ad<C>, 4>, [Tensor<Ad<C>, 1>; 2]) {
    // The batch statistics of the convolution's output, for the running update.
    let stats = std::cell::RefCell::new(None);
    let output = apply::<C, 4>(
        [
            primitive(input),
            primitive(weight),
            primitive(gamma),
            primitive(beta),
        ],
        |t| {
            let y = t[0].conv2d(
                &t[1],
                None::<tch::Tensor>,
                settings.stride,
                settings.padding,
                settings.dilation,
                1,
            );
            let (mut z, batch) = batch_norm_with_stats(&y, &t[2], &t[3], epsilon);
            *stats.borrow_mut() = Some(batch);
            // In place, as torchvision's `relu(inplace=True)`: BatchNorm's backward needs its
            // input and statistics, not its output.
            z.relu_()
        },
    );
    let (mean, var) = stats.into_inner().expect("forward ran");
    (tensor(output), [statistic(mean), statistic(var)])
}

/// BatchNorm in evaluation mode (running statistics: `params` are gamma, beta, the running
/// mean and the running variance) as torch's one `batch_norm` op, where burn's is a chain of
/// broadcasts.
pub(crate) fn batch_norm_eval(
    input: Tensor<LibTorch, 4>,
    params: [Tensor<LibTorch, 1>; 4],
    epsilon: f64,
) -> Tensor<LibTorch, 4> {
    let [gamma, beta, mean, var] = params.map(|t| t.into_primitive().tensor().tensor);
    let x = input.into_primitive().tensor().tensor;
    let output = tch::no_grad(|| {
        x.batch_norm(
            Some(&gamma),
            Some(&beta),
            Some(&mean),
            Some(&var),
            false,
            0.0,
            epsilon,
            true,
        )
    });
    Tensor::from_primitive(TensorPrimitive::Float(TchTensor::new(output)))
}
