//! The host engine of the k-NN scan: a tiled f32 GEMM fused with the candidate selection.
//!
//! The same screening and the same f64 ranking as the backend engine ([`crate::knn::tensor`]),
//! so the neighbours are identical; only the route to the shortlists differs:
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
//! screening distance, exactly the shortlist the backend engine builds; the same f64 distance
//! and `(distance, index)` order pick the k nearest.

use std::ops::Range;

use rayon::prelude::*;

use super::select::shortlist_entries;
use super::{KOf, Screening, Shortlist};
use crate::error::{EvalError, Result};
use crate::host::{dot_tile, squared_norms};
use crate::input::MAX_SQUARED_NORM;

/// Query rows per tile.
const ROWS: usize = 256;
/// Gallery items per tile (a `ROWS x COLS` f32 tile is 512 KiB).
const COLS: usize = 512;

/// A row-major host matrix, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct HostSet<'a> {
    pub name: &'static str,
    pub data: &'a [f32],
    pub rows: usize,
}

impl<'a> HostSet<'a> {
    fn new(name: &'static str, data: &'a [f32], dim: usize) -> Self {
        Self {
            name,
            rows: data.len() / dim.max(1),
            data,
        }
    }
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
    fn new(neighbours: usize, slack: f64) -> Self {
        Self {
            k: neighbours,
            slack,
            limit: f32::INFINITY,
            cap: 2 * neighbours + 32,
            entries: Vec::new(),
        }
    }

    /// Adds an item that passed the limit; returns the (possibly lowered) limit.
    #[inline]
    fn push(&mut self, distance: f32, index: u32) -> f32 {
        self.entries.push((distance, index));
        if self.entries.len() >= self.cap {
            self.shrink();
        }
        self.limit
    }

    #[inline]
    fn offer(&mut self, distance: f32, index: u32) {
        if distance <= self.limit {
            self.push(distance, index);
        }
    }

    /// Lowers the limit to the k-th smallest screening distance + slack and drops what is
    /// above it; grows the list when near-ties keep it full.
    fn shrink(&mut self) {
        let neighbours = self.k;
        if neighbours == 0 || self.entries.len() < neighbours {
            return;
        }
        let (_, kth, _) = self
            .entries
            .select_nth_unstable_by(neighbours - 1, |a, b| a.0.total_cmp(&b.0));
        self.limit = round_up(kth.0 as f64 + self.slack).min(self.limit);
        let limit = self.limit;
        self.entries.retain(|e| e.0 <= limit);
        if self.entries.len() * 2 > self.cap {
            self.cap *= 2;
        }
    }

    fn merge(&mut self, other: Candidates) {
        for (distance, index) in other.entries {
            self.offer(distance, index);
        }
    }

    /// Every item within `slack` of the k-th smallest screening distance: the same test as
    /// the backend engine's on the full row.
    fn into_shortlist(mut self) -> Shortlist {
        shortlist_entries(&mut self.entries, self.k, self.slack);
        Shortlist {
            entries: self.entries,
            slack: self.slack,
        }
    }
}

/// The smallest f32 at or above `x`.
fn round_up(value: f64) -> f32 {
    let rounded = value as f32;
    if (rounded as f64) < value {
        rounded.next_up()
    } else {
        rounded
    }
}

/// Squared norms in f64 (rounded to f32 for the screening), erroring on overflow.
fn norms(set: HostSet<'_>, dim: usize) -> Result<(Vec<f32>, Vec<f64>)> {
    let exact = squared_norms(set.data, dim);
    if let Some(row) = exact
        .iter()
        .position(|&v| v.is_nan() || v > MAX_SQUARED_NORM as f64)
    {
        return Err(EvalError::NormOverflow { set: set.name, row });
    }
    Ok((exact.iter().map(|&v| v as f32).collect(), exact))
}

/// The host engine over one query set and one gallery (the same set in self mode).
///
/// The slack of query `q` is `2 error_factor (|q|^2 + max_g |g|^2)`, `error_factor` being
/// `4 (dim + 4) u` of the screening (see [`crate::knn`]).
pub(crate) struct HostScreening<'a> {
    screen: Screen<'a>,
    query_sq_exact: Vec<f64>,
    max_gallery_sq: f64,
    error_factor: f64,
    exclude_self: bool,
    /// Self mode within `host_symmetric_memory`: a tile serves its rows and its columns.
    symmetric: bool,
    /// In the symmetric scan, the lists of the later queries, filled before their row block.
    lists: Vec<Candidates>,
    k_of: KOf<'a>,
}

