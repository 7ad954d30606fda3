//! Checkpoints of a training run (`last.mpk`, `best.mpk`): network weights, both optimisers'
//! state, the sampler position and the run's counters, in one MessagePack file written
//! atomically (a temporary file in the same directory, then a rename), so a crash never
//! leaves a half-written checkpoint behind.

use std::io::Write;
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
    /// Best Recall@1 so far of the split that selects checkpoints (the test split, or the
    /// validation classes when given); 0 before the first evaluation.
    pub best_recall1: f64,
    /// Epoch (1-based) of the best Recall@1.
    pub best_epoch: u64,
    /// Length in bytes of metrics.jsonl when the checkpoint was written; a resumed run
    /// truncates the file there, dropping lines of work the checkpoint does not hold.
    pub metrics_len: u64,
    /// Test Recall@1 at the best epoch (checkpoints written before this field: `None`).
    #[serde(default)]
    pub test_recall1_at_best: Option<f64>,
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

/// Writes `bytes` to `path` atomically: a temporary file next to it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = temporary_path(dir, &name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::io(path, e));
    }
    Ok(())
}

/// The temporary file [`write_atomic`] writes `path` through (`.NAME.tmp.PID`).
fn temporary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Removes what an interrupted [`write_atomic`] left in `dir` (`.NAME.tmp.PID` files of other
/// processes, e.g. after a kill during a checkpoint write); returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let own = format!(".tmp.{}", std::process::id());
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with('.')
            && name.contains(".tmp.")
            && !name.ends_with(&own)
            && name
                .rsplit(".tmp.")
                .next()
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if stale && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| TrainError::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl CheckpointFile {
    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes)
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
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.mpk");
        write_atomic(&path, b"first version").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

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
                best_recall1: 0.5,
                best_epoch: 2,
                metrics_len: 123,
                test_recall1_at_best: Some(0.4),
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
