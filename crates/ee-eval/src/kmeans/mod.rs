//! k-means with k-means++ seeding and restarts: Lloyd on the burn backend
//! ([`tensor`]) or on the host ([`host`]), mini-batch on the host.
//!
//! [`KMeansConfig::engine`] picks where Lloyd runs (the host on CPU backends); mini-batch
//! always runs on the host. Both engines run the same Lloyd loop, here, over a small trait
//! (`LloydSteps`: assign, update, move an empty cluster); each engine's page says how it
//! computes them and seeds.
//!
//! - Seeding: k-means++ (Arthur and Vassilvitskii, 2007): the first centroid is a uniformly
//!   drawn point, each next one a point drawn with probability proportional to its squared
//!   distance to the nearest centroid chosen so far.
//! - Iterations stop when no assignment changes (`converged`) or after `max_iter`.
//! - An empty cluster is moved onto the point farthest from its own centroid.
//! - The run with the lowest inertia (sum of squared distances to the assigned centroid)
//!   over `n_init` restarts is kept; ties keep the earlier run.
//!
//! Files: this one holds the configuration, the result, the trait and the loops; [`tensor`]
//! and [`host`] implement the trait and use this module; it names them only where
//! [`kmeans`] picks one.

pub mod host;
pub mod tensor;

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};
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
    pub fn plan_for(&self, rows: usize, cluster_count: usize) -> (KMeansAlgorithm, usize, usize) {
        match self.algorithm {
            KMeansAlgorithm::Auto if rows.saturating_mul(cluster_count) > self.large_above => (
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
    let rows = x.dims()[0];
    if k == 0 || k > rows {
        return Err(EvalError::InvalidConfig {
            field: "k (clusters)",
            value: k.to_string(),
            rule: "must be between 1 and the number of points",
        });
    }
    let point_sq = read_f32(squared_norms("k-means input", &x)?);
    let (algorithm, restarts, max_iter) = config.plan_for(rows, k);
    if algorithm == KMeansAlgorithm::MiniBatch
        || config.engine.resolve::<B>(&x.device()) == Engine::Host
    {
        let dim = x.dims()[1];
        let data = read_f32(x);
        let points = host::Points::new(&data, dim);
        return Ok(host::kmeans(
            &points, k, algorithm, restarts, max_iter, config, rng,
        ));
    }
    let points = tensor::TensorPoints::new(x, point_sq, config.chunk_size);
    Ok(best_of(restarts, || {
        let centroids = points.seed(k, rng);
        lloyd(&points, centroids, k, max_iter)
    }))
}

/// The lowest-inertia result of `restarts` runs; ties keep the earlier run.
pub(crate) fn best_of(restarts: usize, mut run: impl FnMut() -> KMeansResult) -> KMeansResult {
    let mut best: Option<KMeansResult> = None;
    for _ in 0..restarts {
        let result = run();
        if best
            .as_ref()
            .is_none_or(|kept| result.inertia < kept.inertia)
        {
            best = Some(result);
        }
    }
    best.expect("restarts >= 1")
}

/// Points by decreasing distance to their centroid (ties: lower index first): where empty
/// clusters move, in both engines.
pub(crate) fn farthest_first(dists: &[f32]) -> Vec<usize> {
    let mut far: Vec<usize> = (0..dists.len()).collect();
    far.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(a.cmp(&b)));
    far
}

/// How many points each of the `k` clusters holds.
pub(crate) fn cluster_sizes(clusters: &[usize], cluster_count: usize) -> Vec<usize> {
    let mut counts = vec![0usize; cluster_count];
    for &cluster in clusters {
        counts[cluster] += 1;
    }
    counts
}

/// The sum of the points' squared distances to their centroid, in f64.
pub(crate) fn inertia(dists: &[f32]) -> f64 {
    dists.iter().map(|&d| d as f64).sum()
}

/// The steps of a Lloyd iteration, as an engine computes them; [`lloyd`] is the loop.
pub(crate) trait LloydSteps {
    /// The centroids as the engine holds them (`[k, dim]`).
    type Centroids;

    /// Nearest centroid of every point: (cluster, squared distance); ties to the lower
    /// cluster.
    fn assign(&self, centroids: &Self::Centroids) -> (Vec<usize>, Vec<f32>);

    /// Every cluster's centroid moved to the mean of its points (`counts` of them, at least
    /// one); the centroids of empty clusters are left for [`LloydSteps::move_to_point`].
    fn update(
        &self,
        centroids: Self::Centroids,
        clusters: &[usize],
        counts: &[usize],
    ) -> Self::Centroids;

    /// The centroid of `cluster` put onto point `point`.
    fn move_to_point(
        &self,
        centroids: Self::Centroids,
        cluster: usize,
        point: usize,
    ) -> Self::Centroids;

    /// The centroids as a row-major host buffer.
    fn centroids_to_host(&self, centroids: Self::Centroids) -> Vec<f32>;
}

/// Lloyd from `centroids` until no assignment changes or `max_iter` iterations; empty
/// clusters move onto the points farthest from their centroids.
pub(crate) fn lloyd<E: LloydSteps>(
    engine: &E,
    mut centroids: E::Centroids,
    k: usize,
    max_iter: usize,
) -> KMeansResult {
    let (mut clusters, mut dists) = engine.assign(&centroids);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        iterations += 1;
        // Update: centroid = mean of its points; empty clusters move to far points.
        let counts = cluster_sizes(&clusters, k);
        centroids = engine.update(centroids, &clusters, &counts);
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            for (&cluster, &point) in empty.iter().zip(&farthest_first(&dists)) {
                centroids = engine.move_to_point(centroids, cluster, point);
            }
        }
        let (next, next_dists) = engine.assign(&centroids);
        let unchanged = next == clusters;
        clusters = next;
        dists = next_dists;
        if unchanged {
            converged = true;
            break;
        }
    }
    KMeansResult {
        inertia: inertia(&dists),
        centroids: engine.centroids_to_host(centroids),
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
    use burn::tensor::TensorData;
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
