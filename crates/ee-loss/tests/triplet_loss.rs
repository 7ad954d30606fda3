//! Triplet loss (semi-hard and all valid triplets), with and without Embedding Expansion.

mod loss_support;

use ee_loss::{
    EmbeddingExpansionConfig, LossError, PairLoss, Reduction, TripletLoss, TripletLossConfig,
    TripletNegatives,
};
use loss_support::*;

fn loss(negatives: TripletNegatives, n: usize) -> TripletLoss {
    TripletLossConfig::new()
        .with_negatives(negatives)
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
        .init()
        .unwrap()
}

fn per_anchor(loss: &TripletLoss, rows: &[Vec<f64>], label_values: &[i64]) -> Vec<f64> {
    device();
    vector(
        loss.forward(embeddings(rows), labels(label_values))
            .unwrap()
            .per_anchor,
    )
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// TensorFlow's `triplet_semihard_loss` (FaceNet's semi-hard negatives): the mean over ordered
/// positive pairs (a, p) of the hinge with the closest negative farther than p, or the
/// farthest negative when there is none.
fn published_semi_hard(rows: &[Vec<f64>], label_values: &[i64], margin: f64) -> f64 {
    let mut terms = Vec::new();
    for a in 0..rows.len() {
        for p in 0..rows.len() {
            if p == a || label_values[p] != label_values[a] {
                continue;
            }
            let d_ap = euclidean(&rows[a], &rows[p]);
            let negatives: Vec<f64> = (0..rows.len())
                .filter(|&k| label_values[k] != label_values[a])
                .map(|k| euclidean(&rows[a], &rows[k]))
                .collect();
            let farther = negatives.iter().copied().filter(|&d| d > d_ap);
            let d_an = farther
                .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))))
                .unwrap_or_else(|| negatives.iter().copied().fold(f64::MIN, f64::max));
            terms.push((d_ap - d_an + margin).max(0.0));
        }
    }
    mean(&terms)
}

/// Mean hinge over every valid triplet (a, p, n) of the batch.
fn published_all_valid(rows: &[Vec<f64>], label_values: &[i64], margin: f64) -> f64 {
    let mut terms = Vec::new();
    for a in 0..rows.len() {
        for p in 0..rows.len() {
            for k in 0..rows.len() {
                if p != a
                    && label_values[p] == label_values[a]
                    && label_values[k] != label_values[a]
                {
                    let hinge =
                        euclidean(&rows[a], &rows[p]) - euclidean(&rows[a], &rows[k]) + margin;
                    terms.push(hinge.max(0.0));
                }
            }
        }
    }
    mean(&terms)
}

/// The documented EE rule in plain loops: positives among originals, negatives (r, c) with r
/// the anchor or its synthetic rows.
fn reference_per_anchor(
    rows: &[Vec<f64>],
    label_values: &[i64],
    n: usize,
    negatives: TripletNegatives,
    margin: f64,
) -> Vec<f64> {
    let points = expand_reference(rows, n, true);
    (0..rows.len())
        .map(|i| {
            let pairs = reference_pairs(label_values, n, i);
            let negative_distances: Vec<f64> = pairs
                .negatives
                .iter()
                .map(|&(r, c)| euclidean(&points[r], &points[c]))
                .collect();
            let mut terms = Vec::new();
            for &j in &pairs.positives {
                let d_ap = euclidean(&points[i], &points[j]);
                match negatives {
                    TripletNegatives::SemiHard => {
                        let farther = negative_distances.iter().copied().filter(|&d| d > d_ap);
                        let d_an = farther.fold(f64::INFINITY, f64::min);
                        let d_an = if d_an.is_finite() {
                            d_an
                        } else {
                            negative_distances.iter().copied().fold(f64::MIN, f64::max)
                        };
                        terms.push((d_ap - d_an + margin).max(0.0));
                    }
                    TripletNegatives::AllValid => terms.extend(
                        negative_distances
                            .iter()
                            .map(|d_an| (d_ap - d_an + margin).max(0.0)),
                    ),
                }
            }
            mean(&terms)
        })
        .collect()
}

#[test]
fn hand_computed_semi_hard_case_where_a_synthetic_point_is_the_negative() {
    // Class A at 0 and 20 degrees, class B at 40 and 60 degrees on the unit circle.
    let rows = on_circle(&[0.0, 20.0, 40.0, 60.0]);
    let label_values = [1, 1, 2, 2];
    let d_ap = 2.0 * 10f64.to_radians().sin();

    // Without expansion the closest farther negative of anchor 0 is B at 40 degrees:
    // 0.347 - 0.684 + 0.2 < 0.
    let plain = per_anchor(&loss(TripletNegatives::SemiHard, 0), &rows, &label_values);
    assert_eq!(plain[0], 0.0);

    // With n = 2, anchor 0's synthetic point s_2(0) = (x_0 + 2 x_1) / 3, normalised, sits at
    // angle phi; its distance to B at 40 degrees is the closest farther negative.
    let twenty = 20f64.to_radians();
    let phi = (2.0 * twenty.sin()).atan2(1.0 + 2.0 * twenty.cos());
    let d_an = 2.0 * ((40f64.to_radians() - phi) / 2.0).sin();
    let expanded = per_anchor(&loss(TripletNegatives::SemiHard, 2), &rows, &label_values);
    assert!(d_an > d_ap && d_an < 2.0 * 20f64.to_radians().sin());
    assert_close(expanded[0], d_ap - d_an + 0.2, "anchor 0 with EE");
    assert!(expanded[0] > 0.05);
}

