//! How per-anchor losses become the scalar that is backpropagated.

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};

/// Reduction of the per-anchor loss vector.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Reduction {
    /// Sum over anchors: the reference backpropagates the per-anchor vector with a head
    /// gradient of ones, i.e. the sum.
    Sum,
    /// Mean over anchors.
    Mean,
}

impl Reduction {
    /// Reduces a per-anchor vector [B] to a scalar [1].
    pub fn apply<B: Backend>(&self, per_anchor: Tensor<B, 1>) -> Tensor<B, 1> {
        match self {
            Reduction::Sum => per_anchor.sum(),
            Reduction::Mean => per_anchor.mean(),
        }
    }
}
