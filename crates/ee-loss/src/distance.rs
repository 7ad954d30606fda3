//! Pairwise euclidean distance, computed as the reference computes it.

use burn::tensor::{backend::Backend, Tensor};

/// Lower clip of the squared distance: a point's distance to itself becomes 1e-6, with zero
/// gradient (the reference's `clip_min`).
pub const SQUARED_DISTANCE_MIN: f64 = 1e-12;
/// Upper clip of the squared distance (the reference's `clip_max`).
pub const SQUARED_DISTANCE_MAX: f64 = 1e12;

/// Euclidean distances between the rows of `x` and the rows of `y`.
///
/// ```text
/// D_ab = sqrt( clip( |a|^2 + |b|^2 - 2 a.b , 1e-12, 1e12 ) )
/// ```
///
/// Shapes: `x` [m, d], `y` [n, d] -> [m, n]. Inside the clip range the gradient is the usual
/// `(a - b) / D_ab`; outside it is zero.
pub fn euclidean_distance<B: Backend>(x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    clamped_squared_distance(x, y).sqrt()
}

/// The squared distances that [`euclidean_distance`] takes the square root of: `|x|^2 + |y|^2
/// - 2 x.y`, clipped to `[SQUARED_DISTANCE_MIN, SQUARED_DISTANCE_MAX]`.
pub fn clamped_squared_distance<B: Backend>(x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    let squared_x = x.clone().square().sum_dim(1); // [m, 1]
    let squared_y = y.clone().square().sum_dim(1).transpose(); // [1, n]
    let dot = x.matmul(y.transpose()); // [m, n]
    (squared_x + squared_y - dot.mul_scalar(2.0)).clamp(SQUARED_DISTANCE_MIN, SQUARED_DISTANCE_MAX)
}

/// Euclidean distances between all rows of `x`: [n, d] -> [n, n].
pub fn pairwise_euclidean<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    euclidean_distance(x.clone(), x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn distances_of_a_3_4_5_rectangle() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::from_data([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0]], &device);
        let d: Vec<f32> = pairwise_euclidean(x).into_data().to_vec().unwrap();
        let expected = [1e-6, 4.0, 3.0, 4.0, 1e-6, 5.0, 3.0, 5.0, 1e-6];
        for (got, want) in d.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{d:?}");
        }
    }
}
