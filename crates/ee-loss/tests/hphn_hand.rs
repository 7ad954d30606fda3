//! Small HPHN cases computed by hand: 2 classes x 2 instances in D = 2.
//!
//! Points x0 = (0,0), x1 = (0,4) (class 0) and x2 = (3,0), x3 = (3,4) (class 1): the sides
//! of a 3-4-5 rectangle, so every distance is exact in f32.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig, Reduction};

type B = Autodiff<Flex>;

const MARGIN: f64 = 1e-5;

fn rectangle() -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0], [3.0, 4.0]], &device)
        .require_grad();
    (x, Tensor::from_data([0, 0, 1, 1], &device))
}

fn values(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
    }
}

/// Without expansion every anchor has d_ap = 4 (its class partner) and d_an = 3 (the
/// nearest point of the other class): l_i = 4 - 3 + margin.
/// Gradient of the sum: for x0 the terms +D01 twice (anchors 0 and 1) and -D02 twice
/// (anchors 0 and 2): 2 (x0 - x1)/4 - 2 (x0 - x2)/3 = (0,-2) + (2,0) = (2,-2); by symmetry
/// x1 -> (2,2), x2 -> (-2,-2), x3 -> (-2,2).
const SUM_GRADIENT: [f32; 8] = [2.0, -2.0, 2.0, 2.0, -2.0, -2.0, -2.0, 2.0];

#[test]
fn hinge_without_expansion_sum_and_mean() {
    for (reduction, scale) in [(Reduction::Sum, 1.0), (Reduction::Mean, 0.25)] {
        let (x, labels) = rectangle();
        let loss = HphnTripletLossConfig::new()
            .with_reduction(reduction)
            .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(0))
            .init()
            .unwrap();
        let output = loss.forward(x.clone(), labels).unwrap();
        let l = 1.0 + MARGIN as f32;
        assert_close(&values(output.per_anchor.clone()), &[l; 4], 1e-6);
        assert_close(
            &values(output.pairs.positive_distance.clone()),
            &[4.0; 4],
            1e-6,
        );
        assert_close(
            &values(output.pairs.negative_distance.clone()),
            &[3.0; 4],
            1e-6,
        );
        assert_close(&values(output.loss.clone()), &[4.0 * l * scale], 1e-5);
        let grads = output.loss.backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        let want: Vec<f32> = SUM_GRADIENT.iter().map(|v| v * scale).collect();
        assert_close(&g, &want, 1e-5);
    }
}

/// Soft margin: l_i = log(1 + e^(4 - 3)) = 1.3132617, and each term's gradient is scaled by
/// sigmoid(1) = 0.7310586.
#[test]
fn soft_margin_without_expansion() {
    let (x, labels) = rectangle();
    let loss = HphnTripletLossConfig::new()
        .with_soft_margin(true)
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(0))
        .init()
        .unwrap();
    let output = loss.forward(x.clone(), labels).unwrap();
    assert_close(&values(output.per_anchor.clone()), &[1.313_261_7; 4], 1e-6);
    let grads = output.loss.backward();
    let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let want: Vec<f32> = SUM_GRADIENT.iter().map(|v| v * 0.731_058_6).collect();
    assert_close(&g, &want, 1e-5);
}

