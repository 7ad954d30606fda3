//! Exact k nearest neighbours by squared euclidean distance, in chunks of queries.
//!
//! ```text
//! screening (f32, dot products on the backend):  d~(q, g) = |q|^2 + |g|^2 - 2 q.g
//! ranking, on the host (f64):        d(q, g)  = sum_i (q_i - g_i)^2, summed in index order
//! ```
//!
//! The `[chunk, gallery]` block of dot products is computed on the burn backend (one matmul
//! per chunk), so memory stays bounded by `chunk_size * gallery * 4` bytes whatever the set
//! size. Each block is read back; for every query (in parallel on the host) the norms are
//! added in the reference's order and the k-th smallest screening distance `t` is found by
//! an O(gallery) selection.
//! Every item with `d~ <= t + 2e`, where `e` bounds the f32 rounding error of `d~`, is then
//! re-scored with the f64 distance `d` and the k smallest kept, ordered by `(d, index)`.
//!
//! Why the second step: a matmul's rounding depends on its shape (the gemm path taken for
//! 1, 3 or 512 rows differs in the last bits), so f32 distances alone would make the
//! neighbours of near-tied items depend on the chunk size and the backend. The f64 ranking
//! is a fixed function of the two embeddings: results are identical for every chunk size
//! and equal a brute force computed in f64, while the screening keeps the cost to one matmul
//! plus O(k * dim) host work per query. The bound `e` is
//! `4 (dim + 4) u (|q|^2 + max_g |g|^2)` with `u` the matmul's unit roundoff (2^-24 for f32;
//! raise [`KnnConfig::matmul_unit_roundoff`] for backends whose f32 matmul runs in TF32).
//!
//! Ties between equal distances are broken by the lower gallery index. (burn 0.21's
//! `sort`/`topk_with_indices` are documented unstable, the flex backend has no `argtopk`, and
//! CubeCL backends implement `sort` by reading the tensor back to the host anyway.)
//!
//! Two engines compute the screening ([`Engine`]): this one, one matmul per chunk on the
//! burn backend (the route for GPUs), and [`crate::knn_host`], a tiled host GEMM fused with
//! the selection that also halves the work in self mode (the route on CPU backends). The
//! candidates and the f64 ranking are the same, so are the neighbours.
//!
//! In self mode (one set against itself) a query never retrieves itself: its own index is
//! skipped (only the diagonal; exact duplicates elsewhere in the set are kept).

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use crate::error::EvalError;
use crate::input::read_f32;
use crate::knn_host::HostSet;

/// Where the k-NN and k-means dot products are computed.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Engine {
    /// The host engine on CPU backends (flex, ndarray, LibTorch's CPU), the backend engine
    /// on the others (GPUs).
    Auto,
    /// Tiled f32 GEMM on the host, fused with the selection ([`crate::knn_host`],
    /// [`crate::kmeans_host`]): the embeddings are read back once.
    Host,
    /// One matmul per chunk of queries on the burn backend, each block read back.
    Backend,
}

impl Engine {
    /// The engine that runs for backend `B` on `device`.
    pub fn resolve<B: Backend>(self, device: &B::Device) -> Engine {
        match self {
            Engine::Auto if runs_on_host::<B>(device) => Engine::Host,
            Engine::Auto => Engine::Backend,
            other => other,
        }
    }

    /// `"host"` or `"backend"` (or `"auto"`), as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Host => "host",
            Engine::Backend => "backend",
        }
    }
}

/// Whether `B` computes on the CPU, judged by its name (`flex`, `ndarray`,
/// `libtorch<cpu>`, any of them inside `autodiff<..>` or `fusion<..>`).
pub fn runs_on_host<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device).to_ascii_lowercase();
    ["flex", "ndarray", "cpu"].iter().any(|n| name.contains(n))
}

