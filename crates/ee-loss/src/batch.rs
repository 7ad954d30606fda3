//! The batch layout that the classes x instances sampler promises and the loss relies on.
//!
//! A batch holds P classes x K instances with each class's K rows consecutive, so rows
//! (0,1), (2,3), ... always share a label (METHOD.md section 1). Embedding expansion
//! interpolates between such partner rows and refuses a batch that breaks the layout.

use std::collections::HashMap;

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::LossError;

/// The partner of row `i`: `i + 1` for even `i`, `i - 1` for odd `i`.
pub fn partner(row: usize) -> usize {
    row ^ 1
}

/// Reads a label vector back to the host as `i64`.
pub fn labels_to_vec<B: Backend>(labels: &Tensor<B, 1, Int>) -> Vec<i64> {
    labels.to_data().iter::<i64>().collect()
}

/// Checks that a batch can be scored by a pair-based loss, with embedding expansion when
/// `expansion` is true.
///
/// Always: at least one row, `rows == labels.len()`, two or more classes, and every class
/// with two or more instances. With expansion: an even number of rows, not every class with
/// the same odd count (K odd), and partner rows (0,1), (2,3), ... sharing their label.
pub fn check_batch(labels: &[i64], rows: usize, expansion: bool) -> Result<(), LossError> {
    if rows == 0 || labels.is_empty() {
        return Err(LossError::EmptyBatch);
    }
    if rows != labels.len() {
        return Err(LossError::LengthMismatch {
            embeddings: rows,
            labels: labels.len(),
        });
    }
    let mut counts: HashMap<i64, (usize, usize)> = HashMap::new();
    for (row, &label) in labels.iter().enumerate() {
        counts.entry(label).or_insert((0, row)).0 += 1;
    }
    if expansion {
        if rows % 2 == 1 {
            return Err(LossError::OddBatch { rows });
        }
        let first_count = counts[&labels[0]].0;
        if first_count % 2 == 1 && counts.values().all(|&(count, _)| count == first_count) {
            return Err(LossError::OddInstances {
                instances: first_count,
            });
        }
        for row in (0..rows).step_by(2) {
            if labels[row] != labels[row + 1] {
                return Err(LossError::PartnerMismatch {
                    row,
                    partner: row + 1,
                    label: labels[row],
                    partner_label: labels[row + 1],
                });
            }
        }
    }
    if let Some((&label, &(_, row))) = counts
        .iter()
        .filter(|(_, &(count, _))| count == 1)
        .min_by_key(|(_, &(_, row))| row)
    {
        return Err(LossError::SingleInstance { label, row });
    }
    if counts.len() == 1 {
        return Err(LossError::SingleClass { label: labels[0] });
    }
    Ok(())
}

/// Counts the non-finite values of a float tensor (one small read-back).
pub fn count_non_finite<B: Backend, const D: usize>(values: &Tensor<B, D>) -> usize {
    use burn::tensor::ElementConversion;
    values
        .clone()
        .is_finite()
        .bool_not()
        .int()
        .sum()
        .into_scalar()
        .elem::<i64>() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_pair_up_consecutive_rows() {
        assert_eq!(
            (0..6).map(partner).collect::<Vec<_>>(),
            vec![1, 0, 3, 2, 5, 4]
        );
    }

    #[test]
    fn accepts_the_sampler_layout_with_arbitrary_labels() {
        assert_eq!(
            check_batch(&[70, 70, 70, 70, -3, -3, -3, -3], 8, true),
            Ok(())
        );
        assert_eq!(check_batch(&[5, 5, 9, 9, 9], 5, false), Ok(()));
    }

    #[test]
    fn rejects_bad_batches_with_the_named_problem() {
        assert_eq!(check_batch(&[], 0, true), Err(LossError::EmptyBatch));
        assert_eq!(
            check_batch(&[1, 1, 2, 2], 3, false),
            Err(LossError::LengthMismatch {
                embeddings: 3,
                labels: 4
            })
        );
        assert_eq!(
            check_batch(&[1, 1, 1, 2, 2, 2], 6, true),
            Err(LossError::OddInstances { instances: 3 })
        );
        assert_eq!(
            check_batch(&[1, 1, 2, 1, 1, 2, 2, 2], 8, true),
            Err(LossError::PartnerMismatch {
                row: 2,
                partner: 3,
                label: 2,
                partner_label: 1
            })
        );
        assert_eq!(
            check_batch(&[1, 1, 2, 2, 2], 5, true),
            Err(LossError::OddBatch { rows: 5 })
        );
        assert_eq!(
            check_batch(&[1, 1, 2], 3, false),
            Err(LossError::SingleInstance { label: 2, row: 2 })
        );
        assert_eq!(
            check_batch(&[4, 4, 4, 4], 4, true),
            Err(LossError::SingleClass { label: 4 })
        );
    }
}
