//! Hard-positive / hard-negative (HPHN) mining over an expanded batch (METHOD.md section 4).
//!
//! ```text
//! d_ap(i) = max_{j < B, y_j = y_i} D_ij                       originals only
//! m_r     = min_c ( D_rc if y_c != y_r else max_c' D_rc' )      every expanded row r
//! d_an(i) = min_{g = 0..n} m_{g B + i}                        anchor and its synthetic points
//! ```
//! Negatives may be synthetic; every max and min follows the reference's tie rule
//! ([`crate::ties`]).

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

use crate::distance::clamped_squared_distance;
use crate::expansion::ExpandedBatch;
use crate::pairs::same_class;
use crate::ties::{max_dim_all_ties, min_dim_all_ties};

/// The hardest positive and negative distance of each original anchor.
#[derive(Debug, Clone)]
pub struct HardestPairs<B: Backend> {
    /// `d_ap`: distance to the farthest original point of the anchor's class: [B].
    pub positive_distance: Tensor<B, 1>,
    /// `d_an`: the smallest distance between the anchor or one of its synthetic points and a
    /// point (original or synthetic) of another class: [B].
    pub negative_distance: Tensor<B, 1>,
    /// Whether that hardest negative pair involves a synthetic point (on either side); a tie
    /// between an original and a synthetic pair counts as original: [B].
    pub negative_is_synthetic: Tensor<B, 1, Bool>,
}

/// Mines the hardest pairs of each original anchor from the expanded batch's distances
/// `distances` [N, N] (usually [`ExpandedBatch::distance_matrix`]).
pub fn hardest_pairs<B: Backend>(
    batch: &ExpandedBatch<B>,
    distances: Tensor<B, 2>,
) -> HardestPairs<B> {
    let batch_size = batch.batch_size();
    let groups = batch.n_inner_pts() + 1;
    let n = batch.len();
    let labels = batch.labels();
    let is_positive = same_class(labels.clone(), labels); // [N, N]

    // Hard positive among the original points.
    let original_positive = is_positive.clone().slice([0..batch_size, 0..batch_size]);
    let positive_distance = max_dim_all_ties(
        distances
            .clone()
            .slice([0..batch_size, 0..batch_size])
            .mask_fill(original_positive.bool_not(), 0.0),
        1,
    )
    .reshape([batch_size]);

    // Hard negative of every expanded row; positives are pushed out by the row maximum.
    let row_max = max_dim_all_ties(distances.clone(), 1); // [N, 1]
    let negatives_only = distances.mask_where(is_positive, row_max.expand([n, n]));
    let row_columns: Tensor<B, 2, Int> = negatives_only.clone().detach().argmin(1); // [N, 1]
    let row_min = min_dim_all_ties(negatives_only, 1).reshape([groups, batch_size]);

    // Hardest over the anchor and its synthetic points.
    let group_of_anchor = row_min.clone().detach().argmin(0); // [1, B]
    let negative_distance = min_dim_all_ties(row_min, 0).reshape([batch_size]);
    let column = row_columns
        .reshape([groups, batch_size])
        .gather(0, group_of_anchor.clone());
    let negative_is_synthetic = group_of_anchor
        .greater_elem(0)
        .bool_or(column.greater_equal_elem(batch_size as i64))
        .reshape([batch_size]);

    HardestPairs {
        positive_distance,
        negative_distance,
        negative_is_synthetic,
    }
}

