// The cases of `tests/hphn_reference.rs`, compiled there once per backend: this file is
// `include!`d into a module that defines `Inner`, the backend under test.

use crate::common;
use burn::backend::Autodiff;
use burn::tensor::{Int, Tensor, TensorData};
use common::{max_abs_diff, random_batch, reference, to_f32_precision, Params};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig, LossError, Reduction};

type B = Autodiff<Inner>;

fn tensors(x: &[Vec<f64>], labels: &[i64]) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let rows = x.len();
    let dim = x[0].len();
    let flat: Vec<f32> = x.iter().flatten().map(|&v| v as f32).collect();
    let embeddings = Tensor::<B, 2>::from_data(TensorData::new(flat, [rows, dim]), &device);
    let labels = Tensor::<B, 1, Int>::from_data(
        TensorData::new(labels.iter().map(|&l| l as i32).collect::<Vec<_>>(), [rows]),
        &device,
    );
    (embeddings.require_grad(), labels)
}

fn to_vec(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Runs burn and the reference on one batch; returns the number of ties the reference used.
fn compare(x: &[Vec<f64>], labels: &[i64], p: &Params) -> usize {
    let x = to_f32_precision(x);
    let config = HphnTripletLossConfig::new()
        .with_margin(p.margin)
        .with_soft_margin(p.soft_margin)
        .with_expansion(
            EmbeddingExpansionConfig::new()
                .with_n_inner_pts(p.n)
                .with_l2_norm(p.l2_norm),
        );
    let loss = config.init().unwrap();
    let (embeddings, label_tensor) = tensors(&x, labels);
    let output = loss.forward(embeddings.clone(), label_tensor).unwrap();
    let expected = reference(&x, labels, p);

    let per_anchor = to_vec(output.per_anchor.clone());
    assert!(
        max_abs_diff(&per_anchor, &expected.per_anchor) < 1e-5,
        "per-anchor loss: burn {per_anchor:?}\nreference {:?}",
        expected.per_anchor
    );
    let d_ap = to_vec(output.pairs.positive_distance.clone());
    let d_an = to_vec(output.pairs.negative_distance.clone());
    assert!(max_abs_diff(&d_ap, &expected.d_ap) < 1e-5);
    assert!(max_abs_diff(&d_an, &expected.d_an) < 1e-5);

    let grads = output.loss.backward();
    let grad: Vec<f64> = embeddings
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f64>()
        .collect();
    let expected_grad: Vec<f64> = expected.grad.iter().flatten().cloned().collect();
    let diff = max_abs_diff(&grad, &expected_grad);
    assert!(
        diff < 1e-4,
        "gradient differs by {diff} (n = {}, l2 = {}, soft = {}, ties = {})",
        p.n,
        p.l2_norm,
        p.soft_margin,
        expected.ties
    );
    expected.ties
}

#[test]
fn matches_the_reference_on_random_batches() {
    let mut total_ties = 0;
    for (seed, n, l2_norm, soft_margin, spread) in [
        (1, 0, true, false, 0.6),
        (2, 1, true, false, 0.6),
        (3, 2, true, false, 0.8),
        (4, 2, false, false, 0.8),
        (5, 4, true, false, 1.0),
        (6, 8, true, false, 1.0),
        (7, 2, true, true, 0.8),
        (8, 3, false, true, 1.2),
    ] {
        let (x, labels) = random_batch(seed, 4, 4, 8, spread);
        let p = Params {
            n,
            l2_norm,
            margin: 0.2,
            soft_margin,
        };
        total_ties += compare(&x, &labels, &p);
    }
    // The batches must exercise the tie rule (twin synthetic points as hardest negatives).
    assert!(
        total_ties > 0,
        "no tie occurred: the test does not cover the tie rule"
    );
}

#[test]
fn tie_rule_when_the_hardest_negative_is_a_synthetic_point() {
    // Heavily overlapping classes: synthetic points are often the hardest negatives, and each
    // exists twice, so the hardest negative is a tie between twins.
    let mut tied_batches = 0;
    for seed in 10..16 {
        let (x, labels) = random_batch(seed, 3, 4, 4, 3.0);
        let p = Params {
            n: 2,
            l2_norm: true,
            margin: 1e-5,
            soft_margin: false,
        };
        if compare(&x, &labels, &p) > 0 {
            tied_batches += 1;
        }
    }
    assert!(tied_batches >= 3, "only {tied_batches} batches had ties");
}

#[test]
fn reference_default_margin_and_mean_reduction() {
    let (x, labels) = random_batch(21, 4, 2, 6, 0.9);
    let x = to_f32_precision(&x);
    let p = Params {
        n: 2,
        l2_norm: true,
        margin: 1e-5,
        soft_margin: false,
    };
    let expected = reference(&x, &labels, &p);
    let (embeddings, label_tensor) = tensors(&x, &labels);
    let loss = HphnTripletLossConfig::new()
        .with_reduction(Reduction::Mean)
        .init()
        .unwrap();
    let output = loss.forward(embeddings.clone(), label_tensor).unwrap();
    let mean = to_vec(output.loss.clone())[0];
    let want = expected.per_anchor.iter().sum::<f64>() / x.len() as f64;
    assert!((mean - want).abs() < 1e-5, "{mean} vs {want}");
    let grads = output.loss.backward();
    let grad: Vec<f64> = embeddings
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f64>()
        .collect();
    let want_grad: Vec<f64> = expected
        .grad
        .iter()
        .flatten()
        .map(|g| g / x.len() as f64)
        .collect();
    assert!(max_abs_diff(&grad, &want_grad) < 1e-4);
}

#[test]
fn without_expansion_it_is_plain_batch_hard_triplet() {
    let (x, labels) = random_batch(31, 5, 3, 8, 1.1);
    let x = to_f32_precision(&x);
    let margin = 0.1;
    // Batch-hard triplet (Hermans et al. 2017), written directly.
    let d = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(u, v)| (u - v) * (u - v))
            .sum::<f64>()
            .sqrt()
    };
    let expected: Vec<f64> = (0..x.len())
        .map(|i| {
            let mut hardest_positive = 0.0f64;
            let mut hardest_negative = f64::MAX;
            for j in 0..x.len() {
                if j != i && labels[j] == labels[i] {
                    hardest_positive = hardest_positive.max(d(&x[i], &x[j]));
                } else if labels[j] != labels[i] {
                    hardest_negative = hardest_negative.min(d(&x[i], &x[j]));
                }
            }
            (hardest_positive - hardest_negative + margin).max(0.0)
        })
        .collect();
    let (embeddings, label_tensor) = tensors(&x, &labels);
    let loss = HphnTripletLossConfig::new()
        .with_margin(margin)
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(0))
        .init()
        .unwrap();
    let output = loss.forward(embeddings, label_tensor).unwrap();
    let got = to_vec(output.per_anchor);
    assert!(
        max_abs_diff(&got, &expected) < 1e-5,
        "{got:?}\n{expected:?}"
    );
    assert!(expected.iter().any(|&l| l > 0.0) && expected.contains(&0.0));
}

