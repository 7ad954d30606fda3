//! The host engine of the k-NN scan: a tiled f32 GEMM fused with the candidate selection.
//!
//! The same screening and the same f64 ranking as the backend engine ([`crate::knn`]), so the
//! neighbours are identical; only the route to the candidates differs:
//!
//! - Dot products come from the `gemm` crate in `[ROWS, COLS]` tiles, one tile per task, so
//!   memory stays `O(tile)` per thread plus the candidate lists, never `n x m`.
//! - Each tile is screened while it is still in cache: a query keeps a candidate list with a
//!   running limit, `(k-th smallest screening distance so far) + slack`. An item above the
//!   limit can never pass the final test (the k-th smallest only decreases), so one
//!   comparison rejects almost every item.
//! - In self mode a tile of rows `I` and columns `J > I` also serves the queries of `J` (the
//!   distance matrix is symmetric), which halves the GEMM. Queries of `J` then keep their
//!   lists until their own row block comes; when those lists would exceed
//!   [`crate::KnnConfig::host_symmetric_memory`] the scan falls back to rows only.
//!
//! At the end each query's candidates hold every item within `slack` of its k-th smallest
//! screening distance, exactly the set the backend engine re-scores; the same f64 distance
//! and `(distance, index)` order pick the k nearest.

use rayon::prelude::*;

use crate::error::{EvalError, Result};
use crate::host::dot_tile;
use crate::knn::{rank_candidates, squared_distances_to, Neighbour, Ranking};

/// Query rows per tile.
const ROWS: usize = 256;
/// Gallery items per tile (a `ROWS x COLS` f32 tile is 512 KiB).
const COLS: usize = 512;
/// Squared norms above this could overflow `|q|^2 + |g|^2 - 2 q.g` in f32.
const MAX_SQUARED_NORM: f64 = (f32::MAX / 4.0) as f64;

/// A row-major host matrix, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct HostSet<'a> {
    pub name: &'static str,
    pub data: &'a [f32],
    pub rows: usize,
}

/// The candidates of one query: every item whose screening distance is within the limit.
#[derive(Default)]
struct Candidates {
    k: usize,
    slack: f64,
    limit: f32,
    cap: usize,
    entries: Vec<(f32, u32)>,
}

impl Candidates {
    fn new(k: usize, slack: f64) -> Self {
        Self {
            k,
            slack,
            limit: f32::INFINITY,
            cap: 2 * k + 32,
            entries: Vec::new(),
        }
    }

    /// Adds an item that passed the limit; returns the (possibly lowered) limit.
    #[inline]
    fn push(&mut self, d: f32, j: u32) -> f32 {
        self.entries.push((d, j));
        if self.entries.len() >= self.cap {
            self.shrink();
        }
        self.limit
    }

    #[inline]
    fn offer(&mut self, d: f32, j: u32) {
        if d <= self.limit {
            self.push(d, j);
        }
    }

    /// Lowers the limit to the k-th smallest screening distance + slack and drops what is
    /// above it; grows the list when near-ties keep it full.
    fn shrink(&mut self) {
        let k = self.k;
        if k == 0 || self.entries.len() < k {
            return;
        }
        let (_, kth, _) = self
            .entries
            .select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        self.limit = round_up(kth.0 as f64 + self.slack).min(self.limit);
        let limit = self.limit;
        self.entries.retain(|e| e.0 <= limit);
        if self.entries.len() * 2 > self.cap {
            self.cap *= 2;
        }
    }

    fn merge(&mut self, other: Candidates) {
        for (d, j) in other.entries {
            self.offer(d, j);
        }
    }

    /// The k nearest, ranked by [`rank_candidates`] from every item within `slack` of the
    /// k-th smallest screening distance: the same test as [`crate::knn::select_nearest`] on
    /// the full row.
    fn finish<'a>(
        mut self,
        q: usize,
        query: &[f32],
        row: &dyn Fn(usize) -> &'a [f32],
        ranking: Ranking<'_>,
        scratch: &mut (Vec<u32>, Vec<f64>),
        found: &mut Vec<Neighbour>,
    ) {
        found.clear();
        let k = self.k;
        if k == 0 {
            return;
        }
        debug_assert!(self.entries.len() >= k);
        let (_, kth, _) = self
            .entries
            .select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        let limit = kth.0 as f64 + self.slack;
        self.entries.retain(|e| (e.0 as f64) <= limit);
        let exact = |rows: &[u32], out: &mut Vec<f64>| squared_distances_to(query, rows, row, out);
        rank_candidates(
            q,
            &mut self.entries,
            k,
            self.slack,
            ranking,
            &exact,
            scratch,
            found,
        );
    }
}

/// The smallest f32 at or above `x`.
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// Squared norms in f64 (rounded to f32 for the screening), erroring on overflow.
fn norms(set: HostSet<'_>, dim: usize) -> Result<(Vec<f32>, Vec<f64>)> {
    let exact: Vec<f64> = set
        .data
        .par_chunks(dim)
        .map(|row| row.iter().map(|&v| v as f64 * v as f64).sum())
        .collect();
    if let Some(row) = exact
        .iter()
        .position(|&v| v.is_nan() || v > MAX_SQUARED_NORM)
    {
        return Err(EvalError::NormOverflow { set: set.name, row });
    }
    Ok((exact.iter().map(|&v| v as f32).collect(), exact))
}

