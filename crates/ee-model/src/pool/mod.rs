//! Max pooling with PyTorch's `ceil_mode` semantics.
//!
//! burn 0.21's `max_pool2d` has a `ceil_mode` flag that rounds the output size up, but it
//! lacks PyTorch's second rule: a window that would *start* beyond the input plus its left
//! padding is dropped. [`MaxPool2dCeil`] calls burn's pooling (which pads with -inf) and crops
//! the extra row/column where that rule applies, so its output sizes equal PyTorch's for every
//! input size. GoogLeNet's own pools never hit the rule (their padding is 0, or stride 1), but
//! the module is correct in general and tested against hand-computed outputs.
//!
//! On `Flex` and `Autodiff<Flex>` (feature `flex`; every checkpointing strategy) the pool
//! runs on our host kernels ([`host`]), parallel over planes, with the same sizes and the
//! gradient at each window's first maximum; other backends use burn's pooling as above.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::Tensor;

#[cfg(feature = "flex")]
use burn::backend::{autodiff::checkpoint::strategy::CheckpointStrategy, Autodiff, Flex};

#[cfg(feature = "flex")]
use crate::dispatch::Ran;
use crate::dispatch::{KernelCalls, OwnKernel};
use crate::error::ModelError;

#[cfg(feature = "flex")]
mod flex;
pub mod host;

/// Output size of one spatial dimension under PyTorch's pooling rule
/// (`pooling_output_shape` in ATen), dilation 1.
///
/// ```text
/// out = floor_or_ceil((input + 2 * padding - kernel) / stride) + 1
/// ceil mode: if (out - 1) * stride >= input + padding { out -= 1 }
/// ```
///
/// Returns `None` when the padded input is smaller than the kernel.
pub fn pool_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let padded = input + 2 * padding;
    if kernel == 0 || stride == 0 || padded < kernel {
        return None;
    }
    let span = padded - kernel;
    let mut out = if ceil_mode {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    // PyTorch: the last window must start inside the input or its left padding.
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    Some(out)
}

/// Square 2-D max pooling (dilation 1) with PyTorch semantics, including `ceil_mode`.
///
/// Padding counts as -inf, so it never wins the max.
#[derive(Module, Clone, Debug)]
pub struct MaxPool2dCeil {
    /// Kernel height and width.
    pub kernel_size: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Implicit -inf padding on every side.
    pub padding: usize,
    /// Round the output size up (PyTorch's `ceil_mode=True`).
    pub ceil_mode: bool,
}

impl MaxPool2dCeil {
    /// A pooling layer; `padding` must be at most half the kernel (PyTorch's rule).
    pub fn new(
        kernel_size: usize,
        stride: usize,
        padding: usize,
        ceil_mode: bool,
    ) -> Result<Self, ModelError> {
        if kernel_size == 0 {
            return Err(ModelError::InvalidConfig {
                field: "kernel_size",
                value: kernel_size.to_string(),
                rule: "must be at least 1",
            });
        }
        if stride == 0 {
            return Err(ModelError::InvalidConfig {
                field: "stride",
                value: stride.to_string(),
                rule: "must be at least 1",
            });
        }
        if padding > kernel_size / 2 {
            return Err(ModelError::InvalidConfig {
                field: "padding",
                value: padding.to_string(),
                rule: "must be at most half the kernel size",
            });
        }
        Ok(Self {
            kernel_size,
            stride,
            padding,
            ceil_mode,
        })
    }