impl<'a> HostScreening<'a> {
    /// `gallery` is `None` in self mode (the queries are the gallery, the diagonal skipped).
    /// Errors if a norm could overflow the screening distance.
    pub(crate) fn new(
        queries: &'a [f32],
        gallery: Option<&'a [f32]>,
        dim: usize,
        error_factor: f64,
        symmetric_memory: usize,
        k_of: KOf<'a>,
    ) -> Result<Self> {
        let (queries, gallery) = match gallery {
            Some(gallery) => (
                HostSet::new("queries", queries, dim),
                Some(HostSet::new("gallery", gallery, dim)),
            ),
            None => (HostSet::new("embeddings", queries, dim), None),
        };
        let exclude_self = gallery.is_none();
        let gallery = gallery.unwrap_or(queries);
        let (query_sq, query_sq_exact) = norms(queries, dim)?;
        let gallery_sq = if exclude_self {
            query_sq.clone()
        } else {
            norms(gallery, dim)?.0
        };
        let max_gallery_sq = gallery_sq
            .iter()
            .fold(0.0f64, |max, &value| max.max(value as f64));
        let rows = queries.rows;
        let list_bytes: usize = (0..rows).map(|q| (2 * k_of(q) + 32) * 8).sum();
        let symmetric = exclude_self && list_bytes <= symmetric_memory;
        let mut engine = Self {
            screen: Screen {
                queries,
                gallery,
                dim,
                query_sq,
                gallery_sq,
            },
            query_sq_exact,
            max_gallery_sq,
            error_factor,
            exclude_self,
            symmetric,
            lists: Vec::new(),
            k_of,
        };
        if symmetric {
            engine.lists = (0..rows).map(|q| engine.fresh(q)).collect();
        }
        Ok(engine)
    }

    /// An empty list for query `q`.
    fn fresh(&self, query: usize) -> Candidates {
        Candidates::new(
            (self.k_of)(query),
            2.0 * self.error_factor * (self.query_sq_exact[query] + self.max_gallery_sq),
        )
    }
}

impl Screening for HostScreening<'_> {
    fn num_queries(&self) -> usize {
        self.screen.queries.rows
    }

    fn block_rows(&self) -> usize {
        ROWS
    }

    fn dim(&self) -> usize {
        self.screen.dim
    }

    fn host_rows(&self) -> (&[f32], &[f32]) {
        (self.screen.queries.data, self.screen.gallery.data)
    }

    fn shortlists(&mut self, block: Range<usize>) -> Result<Vec<Shortlist>> {
        // The later queries' lists are lent to the block's tasks, the rest of `self` is read.
        let mut lists = std::mem::take(&mut self.lists);
        let shortlists = self.screen_block(block, &mut lists);
        self.lists = lists;
        Ok(shortlists)
    }
}

