//! Every copy of a tensor's values to the host that ee-model's layers make goes through
//! [`to_host_f64`], which counts it per thread. On a GPU each such copy is a device-to-host
//! transfer and a sync; only the host kernels of the `Flex` CPU backend, whose tensors already
//! live in host memory, may make one. [`host_reads`] lets a test check that a forward pass on
//! any other backend makes none.

use std::cell::Cell;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

thread_local! {
    static READS: Cell<usize> = const { Cell::new(0) };
}

/// The values of `tensor` as f64 on the host, counted in [`host_reads`]; `None` if its data
/// cannot be read as f64.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) fn to_host_f64<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Option<Vec<f64>> {
    READS.with(|reads| reads.set(reads.get() + 1));
    tensor.into_data().convert::<f64>().to_vec::<f64>().ok()
}

/// How many tensors ee-model's layers have copied to the host on this thread so far.
pub fn host_reads() -> usize {
    READS.with(Cell::get)
}
