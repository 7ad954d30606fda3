//! Retrieval metrics of one ranked list: Recall@K, MAP@R and R-precision.
//!
//! For a query with `R` positives in the gallery (items of its class, itself excluded) and
//! `rel(i)` = 1 when the i-th nearest item shares its class:
//!
//! ```text
//! Recall@K      = 1 if any rel(i) = 1 for i <= K, else 0        (averaged over all queries)
//! R-precision   = (1/R) sum_{i<=R} rel(i)
//! AP@R          = (1/R) sum_{i<=R} P(i) rel(i),  P(i) = (1/i) sum_{j<=i} rel(j)
//! MAP@R         = mean of AP@R over queries with R >= 1
//! ```
//!
//! (Musgrave, Belongie and Lim, "A Metric Learning Reality Check", ECCV 2020.)
//!
//! Queries without positive (a class of one item in self mode, or a query class absent from
//! the gallery): they count as misses in Recall@K, whose denominator is every query as in
//! the reference implementation, and are left out of MAP@R and R-precision, as
//! pytorch-metric-learning leaves them out.

/// R-precision of a ranking given as relevance flags (nearest first), with `r` positives.
///
/// Only the first `r` flags are read; `r` must be at least 1 and at most `relevant.len()`.
pub fn r_precision(relevant: &[bool], cutoff: usize) -> f64 {
    assert!(
        cutoff >= 1 && cutoff <= relevant.len(),
        "R-precision needs 1 <= R <= ranking length"
    );
    relevant[..cutoff].iter().filter(|&&x| x).count() as f64 / cutoff as f64
}

/// Average precision at R (AP@R) of a ranking given as relevance flags, with `r` positives.
///
/// Only the first `r` flags are read; `r` must be at least 1 and at most `relevant.len()`.
pub fn average_precision_at_r(relevant: &[bool], cutoff: usize) -> f64 {
    assert!(
        cutoff >= 1 && cutoff <= relevant.len(),
        "AP@R needs 1 <= R <= ranking length"
    );
    let mut hits = 0usize;
    let mut sum = 0.0;
    for (i, &rel) in relevant[..cutoff].iter().enumerate() {
        if rel {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / cutoff as f64
}

/// Rank (0-based) of the first relevant item, if any.
pub fn first_relevant_rank(relevant: &[bool]) -> Option<usize> {
    relevant.iter().position(|&x| x)
}

/// What one query contributes to the retrieval metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QueryOutcome {
    /// 0-based rank of the first positive among the neighbours looked at.
    pub first_positive: Option<usize>,
    /// Number of positives in the gallery.
    pub positives: usize,
    /// AP@R and R-precision, when asked for and `positives >= 1`.
    pub ap_and_rp: Option<(f64, f64)>,
}

impl QueryOutcome {
    pub(crate) fn new(relevant: &[bool], positives: usize, with_map: bool) -> Self {
        let ap_and_rp = (with_map && positives >= 1).then(|| {
            (
                average_precision_at_r(relevant, positives),
                r_precision(relevant, positives),
            )
        });
        Self {
            first_positive: first_relevant_rank(relevant),
            positives,
            ap_and_rp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ap_and_r_precision() {
        // R = 3, ranking: hit, miss, hit | hit (beyond R, ignored)
        let rel = [true, false, true, true];
        assert!((r_precision(&rel, 3) - 2.0 / 3.0).abs() < 1e-12);
        // (1/1 + 2/3) / 3 = 5/9
        assert!((average_precision_at_r(&rel, 3) - 5.0 / 9.0).abs() < 1e-12);
        // R = 1: only the first flag matters.
        assert_eq!(average_precision_at_r(&[false, true], 1), 0.0);
        assert_eq!(r_precision(&[true, false], 1), 1.0);
        // MAP@R punishes late hits that R-precision does not: miss, hit with R = 2.
        assert_eq!(r_precision(&[false, true], 2), 0.5);
        assert_eq!(average_precision_at_r(&[false, true], 2), 0.25);
    }

    #[test]
    fn first_relevant_rank_finds_the_first_hit() {
        assert_eq!(first_relevant_rank(&[false, false, true, true]), Some(2));
        assert_eq!(first_relevant_rank(&[false, false]), None);
    }

    #[test]
    fn outcome_without_positive_has_no_map() {
        let o = QueryOutcome::new(&[false, false], 0, true);
        assert_eq!(o.ap_and_rp, None);
        assert_eq!(o.first_positive, None);
    }
}
