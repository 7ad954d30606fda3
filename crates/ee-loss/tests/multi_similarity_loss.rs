//! Multi-Similarity loss with its mining, with and without Embedding Expansion.

mod loss_support;

use ee_loss::{
    EmbeddingExpansionConfig, LossError, MultiSimilarityLoss, MultiSimilarityLossConfig, PairLoss,
};
use loss_support::*;

const ALPHA: f64 = 2.0;
const BETA: f64 = 50.0;
const LAMBDA: f64 = 1.0;
const EPSILON: f64 = 0.1;

fn loss(n: usize) -> MultiSimilarityLoss {
    MultiSimilarityLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
        .init()
        .unwrap()
}

fn per_anchor(loss: &MultiSimilarityLoss, rows: &[Vec<f64>], label_values: &[i64]) -> Vec<f64> {
    device();
    vector(
        loss.forward(embeddings(rows), labels(label_values))
            .unwrap()
            .per_anchor,
    )
}

/// One anchor's term from its positive and negative similarities, as the authors' code
/// computes it (mining thresholds from the unmined pairs, 0 when a kept set is empty).
fn anchor_term(positives: &[f64], negatives: &[f64]) -> f64 {
    let hardest_positive = positives.iter().copied().fold(f64::INFINITY, f64::min);
    let hardest_negative = negatives.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let kept_negatives: Vec<f64> = negatives
        .iter()
        .copied()
        .filter(|s| s + EPSILON > hardest_positive)
        .collect();
    let kept_positives: Vec<f64> = positives
        .iter()
        .copied()
        .filter(|s| s - EPSILON < hardest_negative)
        .collect();
    if kept_negatives.is_empty() || kept_positives.is_empty() {
        return 0.0;
    }
    let positive_sum: f64 = kept_positives
        .iter()
        .map(|s| (-ALPHA * (s - LAMBDA)).exp())
        .sum();
    let negative_sum: f64 = kept_negatives
        .iter()
        .map(|s| (BETA * (s - LAMBDA)).exp())
        .sum();
    (1.0 + positive_sum).ln() / ALPHA + (1.0 + negative_sum).ln() / BETA
}

/// Wang et al. (2019): the mean over anchors of the mined MS term (cosine similarities).
fn published(rows: &[Vec<f64>], label_values: &[i64]) -> f64 {
    let b = rows.len();
    let total: f64 = (0..b)
        .map(|a| {
            let positives: Vec<f64> = (0..b)
                .filter(|&j| j != a && label_values[j] == label_values[a])
                .map(|j| cosine(&rows[a], &rows[j]))
                .collect();
            let negatives: Vec<f64> = (0..b)
                .filter(|&k| label_values[k] != label_values[a])
                .map(|k| cosine(&rows[a], &rows[k]))
                .collect();
            anchor_term(&positives, &negatives)
        })
        .sum();
    total / b as f64
}

/// The documented EE rule in plain loops.
fn reference_per_anchor(rows: &[Vec<f64>], label_values: &[i64], n: usize) -> Vec<f64> {
    let points = expand_reference(rows, n, true);
    (0..rows.len())
        .map(|i| {
            let pairs = reference_pairs(label_values, n, i);
            let positives: Vec<f64> = pairs
                .positives
                .iter()
                .map(|&j| cosine(&points[i], &points[j]))
                .collect();
            let negatives: Vec<f64> = pairs
                .negatives
                .iter()
                .map(|&(r, c)| cosine(&points[r], &points[c]))
                .collect();
            anchor_term(&positives, &negatives)
        })
        .collect()
}

fn cos(deg: f64) -> f64 {
    deg.to_radians().cos()
}

