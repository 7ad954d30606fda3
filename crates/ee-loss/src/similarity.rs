//! Pairwise similarities (larger means closer), the counterpart of [`crate::distance`] for
//! the losses that score similarities (N-pair, Multi-Similarity).

use burn::tensor::{backend::Backend, Tensor};

use crate::expansion::l2_normalize;

/// Dot products between all rows of `x`: [n, d] -> [n, n].
pub fn pairwise_dot<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.clone().matmul(x.transpose())
}

/// Cosine similarities between all rows of `x`: [n, d] -> [n, n].
///
/// ```text
/// S_ab = a.b / ( sqrt(|a|^2 + 1e-10) sqrt(|b|^2 + 1e-10) )
/// ```
/// (the same epsilon as the expansion's L2 normalisation, so a zero row gives 0, not NaN).
pub fn pairwise_cosine<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    pairwise_dot(l2_normalize(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn cosine_of_orthogonal_parallel_and_opposite_rows() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::from_data([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], &device);
        let s: Vec<f32> = pairwise_cosine(x).into_data().to_vec().unwrap();
        let expected = [1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0];
        for (got, want) in s.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{s:?}");
        }
    }
}
