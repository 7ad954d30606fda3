//! Reductions of a `[rows, columns]` matrix over the entries a mask selects, row by row: how
//! the pair-based losses turn each anchor's pairs into one value per anchor.
//!
//! Entries outside the mask never reach the result nor receive gradient (they are replaced
//! before any arithmetic, so a NaN or infinity there cannot leak). Maxima used for numerical
//! stability are detached: the results are exact, and so are their gradients.

use burn::tensor::{backend::Backend, Bool, Tensor};

/// Mean over the selected entries of each row; 0 for a row with none: [rows, cols] -> [rows].
pub fn masked_mean<B: Backend>(values: Tensor<B, 2>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 1> {
    let [rows, _] = values.dims();
    let count = mask.clone().float().sum_dim(1).clamp_min(1.0);
    (masked_sum_keep(values, mask) / count).reshape([rows])
}

/// Sum over the selected entries of each row: [rows, cols] -> [rows].
pub fn masked_sum<B: Backend>(values: Tensor<B, 2>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 1> {
    let [rows, _] = values.dims();
    masked_sum_keep(values, mask).reshape([rows])
}

fn masked_sum_keep<B: Backend>(values: Tensor<B, 2>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
    values.mask_fill(mask.bool_not(), 0.0).sum_dim(1)
}

/// Largest selected entry of each row, without gradient; `empty` for a row with none:
/// [rows, cols] -> [rows, 1].
pub fn masked_max_detached<B: Backend>(
    values: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
    empty: f64,
) -> Tensor<B, 2> {
    let any = mask.clone().any_dim(1);
    values
        .detach()
        .mask_fill(mask.bool_not(), f64::NEG_INFINITY)
        .max_dim(1)
        .mask_fill(any.bool_not(), empty)
}

/// Smallest selected entry of each row, without gradient; `empty` for a row with none:
/// [rows, cols] -> [rows, 1].
pub fn masked_min_detached<B: Backend>(
    values: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
    empty: f64,
) -> Tensor<B, 2> {
    masked_max_detached(values.neg(), mask, -empty).neg()
}

/// `log( sum_{selected j} exp(v_j) )` of each row: [rows, cols] -> [rows].
///
/// Every row must select at least one entry (a row with none gives `-inf`); the pair-based
/// losses only call it on anchors that have negatives, which a checked batch guarantees.
pub fn masked_logsumexp<B: Backend>(
    values: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
) -> Tensor<B, 1> {
    let [rows, _] = values.dims();
    let shift = masked_max_detached(values.clone(), mask.clone(), 0.0); // [rows, 1]
    let sum = (values - shift.clone())
        .mask_fill(mask.bool_not(), f64::NEG_INFINITY)
        .exp()
        .sum_dim(1);
    (sum.log() + shift).reshape([rows])
}

/// `log( 1 + sum_{selected j} exp(v_j) )` of each row, 0 for a row with none (finite, with a
/// finite gradient, whatever the values): [rows, cols] -> [rows].
pub fn masked_log1p_sum_exp<B: Backend>(
    values: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
) -> Tensor<B, 1> {
    let [rows, _] = values.dims();
    // shift = max(0, max selected v): both exp(-shift) and every exp(v - shift) are <= 1.
    let shift = masked_max_detached(values.clone(), mask.clone(), 0.0).clamp_min(0.0);
    let sum = (values - shift.clone())
        .mask_fill(mask.bool_not(), f64::NEG_INFINITY)
        .exp()
        .sum_dim(1)
        + shift.clone().neg().exp();
    (sum.log() + shift).reshape([rows])
}

/// `log(1 + exp(z))` without overflow, gradient `sigmoid(z)`.
pub fn softplus<B: Backend, const D: usize>(z: Tensor<B, D>) -> Tensor<B, D> {
    // max(z, 0) + log(1 + exp(-|z|))
    z.clone().clamp_min(0.0) + z.abs().neg().exp().log1p()
}

/// `log(exp(a) + exp(b))` element-wise, without overflow.
pub fn logaddexp<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    let shift = a.clone().detach().max_pair(b.clone().detach());
    ((a - shift.clone()).exp() + (b - shift.clone()).exp()).log() + shift
}