#[test]
fn twin_synthetic_points_give_bit_identical_distances_at_full_size() {
    // The reference run's shape: B = 128 (4 classes x 32), D = 512, n = 2.
    let (x, labels) = random_batch(41, 4, 32, 512, 0.8);
    let (embeddings, label_tensor) = tensors(&x, &labels);
    let batch = EmbeddingExpansionConfig::new()
        .init()
        .expand(embeddings.inner(), label_tensor.inner())
        .unwrap();
    let (b, n) = (128, 2);
    let d: Vec<f32> = batch.distance_matrix().into_data().to_vec().unwrap();
    let rows = (n + 1) * b;
    // s_t(i) sits at row t*B + i; its twin s_{n+1-t}(p(i)) at (n+1-t)*B + (i^1).
    for t in 1..=n {
        for i in 0..b {
            let r = t * b + i;
            let twin = (n + 1 - t) * b + (i ^ 1);
            assert_eq!(
                d[r * rows..(r + 1) * rows],
                d[twin * rows..(twin + 1) * rows],
                "rows {r} and {twin}"
            );
            for c in 0..rows {
                assert_eq!(d[c * rows + r].to_bits(), d[c * rows + twin].to_bits());
            }
        }
    }
    let points: Vec<f32> = batch.embeddings().into_data().to_vec().unwrap();
    let dim = 512;
    let r = b + 6;
    let twin = 2 * b + 7;
    assert_eq!(
        points[r * dim..(r + 1) * dim],
        points[twin * dim..(twin + 1) * dim]
    );
}

