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
    Eval(#[from] ee_eval::EvalError),
    /// A file of the run could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Training, its checkpoints or its evaluation failed (ee-train).
    #[error("{0}")]
    Train(#[from] ee_train::TrainError),
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
