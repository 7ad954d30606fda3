//! Gradient checks in f64: finite differences of the loss itself on batches where no tie
//! occurs, and the reference's tie-rule gradient (tests/common) on batches with ties.
//!
//! This binary switches the CPU device to f64 before creating any tensor, so it lives apart
//! from the f32 tests.

mod common;

use std::sync::Once;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{set_default_dtypes, FloatDType, Int, IntDType, Tensor, TensorData};
use common::{max_abs_diff, random_batch, reference, Params};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLoss, HphnTripletLossConfig};

type B = Autodiff<Flex>;

fn use_f64() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        set_default_dtypes::<B>(&Default::default(), FloatDType::F64, IntDType::I64).unwrap();
    });
}

fn loss_of(p: &Params) -> HphnTripletLoss {
    HphnTripletLossConfig::new()
        .with_margin(p.margin)
        .with_soft_margin(p.soft_margin)
        .with_expansion(
            EmbeddingExpansionConfig::new()
                .with_n_inner_pts(p.n)
                .with_l2_norm(p.l2_norm),
        )
        .init()
        .unwrap()
}

fn tensors(x: &[Vec<f64>], labels: &[i64]) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let flat: Vec<f64> = x.iter().flatten().cloned().collect();
    let e = Tensor::<B, 2>::from_data(TensorData::new(flat, [x.len(), x[0].len()]), &device);
    let l =
        Tensor::<B, 1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &device);
    (e, l)
}

fn summed_loss(loss: &HphnTripletLoss, x: &[Vec<f64>], labels: &[i64]) -> f64 {
    let (e, l) = tensors(x, labels);
    let out = loss.forward(e, l).unwrap();
    assert_eq!(out.loss.dtype(), burn::tensor::DType::F64);
    out.loss.into_data().iter::<f64>().next().unwrap()
}

fn autodiff_gradient(loss: &HphnTripletLoss, x: &[Vec<f64>], labels: &[i64]) -> Vec<f64> {
    let (e, l) = tensors(x, labels);
    let e = e.require_grad();
    let grads = loss.forward(e.clone(), l).unwrap().loss.backward();
    e.grad(&grads).unwrap().into_data().iter::<f64>().collect()
}

#[test]
fn finite_differences_match_autodiff_where_no_tie_occurs() {
    use_f64();
    let mut checked = 0;
    for (n, l2_norm, soft_margin) in [
        (0, true, false),
        (1, true, false),
        (2, true, false),
        (2, false, true),
        (4, true, true),
    ] {
        let p = Params {
            n,
            l2_norm,
            margin: 0.5,
            soft_margin,
        };
        // Find a random batch whose reference gradient used no tie (twin synthetic points as
        // the hardest negative are ties, where a finite difference sees half the reference's
        // gradient).
        let (x, labels) = (0..200)
            .map(|seed| random_batch(100 + seed, 3, 2, 5, 0.7))
            .find(|(x, labels)| reference(x, labels, &p).ties == 0)
            .expect("no tie-free batch found");
        let loss = loss_of(&p);
        let analytic = autodiff_gradient(&loss, &x, &labels);
        let h = 1e-6;
        let mut numeric = Vec::new();
        for r in 0..x.len() {
            for k in 0..x[0].len() {
                let mut plus = x.clone();
                plus[r][k] += h;
                let mut minus = x.clone();
                minus[r][k] -= h;
                numeric.push(
                    (summed_loss(&loss, &plus, &labels) - summed_loss(&loss, &minus, &labels))
                        / (2.0 * h),
                );
            }
        }
        let diff = max_abs_diff(&analytic, &numeric);
        assert!(
            diff < 1e-6,
            "n = {n}: autodiff vs finite differences differ by {diff}"
        );
        assert!(
            analytic.iter().any(|&g| g.abs() > 1e-3),
            "zero gradient: nothing checked"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn tie_rule_gradient_matches_the_reference_in_f64() {
    use_f64();
    let mut ties = 0;
    for seed in 0..8 {
        let (x, labels) = random_batch(300 + seed, 3, 4, 6, 2.5);
        let p = Params {
            n: 2 + (seed as usize % 3),
            l2_norm: seed % 2 == 0,
            margin: 0.1,
            soft_margin: seed % 4 == 1,
        };
        let expected = reference(&x, &labels, &p);
        ties += expected.ties;
        let loss = loss_of(&p);
        let (e, l) = tensors(&x, &labels);
        let per_anchor: Vec<f64> = loss
            .forward(e, l)
            .unwrap()
            .per_anchor
            .into_data()
            .iter::<f64>()
            .collect();
        assert!(max_abs_diff(&per_anchor, &expected.per_anchor) < 1e-12);
        let got = autodiff_gradient(&loss, &x, &labels);
        let want: Vec<f64> = expected.grad.iter().flatten().cloned().collect();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-10, "seed {seed}: gradient differs by {diff}");
    }
    assert!(
        ties > 0,
        "no tie occurred: the test does not cover the tie rule"
    );
}