/// How the k-NN search is computed and chunked.
#[derive(Config, Debug, PartialEq)]
pub struct KnnConfig {
    /// Host GEMM or backend matmul; both give the same neighbours.
    #[config(default = "Engine::Auto")]
    pub engine: Engine,
    /// Queries per chunk of the backend engine: the backend holds a `[chunk_size, gallery]` block of distances
    /// (512 x 60,502 x 4 bytes = 124 MB at SOP scale).
    #[config(default = 512)]
    pub chunk_size: usize,
    /// Unit roundoff of the backend's f32 matmul, used to bound the screening error:
    /// 2^-24 for true f32; 2^-11 for TF32.
    #[config(default = 5.960464477539063e-8)]
    pub matmul_unit_roundoff: f64,
    /// Host engine, self mode: the most memory (bytes) the candidate lists may take for the
    /// scan that serves rows and columns of each tile (half the GEMM); above it the scan
    /// serves rows only. About `n * (2k + 32) * 8` bytes are needed: 512 MiB allows SOP's
    /// 60,502 queries up to k = 538.
    #[config(default = 536_870_912)]
    pub host_symmetric_memory: usize,
}

impl KnnConfig {
    /// Checks the configuration.
    pub fn check(&self) -> crate::Result<()> {
        if self.chunk_size == 0 {
            return Err(EvalError::InvalidConfig {
                field: "chunk_size",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
        if !(self.matmul_unit_roundoff > 0.0 && self.matmul_unit_roundoff < 0.01) {
            return Err(EvalError::InvalidConfig {
                field: "matmul_unit_roundoff",
                value: self.matmul_unit_roundoff.to_string(),
                rule: "must be in (0, 0.01)",
            });
        }
        Ok(())
    }
}

/// One retrieved gallery item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Index into the gallery.
    pub index: u32,
    /// Squared euclidean distance to the query, `sum_i (q_i - g_i)^2` in f64.
    pub distance: f64,
}

/// The k nearest gallery items of every query, nearest first, ties by lower index.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    k: usize,
    neighbours: Vec<Neighbour>,
}

impl Neighbours {
    /// Number of neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.neighbours.len().checked_div(self.k).unwrap_or(0)
    }

    /// The neighbours of query `q`, nearest first.
    pub fn of(&self, q: usize) -> &[Neighbour] {
        &self.neighbours[q * self.k..(q + 1) * self.k]
    }

    /// The gallery indices of query `q`'s neighbours, nearest first.
    pub fn indices_of(&self, q: usize) -> Vec<usize> {
        self.of(q).iter().map(|n| n.index as usize).collect()
    }
}

/// The k nearest neighbours of every item of `embeddings` (`[n, dim]`) among the others.
///
/// Errors if `k` exceeds `n - 1`, if `k` is 0, or if an embedding is not finite.
pub fn knn_self<B: Backend>(
    embeddings: Tensor<B, 2>,
    k: usize,
    config: &KnnConfig,
) -> crate::Result<Neighbours> {
    config.check()?;
    crate::input::check_finite("embeddings", &embeddings)?;
    let n = embeddings.dims()[0];
    check_k(k, n.saturating_sub(1))?;
    let rows = scan(
        embeddings.clone(),
        embeddings,
        true,
        config,
        Ranking::Exact,
        &|_| k,
        &|_, found: &[Neighbour]| found.to_vec(),
    )?;
    Ok(Neighbours {
        k,
        neighbours: rows.into_iter().flatten().collect(),
    })
}

/// The k nearest gallery items (`[m, dim]`) of every query (`[n, dim]`); no item is skipped.
pub fn knn_query_gallery<B: Backend>(
    queries: Tensor<B, 2>,
    gallery: Tensor<B, 2>,
    k: usize,
    config: &KnnConfig,
) -> crate::Result<Neighbours> {
    config.check()?;
    crate::input::check_finite("queries", &queries)?;
    crate::input::check_finite("gallery", &gallery)?;
    check_dims(&queries, &gallery)?;
    check_k(k, gallery.dims()[0])?;
    let rows = scan(
        queries,
        gallery,
        false,
        config,
        Ranking::Exact,
        &|_| k,
        &|_, found: &[Neighbour]| found.to_vec(),
    )?;
    Ok(Neighbours {
        k,
        neighbours: rows.into_iter().flatten().collect(),
    })
}