/// One inner point without normalisation: the midpoints s0 = s1 = (0,2) (class 0) and
/// s2 = s3 = (3,2) (class 1), expanded rows 4..8.
///
/// Anchor 0: d_ap = D(x0,x1) = 4. Its own row's hardest negative is D(x0,x2) = 3; its
/// synthetic row s0 has D(s0,s2) = D(s0,s3) = 3 as well (the twins). So d_an = 3 is a three-way
/// tie, l0 = 1 + margin, and by the tie rule each of the three distances gets gradient -1:
///   +D(x0,x1): x0 += (0,-1), x1 += (0,1)
///   -D(x0,x2): x0 += (1,0),  x2 += (-1,0)
///   -D(s0,s2) - D(s0,s3): s0 += 2 * (1,0), the twins s2/s3 += 2 * (-1,0) in total;
///   s0 = (x0 + x1)/2 and s2 = (x2 + x3)/2 pass half of it to each end.
/// d l0 / dx = x0 (2,-1), x1 (1,1), x2 (-2,0), x3 (-1,0).
/// burn's own min_dim would send the gradient to one element only.
#[test]
fn tie_rule_with_a_synthetic_hardest_negative() {
    let (x, labels) = rectangle();
    let loss = HphnTripletLossConfig::new()
        .with_expansion(
            EmbeddingExpansionConfig::new()
                .with_n_inner_pts(1)
                .with_l2_norm(false),
        )
        .init()
        .unwrap();
    let output = loss.forward(x.clone(), labels).unwrap();
    let l = 1.0 + MARGIN as f32;
    assert_close(&values(output.per_anchor.clone()), &[l; 4], 1e-6);
    assert_close(
        &values(output.pairs.negative_distance.clone()),
        &[3.0; 4],
        1e-6,
    );
    let l0 = output.per_anchor.clone().narrow(0, 0, 1).sum();
    let grads = l0.backward();
    let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
    assert_close(&g, &[2.0, -1.0, 1.0, 1.0, -2.0, 0.0, -1.0, 0.0], 1e-5);
}

/// A batch with no violation: classes far apart give d_ap - d_an + margin < 0, zero loss,
/// zero gradient and no active anchor.
#[test]
fn separated_classes_give_zero_loss() {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data([[0.0, 0.0], [0.0, 0.1], [5.0, 0.0], [5.0, 0.1]], &device)
        .require_grad();
    let labels = Tensor::<B, 1, Int>::from_data([3, 3, 8, 8], &device);
    let loss = HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_l2_norm(false))
        .init()
        .unwrap();
    let output = loss.forward(x.clone(), labels).unwrap();
    assert_eq!(values(output.per_anchor.clone()), vec![0.0; 4]);
    let stats = output.stats();
    assert_eq!(stats.active_fraction, 0.0);
    assert!((stats.mean_positive_distance - 0.1).abs() < 1e-5);
    let grads = output.loss.backward();
    let g: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
    assert!(g.iter().all(|&v| v == 0.0), "{g:?}");
}

/// The selection ratio: which anchors' hardest negative pair involves a synthetic point.
///
/// Class 0: x0 = (-2,0), x1 = (2,0), midpoint s0 = s1 = (0,0). Class 1: x2 = (-2,0.5),
/// x3 = (-2,1), midpoint s2 = s3 = (-2,0.75).
/// Anchor 0: x0-x2 = 0.5 beats its synthetic row (s0 is 2.06 from x2): original.
/// Anchor 1: x1's row gives 4.03 but s1-x2 = sqrt(4.25) = 2.06: synthetic.
/// Anchor 2: x2-x0 = 0.5: original. Anchor 3: x3-x0 = 1.0 but s3-x0 = 0.75: synthetic.
#[test]
fn stats_report_synthetic_hardest_negatives() {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data([[-2.0, 0.0], [2.0, 0.0], [-2.0, 0.5], [-2.0, 1.0]], &device);
    let labels = Tensor::<B, 1, Int>::from_data([0, 0, 1, 1], &device);
    let loss = HphnTripletLossConfig::new()
        .with_expansion(
            EmbeddingExpansionConfig::new()
                .with_n_inner_pts(1)
                .with_l2_norm(false),
        )
        .init()
        .unwrap();
    let output = loss.forward(x, labels).unwrap();
    let flags: Vec<bool> = output
        .pairs
        .negative_is_synthetic
        .clone()
        .into_data()
        .iter::<bool>()
        .collect();
    assert_eq!(flags, vec![false, true, false, true]);
    assert_close(
        &values(output.pairs.negative_distance.clone()),
        &[0.5, 4.25f32.sqrt(), 0.5, 0.75],
        1e-6,
    );
    assert_eq!(output.stats().synthetic_negative_fraction, 0.5);
}