/// The host scan: for every query, `visit(q, its k_of(q) nearest)`, in query order.
///
/// `error_factor` is `4 (dim + 4) u` of the screening (see [`crate::knn`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan<T, K, V>(
    queries: HostSet<'_>,
    gallery: Option<HostSet<'_>>,
    dim: usize,
    error_factor: f64,
    symmetric_memory: usize,
    ranking: Ranking<'_>,
    k_of: &K,
    visit: &V,
) -> Result<Vec<T>>
where
    T: Send,
    K: Fn(usize) -> usize + Sync,
    V: Fn(usize, &[Neighbour]) -> T + Sync,
{
    let exclude_self = gallery.is_none();
    let gallery = gallery.unwrap_or(queries);
    let (query_sq, query_sq_exact) = norms(queries, dim)?;
    let (gallery_sq, _) = if exclude_self {
        (query_sq.clone(), Vec::new())
    } else {
        norms(gallery, dim)?
    };
    let max_gallery_sq = gallery_sq.iter().fold(0.0f64, |m, &v| m.max(v as f64));
    let n = queries.rows;
    let fresh = |q: usize| {
        Candidates::new(
            k_of(q),
            2.0 * error_factor * (query_sq_exact[q] + max_gallery_sq),
        )
    };
    let list_bytes: usize = (0..n).map(|q| (2 * k_of(q) + 32) * 8).sum();
    let symmetric = exclude_self && list_bytes <= symmetric_memory;
    let screen = Screen {
        queries,
        gallery,
        dim,
        query_sq: &query_sq,
        gallery_sq: &gallery_sq,
    };

    // In the symmetric scan the lists of later queries fill up before their row block.
    let mut lists: Vec<Candidates> = if symmetric {
        (0..n).map(fresh).collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + ROWS).min(n);
        let mut rows: Vec<Candidates> = if symmetric {
            lists[start..end].iter_mut().map(std::mem::take).collect()
        } else {
            (start..end).map(fresh).collect()
        };
        let (first_column, later) = if symmetric {
            // Columns before `start` served these rows already, as columns of earlier tiles.
            let (_, later) = lists.split_at_mut(end);
            screen.diagonal(start, end, &mut rows);
            (end, Some(later))
        } else {
            // One tile first, so that the parallel tiles start from a finite limit.
            let first = 0..COLS.min(gallery.rows);
            screen.tile_rows(start..end, first, &mut Vec::new(), &mut rows, exclude_self);
            (COLS.min(gallery.rows), None)
        };
        // Each task's lists start at the rows' current limits: any limit at or above the
        // final one is safe, and a tight one spares the task its own warm-up.
        let limits: Vec<f32> = rows.iter().map(|l| l.limit).collect();
        let local_lists = || -> Vec<Candidates> {
            (start..end)
                .zip(&limits)
                .map(|(q, &limit)| Candidates { limit, ..fresh(q) })
                .collect()
        };
        let n_tiles = (gallery.rows - first_column).div_ceil(COLS);
        let tile_of = |t: usize| {
            let c0 = first_column + t * COLS;
            c0..(c0 + COLS).min(gallery.rows)
        };
        let locals: Vec<Vec<Candidates>> = match later {
            Some(later) => later
                .par_chunks_mut(COLS)
                .enumerate()
                .fold(
                    || (Vec::new(), local_lists()),
                    |(mut tile, mut local), (t, columns)| {
                        screen.tile(start..end, tile_of(t), &mut tile, &mut local, columns);
                        (tile, local)
                    },
                )
                .map(|(_, local)| local)
                .collect(),
            None => (0..n_tiles)
                .into_par_iter()
                .fold(
                    || (Vec::new(), local_lists()),
                    |(mut tile, mut local), t| {
                        screen.tile_rows(
                            start..end,
                            tile_of(t),
                            &mut tile,
                            &mut local,
                            exclude_self,
                        );
                        (tile, local)
                    },
                )
                .map(|(_, local)| local)
                .collect(),
        };
        for local in locals {
            for (row, other) in rows.iter_mut().zip(local) {
                row.merge(other);
            }
        }
        let done: Vec<T> = rows
            .into_par_iter()
            .enumerate()
            .map_init(
                || (Vec::new(), (Vec::new(), Vec::new())),
                |(found, scratch), (i, list)| {
                    let q = start + i;
                    let query = &queries.data[q * dim..(q + 1) * dim];
                    let row = |j: usize| &gallery.data[j * dim..(j + 1) * dim];
                    list.finish(q, query, &row, ranking, scratch, found);
                    visit(q, found)
                },
            )
            .collect();
        out.extend(done);
        start = end;
    }
    Ok(out)
}

/// Columns screened per branch-free pass.
const LANE: usize = 16;

/// The screening distance `|q|^2 + |g|^2 - 2 q.g`, in the reference's order of operations
/// (f32).
#[inline(always)]
fn screen(q_sq: f32, g_sq: f32, dot: f32) -> f32 {
    (q_sq + g_sq) - 2.0 * dot
}