#[test]
fn without_expansion_both_variants_equal_the_published_formulas() {
    device();
    for seed in 0..3 {
        let (rows, label_values) = random_batch(3, 4, 5, true, seed);
        let semi = scalar(
            loss(TripletNegatives::SemiHard, 0)
                .forward(embeddings(&rows), labels(&label_values))
                .unwrap()
                .loss,
        );
        assert_close(
            semi,
            published_semi_hard(&rows, &label_values, 0.2),
            "semi-hard",
        );
        let all = scalar(
            loss(TripletNegatives::AllValid, 0)
                .forward(embeddings(&rows), labels(&label_values))
                .unwrap()
                .loss,
        );
        assert_close(
            all,
            published_all_valid(&rows, &label_values, 0.2),
            "all valid",
        );
        assert!(semi > 0.0 && all > 0.0);
    }
}

#[test]
fn with_expansion_each_anchor_follows_the_documented_pairs() {
    for negatives in [TripletNegatives::SemiHard, TripletNegatives::AllValid] {
        for n in [1, 2, 3] {
            let (rows, label_values) = random_batch(3, 4, 4, true, 10 + n as u64);
            let got = per_anchor(&loss(negatives, n), &rows, &label_values);
            let want = reference_per_anchor(&rows, &label_values, n, negatives, 0.2);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_close(*g, *w, &format!("{negatives:?} n={n} anchor {i}"));
            }
            let plain = per_anchor(&loss(negatives, 0), &rows, &label_values);
            assert_ne!(
                got, plain,
                "{negatives:?} n={n}: the synthetic negatives count"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    device();
    for (negatives, n, seed) in [
        (TripletNegatives::SemiHard, 0, 1),
        (TripletNegatives::SemiHard, 2, 2),
        (TripletNegatives::AllValid, 2, 3),
    ] {
        let (rows, label_values) = random_batch(2, 4, 3, true, seed);
        let loss = TripletLossConfig::new()
            .with_negatives(negatives)
            .with_margin(0.5)
            .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
            .init()
            .unwrap();
        check_gradient(&rows, &label_values, |x, y| loss.forward(x, y));
    }
}

/// Two tight clusters at opposite poles.
fn separated() -> (Vec<Vec<f64>>, Vec<i64>) {
    let rows = two_clusters(1.0);
    (rows, vec![0, 0, 0, 0, 1, 1, 1, 1])
}

#[test]
fn zero_on_a_separated_batch_and_positive_on_a_shuffled_one() {
    device();
    let (rows, label_values) = separated();
    // Same points, labels mixing the two clusters (partners keep a common label).
    let shuffled = [0, 0, 1, 1, 0, 0, 1, 1];
    for negatives in [TripletNegatives::SemiHard, TripletNegatives::AllValid] {
        for n in [0, 2] {
            let loss = loss(negatives, n);
            let value =
                |l: &[i64]| scalar(loss.forward(embeddings(&rows), labels(l)).unwrap().loss);
            assert_eq!(value(&label_values), 0.0, "{negatives:?} n={n}");
            assert!(value(&shuffled) > 0.1, "{negatives:?} n={n}");
        }
    }
}

#[test]
fn sum_reduction_adds_the_anchor_terms() {
    device();
    let (rows, label_values) = random_batch(2, 4, 3, true, 5);
    let config = TripletLossConfig::new().with_reduction(Reduction::Sum);
    let output = config
        .init()
        .unwrap()
        .forward(embeddings(&rows), labels(&label_values))
        .unwrap();
    let terms = vector(output.per_anchor);
    assert_close(scalar(output.loss), terms.iter().sum(), "sum");
}

#[test]
fn bad_parameters_are_named() {
    for margin in [-0.1, f64::NAN, f64::INFINITY] {
        let error = TripletLossConfig::new()
            .with_margin(margin)
            .init()
            .unwrap_err();
        assert!(matches!(
            error,
            LossError::InvalidParameter { name: "margin", .. }
        ));
        assert!(error.to_string().contains("margin"), "{error}");
    }
}

#[test]
fn bad_batches_are_refused() {
    device();
    let rows = on_circle(&[0.0, 10.0, 90.0]);
    let error = loss(TripletNegatives::SemiHard, 2)
        .forward(embeddings(&rows), labels(&[1, 1, 2]))
        .unwrap_err();
    assert_eq!(error, LossError::OddBatch { rows: 3 });
}
