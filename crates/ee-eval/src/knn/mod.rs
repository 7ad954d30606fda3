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
//! Two engines compute the screening ([`Engine`]): [`tensor`], one matmul per chunk on the
//! burn backend (the route for GPUs), and [`host`], a tiled host GEMM fused with the
//! selection that also halves the work in self mode (the route on CPU backends). Both hand
//! each query's shortlist to the same loop here, which ranks it in f64, so the neighbours are
//! the same.
//!
//! In self mode (one set against itself) a query never retrieves itself: its own index is
//! skipped (only the diagonal; exact duplicates elsewhere in the set are kept).
//!
//! Files: this one holds the configuration, the results, the `Screening` trait and the loop
//! that drives it; [`tensor`] and [`host`] implement the trait; `select.rs` is the per-query
//! ranking that all three use and that uses none of them. The engines use this module; it
//! names them only where `scan` picks one.

pub mod host;
pub(crate) mod select;
pub mod tensor;

use std::ops::Range;

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use crate::error::EvalError;
use crate::input::read_f32;
use select::{rank_candidates, squared_distances_to};

pub(crate) use select::Ranking;
pub use select::{squared_distance, Neighbour};

/// Where the k-NN and k-means dot products are computed.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Engine {
    /// The host engine on CPU backends (flex, ndarray, LibTorch's CPU), the backend engine
    /// on the others (GPUs).
    Auto,
    /// Tiled f32 GEMM on the host, fused with the selection ([`crate::knn::host`],
    /// [`crate::kmeans::host`]): the embeddings are read back once.
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
    ["flex", "ndarray", "cpu"]
        .iter()
        .any(|part| name.contains(part))
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
    pub fn of(&self, query: usize) -> &[Neighbour] {
        &self.neighbours[query * self.k..(query + 1) * self.k]
    }

    /// The gallery indices of query `q`'s neighbours, nearest first.
    pub fn indices_of(&self, query: usize) -> Vec<usize> {
        self.of(query).iter().map(|n| n.index as usize).collect()
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
    let rows = embeddings.dims()[0];
    check_k(k, rows.saturating_sub(1))?;
    exact_neighbours(embeddings.clone(), embeddings, true, k, config)
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
    exact_neighbours(queries, gallery, false, k, config)
}

/// The `k` nearest of every query with their f64 distances (inputs checked).
fn exact_neighbours<B: Backend>(
    queries: Tensor<B, 2>,
    gallery: Tensor<B, 2>,
    exclude_self: bool,
    k: usize,
    config: &KnnConfig,
) -> crate::Result<Neighbours> {
    let rows = scan(
        queries,
        gallery,
        exclude_self,
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

pub(crate) fn check_k(neighbours: usize, gallery: usize) -> crate::Result<()> {
    if neighbours == 0 {
        return Err(EvalError::InvalidConfig {
            field: "k",
            value: "0".into(),
            rule: "must be at least 1",
        });
    }
    if neighbours > gallery {
        return Err(EvalError::KTooLarge {
            k: neighbours,
            gallery,
        });
    }
    Ok(())
}

pub(crate) fn check_dims<B: Backend>(
    queries: &Tensor<B, 2>,
    gallery: &Tensor<B, 2>,
) -> crate::Result<()> {
    let (query_dim, gallery_dim) = (queries.dims()[1], gallery.dims()[1]);
    if query_dim != gallery_dim {
        return Err(EvalError::DimensionMismatch {
            queries: query_dim,
            gallery: gallery_dim,
        });
    }
    Ok(())
}

/// How many neighbours each query needs, shared by the scan's threads.
pub(crate) type KOf<'a> = &'a (dyn Fn(usize) -> usize + Sync);

/// One query's shortlist: every gallery item whose screening distance is within `slack` of
/// the query's k-th smallest, as `(screening distance, gallery index)` in any order.
#[derive(Debug, Default)]
pub(crate) struct Shortlist {
    pub entries: Vec<(f32, u32)>,
    /// `2e`: twice the bound on the screening error of this query (see the module docs).
    pub slack: f64,
}

/// The screening half of the scan, which the engines implement: blocks of queries in, one
/// [`Shortlist`] per query out. The ranking half, the same for every engine, is [`drive`].
pub(crate) trait Screening {
    /// Number of queries.
    fn num_queries(&self) -> usize;
    /// Queries screened together (the last block may be shorter).
    fn block_rows(&self) -> usize;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// The row-major host copies of the queries and of the gallery (the queries again in
    /// self mode), which the f64 ranking reads.
    fn host_rows(&self) -> (&[f32], &[f32]);
    /// The shortlists of the queries `block`, in order. Blocks come in order, once each.
    fn shortlists(&mut self, block: Range<usize>) -> crate::Result<Vec<Shortlist>>;
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
    let dim = queries.dims()[1];
    let error_factor = 4.0 * (dim as f64 + 4.0) * config.matmul_unit_roundoff;
    if config.engine.resolve::<B>(&queries.device()) == Engine::Host {
        let query_host = read_f32(queries);
        let gallery_host = (!exclude_self).then(|| read_f32(gallery));
        let mut engine = host::HostScreening::new(
            &query_host,
            gallery_host.as_deref(),
            dim,
            error_factor,
            config.host_symmetric_memory,
            k_of,
        )?;
        return drive(&mut engine, ranking, k_of, visit);
    }
    let mut engine = tensor::TensorScreening::new(
        queries,
        gallery,
        exclude_self,
        error_factor,
        config.chunk_size,
        k_of,
    )?;
    drive(&mut engine, ranking, k_of, visit)
}

/// The one loop of the scan: every block's shortlists, ranked in f64 in parallel, each
/// query's neighbours handed to `visit`, in query order.
fn drive<T: Send>(
    engine: &mut impl Screening,
    ranking: Ranking<'_>,
    k_of: KOf<'_>,
    visit: &(dyn Fn(usize, &[Neighbour]) -> T + Sync),
) -> crate::Result<Vec<T>> {
    let (n_queries, dim) = (engine.num_queries(), engine.dim());
    let mut out = Vec::with_capacity(n_queries);
    let mut start = 0;
    while start < n_queries {
        let end = (start + engine.block_rows()).min(n_queries);
        let shortlists = engine.shortlists(start..end)?;
        let (query_host, gallery_host) = engine.host_rows();
        let done: Vec<T> = shortlists
            .into_par_iter()
            .enumerate()
            .map_init(
                || (Vec::new(), Default::default()),
                |(found, scratch), (i, mut shortlist)| {
                    let q = start + i;
                    let query = &query_host[q * dim..(q + 1) * dim];
                    let gallery_row = |j: usize| &gallery_host[j * dim..(j + 1) * dim];
                    let exact = |rows: &[u32], out: &mut Vec<f64>| {
                        squared_distances_to(query, rows, &gallery_row, out)
                    };
                    rank_candidates(
                        q,
                        &mut shortlist.entries,
                        k_of(q),
                        shortlist.slack,
                        ranking,
                        &exact,
                        scratch,
                        found,
                    );
                    visit(q, found)
                },
            )
            .collect();
        out.extend(done);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_zero_chunk() {
        let err = KnnConfig::new().with_chunk_size(0).check().unwrap_err();
        assert!(err.to_string().contains("chunk_size"), "{err}");
    }
}
