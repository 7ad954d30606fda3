//! k-means with k-means++ seeding and restarts: Lloyd on the burn backend or on the host,
//! mini-batch on the host ([`crate::kmeans_host`]).
//!
//! [`KMeansConfig::engine`] picks where Lloyd runs (the host on CPU backends); mini-batch
//! always runs on the host. The rest of this page describes the backend engine. Distances to the centroids and the per-point argmin run on the backend in chunks of points
//! (one matmul per chunk); centroid sums use the backend's `select_assign` (add). The host
//! only keeps the assignments, draws the k-means++ seeds and relocates empty clusters.
//!
//! - Seeding: k-means++ (Arthur and Vassilvitskii, 2007): the first centroid is a uniformly
//!   drawn point, each next one a point drawn with probability proportional to its squared
//!   distance to the nearest centroid chosen so far.
//! - Iterations stop when no assignment changes (`converged`) or after `max_iter`.
//! - An empty cluster is moved onto the point farthest from its own centroid.
//! - The run with the lowest inertia (sum of squared distances to the assigned centroid)
//!   over `n_init` restarts is kept; ties keep the earlier run.

use burn::config::Config;
use burn::tensor::{backend::Backend, IndexingUpdateOp, Int, Tensor, TensorData};
use rand::Rng;

use crate::error::EvalError;
use crate::input::{check_finite, read_f32, squared_norms};
use crate::knn::Engine;

/// Which k-means iterations run.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum KMeansAlgorithm {
    /// Lloyd; above [`KMeansConfig::large_above`] point-centroid pairs with
    /// [`KMeansConfig::large_n_init`] restarts of at most [`KMeansConfig::large_max_iter`]
    /// iterations.
    Auto,
    /// Full Lloyd iterations until no assignment changes.
    Lloyd,
    /// Mini-batch k-means (Sculley, 2010), then one full assignment; always on the host.
    /// Fast, but poor when clusters hold a handful of points (SOP: about 5 per class), where a
    /// centroid is the mean of too few samples: NMI 0.50 against Lloyd's 0.82 on SOP-sized
    /// random data.
    MiniBatch,
}

impl KMeansAlgorithm {
    /// `"lloyd"`, `"mini_batch"` or `"auto"`, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            KMeansAlgorithm::Auto => "auto",
            KMeansAlgorithm::Lloyd => "lloyd",
            KMeansAlgorithm::MiniBatch => "mini_batch",
        }
    }
}

/// Hyper-parameters of k-means.
#[derive(Config, Debug, PartialEq)]
pub struct KMeansConfig {
    /// Lloyd, mini-batch, or chosen by size.
    #[config(default = "KMeansAlgorithm::Auto")]
    pub algorithm: KMeansAlgorithm,
    /// Host GEMM or backend matmul for the distances.
    #[config(default = "Engine::Auto")]
    pub engine: Engine,
    /// Independent k-means++ restarts; the lowest-inertia run is kept.
    #[config(default = 5)]
    pub n_init: usize,
    /// Maximum Lloyd iterations per restart.
    #[config(default = 100)]
    pub max_iter: usize,
    /// Points per chunk of the backend engine (`[chunk, k]` block).
    #[config(default = 8192)]
    pub chunk_size: usize,
    /// `Auto` limits Lloyd's restarts and iterations above this many point-centroid pairs
    /// (`n * k`): SOP's test set (60,502 x 11,316) is above, CARS196, CUB-200-2011 and
    /// In-Shop are below.
    #[config(default = 100_000_000)]
    pub large_above: usize,
    /// Restarts of `Auto` on a large problem.
    #[config(default = 1)]
    pub large_n_init: usize,
    /// Lloyd iterations of `Auto` on a large problem (one costs about 10 s at SOP's size on 2
    /// cores).
    #[config(default = 10)]
    pub large_max_iter: usize,
    /// Points per mini-batch step.
    #[config(default = 4096)]
    pub minibatch_size: usize,
    /// Mini-batch steps, in passes over the points: `minibatch_epochs * n / minibatch_size`.
    #[config(default = 5)]
    pub minibatch_epochs: usize,
    /// Restarts of mini-batch k-means (each is seeded by k-means++ and scored by its full
    /// inertia).
    #[config(default = 1)]
    pub minibatch_n_init: usize,
}