pub(crate) fn check_k(k: usize, gallery: usize) -> crate::Result<()> {
    if k == 0 {
        return Err(EvalError::InvalidConfig {
            field: "k",
            value: "0".into(),
            rule: "must be at least 1",
        });
    }
    if k > gallery {
        return Err(EvalError::KTooLarge { k, gallery });
    }
    Ok(())
}

pub(crate) fn check_dims<B: Backend>(
    queries: &Tensor<B, 2>,
    gallery: &Tensor<B, 2>,
) -> crate::Result<()> {
    let (q, g) = (queries.dims()[1], gallery.dims()[1]);
    if q != g {
        return Err(EvalError::DimensionMismatch {
            queries: q,
            gallery: g,
        });
    }
    Ok(())
}

/// Runs the chunked search and hands every query's sorted neighbours to `visit`.
///
/// `k_of(q)` says how many neighbours query `q` needs (at most the gallery size, minus one in
/// self mode); `visit(q, neighbours)` turns them into the per-query result. Inputs must have
/// been checked finite.
pub(crate) fn scan<B, T, K, V>(
    queries: Tensor<B, 2>,
    gallery: Tensor<B, 2>,
    exclude_self: bool,
    config: &KnnConfig,
    ranking: Ranking<'_>,
    k_of: &K,
    visit: &V,
) -> crate::Result<Vec<T>>
where
    B: Backend,
    T: Send,
    K: Fn(usize) -> usize + Sync,
    V: Fn(usize, &[Neighbour]) -> T + Sync,
{
    let [n_queries, dim] = queries.dims();
    let n_gallery = gallery.dims()[0];
    let error_factor = 4.0 * (dim as f64 + 4.0) * config.matmul_unit_roundoff;
    if config.engine.resolve::<B>(&queries.device()) == Engine::Host {
        let query_host = read_f32(queries);
        let gallery_host = (!exclude_self).then(|| read_f32(gallery));
        fn host<'a>(name: &'static str, data: &'a [f32], dim: usize) -> HostSet<'a> {
            HostSet {
                name,
                rows: data.len() / dim.max(1),
                data,
            }
        }
        let (query_set, gallery_set) = match &gallery_host {
            Some(g) => (
                host("queries", &query_host, dim),
                Some(host("gallery", g, dim)),
            ),
            None => (host("embeddings", &query_host, dim), None),
        };
        return crate::knn_host::scan(
            query_set,
            gallery_set,
            dim,
            error_factor,
            config.host_symmetric_memory,
            ranking,
            k_of,
            visit,
        );
    }
    let (query_set, gallery_set) = if exclude_self {
        ("embeddings", "embeddings")
    } else {
        ("queries", "gallery")
    };
    // [1, m]
    let gallery_sq = read_f32(crate::input::squared_norms(gallery_set, &gallery)?);
    let max_gallery_sq = gallery_sq.iter().fold(0.0f64, |m, &v| m.max(v as f64));
    let query_host = read_f32(queries.clone());
    let gallery_host = if exclude_self {
        None
    } else {
        crate::input::squared_norms(query_set, &queries)?;
        Some(read_f32(gallery.clone()))
    };
    let gallery_host: &[f32] = gallery_host.as_deref().unwrap_or(&query_host);
    // [dim, m]
    let gallery_t = gallery.transpose();
    let mut out = Vec::with_capacity(n_queries);
    let mut start = 0;
    while start < n_queries {
        let end = (start + config.chunk_size).min(n_queries);
        let chunk = queries.clone().slice([start..end, 0..dim]);
        // [c]
        let chunk_sq = read_f32(chunk.clone().powi_scalar(2).sum_dim(1));
        // [c, m]: only the dot products come back; the norms are added on the host while
        // building each row, saving three passes over the block on the backend.
        let dots = read_f32(chunk.matmul(gallery_t.clone()));
        let results: Vec<T> = dots
            .par_chunks(n_gallery)
            .enumerate()
            .map_init(
                || (Vec::new(), Default::default(), Vec::new()),
                |(row, scratch, found): &mut (Vec<f32>, SelectScratch, Vec<Neighbour>),
                 (i, dot_row)| {
                    let q = start + i;
                    // |q|^2 + |g|^2 - 2 q.g, in the reference's order of operations (f32)
                    row.clear();
                    row.extend(
                        dot_row
                            .iter()
                            .zip(&gallery_sq)
                            .map(|(&dot, &g_sq)| (chunk_sq[i] + g_sq) - 2.0 * dot),
                    );
                    let query = &query_host[q * dim..(q + 1) * dim];
                    let query_sq: f64 = query.iter().map(|&v| v as f64 * v as f64).sum();
                    let slack = 2.0 * error_factor * (query_sq + max_gallery_sq);
                    let gallery_row = |j: usize| &gallery_host[j * dim..(j + 1) * dim];
                    let exact = |rows: &[u32], out: &mut Vec<f64>| {
                        squared_distances_to(query, rows, &gallery_row, out)
                    };
                    let skip = exclude_self.then_some(q);
                    select_nearest(
                        row,
                        q,
                        skip,
                        k_of(q),
                        slack,
                        ranking,
                        &exact,
                        scratch,
                        found,
                    );
                    visit(q, found)
                },
            )
            .collect();
        out.extend(results);
        start = end;
    }
    Ok(out)
}

