//! What a run reports, behind one trait: [`TrainLogger`], with `metrics.jsonl`
//! ([`JsonlLogger`]), TensorBoard event files ([`TensorBoardLogger`]) and progress bars with
//! one line per epoch and evaluation ([`ConsoleLogger`]) as its implementations.
//!
//! The trainer calls every logger at the same points: once at the start, on every batch
//! (cheap: progress), on every `log_every_steps`-th step (loss, lr, loss statistics), at
//! each epoch's end, after each evaluation, and before each checkpoint ([`TrainLogger::mark`]
//! then records where a resumed run should cut the log).

pub mod jsonl;
pub mod tensorboard;

use std::path::{Path, PathBuf};

use ee_eval::EvalReport;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Result, TrainError};

pub use jsonl::{EvalLine, MetricsLog, TrainLine};
pub use tensorboard::EventWriter;

/// What the run is about to do.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    /// Epochs in total.
    pub epochs: u64,
    /// Batches per epoch.
    pub batches_per_epoch: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Instances per class in a batch.
    pub instances_per_class: usize,
    /// Training images.
    pub train_images: usize,
    /// Training classes.
    pub train_classes: usize,
    /// The test set, in words ("N test images").
    pub test: String,
    /// The validation set, in words ("N validation images"), if any.
    pub validation: Option<String>,
    /// The run directory.
    pub run_dir: &'a Path,
    /// The devices, in words (`"libtorch<cpu>"`, `"2 x cuda<0>, cuda<1>"`: the backend's names).
    pub devices: String,
    /// Where a resumed run continues: (epoch 1-based, next batch, global step, best R@1).
    pub resumed: Option<(u64, usize, u64, f64)>,
}

/// One batch done (for progress displays).
#[derive(Debug, Clone, Copy)]
pub struct BatchDone {
    /// Epoch, 1-based.
    pub epoch: u64,
    /// Batch index within the epoch, 0-based.
    pub batch: usize,
    /// Mean per-anchor loss.
    pub loss: f64,
    /// Learning rate.
    pub lr: f64,
    /// Throughput of the epoch so far.
    pub images_per_sec: f64,
}

/// A logged training step.
#[derive(Debug, Clone)]
pub struct StepLog<'a> {
    /// Epoch, 1-based.
    pub epoch: u64,
    /// Global step, 1-based.
    pub step: u64,
    /// Mean per-anchor loss.
    pub loss: f64,
    /// The trained (reduced) loss.
    pub loss_sum: f64,
    /// Learning rate of the head.
    pub lr: f64,
    /// Throughput since the previous logged step.
    pub images_per_sec: f64,
    /// Fraction of anchors with a non-zero loss term.
    pub active_fraction: f64,
    /// The loss's diagnostics ([`ee_loss::LossOutput::diagnostics`]).
    pub diagnostics: &'a [(&'static str, f64)],
}

/// An epoch's end.
#[derive(Debug, Clone, Copy)]
pub struct EpochLog {
    /// Epoch, 1-based.
    pub epoch: u64,
    /// Epochs in total.
    pub epochs: u64,
    /// Mean per-anchor loss of its last batch.
    pub loss: f64,
    /// Learning rate of its last batch.
    pub lr: f64,
    /// Throughput.
    pub images_per_sec: f64,
    /// Seconds.
    pub seconds: f64,
}

/// Which image set an evaluation scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSplit {
    /// The test split (the reference selects checkpoints on it).
    Test,
    /// Held-out training classes that select checkpoints instead.
    Validation,
}

/// An evaluation.
#[derive(Debug, Clone)]
pub struct EvalLog<'a> {
    /// Epoch, 1-based (0: before training).
    pub epoch: u64,
    /// Global step.
    pub step: u64,
    /// Which set.
    pub split: EvalSplit,
    /// ee-eval's report.
    pub report: &'a EvalReport,
    /// Seconds spent.
    pub seconds: f64,
    /// Best selection Recall@K so far, K the first of `eval.recall_ks` (0 before any).
    pub best_recall: f64,
    /// Its epoch (0: none yet).
    pub best_epoch: u64,
}