#[test]
fn hand_computed_cases_with_and_without_a_synthetic_negative() {
    // Class A at 0 and 60 degrees, class B at 40 and 100 degrees.
    let rows = on_circle(&[0.0, 60.0, 40.0, 100.0]);
    let label_values = [1, 1, 2, 2];

    // Anchor 0: positive cos 60 = 0.5; negatives cos 40 (kept: > 0.5 - 0.1) and cos 100
    // (dropped); the positive is kept (0.5 - 0.1 < cos 40).
    let plain = per_anchor(&loss(0), &rows, &label_values);
    let want = (1.0 + (-ALPHA * (0.5 - LAMBDA)).exp()).ln() / ALPHA
        + (1.0 + (BETA * (cos(40.0) - LAMBDA)).exp()).ln() / BETA;
    assert_close(plain[0], want, "anchor 0");

    // n = 1: anchor 0's rows are 0 and 30 degrees, class B's expanded points 40, 100, 70, 70.
    // Kept negatives: (0, 40) and, from the synthetic row, (30, 40) and (30, 70) twice; the
    // synthetic pair (30, 40) is the hardest.
    let expanded = per_anchor(&loss(1), &rows, &label_values);
    let negative_sum =
        (BETA * (cos(40.0) - LAMBDA)).exp() * 3.0 + (BETA * (cos(10.0) - LAMBDA)).exp();
    let want =
        (1.0 + (-ALPHA * (0.5 - LAMBDA)).exp()).ln() / ALPHA + (1.0 + negative_sum).ln() / BETA;
    assert_close(expanded[0], want, "anchor 0 with EE");
    // The negative term is scaled by 1/beta: the synthetic pair adds about 0.0077.
    assert!(expanded[0] > plain[0] + 0.005, "{expanded:?} vs {plain:?}");
}

#[test]
fn without_expansion_the_mean_equals_the_published_formula() {
    device();
    for seed in 0..4 {
        let (rows, label_values) = random_batch(3, 4, 3, false, seed);
        let got = scalar(
            loss(0)
                .forward(embeddings(&rows), labels(&label_values))
                .unwrap()
                .loss,
        );
        let want = published(&rows, &label_values);
        assert_close(got, want, "multi-similarity");
        assert!(want > 0.0);
    }
}

#[test]
fn with_expansion_each_anchor_follows_the_documented_pairs() {
    for n in [1, 2, 3] {
        let (rows, label_values) = random_batch(3, 4, 3, true, 40 + n as u64);
        let got = per_anchor(&loss(n), &rows, &label_values);
        let want = reference_per_anchor(&rows, &label_values, n);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(*g, *w, &format!("n={n} anchor {i}"));
        }
        assert!(want.iter().any(|&t| t > 0.0));
    }
}

#[test]
fn gradients_match_finite_differences() {
    device();
    for (n, seed) in [(0, 1), (2, 2)] {
        let (rows, label_values) = random_batch(2, 4, 3, false, seed);
        let loss = loss(n);
        check_gradient(&rows, &label_values, |x, y| loss.forward(x, y));
    }
}

#[test]
fn zero_on_a_separated_batch_and_positive_on_a_shuffled_one() {
    device();
    let rows = two_clusters(1.0);
    for n in [0, 2] {
        let loss = loss(n);
        let value = |l: &[i64]| scalar(loss.forward(embeddings(&rows), labels(l)).unwrap().loss);
        assert_eq!(value(&[0, 0, 0, 0, 1, 1, 1, 1]), 0.0, "n={n}");
        assert!(value(&[0, 0, 1, 1, 0, 0, 1, 1]) > 0.1, "n={n}");
    }
}

#[test]
fn bad_parameters_are_named() {
    let cases = [
        (MultiSimilarityLossConfig::new().with_beta(0.0), "beta"),
        (MultiSimilarityLossConfig::new().with_beta(-50.0), "beta"),
        (MultiSimilarityLossConfig::new().with_alpha(0.0), "alpha"),
        (
            MultiSimilarityLossConfig::new().with_epsilon(-0.1),
            "epsilon",
        ),
        (
            MultiSimilarityLossConfig::new().with_lambda(f64::NAN),
            "lambda",
        ),
    ];
    for (config, parameter) in cases {
        match config.init().unwrap_err() {
            LossError::InvalidParameter { name, .. } => assert_eq!(name, parameter),
            other => panic!("{parameter}: {other:?}"),
        }
    }
    let message = MultiSimilarityLossConfig::new()
        .with_beta(0.0)
        .init()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("beta") && message.contains("> 0"),
        "{message}"
    );
}
