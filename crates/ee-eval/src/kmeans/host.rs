//! The host engine of k-means: k-means++ seeding with batched updates, Lloyd and mini-batch
//! iterations, all on tiled f32 GEMMs. The Lloyd loop itself is
//! [`crate::kmeans`](mod@crate::kmeans)'s.
//!
//! **Seeding** draws exactly from the k-means++ distribution (each next centroid with
//! probability proportional to its squared distance to the nearest centroid so far) without
//! a pass over the points per centroid. Each point's distance is kept *stale*: it ignores the
//! centroids chosen since the last update (at most [`SEED_BATCH`]). A candidate is drawn from
//! the stale weights `w'`, its true weight `w <= w'` is computed against those few pending
//! centroids, and it is accepted with probability `w / w'` (rejection sampling: accepted
//! draws follow `w` exactly). Every [`SEED_BATCH`] centroids, one GEMM brings all distances
//! up to date. At k = 11,257 on 60,502 points that is 44 GEMMs instead of 11,257 passes.
//!
//! **Lloyd**: assignment by one GEMM per tile of points against all centroids (argmin, ties to
//! the lower centroid), centroids as f64 means, empty clusters moved onto the points farthest
//! from their centroid, until no assignment changes or `max_iter`.
//!
//! **Mini-batch** (Sculley, 2010): each step assigns `minibatch_size` points drawn without
//! replacement and moves every centroid to the running mean of its seed and all points it was
//! given so far; `minibatch_epochs * n / minibatch_size` steps, then one full assignment gives the
//! clusters and the inertia.

use rand::Rng;
use rayon::prelude::*;

use super::{
    best_of, cluster_sizes, inertia, lloyd, KMeansAlgorithm, KMeansConfig, KMeansResult, LloydSteps,
};
use crate::host::{dot_tile, squared_norms};

/// Centroids chosen between two full updates of the seeding distances.
pub const SEED_BATCH: usize = 256;
/// Points per assignment tile.
const ROWS: usize = 256;
/// Centroids per assignment tile.
const COLS: usize = 1024;

/// The points, with their f32 squared norms.
pub(crate) struct Points<'a> {
    data: &'a [f32],
    n: usize,
    dim: usize,
    sq: Vec<f32>,
}

impl<'a> Points<'a> {
    pub(crate) fn new(data: &'a [f32], dim: usize) -> Self {
        Self {
            data,
            n: data.len() / dim,
            dim,
            sq: squared_norms_f32(data, dim),
        }
    }

    fn row(&self, index: usize) -> &[f32] {
        &self.data[index * self.dim..(index + 1) * self.dim]
    }

    fn gather(&self, rows: &[usize]) -> Vec<f32> {
        rows.iter().flat_map(|&i| self.row(i)).copied().collect()
    }

