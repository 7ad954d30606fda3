//! The crate's error type: every variant names the input, field or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong while evaluating embeddings.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Embeddings and labels disagree on the number of items.
    #[error("{set}: {embeddings} embeddings but {labels} labels; give one label per embedding")]
    LengthMismatch {
        /// Which set ("embeddings", "queries", "gallery").
        set: &'static str,
        /// Number of embedding rows.
        embeddings: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A set holds no items at all.
    #[error("{set} is empty: at least {needed} items are needed")]
    Empty {
        /// Which set.
        set: &'static str,
        /// The minimum number of items.
        needed: usize,
    },
    /// A flat buffer is not a whole number of rows.
    #[error("{set}: {len} values are not a whole number of rows of dimension {dim}")]
    RaggedData {
        /// Which set.
        set: &'static str,
        /// Number of values in the buffer.
        len: usize,
        /// The row dimension asked for.
        dim: usize,
    },
    /// Query and gallery embeddings have different dimensions.
    #[error("queries have dimension {queries} but the gallery has dimension {gallery}")]
    DimensionMismatch {
        /// Query dimension.
        queries: usize,
        /// Gallery dimension.
        gallery: usize,
    },
    /// An embedding holds NaN or an infinity, or its squared norm overflows `f32`.
    #[error("{set}: row {row}, column {col} holds {value}, which is not finite; the embeddings must be finite")]
    NonFinite {
        /// Which set.
        set: &'static str,
        /// Row (item) index.
        row: usize,
        /// Column index.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// A row's squared norm is not finite in `f32`, so its distances cannot be computed.
    #[error("{set}: the squared norm of row {row} overflows f32; rescale the embeddings")]
    NormOverflow {
        /// Which set.
        set: &'static str,
        /// Row (item) index.
        row: usize,
    },
    /// A `k` (Recall@K or k-NN) exceeds the number of candidates a query can retrieve.
    #[error("K = {k} is larger than the {gallery} items a query can retrieve")]
    KTooLarge {
        /// The K asked for.
        k: usize,
        /// Items retrievable per query (gallery size, minus the query itself in self mode).
        gallery: usize,
    },
    /// A class has a single item, so its query has no positive (only when the
    /// configuration asks for such classes to be rejected).
    #[error(
        "label {label} (item {index}) has no other item of its class to retrieve; \
             set allow_classes_without_positive = true to count it instead"
    )]
    ClassWithoutPositive {
        /// The label.
        label: i64,
        /// The query's index.
        index: usize,
    },
    /// A configuration field breaks a rule.
    #[error("invalid configuration: {field} = {value}: {rule}")]
    InvalidConfig {
        /// The field at fault.
        field: &'static str,
        /// Its value, as text.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could be read but its content is not what was expected.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An embeddings file of [`crate::embedding_set`] (or its index) is unreadable or
    /// inconsistent.
    #[error("{}: {message}", path.display())]
    EmbeddingsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An embeddings file of [`crate::embedding_set`] (or its index) could not be read or
    /// written.
    #[error("{}: {source}", path.display())]
    EmbeddingsIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An [`EmbeddingSet`](crate::embedding_set::EmbeddingSet) was given another number of
    /// paths or labels than of embeddings.
    #[error("{embeddings} embeddings but {paths} paths and {labels} labels")]
    SetLengthMismatch {
        /// Number of embedding rows.
        embeddings: usize,
        /// Number of paths.
        paths: usize,
        /// Number of labels.
        labels: usize,
    },
    /// Scoring an embedding set needs every label, and a row has none.
    #[error("the {set} set has no label for row {row} ({path}): scoring needs every label")]
    Unlabelled {
        /// Which set ("query", "gallery").
        set: String,
        /// The row.
        row: usize,
        /// The row's path.
        path: String,
    },
}

impl From<ee_core::fs::FileError> for EvalError {
    /// A failed atomic write of an embeddings file.
    fn from(error: ee_core::fs::FileError) -> Self {
        EvalError::EmbeddingsIo {
            path: error.path,
            source: error.source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, EvalError>;
