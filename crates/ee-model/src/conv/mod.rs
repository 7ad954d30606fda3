//! A 2-D convolution that is fast on the CPU backend and unchanged everywhere else.
//!
//! [`conv2d`] runs a burn [`Conv2d`] layer. On `Flex` and `Autodiff<Flex>` (with the `flex`
//! feature; `Autodiff` with any checkpointing strategy) it uses our own host kernels
//! ([`host`]): im2col / col2im in parallel with the batch folded into the GEMM columns, 1x1
//! convolutions as a plain GEMM, and one autodiff node whose backward computes the input and
//! weight gradients itself. burn 0.21's flex
//! backward is its generic decomposition (a serial `conv_transpose2d` for the input gradient,
//! a convolution with the whole feature map as kernel for the weight gradient), which made a
//! GoogLeNet training step several times slower than PyTorch's.
//!
//! `EE_CPU_KERNELS=burn` in the environment turns the host kernels (and
//! [`batch_norm`](crate::batch_norm())'s) off for a whole process.
//!
//! Every other backend (CUDA, wgpu, ...) and every case the kernels do not cover (groups > 1,
//! `Same` padding, f16 / bf16) calls burn's own `Conv2d::forward`, so results there are
//! exactly burn's.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::nn::conv::Conv2dConfig;
//! use burn::nn::PaddingConfig2d;
//! use burn::tensor::{Distribution, Tensor};
//!
//! let device = Default::default();
//! let layer = Conv2dConfig::new([3, 8], [3, 3])
//!     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
//!     .init::<Flex>(&device);
//! let x = Tensor::<Flex, 4>::random([2, 3, 16, 16], Distribution::Default, &device);
//! let fast = ee_model::conv2d(&layer, x.clone());
//! let reference = layer.forward(x);
//! let gap: f32 = (fast - reference).abs().max().into_scalar();
//! assert!(gap < 1e-4);
//! ```

#[cfg(feature = "flex")]
mod flex;
pub mod host;

#[cfg(feature = "flex")]
pub use flex::host_time;

#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::Autodiff;
#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "tch")]
use burn::backend::LibTorch;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

pub use host::ConvGeometry;

pub use crate::dispatch::CPU_KERNELS_ENV;
use crate::dispatch::{self, KernelCalls, OwnKernel};

/// `layer.forward(input)`, on the host kernels where they apply (see the module docs):
/// `[batch, in, h, w]` -> `[batch, out, h', w']`.
pub fn conv2d<B: Backend>(layer: &Conv2d<B>, input: Tensor<B, 4>) -> Tensor<B, 4> {
    let weight = layer.weight.val();
    let kernel = Conv2dKernel {
        #[cfg(feature = "flex")]
        host: host_geometry(layer, &input, &weight),
        #[cfg(feature = "tch")]
        torch: crate::torch::TorchConv::of(layer),
    };
    match dispatch::run(kernel, (input, weight)) {
        Ok(output) => with_bias(layer, output),
        Err((input, _)) => layer.forward(input),
    }
}

/// [`conv2d`]'s own kernels (no bias): the host kernels on `Flex` and `Autodiff<Flex>`, one
/// node with torch's backward on `Autodiff<LibTorch>`, where the layer's settings allow.
struct Conv2dKernel {
    #[cfg(feature = "flex")]
    host: Option<ConvGeometry>,
    #[cfg(feature = "tch")]
    torch: Option<crate::torch::TorchConv>,
}

impl OwnKernel for Conv2dKernel {
    /// Input and weight.
    type Input<B: Backend> = (Tensor<B, 4>, Tensor<B, 4>);
    type Output<B: Backend> = Tensor<B, 4>;

    fn count(calls: &mut KernelCalls) {
        calls.conv += 1;
    }

    #[cfg(feature = "flex")]
    fn flex(self, (input, weight): Self::Input<Flex>) -> dispatch::Ran<Self, Flex> {
        match self.host {
            Some(geometry) => Ok(flex::conv2d(input, weight, geometry)),
            None => Err((input, weight)),
        }
    }

