//! Embeddings as the crate receives them: burn tensors or host buffers, and their checks.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::{EvalError, Result};

/// Squared norms above this could overflow `|q|^2 + |g|^2 - 2 q.g` in f32.
pub(crate) const MAX_SQUARED_NORM: f32 = f32::MAX / 4.0;

/// A row-major `[rows, dim]` matrix of embeddings on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMatrix {
    data: Vec<f32>,
    rows: usize,
    dim: usize,
}

impl EmbeddingMatrix {
    /// Wraps a row-major buffer of `rows * dim` values; errors if `dim` is 0 or the buffer is
    /// not a whole number of rows.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(EvalError::RaggedData {
                set: "embeddings",
                len: data.len(),
                dim,
            });
        }
        Ok(Self {
            rows: data.len() / dim,
            data,
            dim,
        })
    }

    /// Number of rows (items).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The row-major values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Row `i`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.data[index * self.dim..(index + 1) * self.dim]
    }

    /// Copies the matrix onto `device` as a `[rows, dim]` float tensor.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.rows, self.dim]),
            device,
        )
    }

    /// Reads a `[rows, dim]` tensor back to the host.
    pub fn from_tensor<B: Backend>(tensor: Tensor<B, 2>) -> Self {
        let [rows, dim] = tensor.dims();
        let data = read_f32(tensor);
        Self { data, rows, dim }
    }
}

pub(crate) fn read_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("a float tensor converted to f32 reads back as f32")
}

/// Errors with the first non-finite value's position if `x` holds NaN or an infinity.
pub(crate) fn check_finite<B: Backend>(set: &'static str, tensor: &Tensor<B, 2>) -> Result<()> {
    let bad = tensor
        .clone()
        .is_finite()
        .bool_not()
        .any()
        .into_data()
        .to_vec::<bool>()
        .map(|v| v[0])
        .unwrap_or(true);
    if !bad {
        return Ok(());
    }
    let dim = tensor.dims()[1];
    let values = read_f32(tensor.clone());
    match values.iter().position(|v| !v.is_finite()) {
        Some(p) => Err(EvalError::NonFinite {
            set,
            row: p / dim,
            col: p % dim,
            value: values[p],
        }),
        None => Ok(()),
    }
}

/// `[n, 1]` squared norms of the rows, erroring if one is so large that distances overflow.
pub(crate) fn squared_norms<B: Backend>(
    set: &'static str,
    x: &Tensor<B, 2>,
) -> Result<Tensor<B, 2>> {
    let norms = x.clone().powi_scalar(2).sum_dim(1);
    let host = read_f32(norms.clone());
    if let Some(row) = host
        .iter()
        .position(|v| v.is_nan() || *v > MAX_SQUARED_NORM)
    {
        return Err(EvalError::NormOverflow { set, row });
    }
    Ok(norms)
}

/// Errors unless there is one label per row and at least `needed` rows.
pub(crate) fn check_labels(
    set: &'static str,
    rows: usize,
    labels: &[i64],
    needed: usize,
) -> Result<()> {
    if rows != labels.len() {
        return Err(EvalError::LengthMismatch {
            set,
            embeddings: rows,
            labels: labels.len(),
        });
    }
    if rows < needed {
        return Err(EvalError::Empty { set, needed });
    }
    Ok(())
}
