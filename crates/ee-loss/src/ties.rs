//! Max and min reductions with the reference's tie rule for gradients.
//!
//! The reference (MXNet) passes the upstream gradient of a max or min to EVERY element equal
//! to the result, in full (METHOD.md section 5). burn's `max_dim` / `min_dim` send it to a
//! single index. Embedding expansion makes ties common (each synthetic point exists twice,
//! bit for bit), so the difference is visible in training: these reductions reproduce the
//! reference.
//!
//! ```text
//! r    = max_j x_j                      (value, no gradient)
//! out  = r + sum_j [x_j == r] * (x_j - stopgrad(x_j))
//! ```
//! The second term is exactly zero in the forward pass and has gradient `[x_j == r]`.

use burn::tensor::{backend::Backend, Tensor};

/// Maximum along `dim` (kept, size 1), whose gradient reaches every maximal element in full.
pub fn max_dim_all_ties<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let value = x.clone().detach().max_dim(dim);
    route_to_ties(x, value, dim)
}

/// Minimum along `dim` (kept, size 1), whose gradient reaches every minimal element in full.
pub fn min_dim_all_ties<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let value = x.clone().detach().min_dim(dim);
    route_to_ties(x, value, dim)
}

fn route_to_ties<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    value: Tensor<B, D>,
    dim: usize,
) -> Tensor<B, D> {
    let is_extreme = x.clone().detach().equal(value.clone().expand(x.shape()));
    let zero_with_gradient = (x.clone() - x.detach())
        .mask_fill(is_extreme.bool_not(), 0.0)
        .sum_dim(dim);
    value + zero_with_gradient
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    #[test]
    fn every_tied_extreme_gets_the_full_gradient() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_data([[1.0, 3.0, 3.0, 2.0], [5.0, 0.5, 0.5, 0.7]], &device)
            .require_grad();
        let max = max_dim_all_ties(x.clone(), 1);
        let min = min_dim_all_ties(x.clone(), 1);
        let max_values: Vec<f32> = max.clone().into_data().to_vec().unwrap();
        let min_values: Vec<f32> = min.clone().into_data().to_vec().unwrap();
        assert_eq!(max_values, vec![3.0, 5.0]);
        assert_eq!(min_values, vec![1.0, 0.5]);

        // d/dx of sum(max) + 10 * sum(min)
        let grads = (max.sum() + min.sum().mul_scalar(10.0)).backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        assert_eq!(g, vec![10.0, 1.0, 1.0, 0.0, 1.0, 10.0, 10.0, 0.0]);
    }
}