impl HostScreening<'_> {
    /// Screens the queries `start..end` against the whole gallery; `lists` holds every
    /// query's list in the symmetric scan, nothing otherwise.
    fn screen_block(&self, block: Range<usize>, lists: &mut [Candidates]) -> Vec<Shortlist> {
        let Range { start, end } = block;
        let (screen, exclude_self) = (&self.screen, self.exclude_self);
        let gallery_rows = screen.gallery.rows;
        let mut rows: Vec<Candidates> = if self.symmetric {
            lists[start..end].iter_mut().map(std::mem::take).collect()
        } else {
            (start..end).map(|q| self.fresh(q)).collect()
        };
        let (first_column, later) = if self.symmetric {
            // Columns before `start` served these rows already, as columns of earlier tiles.
            let (_, later) = lists.split_at_mut(end);
            screen.diagonal(start, end, &mut rows);
            (end, Some(later))
        } else {
            // One tile first, so that the parallel tiles start from a finite limit.
            let first = 0..COLS.min(gallery_rows);
            let tile = &mut Vec::new();
            screen.tile::<false>(start..end, first, tile, &mut rows, &mut [], exclude_self);
            (COLS.min(gallery_rows), None)
        };
        // Each task's lists start at the rows' current limits: any limit at or above the
        // final one is safe, and a tight one spares the task its own warm-up.
        let limits: Vec<f32> = rows.iter().map(|list| list.limit).collect();
        let local_lists = || -> Vec<Candidates> {
            (start..end)
                .zip(&limits)
                .map(|(q, &limit)| Candidates {
                    limit,
                    ..self.fresh(q)
                })
                .collect()
        };
        let n_tiles = (gallery_rows - first_column).div_ceil(COLS);
        let tile_of = |t: usize| {
            let first = first_column + t * COLS;
            first..(first + COLS).min(gallery_rows)
        };
        let locals: Vec<Vec<Candidates>> = match later {
            Some(later) => later
                .par_chunks_mut(COLS)
                .enumerate()
                .fold(
                    || (Vec::new(), local_lists()),
                    |(mut tile, mut local), (t, columns)| {
                        screen.tile::<true>(
                            start..end,
                            tile_of(t),
                            &mut tile,
                            &mut local,
                            columns,
                            false,
                        );
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
                        screen.tile::<false>(
                            start..end,
                            tile_of(t),
                            &mut tile,
                            &mut local,
                            &mut [],
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
        rows.into_par_iter()
            .map(Candidates::into_shortlist)
            .collect()
    }
}

/// Columns screened per branch-free pass.
const LANE: usize = 16;

/// The screening distance `|q|^2 + |g|^2 - 2 q.g`, in the reference's order of operations
/// (f32).
#[inline(always)]
fn screen(q_sq: f32, g_sq: f32, dot: f32) -> f32 {
    (q_sq + g_sq) - 2.0 * dot
}

/// What every tile needs: both sets and their squared norms (f32, for the screening).
struct Screen<'a> {
    queries: HostSet<'a>,
    gallery: HostSet<'a>,
    dim: usize,
    query_sq: Vec<f32>,
    gallery_sq: Vec<f32>,
}

impl Screen<'_> {
    fn dots(&self, rows: &Range<usize>, cols: &Range<usize>, tile: &mut Vec<f32>) {
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

    /// Rows `rows` against columns `cols`, for the rows' lists; `skip_self` leaves out the
    /// query itself (self mode). With `COLUMNS` the columns (all after the rows) are queries
    /// too and `column_lists` theirs, served by the same pass; without, `column_lists` is
    /// empty. A constant, so each variant compiles to its own branch-free pass.
    fn tile<const COLUMNS: bool>(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        tile: &mut Vec<f32>,
        row_lists: &mut [Candidates],
        column_lists: &mut [Candidates],
        skip_self: bool,
    ) {
        self.dots(&rows, &cols, tile);
        let width = cols.len();
        let mut column_limits: Vec<f32> = if COLUMNS {
            column_lists.iter().map(|list| list.limit).collect()
        } else {
            vec![f32::NEG_INFINITY; width]
        };
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
                    .fold(false, |hit, ((&dot, &gallery_sq), &column_limit)| {
                        let distance = screen(q_sq, gallery_sq, dot);
                        hit | (distance <= limit) | (COLUMNS && distance <= column_limit)
                    });
                if !hit {
                    continue;
                }
                for c in c0..c1 {
                    let distance = screen(q_sq, g_sq[c], dots[c]);
                    let j = cols.start + c;
                    if distance <= list.limit && (!skip_self || j != q) {
                        list.push(distance, j as u32);
                    }
                    if COLUMNS && distance <= column_limits[c] {
                        column_limits[c] = column_lists[c].push(distance, q as u32);
                    }
                }
            }
        }
    }

    /// The square tile of rows `start..end` against themselves: every pair, both ways.
    fn diagonal(&self, start: usize, end: usize, lists: &mut [Candidates]) {
        let mut tile = Vec::new();
        self.tile::<false>(start..end, start..end, &mut tile, lists, &mut [], true);
    }
}

#[cfg(test)]
mod tests {
    use super::super::select::{rank_candidates, squared_distances_to, Ranking};
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
        let mut shortlist = list.into_shortlist();
        let exact =
            |rows: &[u32], out: &mut Vec<f64>| squared_distances_to(&[100.0], rows, &row, out);
        let slack = shortlist.slack;
        rank_candidates(
            0,
            &mut shortlist.entries,
            2,
            slack,
            Ranking::Exact,
            &exact,
            scratch,
            &mut found,
        );
        assert_eq!(
            found.iter().map(|n| n.index).collect::<Vec<_>>(),
            vec![99, 98]
        );
    }
}