    #[cfg(feature = "flex")]
    fn flex_autodiff<C: CheckpointStrategy>(
        self,
        (input, weight): Self::Input<Autodiff<Flex, C>>,
    ) -> dispatch::Ran<Self, Autodiff<Flex, C>> {
        match self.host {
            Some(geometry) => Ok(flex::autodiff_conv2d(input, weight, geometry)),
            None => Err((input, weight)),
        }
    }

    #[cfg(feature = "tch")]
    fn torch_autodiff<C: CheckpointStrategy>(
        self,
        (input, weight): Self::Input<Autodiff<LibTorch, C>>,
    ) -> dispatch::Ran<Self, Autodiff<LibTorch, C>> {
        match self.torch {
            Some(conv) => Ok(crate::torch::conv2d(input, weight, conv)),
            None => Err((input, weight)),
        }
    }
}

/// `relu(batch_norm(bn, conv2d(conv, input)))`: torchvision's `BasicConv2d` (and ResNet's
/// conv-BN-ReLU). On `Autodiff<LibTorch>` in training mode (feature `tch`) the three layers are
/// one autodiff node whose backward is torch's; everywhere else it is exactly the three calls.
pub fn conv_bn_relu<B: Backend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    input: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "tch")]
    let input = if B::ad_enabled(&input.device()) {
        let kernel = ConvBnReluKernel {
            conv: crate::torch::TorchConv::of(conv).filter(|_| conv.bias.is_none()),
            epsilon: bn.epsilon,
        };
        let params = (conv.weight.val(), bn.gamma.val(), bn.beta.val());
        match dispatch::run(kernel, (input, params)) {
            Ok((output, [mean, var])) => {
                crate::batch_norm::update_running(bn, mean, var);
                return output;
            }
            Err((input, _)) => input,
        }
    } else {
        input
    };
    relu(crate::batch_norm(bn, conv2d(conv, input)))
}

/// [`conv_bn_relu`]'s own kernel in training mode: one node with torch's backward on
/// `Autodiff<LibTorch>`, when the convolution has no bias and torch's `conv2d` can express it.
#[cfg(feature = "tch")]
struct ConvBnReluKernel {
    conv: Option<crate::torch::TorchConv>,
    epsilon: f64,
}

#[cfg(feature = "tch")]
impl OwnKernel for ConvBnReluKernel {
    /// The input, and the convolution's weight, BatchNorm's gamma and beta.
    type Input<B: Backend> = (Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>));
    /// The output, and the batch mean and biased variance of the convolution's output.
    type Output<B: Backend> = (Tensor<B, 4>, [Tensor<B, 1>; 2]);

    fn count(calls: &mut KernelCalls) {
        calls.conv += 1;
        calls.batch_norm_train += 1;
    }

    fn torch_autodiff<C: CheckpointStrategy>(
        self,
        (input, (weight, gamma, beta)): Self::Input<Autodiff<LibTorch, C>>,
    ) -> dispatch::Ran<Self, Autodiff<LibTorch, C>> {
        let Some(conv) = self.conv else {
            return Err((input, (weight, gamma, beta)));
        };
        let torch = crate::torch::conv_bn_relu_train;
        Ok(torch(input, weight, [gamma, beta], conv, self.epsilon))
    }
}

/// `output + bias` (broadcast over the batch and the positions), when the layer has one.
fn with_bias<B: Backend>(layer: &Conv2d<B>, output: Tensor<B, 4>) -> Tensor<B, 4> {
    match &layer.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            output + bias.val().reshape([1, channels, 1, 1])
        }
        None => output,
    }
}

/// The geometry when the host kernels cover the layer and the input, else `None`.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
fn host_geometry<B: Backend>(
    layer: &Conv2d<B>,
    input: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
) -> Option<ConvGeometry> {
    let supported = |dtype: DType| matches!(dtype, DType::F32 | DType::F64);
    if layer.groups != 1 || !supported(input.dtype()) || weight.dtype() != input.dtype() {
        return None;
    }
    let padding = match layer.padding {
        PaddingConfig2d::Valid => [[0, 0], [0, 0]],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [[top, bottom], [left, right]],
        PaddingConfig2d::Same => return None,
    };
    ConvGeometry::new(
        input.dims(),
        weight.dims(),
        layer.stride,
        layer.dilation,
        padding,
    )
}
