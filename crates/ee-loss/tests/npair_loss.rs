//! Multi-class N-pair loss with the L2 penalty, with and without Embedding Expansion.

mod loss_support;

use ee_loss::{EmbeddingExpansionConfig, LossError, NPairLoss, NPairLossConfig, PairLoss};
use loss_support::*;

fn loss(n: usize, l2_weight: f64) -> NPairLoss {
    NPairLossConfig::new()
        .with_l2_weight(l2_weight)
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
        .init()
        .unwrap()
}

fn per_anchor(loss: &NPairLoss, rows: &[Vec<f64>], label_values: &[i64]) -> Vec<f64> {
    device();
    vector(
        loss.forward(embeddings(rows), labels(label_values))
            .unwrap()
            .per_anchor,
    )
}

/// Sohn (2016), multi-class N-pair with the L2 penalty, over a classes x instances batch: the
/// mean over anchors of [ the mean over positives p of log(1 + sum_{k of another class}
/// exp(f_a.f_k - f_a.f_p)) + l2 |f_a|^2 ].
fn published(rows: &[Vec<f64>], label_values: &[i64], l2_weight: f64) -> f64 {
    let b = rows.len();
    let mut total = 0.0;
    for a in 0..b {
        let positives: Vec<usize> = (0..b)
            .filter(|&p| p != a && label_values[p] == label_values[a])
            .collect();
        let mut term = 0.0;
        for &p in &positives {
            let s_ap = dot(&rows[a], &rows[p]);
            let sum: f64 = (0..b)
                .filter(|&k| label_values[k] != label_values[a])
                .map(|k| (dot(&rows[a], &rows[k]) - s_ap).exp())
                .sum();
            term += (1.0 + sum).ln();
        }
        total += term / positives.len() as f64 + l2_weight * dot(&rows[a], &rows[a]);
    }
    total / b as f64
}

/// The documented EE rule in plain loops.
fn reference_per_anchor(
    rows: &[Vec<f64>],
    label_values: &[i64],
    n: usize,
    l2_weight: f64,
) -> Vec<f64> {
    let points = expand_reference(rows, n, true);
    (0..rows.len())
        .map(|i| {
            let pairs = reference_pairs(label_values, n, i);
            let mut term = 0.0;
            for &j in &pairs.positives {
                let s_ij = dot(&points[i], &points[j]);
                let sum: f64 = pairs
                    .negatives
                    .iter()
                    .map(|&(r, c)| (dot(&points[r], &points[c]) - s_ij).exp())
                    .sum();
                term += (1.0 + sum).ln();
            }
            term / pairs.positives.len() as f64 + l2_weight * dot(&rows[i], &rows[i])
        })
        .collect()
}

#[test]
fn hand_computed_case_without_expansion() {
    let rows = vec![
        vec![1.0, 0.0],
        vec![0.8, 0.6],
        vec![-1.0, 0.0],
        vec![0.0, 1.0],
    ];
    let got = per_anchor(&loss(0, 0.02), &rows, &[1, 1, 2, 2]);
    // Anchor 0: positive similarity 0.8, negatives -1 and 0; |x_0|^2 = 1.
    let want = (1.0 + (-1.0f64 - 0.8).exp() + (0.0f64 - 0.8).exp()).ln() + 0.02;
    assert_close(got[0], want, "anchor 0");
}

#[test]
fn a_synthetic_hardest_negative_raises_the_anchor_term() {
    // Class A at 0 and 90 degrees; class B at 40 and 50 degrees, right by A's midpoint.
    let rows = on_circle(&[0.0, 90.0, 40.0, 50.0]);
    let label_values = [1, 1, 2, 2];
    let cos = |deg: f64| deg.to_radians().cos();
    let plain = per_anchor(&loss(1, 0.02), &rows, &label_values);
    // n = 1: anchor 0's rows are 0 and 45 degrees; class B's expanded points 40, 50, 45, 45.
    let sum: f64 = [0.0, 45.0]
        .iter()
        .flat_map(|r| [40.0, 50.0, 45.0, 45.0].map(|c| (cos(c - r) - cos(90.0)).exp()))
        .sum();
    assert_close(plain[0], (1.0 + sum).ln() + 0.02, "anchor 0 with EE");
    let without = per_anchor(&loss(0, 0.02), &rows, &label_values);
    assert!(plain[0] > without[0] + 0.5, "{plain:?} vs {without:?}");
}

#[test]
fn without_expansion_the_mean_equals_the_published_formula() {
    device();
    for seed in 0..3 {
        // Unnormalised rows, so that the L2 penalty varies.
        let (rows, label_values) = random_batch(3, 4, 5, false, seed);
        let got = scalar(
            loss(0, 0.02)
                .forward(embeddings(&rows), labels(&label_values))
                .unwrap()
                .loss,
        );
        assert_close(got, published(&rows, &label_values, 0.02), "npair");
    }
}

#[test]
fn with_expansion_each_anchor_follows_the_documented_pairs() {
    for n in [1, 2, 3] {
        let (rows, label_values) = random_batch(3, 4, 4, false, 30 + n as u64);
        let got = per_anchor(&loss(n, 0.02), &rows, &label_values);
        let want = reference_per_anchor(&rows, &label_values, n, 0.02);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(*g, *w, &format!("n={n} anchor {i}"));
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    device();
    for (n, seed) in [(0, 1), (2, 2)] {
        let (rows, label_values) = random_batch(2, 4, 3, false, seed);
        let loss = loss(n, 0.02);
        check_gradient(&rows, &label_values, |x, y| loss.forward(x, y));
    }
}

#[test]
fn minimal_on_a_separated_batch_and_large_on_a_shuffled_one() {
    device();
    let rows = two_clusters(5.0);
    // Unnormalised, far apart: similarities of +-25 make the softmax terms vanish (on the
    // unit sphere each of the 36 negative pairs of an anchor would add exp(-2)).
    for n in [0, 2] {
        let loss = NPairLossConfig::new()
            .with_l2_weight(0.0)
            .with_expansion(
                EmbeddingExpansionConfig::new()
                    .with_n_inner_pts(n)
                    .with_l2_norm(false),
            )
            .init()
            .unwrap();
        let value = |l: &[i64]| scalar(loss.forward(embeddings(&rows), labels(l)).unwrap().loss);
        let separated = value(&[0, 0, 0, 0, 1, 1, 1, 1]);
        let shuffled = value(&[0, 0, 1, 1, 0, 0, 1, 1]);
        assert!(separated < 1e-9, "n={n}: {separated}");
        assert!(
            shuffled > separated + 1.0,
            "n={n}: {shuffled} vs {separated}"
        );
    }
}

#[test]
fn bad_parameters_are_named() {
    for weight in [-0.02, f64::NAN] {
        let error = NPairLossConfig::new()
            .with_l2_weight(weight)
            .init()
            .unwrap_err();
        assert!(matches!(
            error,
            LossError::InvalidParameter {
                name: "l2_weight",
                ..
            }
        ));
    }
}