/// What every tile needs: both sets and their squared norms.
struct Screen<'a> {
    queries: HostSet<'a>,
    gallery: HostSet<'a>,
    dim: usize,
    query_sq: &'a [f32],
    gallery_sq: &'a [f32],
}

impl Screen<'_> {
    fn dots(
        &self,
        rows: &std::ops::Range<usize>,
        cols: &std::ops::Range<usize>,
        tile: &mut Vec<f32>,
    ) {
        let dim = self.dim;
        tile.resize(rows.len() * cols.len(), 0.0);
        dot_tile(
            tile,
            &self.queries.data[rows.start * dim..rows.end * dim],
            rows.len(),
            &self.gallery.data[cols.start * dim..cols.end * dim],
            cols.len(),
            dim,
        );
    }

    /// Rows `rows` against columns `cols`, for the rows' lists only; `skip_self` leaves out the
    /// query itself (self mode).
    fn tile_rows(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        tile: &mut Vec<f32>,
        lists: &mut [Candidates],
        skip_self: bool,
    ) {
        self.dots(&rows, &cols, tile);
        let width = cols.len();
        let g_sq = &self.gallery_sq[cols.clone()];
        for (r, list) in lists.iter_mut().enumerate() {
            let q = rows.start + r;
            let q_sq = self.query_sq[q];
            let dots = &tile[r * width..(r + 1) * width];
            for c0 in (0..width).step_by(LANE) {
                let c1 = (c0 + LANE).min(width);
                let limit = list.limit;
                // A first pass without branches: most lanes hold no candidate.
                let hit = dots[c0..c1]
                    .iter()
                    .zip(&g_sq[c0..c1])
                    .fold(false, |hit, (&dot, &g)| {
                        hit | (screen(q_sq, g, dot) <= limit)
                    });
                if !hit {
                    continue;
                }
                for c in c0..c1 {
                    let d = screen(q_sq, g_sq[c], dots[c]);
                    let j = cols.start + c;
                    if d <= list.limit && (!skip_self || j != q) {
                        list.push(d, j as u32);
                    }
                }
            }
        }
    }

    /// Rows `rows` against columns `cols` (all after the rows), for the lists of both.
    fn tile(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        tile: &mut Vec<f32>,
        row_lists: &mut [Candidates],
        column_lists: &mut [Candidates],
    ) {
        self.dots(&rows, &cols, tile);
        let width = cols.len();
        let mut column_limits: Vec<f32> = column_lists.iter().map(|l| l.limit).collect();
        let g_sq = &self.gallery_sq[cols.clone()];
        for (r, list) in row_lists.iter_mut().enumerate() {
            let q = rows.start + r;
            let q_sq = self.query_sq[q];
            let dots = &tile[r * width..(r + 1) * width];
            for c0 in (0..width).step_by(LANE) {
                let c1 = (c0 + LANE).min(width);
                let limit = list.limit;
                // A first pass without branches: most lanes hold no candidate.
                let hit = dots[c0..c1]
                    .iter()
                    .zip(&g_sq[c0..c1])
                    .zip(&column_limits[c0..c1])
                    .fold(false, |hit, ((&dot, &g), &column_limit)| {
                        let d = screen(q_sq, g, dot);
                        hit | (d <= limit) | (d <= column_limit)
                    });
                if !hit {
                    continue;
                }
                for c in c0..c1 {
                    let d = screen(q_sq, g_sq[c], dots[c]);
                    if d <= list.limit {
                        list.push(d, (cols.start + c) as u32);
                    }
                    if d <= column_limits[c] {
                        column_limits[c] = column_lists[c].push(d, q as u32);
                    }
                }
            }
        }
    }

    /// The square tile of rows `start..end` against themselves: every pair, both ways.
    fn diagonal(&self, start: usize, end: usize, lists: &mut [Candidates]) {
        let mut tile = Vec::new();
        self.tile_rows(start..end, start..end, &mut tile, lists, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_never_goes_below() {
        for x in [0.1f64, 1.0, 2.0 / 3.0, 1e-30, 123456.789] {
            let r = round_up(x);
            assert!(r as f64 >= x, "{x}");
            assert!((r.next_down() as f64) < x, "{x}");
        }
    }

    #[test]
    fn candidates_keep_every_item_within_the_slack_of_the_kth() {
        // k = 2, slack 0.5: the final list holds the 2 nearest of 100 decreasing values.
        let mut list = Candidates::new(2, 0.5);
        for j in 0..100u32 {
            list.offer(100.0 - j as f32, j);
        }
        let mut found = Vec::new();
        // dim 1: row j holds the value j, the query 100, so distances are (100 - j)^2.
        let values: Vec<f32> = (0..100).map(|j| j as f32).collect();
        let row = |j: usize| &values[j..j + 1];
        let scratch = &mut (Vec::new(), Vec::new());
        list.finish(0, &[100.0], &row, Ranking::Exact, scratch, &mut found);
        assert_eq!(
            found.iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![99, 98]
        );
    }
}