    /// Output `[height, width]` for an input of `[height, width]`, or `None` when the input is
    /// smaller than the kernel.
    pub fn output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        let size = |n| {
            pool_output_size(
                n,
                self.kernel_size,
                self.stride,
                self.padding,
                self.ceil_mode,
            )
        };
        Some([size(height)?, size(width)?])
    }

    /// Pools `[batch, channels, height, width]` to `[batch, channels, out_h, out_w]`.
    ///
    /// # Panics
    /// When the padded input is smaller than the kernel (the callers check input sizes first).
    pub fn forward<B: Backend>(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, height, width] = input.dims();
        let [out_h, out_w] = self
            .output_size(height, width)
            .unwrap_or_else(|| panic!("max pool: input {height}x{width} smaller than kernel"));
        let geometry = host::PoolGeometry {
            kernel: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            input: [height, width],
            output: [out_h, out_w],
        };
        let input = match crate::dispatch::run(MaxPoolKernel(geometry), input) {
            Ok(pooled) => return pooled,
            Err(input) => input,
        };
        let kernel = self.kernel_size;
        let stride = self.stride;
        let padding = self.padding;
        let pooled = max_pool2d(
            input,
            [kernel, kernel],
            [stride, stride],
            [padding, padding],
            [1, 1],
            self.ceil_mode,
        );
        let [batch, channels, got_h, got_w] = pooled.dims();
        if got_h == out_h && got_w == out_w {
            pooled
        } else {
            // burn kept a window that starts in the right padding only: drop it.
            pooled.slice([
                0..batch,
                0..channels,
                0..out_h.min(got_h),
                0..out_w.min(got_w),
            ])
        }
    }
}

/// [`MaxPool2dCeil`]'s own kernels: the host pool on `Flex` and `Autodiff<Flex>` (f32 / f64).
struct MaxPoolKernel(#[cfg_attr(not(feature = "flex"), allow(dead_code))] host::PoolGeometry);

impl OwnKernel for MaxPoolKernel {
    type Input<B: Backend> = Tensor<B, 4>;
    type Output<B: Backend> = Tensor<B, 4>;

    fn count(calls: &mut KernelCalls) {
        calls.max_pool += 1;
    }

    #[cfg(feature = "flex")]
    fn flex(self, input: Tensor<Flex, 4>) -> Ran<Self, Flex> {
        match flex::covers(input.dtype()) {
            true => Ok(flex::max_pool(input, self.0)),
            false => Err(input),
        }
    }

    #[cfg(feature = "flex")]
    fn flex_autodiff<C: CheckpointStrategy>(
        self,
        input: Tensor<Autodiff<Flex, C>, 4>,
    ) -> Ran<Self, Autodiff<Flex, C>> {
        match flex::covers(input.dtype()) {
            true => Ok(flex::autodiff_max_pool(input, self.0)),
            false => Err(input),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn googlenet_sizes_at_227_and_224() {
        // conv1 (7x7/2, pad 3) gives 114 from 227, then the four pools.
        let chain = |mut n: usize| {
            let mut sizes = vec![n];
            for (k, s) in [(3, 2), (3, 2), (3, 2), (2, 2)] {
                n = pool_output_size(n, k, s, 0, true).unwrap();
                sizes.push(n);
            }
            sizes
        };
        assert_eq!(chain(114), vec![114, 57, 28, 14, 7]);
        assert_eq!(chain(112), vec![112, 56, 28, 14, 7]);
        // Floor mode would lose a row at 114 -> 56 and 28 -> 13.
        assert_eq!(pool_output_size(114, 3, 2, 0, false), Some(56));
        assert_eq!(pool_output_size(28, 3, 2, 0, false), Some(13));
    }

    #[test]
    fn drops_a_window_starting_in_the_right_padding() {
        // 5 + 2*1 padding, kernel 2, stride 2: ceil gives 4 windows, the 4th would start at
        // padded index 6 = input + left padding, which PyTorch drops.
        assert_eq!(pool_output_size(5, 2, 2, 1, true), Some(3));
        assert_eq!(pool_output_size(4, 2, 2, 1, true), Some(3));
        assert_eq!(pool_output_size(1, 3, 1, 0, true), None);
        // stride 1, pad 1, kernel 3 keeps the size (inception branch 4).
        assert_eq!(pool_output_size(7, 3, 1, 1, true), Some(7));
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(MaxPool2dCeil::new(0, 1, 0, true).is_err());
        assert!(MaxPool2dCeil::new(3, 0, 0, true).is_err());
        assert!(MaxPool2dCeil::new(3, 1, 2, true).is_err());
        assert!(MaxPool2dCeil::new(3, 1, 1, true).is_ok());
    }
}
