//! The per-query half of the k-NN scan that both engines share: the f64 distance, the cut of a
//! query's screening distances to its shortlist, and the ranking of that shortlist.
//!
//! A leaf: it imports nothing from the rest of [`crate::knn`].

/// One retrieved gallery item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Index into the gallery.
    pub index: u32,
    /// Squared euclidean distance to the query, `sum_i (q_i - g_i)^2` in f64.
    pub distance: f64,
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

/// `sum_i (a_i - b_i)^2` in f64, summed in index order: the distance that ranks neighbours.
pub fn squared_distance(left: &[f32], right: &[f32]) -> f64 {
    left.iter()
        .zip(right)
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
        for (i, &value) in query.iter().enumerate() {
            let value = value as f64;
            for l in 0..LANES {
                let d = value - lanes[l][i] as f64;
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

/// The buffers [`shortlist_row`] reuses between queries.
pub(crate) type RowScratch = Vec<f32>;

/// Puts into `shortlist` every entry `(distance, j)` of `row` (skipping index `skip`) within
/// `slack` of the k-th smallest: the shortlist [`rank_candidates`] ranks.
pub(crate) fn shortlist_row(
    row: &[f32],
    skip: Option<usize>,
    k: usize,
    slack: f64,
    values: &mut RowScratch,
    shortlist: &mut Vec<(f32, u32)>,
) {
    shortlist.clear();
    if k == 0 {
        return;
    }
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
    shortlist.extend(
        row.iter()
            .enumerate()
            .filter(|&(j, &d)| (d as f64) <= limit && Some(j) != skip)
            .map(|(j, &d)| (d, j as u32)),
    );
}

/// Cuts `entries`, which hold at least the k smallest screening distances, to those within
/// `slack` of the k-th smallest: the same shortlist as [`shortlist_row`] on the full row.
pub(crate) fn shortlist_entries(entries: &mut Vec<(f32, u32)>, neighbours: usize, slack: f64) {
    if neighbours == 0 {
        entries.clear();
        return;
    }
    debug_assert!(entries.len() >= neighbours);
    let (_, kth, _) = entries.select_nth_unstable_by(neighbours - 1, |a, b| a.0.total_cmp(&b.0));
    let limit = kth.0 as f64 + slack;
    entries.retain(|e| (e.0 as f64) <= limit);
}

/// The buffers [`rank_candidates`] reuses between queries.
pub(crate) type RankScratch = (Vec<u32>, Vec<f64>);

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
/// Neither depends on the order of `candidates`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rank_candidates(
    query: usize,
    candidates: &mut [(f32, u32)],
    k: usize,
    slack: f64,
    ranking: Ranking<'_>,
    exact: &dyn Fn(&[u32], &mut Vec<f64>),
    scratch: &mut RankScratch,
    found: &mut Vec<Neighbour>,
) {
    found.clear();
    if k == 0 {
        return;
    }
    let (rows, distances) = scratch;
    let relevant = match ranking {
        Ranking::Exact => {
            rescore(candidates, exact, rows, distances, found);
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
            let from = found.len();
            rescore(run, exact, rows, distances, found);
            found[from..].sort_unstable_by(neighbour_order);
        }
        start = end;
    }
    found.truncate(k);
}

/// Appends to `found` the items of `candidates` with their f64 distances.
fn rescore(
    candidates: &[(f32, u32)],
    exact: &dyn Fn(&[u32], &mut Vec<f64>),
    rows: &mut Vec<u32>,
    distances: &mut Vec<f64>,
    found: &mut Vec<Neighbour>,
) {
    rows.clear();
    rows.extend(candidates.iter().map(|c| c.1));
    exact(rows, distances);
    found.extend(
        rows.iter()
            .zip(distances.iter())
            .map(|(&index, &distance)| Neighbour { index, distance }),
    );
}

/// The tie rule: by `(distance, index)`.
fn neighbour_order(left: &Neighbour, right: &Neighbour) -> std::cmp::Ordering {
    left.distance
        .total_cmp(&right.distance)
        .then(left.index.cmp(&right.index))
}

/// Keeps the `k` nearest of `found`, sorted by `(distance, index)`: the tie rule.
pub(crate) fn keep_nearest(found: &mut Vec<Neighbour>, neighbours: usize) {
    if found.len() > neighbours {
        found.select_nth_unstable_by(neighbours - 1, neighbour_order);
        found.truncate(neighbours);
    }
    found.sort_unstable_by(neighbour_order);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batched `exact` from a per-item distance.
    fn exact_from(distance_of: impl Fn(usize) -> f64) -> impl Fn(&[u32], &mut Vec<f64>) {
        move |rows, out| {
            out.clear();
            out.extend(rows.iter().map(|&j| distance_of(j as usize)));
        }
    }

    /// The whole per-query step of the backend engine: the shortlist of `row`, ranked.
    #[allow(clippy::too_many_arguments)]
    fn select_nearest(
        row: &[f32],
        query: usize,
        skip: Option<usize>,
        k: usize,
        slack: f64,
        ranking: Ranking<'_>,
        exact: &dyn Fn(&[u32], &mut Vec<f64>),
        scratch: &mut (RowScratch, Vec<(f32, u32)>, RankScratch),
        found: &mut Vec<Neighbour>,
    ) {
        let (values, shortlist, rank_scratch) = scratch;
        shortlist_row(row, skip, k, slack, values, shortlist);
        rank_candidates(
            query,
            shortlist,
            k,
            slack,
            ranking,
            exact,
            rank_scratch,
            found,
        );
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
}
