//! `ee-core`: the conventions every Embedding Expansion crate shares, in one place so that
//! they cannot drift apart.
//!
//! * [`l2_normalize`]: the reference's L2 normalisation (MXNet's `L2Normalization`, instance
//!   mode), `x / sqrt(sum x^2 + 1e-10)`. The embedding head (ee-model) and the expansion's
//!   synthetic points (ee-loss) both use it.
//! * [`fs`]: files written atomically (a temporary file, then a rename): checkpoints,
//!   embedding files and pictures are never left half-written.
//! * [`npy`]: NumPy `.npy` arrays: 2-D float matrices (embeddings, features; `float32` or
//!   `float64`, C or Fortran order) and 1-D integer labels, read and written. ee-data's
//!   feature sets, ee-eval's embedding files and `ee embed`'s output go through it.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//!
//! let x = Tensor::<Flex, 2>::from_floats([[3.0, 4.0]], &Default::default());
//! let y: Vec<f32> = ee_core::l2_normalize(x).into_data().to_vec().unwrap();
//! assert!((y[0] - 0.6).abs() < 1e-6 && (y[1] - 0.8).abs() < 1e-6);
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("e.npy");
//! std::fs::write(&path, ee_core::npy::matrix_bytes(&[1.0, 2.0, 3.0, 4.0], 2, 2)).unwrap();
//! let m = ee_core::npy::read_matrix(&path).unwrap();
//! assert_eq!((m.rows, m.cols, m.values), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
//! ```

pub mod fs;
pub mod npy;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The epsilon under the square root of [`l2_normalize`] (the reference's).
pub const L2_NORM_EPSILON: f64 = 1e-10;

/// Divides each row by `sqrt(sum_j x_j^2 + 1e-10)` (MXNet's `L2Normalization`, instance
/// mode): `[rows, dim]` -> `[rows, dim]`.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .square()
        .sum_dim(1)
        .add_scalar(L2_NORM_EPSILON)
        .sqrt(); // [rows, 1]
    x / norm
}