    /// `[k, dim]` f64 sums of the points of every cluster.
    fn cluster_sums(&self, clusters: &[usize], cluster_count: usize) -> Vec<f64> {
        let dim = self.dim;
        let mut sums = vec![0f64; cluster_count * dim];
        for (i, &c) in clusters.iter().enumerate() {
            for (sum, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(self.row(i)) {
                *sum += v as f64;
            }
        }
        sums
    }
}

/// [`squared_norms`] rounded to f32.
fn squared_norms_f32(data: &[f32], dim: usize) -> Vec<f32> {
    squared_norms(data, dim)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// Runs `algorithm` `restarts` times (Lloyd: at most `max_iter` iterations) and keeps the
/// lowest inertia.
pub(crate) fn kmeans<R: Rng>(
    points: &Points<'_>,
    k: usize,
    algorithm: KMeansAlgorithm,
    restarts: usize,
    max_iter: usize,
    config: &KMeansConfig,
    rng: &mut R,
) -> KMeansResult {
    best_of(restarts, || {
        let seeds = seed(points, k, rng);
        let centroids = points.gather(&seeds);
        match algorithm {
            KMeansAlgorithm::MiniBatch => minibatch(points, centroids, k, config, rng),
            _ => lloyd(points, centroids, k, max_iter),
        }
    })
}

/// Lowers `nearest[i]` to the squared distance from point `i` to any of `centroids` (rows
/// of `points`); chosen points get exactly 0.
fn update_nearest(points: &Points<'_>, centroids: &[usize], nearest: &mut [f32]) {
    let c_data = points.gather(centroids);
    let c_sq: Vec<f32> = centroids.iter().map(|&c| points.sq[c]).collect();
    let centroid_values = centroids.len();
    nearest
        .par_chunks_mut(ROWS)
        .enumerate()
        .for_each_init(Vec::new, |tile, (t, out)| {
            let start = t * ROWS;
            tile.resize(out.len() * centroid_values, 0.0);
            let rows = &points.data[start * points.dim..(start + out.len()) * points.dim];
            dot_tile(tile, rows, out.len(), &c_data, centroid_values, points.dim);
            for (r, slot) in out.iter_mut().enumerate() {
                let x_sq = points.sq[start + r];
                for (c, &dot) in tile[r * centroid_values..(r + 1) * centroid_values]
                    .iter()
                    .enumerate()
                {
                    let distance = ((x_sq + c_sq[c]) - 2.0 * dot).max(0.0);
                    if distance < *slot {
                        *slot = distance;
                    }
                }
            }
        });
    for &c in centroids {
        nearest[c] = 0.0;
    }
}

fn cumulative(weights: &[f32]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|&w| {
            acc += w as f64;
            acc
        })
        .collect()
}

/// k-means++ seeds: `k` distinct point indices (see the module docs).
pub(crate) fn seed<R: Rng>(points: &Points<'_>, cluster_count: usize, rng: &mut R) -> Vec<usize> {
    let rows = points.n;
    let first = rng.random_range(0..rows);
    let mut chosen = vec![first];
    let mut is_chosen = vec![false; rows];
    is_chosen[first] = true;
    let mut nearest = vec![f32::INFINITY; rows];
    update_nearest(points, &chosen, &mut nearest);
    let mut sums = cumulative(&nearest);
    let mut pending: Vec<usize> = Vec::new();
    let mut rejected = 0usize;
    while chosen.len() < cluster_count {
        let total = *sums.last().expect("n >= 1");
        if total <= 0.0 && pending.is_empty() {
            // Every point coincides with a centroid: any unused point will do.
            let unused: Vec<usize> = (0..rows).filter(|&i| !is_chosen[i]).collect();
            let pick = unused[rng.random_range(0..unused.len())];
            is_chosen[pick] = true;
            chosen.push(pick);
            pending.push(pick);
        } else if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let i = sums.partition_point(|&s| s <= target).min(rows - 1);
            let stale = nearest[i];
            if stale > 0.0 && !is_chosen[i] {
                let x_sq = points.sq[i];
                let fresh = pending.iter().fold(stale, |best, &c| {
                    let dot: f32 = points
                        .row(i)
                        .iter()
                        .zip(points.row(c))
                        .map(|(a, b)| a * b)
                        .sum();
                    best.min(((x_sq + points.sq[c]) - 2.0 * dot).max(0.0))
                });
                if fresh >= stale || rng.random::<f64>() * (stale as f64) < fresh as f64 {
                    is_chosen[i] = true;
                    chosen.push(i);
                    pending.push(i);
                } else {
                    rejected += 1;
                }
            }
        }
        // Bring the distances up to date after a batch, or when stale weights keep
        // proposing points the pending centroids already cover.
        let stale_too_long = rejected > 32 * (pending.len() + 1);
        if !pending.is_empty() && (pending.len() >= SEED_BATCH || stale_too_long || total <= 0.0) {
            update_nearest(points, &pending, &mut nearest);
            sums = cumulative(&nearest);
            pending.clear();
            rejected = 0;
        }
    }
    chosen
}

/// Nearest centroid of every point: (cluster, squared distance); ties to the lower cluster.
fn assign(points: &Points<'_>, centroids: &[f32], cluster_count: usize) -> (Vec<usize>, Vec<f32>) {
    let dim = points.dim;
    let c_sq = squared_norms_f32(centroids, dim);
    let mut clusters = vec![0usize; points.n];
    let mut dists = vec![0f32; points.n];
    clusters
        .par_chunks_mut(ROWS)
        .zip(dists.par_chunks_mut(ROWS))
        .enumerate()
        .for_each_init(Vec::new, |tile, (t, (cluster_out, dist_out))| {
            let start = t * ROWS;
            let rows = cluster_out.len();
            let block = &points.data[start * dim..(start + rows) * dim];
            let mut best = vec![(f32::INFINITY, 0usize); rows];
            let mut c0 = 0;
            while c0 < cluster_count {
                let c1 = (c0 + COLS).min(cluster_count);
                let width = c1 - c0;
                tile.resize(rows * width, 0.0);
                dot_tile(
                    tile,
                    block,
                    rows,
                    &centroids[c0 * dim..c1 * dim],
                    width,
                    dim,
                );
                for (r, slot) in best.iter_mut().enumerate() {
                    for (c, &dot) in tile[r * width..(r + 1) * width].iter().enumerate() {
                        // |c|^2 - 2 x.c: |x|^2 is the same for every centroid
                        let partial = c_sq[c0 + c] - 2.0 * dot;
                        if partial < slot.0 {
                            *slot = (partial, c0 + c);
                        }
                    }
                }
                c0 = c1;
            }
            for (r, &(partial, cluster)) in best.iter().enumerate() {
                cluster_out[r] = cluster;
                dist_out[r] = (partial + points.sq[start + r]).max(0.0);
            }
        });
    (clusters, dists)
}

