//! The positive and negative pairs of each original anchor over an expanded batch: the piece
//! that every pair-based loss of this crate starts from.
//!
//! The paper's rule for composing Embedding Expansion with a pair-based loss: the loss sees the
//! expanded set; positive pairs are formed among ORIGINAL points only; negative pairs may
//! involve original or synthetic points; there is one term per original anchor, and the
//! anchor's synthetic points contribute their negatives to that anchor's term. With `B`
//! originals, `n` inner points, `G = n + 1` and `N = G * B` expanded rows:
//!
//! ```text
//! positives of anchor i < B:  (x_i, x_j)    j < B, j != i, y_j = y_i                  [B, B]
//! negatives of anchor i:      (r, c)        r in {i, B + i, ..., n B + i}, c < N,      [B, G N]
//!                                           y_c != y_i
//! ```
//!
//! Row `g B + i` of the expanded set is the anchor itself (`g = 0`) or its synthetic point
//! `s_g(i)` on the segment towards its partner (`g >= 1`); column `c` is any expanded row,
//! original or synthetic. Negative column `k` of anchor `i` is the pair
//! `(g B + i, c)` with `g = k / N`, `c = k % N`. Every synthetic point exists twice in the
//! expanded set (`s_t(i)` and `s_{n+1-t}(p(i))`), so sums over negatives count it twice, as a
//! loss computed on the expanded set does.
//!
//! With `n = 0` this reduces to the usual pairs of a batch: positives `(i, j)`, `j != i` of
//! the same class, negatives `(i, c)` of another class.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

use crate::expansion::ExpandedBatch;
use crate::pairs::same_class;

/// The pairs of each original anchor and the matrix values (distances or similarities) on
/// them.
#[derive(Debug, Clone)]
pub struct AnchorPairs<B: Backend> {
    /// Values between original points, `[i, j]` for anchor `i` and original `j`: [B, B].
    pub positive_values: Tensor<B, 2>,
    /// `[i, j]`: `j != i` and `y_j = y_i` (the anchor's positives): [B, B].
    pub positive_mask: Tensor<B, 2, Bool>,
    /// Values between the anchor or one of its synthetic points and every expanded row,
    /// `[i, g N + c]` = `matrix[g B + i, c]`: [B, G N].
    pub negative_values: Tensor<B, 2>,
    /// `[i, g N + c]`: `y_c != y_i` (the anchor's negatives): [B, G N].
    pub negative_mask: Tensor<B, 2, Bool>,
    batch_size: usize,
    expanded_len: usize,
}

impl<B: Backend> AnchorPairs<B> {
    /// Lays out `matrix` [N, N] (usually [`ExpandedBatch::distance_matrix`] or
    /// [`ExpandedBatch::pairwise_matrix`]) into each anchor's positives and negatives.
    pub fn new(batch: &ExpandedBatch<B>, matrix: Tensor<B, 2>) -> Self {
        let batch_size = batch.batch_size();
        let groups = batch.n_inner_pts() + 1;
        let n = batch.len();
        let device = matrix.device();
        let labels = batch.labels();
        let original_labels = labels.clone().slice(0..batch_size);

        let positive_values = matrix.clone().slice([0..batch_size, 0..batch_size]);
        let positive_mask = same_class(original_labels.clone(), original_labels.clone())
            .bool_and(off_diagonal(batch_size, &device));

        // Rows g B + i (g = 0..n) of anchor i side by side: [G, B, N] -> [B, G, N] -> [B, G N].
        let negative_values = matrix
            .reshape([groups, batch_size, n])
            .swap_dims(0, 1)
            .reshape([batch_size, groups * n]);
        // A synthetic row carries its anchor's label, so one [B, N] mask serves every group.
        let negative_mask = same_class(original_labels, labels)
            .bool_not()
            .repeat_dim(1, groups);

        Self {
            positive_values,
            positive_mask,
            negative_values,
            negative_mask,
            batch_size,
            expanded_len: n,
        }
    }

    /// Number of original anchors `B`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// `[i, g N + c]`: the negative column pairs a synthetic point (`g >= 1` or `c >= B`):
    /// [B, G N]. Negative or not: combine with [`Self::negative_mask`].
    pub fn column_is_synthetic(&self) -> Tensor<B, 2, Bool> {
        let [b, columns] = self.negative_values.dims();
        let device = self.negative_values.device();
        let column = Tensor::<B, 1, Int>::arange(0..columns as i64, &device);
        let group = column.clone().div_scalar(self.expanded_len as i64);
        let row = column.remainder_scalar(self.expanded_len as i64);
        group
            .greater_elem(0)
            .bool_or(row.greater_equal_elem(self.batch_size as i64))
            .reshape([1, columns])
            .expand([b, columns])
    }
}

/// `[i, j]`: `i != j`, [n, n].
pub fn off_diagonal<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let index = Tensor::<B, 1, Int>::arange(0..n as i64, device);
    let rows = index.clone().reshape([n, 1]).expand([n, n]);
    let columns = index.reshape([1, n]).expand([n, n]);
    rows.not_equal(columns)
}