/// `sum_i (a_i - b_i)^2` in f64, summed in index order: the distance that ranks neighbours.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// [`squared_distance`] from `query` to several rows at once, bit for bit the same values:
/// each of the 8 lanes sums its own row in index order, and the independent lanes keep the
/// adds in flight (one row's sum is a chain of dependent adds, bound by their latency).
pub(crate) fn squared_distances_to<'a>(
    query: &[f32],
    rows: &[u32],
    row: &dyn Fn(usize) -> &'a [f32],
    out: &mut Vec<f64>,
) {
    const LANES: usize = 8;
    out.clear();
    let mut groups = rows.chunks_exact(LANES);
    for group in &mut groups {
        // Sliced to the query's length, so the loop below needs no bounds checks.
        let lanes: [&[f32]; LANES] =
            std::array::from_fn(|l| &row(group[l] as usize)[..query.len()]);
        let mut acc = [0f64; LANES];
        for (i, &q) in query.iter().enumerate() {
            let q = q as f64;
            for l in 0..LANES {
                let d = q - lanes[l][i] as f64;
                acc[l] += d * d;
            }
        }
        out.extend_from_slice(&acc);
    }
    out.extend(
        groups
            .remainder()
            .iter()
            .map(|&j| squared_distance(query, row(j as usize))),
    );
}

/// What a caller needs of each query's neighbours.
#[derive(Clone, Copy)]
pub(crate) enum Ranking<'a> {
    /// The k nearest by `(f64 distance, index)`, each with its f64 distance.
    Exact,
    /// Only the sequence of `relevant(query, item)` along the exact ranking, which is all
    /// Recall@K and MAP@R read. Near-tied items are re-scored in f64 only where their order
    /// could change that sequence; the others keep their screening order and a NaN distance.
    Relevance(&'a (dyn Fn(usize, usize) -> bool + Sync)),
}

