//! The shared pieces reproduce the HPHN loss: mined from [`AnchorPairs`] with the tie-rule
//! reductions, `d_ap`, `d_an` and the loss equal [`HphnTripletLoss`]'s, gradients included,
//! so the HPHN loss can sit on the same pieces as the other losses without changing a number.

mod loss_support;

use burn::tensor::activation::relu;
use burn::tensor::Tensor;
use ee_loss::anchor_pairs::AnchorPairs;
use ee_loss::ties::{max_dim_all_ties, min_dim_all_ties};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig};
use loss_support::*;

const MARGIN: f64 = 0.3;

fn hphn_from_anchor_pairs(
    rows: &[Vec<f64>],
    label_values: &[i64],
    n: usize,
) -> (Tensor<B, 1>, Tensor<B, 2>) {
    let x = embeddings(rows).require_grad();
    let batch = EmbeddingExpansionConfig::new()
        .with_n_inner_pts(n)
        .init()
        .expand(x.clone(), labels(label_values))
        .unwrap();
    let pairs = AnchorPairs::new(&batch, batch.distance_matrix());
    let b = rows.len();
    let d_ap = max_dim_all_ties(
        pairs
            .positive_values
            .clone()
            .mask_fill(pairs.positive_mask.clone().bool_not(), 0.0),
        1,
    )
    .reshape([b]);
    // Non-negatives pushed out of the min (a finite value, so no inf - inf in the tie rule).
    let d_an = min_dim_all_ties(
        pairs
            .negative_values
            .clone()
            .mask_fill(pairs.negative_mask.clone().bool_not(), 1e6),
        1,
    )
    .reshape([b]);
    (relu(d_ap - d_an + MARGIN), x)
}

#[test]
fn hphn_on_the_shared_pieces_matches_the_hphn_loss_and_its_gradients() {
    device();
    for (n, seed) in [(0, 1), (2, 2), (3, 3)] {
        let (rows, label_values) = random_batch(3, 4, 3, true, seed);
        let (per_anchor, x) = hphn_from_anchor_pairs(&rows, &label_values, n);
        let shared_grads = per_anchor.clone().sum().backward();
        let shared_gradient = x.grad(&shared_grads).unwrap().into_data().convert::<f64>();

        let loss = HphnTripletLossConfig::new()
            .with_margin(MARGIN)
            .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
            .init()
            .unwrap();
        let x_hphn = embeddings(&rows).require_grad();
        let output = loss.forward(x_hphn.clone(), labels(&label_values)).unwrap();
        let hphn_grads = output.loss.backward();
        let hphn_gradient = x_hphn
            .grad(&hphn_grads)
            .unwrap()
            .into_data()
            .convert::<f64>();

        let got = vector(per_anchor);
        let want = vector(output.per_anchor);
        assert!(want.iter().any(|&l| l > 0.0), "n={n}: an active anchor");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(*g, *w, &format!("n={n} anchor {i}"));
        }
        let got: Vec<f64> = shared_gradient.to_vec().unwrap();
        let want: Vec<f64> = hphn_gradient.to_vec().unwrap();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-9, "n={n} gradient {k}: {g} vs {w}");
        }
    }
}