impl KMeansConfig {
    /// Checks the configuration.
    pub fn check(&self) -> crate::Result<()> {
        for (field, value) in [
            ("kmeans.n_init", self.n_init),
            ("kmeans.max_iter", self.max_iter),
            ("kmeans.chunk_size", self.chunk_size),
            ("kmeans.minibatch_size", self.minibatch_size),
            ("kmeans.minibatch_epochs", self.minibatch_epochs),
            ("kmeans.minibatch_n_init", self.minibatch_n_init),
            ("kmeans.large_n_init", self.large_n_init),
            ("kmeans.large_max_iter", self.large_max_iter),
        ] {
            if value == 0 {
                return Err(EvalError::InvalidConfig {
                    field,
                    value: "0".into(),
                    rule: "must be at least 1",
                });
            }
        }
        Ok(())
    }

    /// The algorithm that runs for `n` points and `k` clusters, with its restarts and its
    /// iteration limit.
    pub fn plan_for(&self, n: usize, k: usize) -> (KMeansAlgorithm, usize, usize) {
        match self.algorithm {
            KMeansAlgorithm::Auto if n.saturating_mul(k) > self.large_above => (
                KMeansAlgorithm::Lloyd,
                self.large_n_init,
                self.large_max_iter,
            ),
            KMeansAlgorithm::Auto | KMeansAlgorithm::Lloyd => {
                (KMeansAlgorithm::Lloyd, self.n_init, self.max_iter)
            }
            KMeansAlgorithm::MiniBatch => (KMeansAlgorithm::MiniBatch, self.minibatch_n_init, 0),
        }
    }
}

/// The kept k-means run.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansResult {
    /// Cluster of every point, in `0..k`.
    pub assignments: Vec<usize>,
    /// `[k, dim]` centroids, row-major.
    pub centroids: Vec<f32>,
    /// Sum of squared distances of the points to their centroid.
    pub inertia: f64,
    /// Lloyd iterations of the kept run.
    pub iterations: usize,
    /// Whether the kept run stopped because no assignment changed (always false for
    /// mini-batch, which runs a fixed number of steps).
    pub converged: bool,
    /// The algorithm that ran (`Lloyd` or `MiniBatch`).
    pub algorithm: KMeansAlgorithm,
}

/// Clusters the rows of `x` (`[n, dim]`) into `k` clusters; `rng` seeds every restart.
///
/// Errors if `k` is 0 or larger than `n`, or if `x` is not finite.
pub fn kmeans<B: Backend, R: Rng>(
    x: Tensor<B, 2>,
    k: usize,
    config: &KMeansConfig,
    rng: &mut R,
) -> crate::Result<KMeansResult> {
    config.check()?;
    check_finite("k-means input", &x)?;
    let n = x.dims()[0];
    if k == 0 || k > n {
        return Err(EvalError::InvalidConfig {
            field: "k (clusters)",
            value: k.to_string(),
            rule: "must be between 1 and the number of points",
        });
    }
    let point_sq = read_f32(squared_norms("k-means input", &x)?);
    let (algorithm, restarts, max_iter) = config.plan_for(n, k);
    if algorithm == KMeansAlgorithm::MiniBatch
        || config.engine.resolve::<B>(&x.device()) == Engine::Host
    {
        let dim = x.dims()[1];
        let data = read_f32(x);
        let points = crate::kmeans_host::Points::new(&data, dim);
        return Ok(crate::kmeans_host::kmeans(
            &points, k, algorithm, restarts, max_iter, config, rng,
        ));
    }
    let mut best: Option<KMeansResult> = None;
    for _ in 0..restarts {
        let run = lloyd(&x, &point_sq, k, max_iter, config, rng);
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    Ok(best.expect("n_init >= 1"))
}

/// Points by decreasing distance to their centroid (ties: lower index first): where empty
/// clusters move, in both engines.
pub(crate) fn farthest_first(dists: &[f32]) -> Vec<usize> {
    let mut far: Vec<usize> = (0..dists.len()).collect();
    far.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(a.cmp(&b)));
    far
}

fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}

/// Squared distances from every point to point `c` (host vector, clamped at 0).
fn distances_to_point<B: Backend>(x: &Tensor<B, 2>, point_sq: &[f32], c: usize) -> Vec<f32> {
    let [n, dim] = x.dims();
    // [n, 1]
    let dots = read_f32(
        x.clone()
            .matmul(x.clone().slice([c..c + 1, 0..dim]).transpose()),
    );
    (0..n)
        .map(|i| (point_sq[i] + point_sq[c] - 2.0 * dots[i]).max(0.0))
        .collect()
}

fn kmeans_plus_plus<B: Backend, R: Rng>(
    x: &Tensor<B, 2>,
    point_sq: &[f32],
    k: usize,
    rng: &mut R,
) -> Vec<usize> {
    let n = x.dims()[0];
    let mut chosen = vec![rng.random_range(0..n)];
    let mut nearest = distances_to_point(x, point_sq, chosen[0]);
    while chosen.len() < k {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let next = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut pick = None;
            for (i, &d) in nearest.iter().enumerate() {
                acc += d as f64;
                if d > 0.0 && acc > target {
                    pick = Some(i);
                    break;
                }
            }
            // Rounding can leave `target` just past the last positive weight.
            pick.unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).expect("total > 0"))
        } else {
            // Every point coincides with a centroid: any unused point will do.
            let unused: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
            unused[rng.random_range(0..unused.len())]
        };
        chosen.push(next);
        let to_next = distances_to_point(x, point_sq, next);
        for (d, e) in nearest.iter_mut().zip(to_next) {
            *d = d.min(e);
        }
    }
    chosen
}

/// Assigns every point to its nearest centroid: (assignment, squared distance).
fn assign<B: Backend>(
    x: &Tensor<B, 2>,
    point_sq: &[f32],
    centroids: &Tensor<B, 2>,
    chunk_size: usize,
) -> (Vec<usize>, Vec<f32>) {
    let [n, dim] = x.dims();
    let k = centroids.dims()[0];
    // [1, k]
    let centroid_sq = centroids.clone().powi_scalar(2).sum_dim(1).reshape([1, k]);
    let centroids_t = centroids.clone().transpose();
    let mut clusters = Vec::with_capacity(n);
    let mut dists = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + chunk_size).min(n);
        let chunk = x.clone().slice([start..end, 0..dim]);
        // [c, k]: |c|^2 - 2 x.c  (|x|^2 is the same for every centroid)
        let partial = centroid_sq.clone() - chunk.matmul(centroids_t.clone()).mul_scalar(2.0);
        let (values, indices) = partial.min_dim_with_indices(1);
        let values = read_f32(values);
        let indices: Vec<i64> = indices
            .into_data()
            .convert::<i64>()
            .into_vec()
            .expect("an int tensor converted to i64 reads back as i64");
        for (i, (v, c)) in values.into_iter().zip(indices).enumerate() {
            clusters.push(c as usize);
            dists.push((v + point_sq[start + i]).max(0.0));
        }
        start = end;
    }
    (clusters, dists)
}

