//! Clustering quality against class labels: NMI and pairwise F1.
//!
//! With `n_ij` items of class `i` in cluster `j`, class sizes `a_i`, cluster sizes `b_j`:
//!
//! ```text
//! H(U)  = -sum_i (a_i/n) ln(a_i/n)          H(V) likewise with b_j
//! I     =  sum_ij (n_ij/n) ln(n n_ij / (a_i b_j))
//! NMI   =  I / ((H(U) + H(V)) / 2)          (1 when both partitions are a single set)
//!
//! TP = sum_ij C(n_ij, 2)   precision = TP / sum_j C(b_j, 2)   recall = TP / sum_i C(a_i, 2)
//! F1 = 2 precision recall / (precision + recall)
//! ```
//!
//! Sums run in a fixed (sorted) order, so the same input always gives the same bits.
//! A pair is counted once (unordered). When a denominator is 0 (every cluster, or every
//! class, a singleton) that precision or recall is 0, and so is F1 when both are 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pairwise precision, recall and F1 of a clustering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairwiseScores {
    /// Same-cluster pairs that share a class / same-cluster pairs.
    pub precision: f64,
    /// Same-cluster pairs that share a class / same-class pairs.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

struct Contingency {
    n: usize,
    classes: BTreeMap<i64, usize>,
    clusters: BTreeMap<usize, usize>,
    cells: BTreeMap<(i64, usize), usize>,
}

fn contingency(labels: &[i64], clusters: &[usize]) -> Contingency {
    assert_eq!(
        labels.len(),
        clusters.len(),
        "one cluster per label is needed"
    );
    let mut c = Contingency {
        n: labels.len(),
        classes: BTreeMap::new(),
        clusters: BTreeMap::new(),
        cells: BTreeMap::new(),
    };
    for (&l, &k) in labels.iter().zip(clusters) {
        *c.classes.entry(l).or_default() += 1;
        *c.clusters.entry(k).or_default() += 1;
        *c.cells.entry((l, k)).or_default() += 1;
    }
    c
}

fn entropy<K>(sizes: &BTreeMap<K, usize>, total: f64) -> f64 {
    sizes
        .values()
        .map(|&s| {
            let p = s as f64 / total;
            -p * p.ln()
        })
        .sum()
}

/// Normalised mutual information (arithmetic mean of the entropies) between class labels and
/// cluster assignments. Symmetric, in [0, 1], invariant to renaming classes or clusters.
///
/// Panics if the two slices differ in length; returns 1 for empty input.
pub fn normalized_mutual_information(labels: &[i64], clusters: &[usize]) -> f64 {
    if labels.is_empty() {
        assert!(clusters.is_empty(), "one cluster per label is needed");
        return 1.0;
    }
    let table = contingency(labels, clusters);
    let n = table.n as f64;
    let (h_u, h_v) = (entropy(&table.classes, n), entropy(&table.clusters, n));
    if table.classes.len() == 1 && table.clusters.len() == 1 {
        return 1.0;
    }
    let mutual: f64 = table
        .cells
        .iter()
        .map(|(&(l, k), &nij)| {
            let nij = nij as f64;
            let (a, b) = (table.classes[&l] as f64, table.clusters[&k] as f64);
            (nij / n) * (n * nij / (a * b)).ln()
        })
        .sum();
    let mean_entropy = (h_u + h_v) / 2.0;
    if mean_entropy <= 0.0 {
        return 1.0;
    }
    (mutual / mean_entropy).clamp(0.0, 1.0)
}

fn pairs(size: usize) -> f64 {
    let size = size as f64;
    size * (size - 1.0) / 2.0
}

/// Pairwise precision, recall and F1 of `clusters` against `labels` (unordered pairs: a true
/// positive is a pair sharing both class and cluster). Panics if the lengths differ.
pub fn pairwise_scores(labels: &[i64], clusters: &[usize]) -> PairwiseScores {
    let table = contingency(labels, clusters);
    let tp: f64 = table.cells.values().map(|&s| pairs(s)).sum();
    let predicted: f64 = table.clusters.values().map(|&s| pairs(s)).sum();
    let actual: f64 = table.classes.values().map(|&s| pairs(s)).sum();
    let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
    let recall = if actual > 0.0 { tp / actual } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    PairwiseScores {
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_pairwise_scores() {
        // classes: a a a b b ; clusters: 0 0 1 1 1
        // same-cluster pairs: C(2,2)+C(3,2) = 1+3 = 4; same-class pairs: C(3,2)+C(2,2) = 4
        // true positives: (a,0):1 pair, (a,1):0, (b,1):1 pair -> 2
        let s = pairwise_scores(&[1, 1, 1, 2, 2], &[0, 0, 1, 1, 1]);
        assert!((s.precision - 0.5).abs() < 1e-12);
        assert!((s.recall - 0.5).abs() < 1e-12);
        assert!((s.f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_nmi() {
        // classes: a a b b ; clusters: 0 0 0 1
        // H(U) = ln 2; H(V) = -(3/4 ln 3/4 + 1/4 ln 1/4)
        // I = 2/4 ln(4*2/(2*3)) + 1/4 ln(4*1/(2*3)) + 1/4 ln(4*1/(2*1))
        let h_u = 2f64.ln();
        let h_v = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        let i = 0.5 * (8.0f64 / 6.0).ln() + 0.25 * (4.0f64 / 6.0).ln() + 0.25 * 2f64.ln();
        let expected = i / ((h_u + h_v) / 2.0);
        let got = normalized_mutual_information(&[7, 7, 9, 9], &[0, 0, 0, 1]);
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn nmi_of_identical_partitions_is_one_whatever_the_names() {
        let labels = [3, 3, 1, 1, 1, 8, 5, 5];
        let clusters = [2, 2, 0, 0, 0, 7, 1, 1];
        assert!((normalized_mutual_information(&labels, &clusters) - 1.0).abs() < 1e-12);
        assert!((pairwise_scores(&labels, &clusters).f1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nmi_of_a_single_cluster_against_many_classes_is_zero() {
        assert_eq!(
            normalized_mutual_information(&[0, 1, 2, 3], &[0, 0, 0, 0]),
            0.0
        );
    }

    #[test]
    fn all_singletons_give_zero_f1_without_dividing_by_zero() {
        let s = pairwise_scores(&[0, 1, 2], &[0, 1, 2]);
        assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
    }
}