/// [`hardest_pairs`] of `batch` computed on its distinct points: the same values and the same
/// gradients (up to rounding), with `U x U` masks and reductions instead of `N x N`
/// (`U = B + n B / 2`, `N = (n + 1) B`: 256 against 384 rows at B = 128, n = 2), and with the
/// selection itself outside the autodiff graph.
///
/// - Synthetic twins are the same point, so their rows of the expanded matrix are equal and
///   their columns too: a row's extremes are taken over the distinct columns, a tied column
///   passes the gradient once per copy ([`ExpandedBatch::multiplicity`]), and each expanded
///   row reads its distinct row's result.
/// - Which elements are the maxima and minima (the tie rule) is found on detached values. Each
///   mined distance is then `value + (sum(s * c) - stopgrad(sum(s * c)))`, with `s` the clamped
///   squared distances and `c` the constant derivative of the selection (tie indicators and
///   copies, through the positive-masking row maximum, times `d sqrt(s) / ds = 1 / (2 d)`):
///   exactly `value` forward, the chain rule's gradient backward. The graph holds the
///   distance computation and two weighted sums instead of every mask and reduction.
pub fn hardest_pairs_distinct<B: Backend>(batch: &ExpandedBatch<B>) -> HardestPairs<B> {
    let batch_size = batch.batch_size();
    let groups = batch.n_inner_pts() + 1;
    let x = batch.unique_embeddings();
    let squared = clamped_squared_distance(x.clone(), x); // [U, U], tracked
    let [u, _] = squared.dims();
    let distances = squared.clone().detach().sqrt();
    // d sqrt(s) / ds, as a constant
    let slope = distances.clone().recip().div_scalar(2.0);
    let labels = batch.unique_labels();
    let is_positive = same_class(labels.clone(), labels); // [U, U]
    let copies = batch.multiplicity().expand([u, u]);
    let zero_with_gradient = |t: Tensor<B, 2>| t.clone() - t.detach();

    // Hard positive among the original points (the first B distinct points).
    let original_positive = is_positive.clone().slice([0..batch_size, 0..batch_size]);
    let positives = distances
        .clone()
        .slice([0..batch_size, 0..batch_size])
        .mask_fill(original_positive.clone().bool_not(), 0.0);
    let positive_value = positives.clone().max_dim(1); // [B, 1]
    let positive_ties = positives
        .equal(positive_value.clone().expand([batch_size, batch_size]))
        .bool_and(original_positive)
        .float()
        * slope.clone().slice([0..batch_size, 0..batch_size]);
    let positive_distance = (positive_value
        + zero_with_gradient(
            (squared.clone().slice([0..batch_size, 0..batch_size]) * positive_ties).sum_dim(1),
        ))
    .reshape([batch_size]);

    // Hard negative of every distinct row; positives are pushed out by the row maximum.
    let row_max = distances.clone().max_dim(1).expand([u, u]);
    let max_ties = distances.clone().equal(row_max.clone()).float() * copies.clone();
    let negatives_only = distances.mask_where(is_positive.clone(), row_max);
    let row_min = negatives_only.clone().min_dim(1); // [U, 1]
    let row_columns: Tensor<B, 1, Int> = negatives_only.clone().argmin(1).reshape([u]);
    let min_ties = negatives_only.equal(row_min.clone().expand([u, u])).float() * copies;
    // A tied positive column passes its gradient to the row maximum, hence to its ties.
    let through_max = min_ties
        .clone()
        .mask_fill(is_positive.clone().bool_not(), 0.0)
        .sum_dim(1);
    let derivative =
        (min_ties.mask_fill(is_positive, 0.0) + max_ties * through_max.expand([u, u])) * slope;
    let row_min = (row_min + zero_with_gradient((squared * derivative).sum_dim(1))).reshape([u]);

    // Every expanded row reads its distinct row, then the hardest over anchor and synthetics.
    let (row_min, row_columns) = match batch.index() {
        Some(index) => (
            row_min.select(0, index.clone()),
            row_columns.select(0, index),
        ),
        None => (row_min, row_columns),
    };
    let row_min = row_min.reshape([groups, batch_size]);
    let row_columns = row_columns.reshape([groups, batch_size]);
    let group_of_anchor = row_min.clone().detach().argmin(0); // [1, B]
    let negative_distance = min_dim_all_ties(row_min, 0).reshape([batch_size]);
    let column = row_columns.gather(0, group_of_anchor.clone());
    let negative_is_synthetic = group_of_anchor
        .greater_elem(0)
        .bool_or(column.greater_equal_elem(batch_size as i64))
        .reshape([batch_size]);

    HardestPairs {
        positive_distance,
        negative_distance,
        negative_is_synthetic,
    }
}