/// Ranks a query's `candidates` (screening distance, gallery index): every item whose
/// screening distance is within `slack` of the k-th smallest, each within `slack / 2` of its
/// f64 distance. `exact(rows, out)` puts the f64 distances of `rows` into `out`.
///
/// [`Ranking::Exact`] keeps the k smallest by `(f64 distance, index)`. [`Ranking::Relevance`]
/// sorts by screening distance and splits the list into runs of items less than `slack`
/// apart: items in different runs have the order of their screening distances, since
/// their f64 distances are separated too. A run is re-scored and sorted by `(f64 distance,
/// index)` only when its items differ in relevance; in a run of equally relevant items
/// (including where the k-th place cuts it) any order gives the same relevance sequence.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rank_candidates(
    query: usize,
    candidates: &mut [(f32, u32)],
    k: usize,
    slack: f64,
    ranking: Ranking<'_>,
    exact: &dyn Fn(&[u32], &mut Vec<f64>),
    scratch: &mut (Vec<u32>, Vec<f64>),
    found: &mut Vec<Neighbour>,
) {
    found.clear();
    if k == 0 {
        return;
    }
    let (rows, distances) = scratch;
    let relevant = match ranking {
        Ranking::Exact => {
            rows.clear();
            rows.extend(candidates.iter().map(|c| c.1));
            exact(rows, distances);
            found.extend(
                rows.iter()
                    .zip(distances.iter())
                    .map(|(&index, &distance)| Neighbour { index, distance }),
            );
            keep_nearest(found, k);
            return;
        }
        Ranking::Relevance(relevant) => relevant,
    };
    candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut start = 0;
    while start < candidates.len() && found.len() < k {
        let mut end = start + 1;
        while end < candidates.len()
            && candidates[end].0 as f64 - candidates[end - 1].0 as f64 <= slack
        {
            end += 1;
        }
        let run = &candidates[start..end];
        let first = relevant(query, run[0].1 as usize);
        if run[1..]
            .iter()
            .all(|c| relevant(query, c.1 as usize) == first)
        {
            found.extend(run.iter().map(|c| Neighbour {
                index: c.1,
                distance: f64::NAN,
            }));
        } else {
            rows.clear();
            rows.extend(run.iter().map(|c| c.1));
            exact(rows, distances);
            let from = found.len();
            found.extend(
                rows.iter()
                    .zip(distances.iter())
                    .map(|(&index, &distance)| Neighbour { index, distance }),
            );
            found[from..].sort_unstable_by(|a, b| {
                a.distance
                    .total_cmp(&b.distance)
                    .then(a.index.cmp(&b.index))
            });
        }
        start = end;
    }
    found.truncate(k);
}

/// Puts into `found` the `k` nearest entries of `row` (skipping index `skip`), ranked by
/// [`rank_candidates`]. `row` holds screening distances within `slack / 2` of the f64
/// distances `exact` gives; `scratch` is reused between calls.
#[allow(clippy::too_many_arguments)]
pub(crate) fn select_nearest(
    row: &[f32],
    query: usize,
    skip: Option<usize>,
    k: usize,
    slack: f64,
    ranking: Ranking<'_>,
    exact: &dyn Fn(&[u32], &mut Vec<f64>),
    scratch: &mut SelectScratch,
    found: &mut Vec<Neighbour>,
) {
    found.clear();
    if k == 0 {
        return;
    }
    let (values, candidates, rank_scratch) = scratch;
    values.clear();
    match skip {
        Some(s) => {
            values.extend_from_slice(&row[..s]);
            values.extend_from_slice(&row[s + 1..]);
        }
        None => values.extend_from_slice(row),
    }
    debug_assert!(k <= values.len());
    let (_, &mut kth, _) = values.select_nth_unstable_by(k - 1, f32::total_cmp);
    let limit = kth as f64 + slack;
    candidates.clear();
    candidates.extend(
        row.iter()
            .enumerate()
            .filter(|&(j, &d)| (d as f64) <= limit && Some(j) != skip)
            .map(|(j, &d)| (d, j as u32)),
    );
    rank_candidates(
        query,
        candidates,
        k,
        slack,
        ranking,
        exact,
        rank_scratch,
        found,
    );
}

/// The buffers [`select_nearest`] reuses between queries.
pub(crate) type SelectScratch = (Vec<f32>, Vec<(f32, u32)>, (Vec<u32>, Vec<f64>));

