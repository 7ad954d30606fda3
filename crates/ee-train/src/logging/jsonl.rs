//! `metrics.jsonl`: one JSON object per logged training step and per evaluation.
//!
//! ```text
//! {"kind":"train","epoch":1,"step":1,"loss":0.41,"loss_sum":13.1,"lr":0.0001,"images_per_sec":85.2,
//!  "mean_positive_distance":0.9,"mean_negative_distance":0.7,"active_fraction":1.0,"synthetic_negative_fraction":0.6}
//! {"kind":"eval","epoch":5,"step":120,"recall":{"1":0.61,"2":0.72},"best_recall":0.61,"best_epoch":5}
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, TrainError};

/// A logged training step.
#[derive(Debug, Clone, Serialize)]
pub struct TrainLine {
    /// Always "train".
    pub kind: &'static str,
    /// Epoch, 1-based.
    pub epoch: u64,
    /// Global step, 1-based (the reference's `global_step`).
    pub step: u64,
    /// Mean per-anchor loss (what the reference logs as `loss`).
    pub loss: f64,
    /// The trained scalar (the sum over anchors with `reduction = "sum"`).
    pub loss_sum: f64,
    /// Learning rate of the head (the backbone's is `lr * base_lr_mult`).
    pub lr: f64,
    /// Training throughput since the previous logged step.
    pub images_per_sec: f64,
    /// Fraction of anchors with a non-zero loss.
    pub active_fraction: f64,
    /// The loss's own statistics ([`ee_loss::LossOutput::diagnostics`]), as top-level
    /// fields: HPHN's `mean_positive_distance`, `mean_negative_distance` and
    /// `synthetic_negative_fraction`, the paper's selection ratio.
    #[serde(flatten)]
    pub diagnostics: BTreeMap<String, f64>,
}

/// An evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalLine {
    /// Always "eval".
    pub kind: &'static str,
    /// `"validation"` for the held-out training classes that select the best checkpoint;
    /// absent for the test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<&'static str>,
    /// Epoch, 1-based.
    pub epoch: u64,
    /// Global step.
    pub step: u64,
    /// Recall@K by K.
    pub recall: BTreeMap<String, f64>,
    /// MAP@R.
    pub map_at_r: Option<f64>,
    /// NMI (with `schedule.eval_clustering`).
    pub nmi: Option<f64>,
    /// Pairwise F1 (with `schedule.eval_clustering`).
    pub f1: Option<f64>,
    /// Best Recall@K so far (of the split that selects checkpoints; K the first of
    /// `eval.recall_ks`). Written as `best_recall1`, its name in earlier versions.
    #[serde(rename = "best_recall1")]
    pub best_recall: f64,
    /// Epoch of the best Recall@K.
    pub best_epoch: u64,
}

/// Appends lines to metrics.jsonl.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending, first cutting it to `keep` bytes when given (on resume).
    pub fn open(path: &Path, keep: Option<u64>) -> Result<MetricsLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        if let Some(len) = keep {
            file.set_len(len).map_err(|e| TrainError::io(path, e))?;
        }
        Ok(MetricsLog {
            path: path.into(),
            file,
        })
    }

    /// Appends one JSON line.
    pub fn write<T: Serialize>(&mut self, line: &T) -> Result<()> {
        let mut text = serde_json::to_string(line).expect("metrics serialise");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))
    }

    /// Bytes written so far.
    pub fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| TrainError::io(&self.path, e))?
            .len())
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
