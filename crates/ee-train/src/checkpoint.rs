//! Checkpoints of a training run (`last.mpk`, `best.mpk`): network weights, both optimisers'
//! state, the sampler position and the run's counters, in one MessagePack file written
//! atomically ([`ee_core::fs::write_atomic`]: a temporary file in the same directory, then a
//! rename), so a crash never leaves a half-written checkpoint behind.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Where a run is: enough, with the weights and optimiser states, to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The sampler's position: seed, epoch in progress (0-based) and its next batch. Every
    /// random draw of the run (batches, augmentation) is keyed by these, so they are the
    /// run's whole RNG state.
    pub sampler: ee_data::SamplerState,
    /// Optimiser steps taken.
    pub global_step: u64,
    /// Best Recall@K so far of the split that selects checkpoints (the test split, or the
    /// validation classes when given), K the first of `eval.recall_ks` (1 by default); 0
    /// before the first evaluation. Stored as `best_recall1`, its name in earlier versions.
    #[serde(rename = "best_recall1")]
    pub best_recall: f64,
    /// Epoch (1-based) of the best Recall@K.
    pub best_epoch: u64,
    /// Length in bytes of metrics.jsonl when the checkpoint was written; a resumed run
    /// truncates the file there, dropping lines of work the checkpoint does not hold.
    pub metrics_len: u64,
    /// Test Recall@K (the same K) at the best epoch (checkpoints written before this field:
    /// `None`). Stored as `test_recall1_at_best`.
    #[serde(default, rename = "test_recall1_at_best")]
    pub test_recall_at_best: Option<f64>,
}

/// The whole checkpoint file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointFile {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// The caller's description of the run ([`Trainer::with_run_description`]; the `ee`
    /// binary stores its resolved TOML config), enough to rebuild the model.
    ///
    /// [`Trainer::with_run_description`]: crate::Trainer::with_run_description
    pub config: String,
    /// Counters and sampler position.
    pub state: TrainingState,
    /// The network (burn NamedMpk record, full precision).
    #[serde(with = "serde_bytes")]
    pub network: Vec<u8>,
    /// The backbone optimiser's state (burn record).
    #[serde(with = "serde_bytes")]
    pub backbone_optimizer: Vec<u8>,
    /// The head optimiser's state (burn record).
    #[serde(with = "serde_bytes")]
    pub head_optimizer: Vec<u8>,
}

fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
}

/// A burn record as bytes.
pub fn record_bytes<B: Backend, R: Record<B>>(record: R, what: &Path) -> Result<Vec<u8>> {
    Recorder::<B>::record(&recorder(), record, ()).map_err(|e| TrainError::Checkpoint {
        path: what.into(),
        message: e.to_string(),
    })
}

/// A burn record from bytes.
pub fn record_from_bytes<B: Backend, R: Record<B>>(
    bytes: Vec<u8>,
    device: &B::Device,
    what: &Path,
) -> Result<R> {
    Recorder::<B>::load(&recorder(), bytes, device).map_err(|e| TrainError::Checkpoint {
        path: what.into(),
        message: e.to_string(),
    })
}

/// The network of a module as bytes.
pub fn module_bytes<B: Backend, M: Module<B>>(module: &M, what: &Path) -> Result<Vec<u8>> {
    record_bytes::<B, _>(module.clone().into_record(), what)
}

impl CheckpointFile {
    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
        Ok(ee_core::fs::write_atomic(path, &bytes)?)
    }

    /// Reads a checkpoint written by [`CheckpointFile::save`].
    pub fn load(path: &Path) -> Result<CheckpointFile> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let file: CheckpointFile =
            rmp_serde::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
                path: path.into(),
                message: format!("not an ee checkpoint ({e})"),
            })?;
        if file.version != CHECKPOINT_VERSION {
            return Err(TrainError::Checkpoint {
                path: path.into(),
                message: format!(
                    "layout version {} (this ee reads {CHECKPOINT_VERSION})",
                    file.version
                ),
            });
        }
        Ok(file)
    }
}

/// `dir/last.mpk`.
pub fn last_path(dir: &Path) -> PathBuf {
    dir.join("last.mpk")
}

/// `dir/best.mpk`.
pub fn best_path(dir: &Path) -> PathBuf {
    dir.join("best.mpk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mpk");
        let file = CheckpointFile {
            version: CHECKPOINT_VERSION,
            config: "[run]".into(),
            state: TrainingState {
                sampler: ee_data::SamplerState {
                    seed: 3,
                    epoch: 2,
                    next_batch: 1,
                },
                global_step: 9,
                best_recall: 0.5,
                best_epoch: 2,
                metrics_len: 123,
                test_recall_at_best: Some(0.4),
            },
            network: vec![1, 2, 3],
            backbone_optimizer: vec![4],
            head_optimizer: vec![],
        };
        file.save(&path).unwrap();
        let back = CheckpointFile::load(&path).unwrap();
        assert_eq!(back.state, file.state);
        assert_eq!(back.network, file.network);
        std::fs::write(&path, b"garbage").unwrap();
        let e = CheckpointFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("not an ee checkpoint"), "{e}");
    }
}
