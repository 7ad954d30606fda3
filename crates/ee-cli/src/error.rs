//! The binary's error type: every failure as one line for the user.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Everything `ee` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Reading the dataset, sampling or loading images failed.
    #[error("data: {0}")]
    Data(#[from] ee_data::DataError),
    /// Building the network or loading weights failed.
    #[error("model: {0}")]
    Model(#[from] ee_model::ModelError),
    /// The loss refused its input.
    #[error("loss: {0}")]
    Loss(#[from] ee_loss::LossError),
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(ee_eval::EvalError),
    /// A file of the run could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Training or its checkpoints failed (ee-train). The crates' own errors that reach
    /// `ee` through ee-train (data, loss, evaluation, I/O) arrive as those variants
    /// instead, so each kind of failure has one variant.
    #[error("{0}")]
    Train(ee_train::TrainError),
    /// The config asks for a backend this binary was not built with.
    #[error("run.backend = \"{wanted}\" but this `ee` was built for {built}: use `cargo xtask train CONFIG` (it builds the right backend), or pass --set run.backend={built}")]
    Backend {
        /// Backend in the config.
        wanted: &'static str,
        /// Backend compiled in.
        built: &'static str,
    },
    /// The compute device failed to start (no GPU, no driver).
    #[error(
        "cannot use the {backend} device ({message}): check that a GPU and its driver are \
         visible (nvidia-smi), or run on the CPU (cargo xtask ... --backend cpu)"
    )]
    Device {
        /// Backend name.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// `ee data check` found problems.
    #[error("{0}")]
    DataCheck(String),
    /// An embeddings file (`ee embed`'s output) is unreadable or inconsistent.
    #[error("{}: {message}", path.display())]
    Embeddings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The command line asks for something impossible (k = 0, no query images, ...).
    #[error("{0}")]
    Usage(String),
    /// A picture could not be drawn or written.
    #[error("{}: {message}", path.display())]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl From<ee_train::TrainError> for CliError {
    fn from(error: ee_train::TrainError) -> Self {
        use ee_train::TrainError;
        match error {
            TrainError::Data(error) => CliError::Data(error),
            TrainError::Loss(error) => CliError::Loss(error),
            TrainError::Eval(error) => CliError::from(error),
            TrainError::Model(error) => CliError::Model(*error),
            TrainError::Io { path, source } => CliError::Io { path, source },
            TrainError::Probe(message) => CliError::Usage(message),
            other => CliError::Train(other),
        }
    }
}

impl From<ee_eval::EvalError> for CliError {
    /// The errors of embeddings files ([`ee_eval::embedding_set`]) as `ee`'s own, the rest
    /// as evaluation errors.
    fn from(error: ee_eval::EvalError) -> Self {
        use ee_eval::EvalError;
        match error {
            EvalError::EmbeddingsFile { path, message } => CliError::Embeddings { path, message },
            EvalError::EmbeddingsIo { path, source } => CliError::Io { path, source },
            e @ (EvalError::SetLengthMismatch { .. } | EvalError::Unlabelled { .. }) => {
                CliError::Usage(e.to_string())
            }
            other => CliError::Eval(other),
        }
    }
}

impl From<ee_viz::VizError> for CliError {
    /// Pictures' errors, with the same text.
    fn from(error: ee_viz::VizError) -> Self {
        use ee_viz::VizError;
        match error {
            VizError::Io { path, source } => CliError::Io { path, source },
            VizError::Plot { path, message } => CliError::Plot { path, message },
            VizError::BadLine {
                path,
                line,
                message,
            } => CliError::Plot {
                path,
                message: format!("line {line}: {message}"),
            },
            e @ VizError::Unlabelled { .. } => CliError::Usage(e.to_string()),
        }
    }
}

impl From<ee_core::fs::FileError> for CliError {
    fn from(e: ee_core::fs::FileError) -> Self {
        CliError::io(e.path, e.source)
    }
}

impl CliError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code: 2 for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_)
            | CliError::Backend { .. }
            | CliError::Train(
                ee_train::TrainError::RunExists { .. }
                | ee_train::TrainError::NothingToResume { .. }
                | ee_train::TrainError::Config { .. },
            )
            | CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Shorthand.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_errors_through_ee_train_arrive_as_their_own_variant() {
        let io = ee_train::TrainError::Io {
            path: "run/last.mpk".into(),
            source: std::io::Error::other("disk full"),
        };
        let error = CliError::from(io);
        assert!(matches!(error, CliError::Io { .. }), "{error:?}");
        assert_eq!(error.to_string(), "run/last.mpk: disk full");
        let probe = CliError::from(ee_train::TrainError::Probe("unknown probe `x`".into()));
        assert!(matches!(probe, CliError::Usage(_)), "{probe:?}");
        assert_eq!(probe.exit_code(), 2);
        let exists = CliError::from(ee_train::TrainError::RunExists { dir: "run".into() });
        assert!(matches!(exists, CliError::Train(_)), "{exists:?}");
        assert_eq!(exists.exit_code(), 2);
    }

    #[test]
    fn embeddings_and_picture_errors_keep_their_text_and_exit_code() {
        let file = CliError::from(ee_eval::EvalError::EmbeddingsFile {
            path: "g.csv".into(),
            message: "missing".into(),
        });
        assert!(matches!(file, CliError::Embeddings { .. }), "{file:?}");
        assert_eq!(file.to_string(), "g.csv: missing");
        let rows = CliError::from(ee_eval::EvalError::SetLengthMismatch {
            embeddings: 3,
            paths: 2,
            labels: 3,
        });
        assert_eq!(rows.to_string(), "3 embeddings but 2 paths and 3 labels");
        assert_eq!(rows.exit_code(), 2);
        let eval = CliError::from(ee_eval::EvalError::KTooLarge { k: 5, gallery: 2 });
        assert!(eval.to_string().starts_with("evaluation: "), "{eval}");
        let line = CliError::from(ee_viz::VizError::BadLine {
            path: "m.jsonl".into(),
            line: 2,
            message: "no integer \"epoch\"".into(),
        });
        assert!(matches!(line, CliError::Plot { .. }), "{line:?}");
        assert_eq!(line.to_string(), "m.jsonl: line 2: no integer \"epoch\"");
        let labels = CliError::from(ee_viz::VizError::Unlabelled {
            query: "q.jpg".into(),
            result: "r.jpg".into(),
        });
        assert_eq!(labels.exit_code(), 2);
    }
}