#[test]
fn expansion_layout_and_interpolation() {
    let x = vec![
        vec![1.0, 0.0],
        vec![0.0, 1.0],
        vec![-1.0, 0.0],
        vec![0.0, -1.0],
    ];
    let labels = [9, 9, -4, -4];
    let (embeddings, label_tensor) = tensors(&x, &labels);
    let batch = EmbeddingExpansionConfig::new()
        .with_n_inner_pts(3)
        .with_l2_norm(false)
        .init()
        .expand(embeddings.inner(), label_tensor.inner())
        .unwrap();
    assert_eq!(batch.len(), 16);
    let points: Vec<f32> = batch.embeddings().into_data().to_vec().unwrap();
    // s_1(0) = (1 * x1 + 3 * x0) / 4 = (0.75, 0.25); s_3(1) = (3 * x0 + 1 * x1) / 4, the same.
    assert_eq!(&points[8..10], &[0.75, 0.25]);
    assert_eq!(&points[3 * 4 * 2 + 2..3 * 4 * 2 + 4], &[0.75, 0.25]);
    // s_2(2) = (2 * x3 + 2 * x2) / 4 = (-0.5, -0.5)
    assert_eq!(&points[2 * 4 * 2 + 4..2 * 4 * 2 + 6], &[-0.5, -0.5]);
    let expanded_labels: Vec<i64> = batch.labels().into_data().iter::<i64>().collect();
    assert_eq!(expanded_labels, [9, 9, -4, -4].repeat(4));
    let original: Vec<bool> = batch.is_original().into_data().iter::<bool>().collect();
    assert_eq!(original.iter().filter(|&&o| o).count(), 4);
    assert!(original[..4].iter().all(|&o| o));
}

#[test]
fn bad_batches_and_parameters_are_clear_errors() {
    let loss = HphnTripletLossConfig::new().init().unwrap();
    let forward = |x: Vec<Vec<f64>>, labels: Vec<i64>| {
        let (e, l) = tensors(&x, &labels);
        loss.forward(e, l).map(|_| ())
    };
    let row = |v: f64| vec![v, 1.0 - v];
    // K odd with EE on.
    assert_eq!(
        forward(
            (0..6).map(|i| row(i as f64 / 6.0)).collect(),
            vec![1, 1, 1, 2, 2, 2]
        ),
        Err(LossError::OddInstances { instances: 3 })
    );
    // Partners disagree.
    assert!(matches!(
        forward(
            (0..4).map(|i| row(i as f64 / 4.0)).collect(),
            vec![1, 2, 1, 2]
        ),
        Err(LossError::PartnerMismatch { row: 0, .. })
    ));
    // A class with one instance (no expansion).
    let no_ee = HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(0))
        .init()
        .unwrap();
    let (e, l) = tensors(
        &(0..3).map(|i| row(i as f64 / 3.0)).collect::<Vec<_>>(),
        &[5, 5, 6],
    );
    assert_eq!(
        no_ee.forward(e, l).map(|_| ()),
        Err(LossError::SingleInstance { label: 6, row: 2 })
    );
    // Non-finite embeddings.
    assert_eq!(
        forward(
            vec![
                row(0.1),
                vec![f64::NAN, 0.0],
                row(0.3),
                vec![f64::INFINITY, 1.0]
            ],
            vec![1, 1, 2, 2]
        ),
        Err(LossError::NonFinite { count: 2 })
    );
    // Length mismatch and empty batch.
    let device = Default::default();
    let e = Tensor::<B, 2>::zeros([4, 2], &device);
    let l = Tensor::<B, 1, Int>::from_data([1, 1, 2], &device);
    assert_eq!(
        loss.forward(e, l).map(|_| ()),
        Err(LossError::LengthMismatch {
            embeddings: 4,
            labels: 3
        })
    );
    let e = Tensor::<B, 2>::zeros([0, 2], &device);
    let l = Tensor::<B, 1, Int>::from_data(TensorData::new(Vec::<i32>::new(), [0]), &device);
    assert_eq!(loss.forward(e, l).map(|_| ()), Err(LossError::EmptyBatch));
    // Negative or NaN margin.
    for margin in [-0.1, f64::NAN] {
        let err = HphnTripletLossConfig::new()
            .with_margin(margin)
            .init()
            .unwrap_err();
        assert!(err.to_string().contains("margin"), "{err}");
    }
}