/// Receives what a run reports. Every method has a do-nothing default.
pub trait TrainLogger {
    /// The run starts (or resumes).
    fn start(&mut self, run: &RunStart<'_>) -> Result<()> {
        let _ = run;
        Ok(())
    }
    /// An epoch starts at batch `first_batch` (non-zero when resumed mid-epoch).
    fn epoch_start(&mut self, epoch: u64, epochs: u64, batches: usize, first_batch: usize) {
        let _ = (epoch, epochs, batches, first_batch);
    }
    /// A batch is done.
    fn batch(&mut self, batch: &BatchDone) {
        let _ = batch;
    }
    /// Every `log_every_steps`-th step.
    fn step(&mut self, step: &StepLog<'_>) -> Result<()> {
        let _ = step;
        Ok(())
    }
    /// An epoch ended.
    fn epoch(&mut self, epoch: &EpochLog) -> Result<()> {
        let _ = epoch;
        Ok(())
    }
    /// An evaluation finished.
    fn eval(&mut self, eval: &EvalLog<'_>) -> Result<()> {
        let _ = eval;
        Ok(())
    }
    /// The run stopped on an error (close progress displays).
    fn abort(&mut self) {}
    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// A position to store with a checkpoint (only [`JsonlLogger`] has one: the length of
    /// metrics.jsonl, where a resumed run cuts it).
    fn mark(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// `metrics.jsonl` in the run directory ([`TrainLine`], [`EvalLine`]).
pub struct JsonlLogger {
    log: MetricsLog,
}

impl JsonlLogger {
    /// Opens `path` for appending, first cutting it to `keep` bytes (on resume).
    pub fn open(path: &Path, keep: Option<u64>) -> Result<Self> {
        Ok(JsonlLogger {
            log: MetricsLog::open(path, keep)?,
        })
    }
}

impl TrainLogger for JsonlLogger {
    fn step(&mut self, s: &StepLog<'_>) -> Result<()> {
        self.log.write(&TrainLine {
            kind: "train",
            epoch: s.epoch,
            step: s.step,
            loss: s.loss,
            loss_sum: s.loss_sum,
            lr: s.lr,
            images_per_sec: s.images_per_sec,
            active_fraction: s.active_fraction,
            diagnostics: s
                .diagnostics
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        })
    }

    fn eval(&mut self, e: &EvalLog<'_>) -> Result<()> {
        let report = e.report;
        self.log.write(&EvalLine {
            kind: "eval",
            split: (e.split == EvalSplit::Validation).then_some("validation"),
            epoch: e.epoch,
            step: e.step,
            recall: report
                .recall_at_k
                .iter()
                .map(|r| (r.k.to_string(), r.recall))
                .collect(),
            map_at_r: report.map_at_r,
            nmi: report.clustering.as_ref().map(|c| c.nmi),
            f1: report.clustering.as_ref().map(|c| c.f1),
            best_recall: e.best_recall,
            best_epoch: e.best_epoch,
        })
    }

    fn mark(&mut self) -> Result<Option<u64>> {
        Ok(Some(self.log.len()?))
    }
}

/// TensorBoard scalars under the run directory's `tensorboard/`: `loss`, `lr`,
/// `images_per_sec`, `loss_stats/*` per logged step; `loss_epoch`, `lr_epoch` per epoch;
/// `metric/R{k}`, `metric/MAP@R`, `metric/NMI`, `metric/F1` per evaluation (step axis) and
/// `metric_epoch/R{k}` (epoch axis); validation evaluations under `validation/...`.
pub struct TensorBoardLogger {
    events: EventWriter,
}

impl TensorBoardLogger {
    /// Creates a new event file in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        Ok(TensorBoardLogger {
            events: EventWriter::create(dir).map_err(|e| TrainError::io(dir, e))?,
        })
    }

    fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        self.events
            .scalar(tag, value, step)
            .map_err(|e| TrainError::io(self.events.path(), e))
    }
}

impl TrainLogger for TensorBoardLogger {
    fn step(&mut self, s: &StepLog<'_>) -> Result<()> {
        self.scalar("loss", s.loss, s.step)?;
        self.scalar("lr", s.lr, s.step)?;
        self.scalar("loss_stats/active_fraction", s.active_fraction, s.step)?;
        self.scalar("images_per_sec", s.images_per_sec, s.step)?;
        for (name, value) in s.diagnostics {
            self.scalar(&format!("loss_stats/{name}"), *value, s.step)?;
        }
        // A kill loses at most the scalars since the last logged step.
        self.flush()
    }

    fn epoch(&mut self, e: &EpochLog) -> Result<()> {
        self.scalar("lr_epoch", e.lr, e.epoch)?;
        self.scalar("loss_epoch", e.loss, e.epoch)
    }