fn lloyd<B: Backend, R: Rng>(
    x: &Tensor<B, 2>,
    point_sq: &[f32],
    k: usize,
    max_iter: usize,
    config: &KMeansConfig,
    rng: &mut R,
) -> KMeansResult {
    let device = x.device();
    let dim = x.dims()[1];
    let seeds = kmeans_plus_plus(x, point_sq, k, rng);
    let mut centroids = x.clone().select(0, index_tensor::<B>(&seeds, &device));
    let (mut clusters, mut dists) = assign(x, point_sq, &centroids, config.chunk_size);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        // Update: centroid = mean of its points; empty clusters move to far points.
        let mut counts = vec![0usize; k];
        for &c in &clusters {
            counts[c] += 1;
        }
        let sums = Tensor::<B, 2>::zeros([k, dim], &device).select_assign(
            0,
            index_tensor::<B>(&clusters, &device),
            x.clone(),
            IndexingUpdateOp::Add,
        );
        let divisors: Vec<f32> = counts.iter().map(|&c| c.max(1) as f32).collect();
        centroids = sums / Tensor::<B, 2>::from_data(TensorData::new(divisors, [k, 1]), &device);
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            for (&c, &p) in empty.iter().zip(&farthest_first(&dists)) {
                centroids =
                    centroids.slice_assign([c..c + 1, 0..dim], x.clone().slice([p..p + 1, 0..dim]));
            }
        }
        let (next, next_dists) = assign(x, point_sq, &centroids, config.chunk_size);
        let unchanged = next == clusters;
        clusters = next;
        dists = next_dists;
        if unchanged {
            converged = true;
            break;
        }
    }
    KMeansResult {
        inertia: dists.iter().map(|&d| d as f64).sum(),
        centroids: read_f32(centroids),
        assignments: clusters,
        iterations,
        converged,
        algorithm: KMeansAlgorithm::Lloyd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn tensor(rows: &[[f32; 2]]) -> Tensor<Flex, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    #[test]
    fn separates_well_separated_blobs() {
        let x = tensor(&[
            [0.0, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [10.0, 10.0],
            [10.1, 10.0],
            [10.0, 10.1],
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let r = kmeans(x, 2, &KMeansConfig::new(), &mut rng).unwrap();
        assert_eq!(r.assignments[0], r.assignments[1]);
        assert_eq!(r.assignments[0], r.assignments[2]);
        assert_eq!(r.assignments[3], r.assignments[4]);
        assert_eq!(r.assignments[3], r.assignments[5]);
        assert_ne!(r.assignments[0], r.assignments[3]);
        assert!(r.converged);
        // Hand-computed inertia: each blob's points lie at squared distances
        // 2/900, 5/900, 5/900 from the blob mean (0.0333, 0.0333): total 2 * 12/900.
        assert!((r.inertia - 24.0 / 900.0).abs() < 1e-4, "{}", r.inertia);
        // Centroids are the blob means.
        let mut cs: Vec<f32> = r.centroids.clone();
        cs.sort_by(f32::total_cmp);
        assert!((cs[0] - 0.1 / 3.0).abs() < 1e-5 && (cs[3] - 10.0 - 0.1 / 3.0).abs() < 1e-4);
    }

    #[test]
    fn same_seed_same_result() {
        let pts: Vec<[f32; 2]> = (0..40)
            .map(|i| [((i * 37) % 11) as f32, ((i * 17) % 7) as f32])
            .collect();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            kmeans(
                tensor(&pts),
                4,
                &KMeansConfig::new().with_n_init(2),
                &mut rng,
            )
            .unwrap()
        };
        assert_eq!(run(3), run(3));
    }

    #[test]
    fn k_equal_to_n_puts_every_point_alone() {
        let x = tensor(&[[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let r = kmeans(x, 3, &KMeansConfig::new(), &mut rng).unwrap();
        let mut a = r.assignments.clone();
        a.sort();
        assert_eq!(a, vec![0, 1, 2]);
        assert!(r.inertia.abs() < 1e-6);
    }

    #[test]
    fn duplicate_points_and_empty_clusters_still_give_k_valid_clusters() {
        // Only two distinct positions but k = 3: one cluster must stay empty or be relocated;
        // the result must still be a valid assignment with zero inertia.
        let x = tensor(&[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [4.0, 0.0], [4.0, 0.0]]);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let r = kmeans(x, 3, &KMeansConfig::new().with_n_init(3), &mut rng).unwrap();
        assert!(r.assignments.iter().all(|&c| c < 3));
        assert_eq!(r.assignments[0], r.assignments[1]);
        assert_ne!(r.assignments[0], r.assignments[3]);
        assert!(r.inertia.abs() < 1e-6, "{}", r.inertia);
    }

    #[test]
    fn rejects_too_many_clusters() {
        let x = tensor(&[[0.0, 0.0], [1.0, 0.0]]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(matches!(
            kmeans(x, 3, &KMeansConfig::new(), &mut rng),
            Err(EvalError::InvalidConfig { .. })
        ));
    }
}