/// Keeps the `k` nearest of `found`, sorted by `(distance, index)`: the tie rule.
pub(crate) fn keep_nearest(found: &mut Vec<Neighbour>, k: usize) {
    let order = |a: &Neighbour, b: &Neighbour| {
        a.distance
            .total_cmp(&b.distance)
            .then(a.index.cmp(&b.index))
    };
    if found.len() > k {
        found.select_nth_unstable_by(k - 1, order);
        found.truncate(k);
    }
    found.sort_unstable_by(order);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batched `exact` from a per-item distance.
    fn exact_from(f: impl Fn(usize) -> f64) -> impl Fn(&[u32], &mut Vec<f64>) {
        move |rows, out| {
            out.clear();
            out.extend(rows.iter().map(|&j| f(j as usize)));
        }
    }

    /// Selection where the screening distances are exact (slack 0).
    fn select(row: &[f32], skip: Option<usize>, k: usize) -> Vec<(u32, f64)> {
        let mut found = Vec::new();
        let exact = exact_from(|j| row[j] as f64);
        let scratch = &mut Default::default();
        select_nearest(
            row,
            0,
            skip,
            k,
            0.0,
            Ranking::Exact,
            &exact,
            scratch,
            &mut found,
        );
        found.iter().map(|n| (n.index, n.distance)).collect()
    }

    #[test]
    fn selection_orders_by_distance_then_index() {
        let row = [3.0, 1.0, 2.0, 1.0, 0.5, 2.0];
        assert_eq!(
            select(&row, None, 4),
            vec![(4, 0.5), (1, 1.0), (3, 1.0), (2, 2.0)]
        );
    }

    #[test]
    fn selection_keeps_lowest_indices_among_ties_at_the_boundary() {
        let row = [5.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        assert_eq!(select(&row, None, 3), vec![(5, 0.0), (1, 1.0), (2, 1.0)]);
        assert_eq!(select(&row, Some(1), 3), vec![(5, 0.0), (2, 1.0), (3, 1.0)]);
    }

    #[test]
    fn selection_skips_the_query_itself() {
        let row = [0.0, 4.0, 3.0];
        assert_eq!(select(&row, Some(0), 2), vec![(2, 3.0), (1, 4.0)]);
        assert_eq!(select(&row, Some(2), 2), vec![(0, 0.0), (1, 4.0)]);
    }

    #[test]
    fn rescoring_fixes_screening_errors_within_the_slack() {
        // Screening says 1 < 2 (by 0.01), the exact distances say item 2 is nearer.
        let row = [5.0f32, 1.0, 1.01];
        let exact = exact_from(|j| [5.0, 1.02, 1.0][j]);
        let mut found = Vec::new();
        let scratch = &mut Default::default();
        select_nearest(
            &row,
            0,
            None,
            1,
            0.05,
            Ranking::Exact,
            &exact,
            scratch,
            &mut found,
        );
        assert_eq!(
            found,
            vec![Neighbour {
                index: 2,
                distance: 1.0
            }]
        );
    }

    /// Screening distances within `slack / 2` of made-up exact ones, with many near-ties and
    /// exact ties: the relevance ranking gives the same relevance sequence as the exact one,
    /// and the exact one keeps the k smallest by `(distance, index)`.
    #[test]
    fn relevance_ranking_gives_the_exact_relevance_sequence() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let slack = 0.01;
        let mut rescored_runs = 0;
        for case in 0..2_000 {
            let m = 1 + (next() * 60.0) as usize;
            let k = 1 + (next() * m as f64) as usize;
            // Exact distances on a coarse grid (ties), screening off by up to slack / 2.
            let exact_d: Vec<f64> = (0..m).map(|_| (next() * 40.0).floor() * 0.004).collect();
            let screened: Vec<f32> = exact_d
                .iter()
                .map(|&d| (d + (next() - 0.5) * slack * 0.999) as f32)
                .collect();
            let relevant_of: Vec<bool> = (0..m).map(|_| next() < 0.4).collect();
            let relevant = |_: usize, j: usize| relevant_of[j];
            let calls = std::cell::Cell::new(0);
            let exact = |rows: &[u32], out: &mut Vec<f64>| {
                calls.set(calls.get() + rows.len());
                out.clear();
                out.extend(rows.iter().map(|&j| exact_d[j as usize]));
            };
            let run = |ranking| {
                let mut found = Vec::new();
                let scratch = &mut Default::default();
                let row: Vec<f32> = screened.clone();
                let (k, slack) = (k, slack);
                select_nearest(
                    &row, 0, None, k, slack, ranking, &exact, scratch, &mut found,
                );
                found
            };
            let full = run(Ranking::Exact);
            let mut want: Vec<(f64, u32)> =
                (0..m as u32).map(|j| (exact_d[j as usize], j)).collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<u32> = want[..k].iter().map(|w| w.1).collect();
            assert_eq!(
                full.iter().map(|n| n.index).collect::<Vec<_>>(),
                want,
                "case {case}"
            );
            calls.set(0);
            let by_relevance = run(Ranking::Relevance(&relevant));
            if calls.get() > 0 {
                rescored_runs += 1;
            }
            let pattern = |found: &[Neighbour]| -> Vec<bool> {
                found
                    .iter()
                    .map(|n| relevant_of[n.index as usize])
                    .collect()
            };
            assert_eq!(pattern(&by_relevance), pattern(&full), "case {case}");
        }
        // Both branches ran: some runs needed re-scoring, some did not.
        assert!(
            rescored_runs > 100 && rescored_runs < 2_000,
            "{rescored_runs}"
        );
    }

    #[test]
    fn relevance_ranking_rescores_only_runs_of_mixed_relevance() {
        // Items 1 and 2 are within the slack of each other; item 0 is far below them.
        let row = [0.5f32, 1.0, 1.01];
        let exact_d = [0.5, 1.02, 1.0];
        let scored = std::cell::RefCell::new(Vec::new());
        let exact = |rows: &[u32], out: &mut Vec<f64>| {
            scored.borrow_mut().extend_from_slice(rows);
            out.clear();
            out.extend(rows.iter().map(|&j| exact_d[j as usize]));
        };
        let mut found = Vec::new();
        let scratch = &mut Default::default();
        // 1 and 2 differ in relevance: re-scored, 2 comes first.
        let mixed = |_: usize, j: usize| j == 1;
        let ranking = Ranking::Relevance(&mixed);
        select_nearest(&row, 0, None, 3, 0.05, ranking, &exact, scratch, &mut found);
        assert_eq!(found.iter().map(|n| n.index).collect::<Vec<_>>(), [0, 2, 1]);
        assert_eq!(*scored.borrow(), [1, 2]);
        // Equally relevant: nothing re-scored, screening order kept.
        scored.borrow_mut().clear();
        let same = |_: usize, j: usize| j != 0;
        let ranking = Ranking::Relevance(&same);
        select_nearest(&row, 0, None, 3, 0.05, ranking, &exact, scratch, &mut found);
        assert_eq!(found.iter().map(|n| n.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(scored.borrow().is_empty());
    }

    #[test]
    fn lanes_give_the_same_bits_as_one_row_at_a_time() {
        let dim = 37;
        let data: Vec<f32> = (0..30 * dim)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.37)
            .collect();
        let row = |j: usize| &data[j * dim..(j + 1) * dim];
        let query: Vec<f32> = (0..dim).map(|i| (i as f32).sin()).collect();
        let rows: Vec<u32> = (0..19).map(|j| (j * 3 % 30) as u32).collect();
        let mut out = Vec::new();
        squared_distances_to(&query, &rows, &row, &mut out);
        let want: Vec<f64> = rows
            .iter()
            .map(|&j| squared_distance(&query, row(j as usize)))
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn squared_distance_is_the_f64_sum() {
        assert_eq!(squared_distance(&[1.0, 2.0], &[4.0, -2.0]), 25.0);
    }

    #[test]
    fn config_rejects_zero_chunk() {
        let err = KnnConfig::new().with_chunk_size(0).check().unwrap_err();
        assert!(err.to_string().contains("chunk_size"), "{err}");
    }
}