    fn eval(&mut self, e: &EvalLog<'_>) -> Result<()> {
        let prefix = match e.split {
            EvalSplit::Test => "",
            EvalSplit::Validation => "validation/",
        };
        let report = e.report;
        for r in &report.recall_at_k {
            self.scalar(&format!("{prefix}metric/R{}", r.k), r.recall, e.step)?;
            self.scalar(&format!("{prefix}metric_epoch/R{}", r.k), r.recall, e.epoch)?;
        }
        if let Some(first) = report.recall_at_k.first().filter(|_| e.best_epoch > 0) {
            let first_k = first.k;
            self.scalar(
                &format!("{prefix}metric/R{first_k}/best"),
                e.best_recall,
                e.step,
            )?;
            self.scalar(
                &format!("{prefix}metric_epoch/R{first_k}/best"),
                e.best_recall,
                e.epoch,
            )?;
        }
        if let Some(map) = report.map_at_r {
            self.scalar(&format!("{prefix}metric/MAP@R"), map, e.step)?;
        }
        if let Some(c) = &report.clustering {
            self.scalar(&format!("{prefix}metric/NMI"), c.nmi, e.step)?;
            self.scalar(&format!("{prefix}metric/F1"), c.f1, e.step)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.events
            .flush()
            .map_err(|e| TrainError::io(self.events.path(), e))
    }
}

/// The terminal: a progress bar per epoch (unless `quiet`), a line per epoch and per
/// evaluation on stdout, the run's outline on stderr.
pub struct ConsoleLogger {
    quiet: bool,
    bar: Option<ProgressBar>,
    run_dir: PathBuf,
}

impl ConsoleLogger {
    /// `quiet` hides the progress bars (the lines stay).
    pub fn new(quiet: bool) -> Self {
        ConsoleLogger {
            quiet,
            bar: None,
            run_dir: PathBuf::new(),
        }
    }
}

impl TrainLogger for ConsoleLogger {
    fn start(&mut self, run: &RunStart<'_>) -> Result<()> {
        self.run_dir = run.run_dir.to_path_buf();
        if let Some((epoch, batch, step, best)) = run.resumed {
            eprintln!(
                "resuming {} at epoch {epoch}, batch {batch} (step {step}, best R@1 {best:.4})",
                run.run_dir.display()
            );
        }
        let validation = run
            .validation
            .as_ref()
            .map(|v| format!(", selecting checkpoints on {v} of held-out classes"))
            .unwrap_or_default();
        eprintln!(
            "training {} epochs x {} batches of {} ({} classes x {}) on {} train images ({} classes), testing on {}{validation}; on {}; run directory {}",
            run.epochs,
            run.batches_per_epoch,
            run.batch_size,
            run.batch_size / run.instances_per_class.max(1),
            run.instances_per_class,
            run.train_images,
            run.train_classes,
            run.test,
            run.devices,
            run.run_dir.display()
        );
        Ok(())
    }

    fn epoch_start(&mut self, epoch: u64, epochs: u64, batches: usize, first_batch: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(first_batch as u64);
        self.bar = Some(bar);
    }

    fn batch(&mut self, b: &BatchDone) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} img/s",
                b.loss, b.lr, b.images_per_sec
            ));
            bar.inc(1);
        }
    }

    fn epoch(&mut self, e: &EpochLog) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "epoch {}/{}: loss {:.4}, lr {:.2e}, {:.0} img/s, {:.1} s",
            e.epoch, e.epochs, e.loss, e.lr, e.images_per_sec, e.seconds
        );
        Ok(())
    }

    fn eval(&mut self, e: &EvalLog<'_>) -> Result<()> {
        let recalls: Vec<String> = e
            .report
            .recall_at_k
            .iter()
            .map(|r| format!("R@{} {:.4}", r.k, r.recall))
            .collect();
        let recalls = recalls.join("  ");
        let what = match e.split {
            EvalSplit::Test => "eval",
            EvalSplit::Validation => "validation",
        };
        if e.epoch == 0 {
            println!("{what} before training: {recalls}");
        } else {
            println!(
                "{what} epoch {}: {recalls}  (best R@1 {:.4} at epoch {}; {:.1} s)",
                e.epoch, e.best_recall, e.best_epoch, e.seconds
            );
        }
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