impl LloydSteps for Points<'_> {
    type Centroids = Vec<f32>;

    fn assign(&self, centroids: &Vec<f32>) -> (Vec<usize>, Vec<f32>) {
        assign(self, centroids, centroids.len() / self.dim)
    }

    fn update(&self, mut centroids: Vec<f32>, clusters: &[usize], counts: &[usize]) -> Vec<f32> {
        let (k, dim) = (counts.len(), self.dim);
        let sums = self.cluster_sums(clusters, k);
        for c in 0..k {
            if counts[c] > 0 {
                for (dst, &sum) in centroids[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                {
                    *dst = (sum / counts[c] as f64) as f32;
                }
            }
        }
        centroids
    }

    fn move_to_point(&self, mut centroids: Vec<f32>, cluster: usize, point: usize) -> Vec<f32> {
        let dim = self.dim;
        centroids[cluster * dim..(cluster + 1) * dim].copy_from_slice(self.row(point));
        centroids
    }

    fn centroids_to_host(&self, centroids: Vec<f32>) -> Vec<f32> {
        centroids
    }
}

fn minibatch<R: Rng>(
    points: &Points<'_>,
    mut centroids: Vec<f32>,
    k: usize,
    config: &KMeansConfig,
    rng: &mut R,
) -> KMeansResult {
    let (n, dim) = (points.n, points.dim);
    let batch = config.minibatch_size.min(n);
    let steps = (config.minibatch_epochs * n).div_ceil(batch).max(1);
    // Each seed counts as one point of its centroid, so a centroid stays anchored where
    // k-means++ put it instead of jumping to the mean of its first batch.
    let mut counts = vec![1f64; k];
    for _ in 0..steps {
        let mut rows: Vec<usize> = rand::seq::index::sample(rng, n, batch).into_vec();
        rows.sort_unstable();
        let data = points.gather(&rows);
        let sample = Points {
            data: &data,
            n: batch,
            dim,
            sq: rows.iter().map(|&i| points.sq[i]).collect(),
        };
        let (clusters, _) = assign(&sample, &centroids, k);
        let sums = sample.cluster_sums(&clusters, k);
        let batch_counts = cluster_sizes(&clusters, k);
        for c in 0..k {
            let given = batch_counts[c];
            if given == 0 {
                continue;
            }
            let old = counts[c];
            counts[c] += given as f64;
            // running mean of every point the centroid was given: (old * mean + sum) / total
            for (dst, &sum) in centroids[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&sums[c * dim..(c + 1) * dim])
            {
                *dst = ((*dst as f64 * old + sum) / counts[c]) as f32;
            }
        }
    }
    let (clusters, dists) = assign(points, &centroids, k);
    KMeansResult {
        inertia: inertia(&dists),
        centroids,
        assignments: clusters,
        iterations: steps,
        converged: false,
        algorithm: KMeansAlgorithm::MiniBatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Points on a line at 0, 1, ..., n-1 (dim 1).
    fn line(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    #[test]
    fn seeds_are_distinct_points() {
        let data = line(50);
        let points = Points::new(&data, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seeds = seed(&points, 50, &mut rng);
        seeds.sort_unstable();
        assert_eq!(seeds, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn batched_seeding_follows_the_k_means_plus_plus_distribution() {
        // Points 0, 1, 10, 11 (dim 1; indices 0..4). Given seeds 0 then 10, the third is drawn with weights
        // min(d^2) = 1 (point 1) and 1 (point 11): probability 1/2 each. Point 11's stale
        // weight (121, from seed 0 alone) must be corrected by the pending seed 10.
        let data = [0.0f32, 1.0, 10.0, 11.0];
        let points = Points::new(&data, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut given, mut picked_one, mut second_is_ten, mut starts) = (0, 0, 0, 0);
        while given < 1_000 {
            let s = seed(&points, 3, &mut rng);
            if s[0] != 0 {
                continue;
            }
            starts += 1;
            if s[1] == 2 {
                second_is_ten += 1;
                given += 1;
                picked_one += usize::from(s[2] == 1);
            }
        }
        // 1,000 draws: standard error 0.016. Stale weights alone would give 1/122.
        let p = picked_one as f64 / given as f64;
        assert!((p - 0.5).abs() < 0.06, "{p}");
        // Second seed: weights 1, 100, 121 -> 10 with probability 100 / 222.
        let q = second_is_ten as f64 / starts as f64;
        assert!((q - 100.0 / 222.0).abs() < 0.06, "{q}");
    }

    #[test]
    fn lloyd_and_minibatch_find_separated_blobs() {
        // Three tight blobs of 40 points in 2-D.
        let mut data = Vec::new();
        for (cx, cy) in [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0)] {
            for i in 0..40 {
                data.push(cx + (i % 7) as f32 * 0.01);
                data.push(cy + (i % 5) as f32 * 0.01);
            }
        }
        let points = Points::new(&data, 2);
        for algorithm in [KMeansAlgorithm::Lloyd, KMeansAlgorithm::MiniBatch] {
            let config = KMeansConfig::new().with_minibatch_size(16);
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let r = kmeans(&points, 3, algorithm, 2, 100, &config, &mut rng);
            for blob in 0..3 {
                let a = &r.assignments[blob * 40..(blob + 1) * 40];
                assert!(a.iter().all(|&c| c == a[0]), "{algorithm:?}: {a:?}");
            }
            assert_ne!(r.assignments[0], r.assignments[40]);
            assert_ne!(r.assignments[40], r.assignments[80]);
            assert_eq!(r.algorithm, algorithm);
        }
    }
}
