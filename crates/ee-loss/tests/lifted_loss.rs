//! Smooth Lifted Structure loss, with and without Embedding Expansion.

mod loss_support;

use ee_loss::{
    EmbeddingExpansionConfig, LiftedStructureLoss, LiftedStructureLossConfig, LossError, PairLoss,
};
use loss_support::*;

fn loss(n: usize, l2_norm: bool) -> LiftedStructureLoss {
    LiftedStructureLossConfig::new()
        .with_expansion(
            EmbeddingExpansionConfig::new()
                .with_n_inner_pts(n)
                .with_l2_norm(l2_norm),
        )
        .init()
        .unwrap()
}

fn per_anchor(loss: &LiftedStructureLoss, rows: &[Vec<f64>], label_values: &[i64]) -> Vec<f64> {
    device();
    vector(
        loss.forward(embeddings(rows), labels(label_values))
            .unwrap()
            .per_anchor,
    )
}

/// Oh Song et al. (2016), eq. 4: `1/(2|P|) sum over unordered positive pairs of
/// max(0, J_ij)^2`, `J_ij = D_ij + log(sum_{k in N(i)} exp(a - D_ik) + sum_{l in N(j)} exp(a - D_jl))`.
fn published(rows: &[Vec<f64>], label_values: &[i64], margin: f64) -> f64 {
    let negatives_of = |i: usize| -> f64 {
        (0..rows.len())
            .filter(|&k| label_values[k] != label_values[i])
            .map(|k| (margin - euclidean(&rows[i], &rows[k])).exp())
            .sum()
    };
    let mut total = 0.0;
    let mut pairs = 0;
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            if label_values[i] == label_values[j] {
                let big_j =
                    euclidean(&rows[i], &rows[j]) + (negatives_of(i) + negatives_of(j)).ln();
                total += big_j.max(0.0).powi(2);
                pairs += 1;
            }
        }
    }
    total / (2.0 * pairs as f64)
}

/// The documented EE rule in plain loops.
fn reference_per_anchor(
    rows: &[Vec<f64>],
    label_values: &[i64],
    n: usize,
    l2_norm: bool,
    margin: f64,
) -> Vec<f64> {
    let points = expand_reference(rows, n, l2_norm);
    let negative_sum = |i: usize| -> f64 {
        reference_pairs(label_values, n, i)
            .negatives
            .iter()
            .map(|&(r, c)| (margin - euclidean(&points[r], &points[c])).exp())
            .sum()
    };
    (0..rows.len())
        .map(|i| {
            let positives = reference_pairs(label_values, n, i).positives;
            positives
                .iter()
                .map(|&j| {
                    let big_j = euclidean(&points[i], &points[j])
                        + (negative_sum(i) + negative_sum(j)).ln();
                    big_j.max(0.0).powi(2) / 2.0
                })
                .sum::<f64>()
                / positives.len() as f64
        })
        .collect()
}

#[test]
fn hand_computed_case_on_a_line() {
    // Class A at 0 and 1, class B at 3 and 4.
    let rows = vec![vec![0.0], vec![1.0], vec![3.0], vec![4.0]];
    let label_values = [1, 1, 2, 2];
    let e = |x: f64| x.exp();
    // N(0): distances 3, 4; N(1): 2, 3 (margin 1).
    let j01 = 1.0 + (e(-2.0) + e(-3.0) + e(-1.0) + e(-2.0)).ln();
    let plain = per_anchor(&loss(0, false), &rows, &label_values);
    for (i, term) in plain.iter().enumerate() {
        assert_close(*term, j01 * j01 / 2.0, &format!("anchor {i}"));
    }

    // n = 2 without normalisation: anchor 0's rows are 0, 1/3, 2/3, anchor 1's 1, 2/3, 1/3,
    // and class B's expanded points are 3, 4 and 10/3, 11/3 twice each.
    let columns = [3.0, 4.0, 10.0 / 3.0, 11.0 / 3.0, 11.0 / 3.0, 10.0 / 3.0];
    let negative_sum = |anchor_rows: [f64; 3]| -> f64 {
        anchor_rows
            .iter()
            .flat_map(|r| columns.iter().map(move |c| e(1.0 - (c - r))))
            .sum()
    };
    let j01 = 1.0
        + (negative_sum([0.0, 1.0 / 3.0, 2.0 / 3.0]) + negative_sum([1.0, 2.0 / 3.0, 1.0 / 3.0]))
            .ln();
    let expanded = per_anchor(&loss(2, false), &rows, &label_values);
    assert_close(expanded[0], j01 * j01 / 2.0, "anchor 0 with EE");
    // The hardest negative pair (2/3, 3) is synthetic, and it raises the loss.
    assert!(expanded[0] > plain[0] + 0.1);
}

#[test]
fn without_expansion_the_mean_equals_the_published_formula() {
    device();
    for seed in 0..3 {
        let (rows, label_values) = random_batch(3, 4, 5, true, seed);
        let got = scalar(
            loss(0, true)
                .forward(embeddings(&rows), labels(&label_values))
                .unwrap()
                .loss,
        );
        assert_close(got, published(&rows, &label_values, 1.0), "lifted");
    }
}

#[test]
fn with_expansion_each_anchor_follows_the_documented_pairs() {
    for (n, l2_norm) in [(1, true), (2, true), (2, false), (3, true)] {
        let (rows, label_values) = random_batch(3, 4, 4, true, 20 + n as u64);
        let got = per_anchor(&loss(n, l2_norm), &rows, &label_values);
        let want = reference_per_anchor(&rows, &label_values, n, l2_norm, 1.0);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(*g, *w, &format!("n={n} anchor {i}"));
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    device();
    for (n, seed) in [(0, 1), (2, 2)] {
        let (rows, label_values) = random_batch(2, 4, 3, true, seed);
        let loss = loss(n, true);
        check_gradient(&rows, &label_values, |x, y| loss.forward(x, y));
    }
}

#[test]
fn zero_on_a_separated_batch_and_positive_on_a_shuffled_one() {
    device();
    // Two tight clusters 20 apart (unnormalised, so that no negative is within the margin).
    let rows = two_clusters(10.0);
    for n in [0, 2] {
        let loss = loss(n, false);
        let value = |l: &[i64]| scalar(loss.forward(embeddings(&rows), labels(l)).unwrap().loss);
        assert_eq!(value(&[0, 0, 0, 0, 1, 1, 1, 1]), 0.0, "n={n}");
        assert!(value(&[0, 0, 1, 1, 0, 0, 1, 1]) > 1.0, "n={n}");
    }
}

#[test]
fn bad_parameters_are_named() {
    for margin in [-1.0, f64::NAN] {
        let error = LiftedStructureLossConfig::new()
            .with_margin(margin)
            .init()
            .unwrap_err();
        assert!(matches!(
            error,
            LossError::InvalidParameter { name: "margin", .. }
        ));
    }
}
