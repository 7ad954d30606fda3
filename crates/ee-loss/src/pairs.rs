//! Which pairs of rows share a class: the masks that every pair-based loss starts from.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

/// `[i, j]` is true when `row_labels[i] == column_labels[j]`: [m, n].
pub fn same_class<B: Backend>(
    row_labels: Tensor<B, 1, Int>,
    column_labels: Tensor<B, 1, Int>,
) -> Tensor<B, 2, Bool> {
    let [m] = row_labels.dims();
    let [n] = column_labels.dims();
    let rows = row_labels.reshape([m, 1]).expand([m, n]);
    let columns = column_labels.reshape([1, n]).expand([m, n]);
    rows.equal(columns)
}
