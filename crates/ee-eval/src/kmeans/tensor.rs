//! The backend engine of Lloyd: distances to the centroids and the per-point argmin run on
//! the burn backend in chunks of points (one matmul per chunk); centroid sums use the
//! backend's `select_assign` (add). The host only keeps the assignments, draws the k-means++
//! seeds and relocates empty clusters. The loop itself is
//! [`crate::kmeans`](mod@crate::kmeans)'s.

use burn::tensor::{backend::Backend, IndexingUpdateOp, Int, Tensor, TensorData};
use rand::Rng;

use super::LloydSteps;
use crate::input::read_f32;

/// The points on the backend, with their f32 squared norms on the host.
pub(crate) struct TensorPoints<B: Backend> {
    x: Tensor<B, 2>,
    point_sq: Vec<f32>,
    /// Points per chunk of the assignment (`[chunk, k]` block).
    chunk_size: usize,
}

impl<B: Backend> TensorPoints<B> {
    /// `point_sq` holds the squared norm of every row of `x`.
    pub(crate) fn new(points: Tensor<B, 2>, point_sq: Vec<f32>, chunk_size: usize) -> Self {
        Self {
            x: points,
            point_sq,
            chunk_size,
        }
    }

    /// k-means++ seeds of `k` clusters, as centroids.
    pub(crate) fn seed<R: Rng>(&self, cluster_count: usize, rng: &mut R) -> Tensor<B, 2> {
        let seeds = self.kmeans_plus_plus(cluster_count, rng);
        self.x
            .clone()
            .select(0, index_tensor::<B>(&seeds, &self.x.device()))
    }

    /// Squared distances from every point to point `center` (host vector, clamped at 0).
    fn distances_to_point(&self, center: usize) -> Vec<f32> {
        let [n, dim] = self.x.dims();
        let point_sq = &self.point_sq;
        // [n, 1]
        let dots = read_f32(
            self.x.clone().matmul(
                self.x
                    .clone()
                    .slice([center..center + 1, 0..dim])
                    .transpose(),
            ),
        );
        (0..n)
            .map(|i| (point_sq[i] + point_sq[center] - 2.0 * dots[i]).max(0.0))
            .collect()
    }

    fn kmeans_plus_plus<R: Rng>(&self, cluster_count: usize, rng: &mut R) -> Vec<usize> {
        let rows = self.x.dims()[0];
        let mut chosen = vec![rng.random_range(0..rows)];
        let mut nearest = self.distances_to_point(chosen[0]);
        while chosen.len() < cluster_count {
            let total: f64 = nearest.iter().map(|&d| d as f64).sum();
            let next = if total > 0.0 {
                let target = rng.random::<f64>() * total;
                let mut acc = 0.0;
                let mut pick = None;
                for (i, &weight) in nearest.iter().enumerate() {
                    acc += weight as f64;
                    if weight > 0.0 && acc > target {
                        pick = Some(i);
                        break;
                    }
                }
                // Rounding can leave `target` just past the last positive weight.
                pick.unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).expect("total > 0"))
            } else {
                // Every point coincides with a centroid: any unused point will do.
                let unused: Vec<usize> = (0..rows).filter(|i| !chosen.contains(i)).collect();
                unused[rng.random_range(0..unused.len())]
            };
            chosen.push(next);
            let to_next = self.distances_to_point(next);
            for (nearest, to_next) in nearest.iter_mut().zip(to_next) {
                *nearest = nearest.min(to_next);
            }
        }
        chosen
    }
}

fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}

impl<B: Backend> LloydSteps for TensorPoints<B> {
    type Centroids = Tensor<B, 2>;

    fn assign(&self, centroids: &Tensor<B, 2>) -> (Vec<usize>, Vec<f32>) {
        let [n, dim] = self.x.dims();
        let cluster_count = centroids.dims()[0];
        // [1, cluster_count]
        let centroid_sq = centroids
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .reshape([1, cluster_count]);
        let centroids_t = centroids.clone().transpose();
        let mut clusters = Vec::with_capacity(n);
        let mut dists = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let end = (start + self.chunk_size).min(n);
            let chunk = self.x.clone().slice([start..end, 0..dim]);
            // [c, cluster_count]: |c|^2 - 2 x.c  (|x|^2 is the same for every centroid)
            let partial = centroid_sq.clone() - chunk.matmul(centroids_t.clone()).mul_scalar(2.0);
            let (values, indices) = partial.min_dim_with_indices(1);
            let values = read_f32(values);
            let indices: Vec<i64> = indices
                .into_data()
                .convert::<i64>()
                .into_vec()
                .expect("an int tensor converted to i64 reads back as i64");
            for (i, (value, cluster)) in values.into_iter().zip(indices).enumerate() {
                clusters.push(cluster as usize);
                dists.push((value + self.point_sq[start + i]).max(0.0));
            }
            start = end;
        }
        (clusters, dists)
    }

    fn update(&self, _: Tensor<B, 2>, clusters: &[usize], counts: &[usize]) -> Tensor<B, 2> {
        let device = self.x.device();
        let (k, dim) = (counts.len(), self.x.dims()[1]);
        let sums = Tensor::<B, 2>::zeros([k, dim], &device).select_assign(
            0,
            index_tensor::<B>(clusters, &device),
            self.x.clone(),
            IndexingUpdateOp::Add,
        );
        let divisors: Vec<f32> = counts.iter().map(|&count| count.max(1) as f32).collect();
        sums / Tensor::<B, 2>::from_data(TensorData::new(divisors, [k, 1]), &device)
    }

    fn move_to_point(&self, centroids: Tensor<B, 2>, cluster: usize, point: usize) -> Tensor<B, 2> {
        let dim = self.x.dims()[1];
        centroids.slice_assign(
            [cluster..cluster + 1, 0..dim],
            self.x.clone().slice([point..point + 1, 0..dim]),
        )
    }

    fn centroids_to_host(&self, centroids: Tensor<B, 2>) -> Vec<f32> {
        read_f32(centroids)
    }
}
