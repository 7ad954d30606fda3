//! Moving tensors of burn's `Flex` CPU backend to and from host slices, for the host kernels
//! ([`conv`](crate::conv), [`batch_norm`](crate::batch_norm)).

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};

use crate::element::ConvElement;

/// What `FlexTensor::storage` reads.
pub(crate) trait Pod: bytemuck::Pod + burn::tensor::Element {}
impl<T: bytemuck::Pod + burn::tensor::Element> Pod for T {}

pub(crate) fn primitive<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> B::FloatTensorPrimitive {
    tensor.into_primitive().tensor()
}

/// Runs `f` on the contiguous values of each tensor as `T` (f32 or f64). A tensor of another
/// float dtype is cast first: burn seeds `backward()` with a default-dtype (f32) gradient,
/// so an f64 graph can hand an f32 `dy` to the convolution.
pub(crate) fn with_values<T: ConvElement + Pod, R>(
    tensors: &[&FlexTensor],
    f: impl FnOnce(&[&[T]]) -> R,
) -> R {
    let dtype = if T::dtype() == DType::F64 {
        FloatDType::F64
    } else {
        FloatDType::F32
    };
    let contiguous: Vec<FlexTensor> = tensors
        .iter()
        .map(|t| match t.dtype() == T::dtype() {
            true => t.to_contiguous(),
            false => Flex::float_cast((*t).clone(), dtype).to_contiguous(),
        })
        .collect();
    let slices: Vec<&[T]> = contiguous.iter().map(|t| t.storage::<T>()).collect();
    f(&slices)
}

pub(crate) fn to_flex<T: ConvElement + Pod, const D: usize>(
    values: Vec<T>,
    shape: [usize; D],
) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
