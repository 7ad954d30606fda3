//! The error type of this crate.

use std::path::PathBuf;

use crate::network::BackboneKind;

/// How many names of each kind a [`ModelError::WeightMismatch`] message lists before it
/// summarises the rest as a count (the full lists stay in the error's fields).
const LISTED_NAMES: usize = 12;

/// Everything that can go wrong when building a model, importing weights or reading and
/// writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value breaks a rule.
    #[error("invalid model config: `{field}` = {value}: {rule}")]
    InvalidConfig {
        /// The config field at fault.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },

    /// A weight or checkpoint file does not exist.
    #[error("weight file {} not found", path.display())]
    FileNotFound {
        /// The path that was given.
        path: PathBuf,
    },

    /// A weight file is neither a PyTorch pickle nor a safetensors file, or could not be parsed.
    #[error("cannot read weight file {}: {message}", path.display())]
    UnreadableWeights {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A weight file was read but its tensors do not fit the backbone (GoogLeNet, ResNet-50).
    #[error(
        "weight file {} does not fit torchvision's {}:{}{}{}{}",
        path.display(),
        network.title(),
        name_list("missing", missing),
        name_list("unexpected", unexpected),
        name_list("wrong shape", wrong_shape),
        name_list("other errors", other)
    )]
    WeightMismatch {
        /// The file (boxed: keeps `ModelError` small).
        path: Box<std::path::Path>,
        /// The backbone whose layout the file was checked against.
        network: BackboneKind,
        /// Parameters of the backbone that the file lacks.
        missing: Vec<String>,
        /// Keys in the file that belong to no backbone parameter (torchvision's `fc.*` and
        /// `*.num_batches_tracked`, and GoogLeNet's `aux1.*`, `aux2.*`, are ignored and never
        /// listed).
        unexpected: Vec<String>,
        /// `key: expected [..], found [..]` for each tensor of the wrong shape.
        wrong_shape: Vec<String>,
        /// Any other per-tensor error (wrong dtype, unreadable data).
        other: Vec<String>,
    },

    /// A weight file's embedding-head tensors (`{prefix}.weight`, `{prefix}.bias`) are missing
    /// or do not fit the head.
    #[error(
        "weight file {} does not fit the embedding head (keys `{prefix}.*`):{}{}{}",
        path.display(),
        name_list("missing", missing),
        name_list("wrong shape", wrong_shape),
        name_list("other errors", other)
    )]
    HeadMismatch {
        /// The file (boxed: keeps `ModelError` small).
        path: Box<std::path::Path>,
        /// The head's key prefix in the file.
        prefix: String,
        /// Head keys the file lacks.
        missing: Vec<String>,
        /// `key: expected [..], found [..]`, in torch's `[out, in]` layout.
        wrong_shape: Vec<String>,
        /// Any other per-tensor error.
        other: Vec<String>,
    },

    /// A tensor handed to a model has the wrong shape.
    #[error("{what}: expected {expected}, got {got:?}")]
    BadInput {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape that came.
        got: Vec<usize>,
    },
}

/// `"\n  missing (3): a, b, c"`, or nothing for an empty list.
fn name_list(label: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let shown = names
        .iter()
        .take(LISTED_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if names.len() > LISTED_NAMES {
        format!(", ... ({} more)", names.len() - LISTED_NAMES)
    } else {
        String::new()
    };
    format!("\n  {label} ({}): {shown}{more}", names.len())
}
