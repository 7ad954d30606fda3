//! [`TrainError`]: everything a training run can fail with, each as one line for the user.

use std::path::PathBuf;

/// Everything [`Trainer::fit`](crate::Trainer::fit) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A trainer setting is invalid.
    #[error("invalid trainer config: {field} = {value}: {rule}")]
    Config {
        /// The setting, as `TrainerConfig` names it (`optimizer.lr`, `epochs`, ...).
        field: String,
        /// Its value.
        value: String,
        /// The rule it broke.
        rule: String,
    },
    /// Reading the dataset, sampling or loading images failed.
    #[error("data: {0}")]
    Data(#[from] ee_data::DataError),
    /// The loss refused its input.
    #[error("loss: {0}")]
    Loss(#[from] ee_loss::LossError),
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] ee_eval::EvalError),
    /// Building a network failed (the [`probe`](crate::probe)s build their own). Boxed: the
    /// model's error is large, and it is rare.
    #[error("model: {0}")]
    Model(Box<ee_model::ModelError>),
    /// A file of the run could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint is unreadable or does not fit.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("loss is {value} at epoch {epoch}, step {step}: training stopped; {}", match checkpoint {
        Some(p) => format!("the last good checkpoint {} is intact (lower optimizer.lr, then `--resume`)", p.display()),
        None => "no checkpoint had been written yet (lower optimizer.lr and start again)".to_string(),
    })]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: u64,
        /// Global step (1-based).
        step: u64,
        /// The value.
        value: f64,
        /// The last checkpoint written, if any.
        checkpoint: Option<PathBuf>,
    },
    /// The run directory already holds a run.
    #[error("{} already holds a run (last.mpk): pass --resume to continue it, or set another run.output_dir (e.g. --set run.output_dir=runs/new)", dir.display())]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// Resuming without a checkpoint.
    #[error("--resume: no checkpoint {} to resume from", path.display())]
    NothingToResume {
        /// The missing file.
        path: PathBuf,
    },
    /// An image set yielded no readable image.
    #[error("none of the {count} images could be read")]
    NoImages {
        /// How many there were.
        count: usize,
    },
    /// Tensor values could not be read back to the host.
    #[error("cannot read embeddings back: {0}")]
    Readback(String),
    /// burn's collective (data-parallel training) failed.
    #[error("data-parallel training: {0}")]
    Collective(String),
    /// A logger failed.
    #[error("logger: {0}")]
    Logger(String),
    /// A [`probe`](crate::probe) was asked for something it cannot run (an unknown name,
    /// sizes that do not fit).
    #[error("{0}")]
    Probe(String),
}

impl TrainError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<ee_model::ModelError> for TrainError {
    fn from(e: ee_model::ModelError) -> Self {
        TrainError::Model(Box::new(e))
    }
}

impl From<ee_core::fs::FileError> for TrainError {
    fn from(e: ee_core::fs::FileError) -> Self {
        TrainError::io(e.path, e.source)
    }
}

/// Shorthand.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
