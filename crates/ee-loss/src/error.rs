//! The errors of `ee-loss`: bad parameters and batches the loss cannot score.

use thiserror::Error;

/// Why a loss could not be built or could not score a batch.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LossError {
    /// A hyper-parameter broke its rule (checked when the loss is built).
    #[error("invalid loss parameter `{name}` = {value}: {rule}")]
    InvalidParameter {
        /// The parameter's name as in the config.
        name: &'static str,
        /// The offending value, as written.
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// The batch has no rows.
    #[error("empty batch: the loss needs at least two embeddings of each class")]
    EmptyBatch,
    /// Embeddings and labels disagree in length.
    #[error("{embeddings} embeddings but {labels} labels: each embedding row needs one label")]
    LengthMismatch {
        /// Rows of the embedding matrix.
        embeddings: usize,
        /// Length of the label vector.
        labels: usize,
    },
    /// Embedding expansion pairs rows (0,1), (2,3), ...: the batch must have an even size.
    #[error(
        "embedding expansion pairs rows (0,1), (2,3), ... but the batch has an odd number of \
         rows ({rows}); use an even number of instances per class (K)"
    )]
    OddBatch {
        /// Number of rows in the batch.
        rows: usize,
    },
    /// Every class has the same odd number of instances: K is odd.
    #[error(
        "every class has {instances} instances in the batch: embedding expansion needs an even \
         number of instances per class (num_instances K even)"
    )]
    OddInstances {
        /// The (odd) number of instances per class.
        instances: usize,
    },
    /// Two partner rows carry different labels.
    #[error(
        "rows {row} and {partner} are partners for embedding expansion but have labels {label} \
         and {partner_label}: each class's instances must sit in consecutive rows, an even \
         number per class (the classes x instances sampler's layout)"
    )]
    PartnerMismatch {
        /// The even row of the pair.
        row: usize,
        /// Its partner, `row + 1`.
        partner: usize,
        /// Label of `row`.
        label: i64,
        /// Label of `partner`.
        partner_label: i64,
    },
    /// A class with a single instance has no positive to pull towards.
    #[error(
        "class {label} has a single instance in the batch (row {row}): a pair-based loss needs \
         at least two instances per class"
    )]
    SingleInstance {
        /// The lonely class.
        label: i64,
        /// Its row.
        row: usize,
    },
    /// The batch has only one class: there is no negative.
    #[error("the batch holds only class {label}: a pair-based loss needs at least two classes")]
    SingleClass {
        /// The only class.
        label: i64,
    },
    /// NaN or infinite values in the embeddings.
    #[error("the embeddings hold {count} non-finite values (NaN or infinite)")]
    NonFinite {
        /// How many values are not finite.
        count: usize,
    },
}
