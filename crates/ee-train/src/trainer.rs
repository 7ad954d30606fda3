//! [`Trainer`]: the training loop of METHOD.md sections 5-7, for any [`TrainModel`] and any
//! [`PairLoss`].
//!
//! ```text
//! sampler -> image pipeline -> model (train mode) -> Embedding Expansion -> pair loss
//!   -> backward -> backbone at lr * base_lr_mult, the rest at lr (two optimisers)
//!   -> multi-step lr decay in iterations -> every N epochs: Recall@K, best / last checkpoints
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use ee_data::{BatchPlan, ClassBalancedSampler, LoaderConfig, SamplerConfig, SamplerState, Split};
use ee_eval::EvalConfig;
use ee_loss::batch::check_batch;
use ee_loss::{LossStats, PairLoss};
use ee_model::Embed;

use crate::checkpoint::{self, CheckpointFile, TrainingState, CHECKPOINT_VERSION};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, EvalSet, EvalSummary};
use crate::logging::{
    BatchDone, ConsoleLogger, EpochLog, EvalLog, EvalSplit, JsonlLogger, RunStart, StepLog,
    TensorBoardLogger, TrainLogger,
};
use crate::model::TrainModel;
use crate::optimizer::{apply_gradients, OptimizerConfig, OptimizerKind};
use crate::parallel::{
    all_reduce_gradients, gather_embeddings, slice_batch, split_rows, DataParallel,
};
use crate::schedule::MultiStepLr;

/// Everything about a training run except the model, the loss and the data.
///
/// The run directory receives `metrics.jsonl`, `tensorboard/` event files, `last.mpk` (end
/// of every epoch, and every `checkpoint_every_steps`) and `best.mpk` (best Recall@1 of the
/// split that selects checkpoints). With `resume`, the run continues from `last.mpk`
/// exactly: the sampler and the augmentation are keyed by (seed, epoch, batch), and the
/// checkpoint holds the weights, BatchNorm statistics and both optimisers' moments.
#[derive(Config, Debug)]
pub struct TrainerConfig {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Optimiser and learning-rate schedule.
    #[config(default = "OptimizerConfig::new()")]
    pub optimizer: OptimizerConfig,
    /// The classes x instances sampler. `require_even_instances` is set by the trainer: on
    /// exactly when the loss expands (EE pairs rows).
    #[config(default = "SamplerConfig::new()")]
    pub sampler: SamplerConfig,
    /// Image loading and augmentation of the training split.
    #[config(default = "LoaderConfig::new()")]
    pub loader: LoaderConfig,
    /// What an evaluation scores; the first of `recall_ks` selects the best checkpoint.
    #[config(default = "EvalConfig::new()")]
    pub eval: EvalConfig,
    /// Training epochs.
    #[config(default = 4000)]
    pub epochs: u64,
    /// Evaluate every this many epochs (and after the last).
    #[config(default = 5)]
    pub eval_every_epochs: u64,
    /// Batch size of the evaluation's forward passes.
    #[config(default = 128)]
    pub eval_batch_size: usize,
    /// Also evaluate the untrained model once (logged as epoch 0, never "best").
    #[config(default = false)]
    pub eval_before_training: bool,
    /// Log loss, lr and loss statistics every this many steps.
    #[config(default = 10)]
    pub log_every_steps: u64,
    /// Also write `last.mpk` every this many steps within an epoch (0: at epoch ends only).
    #[config(default = 0)]
    pub checkpoint_every_steps: u64,
    /// Seed of the sampler and the augmentation.
    #[config(default = 0)]
    pub seed: u64,
    /// Continue the run of `run_dir` from its `last.mpk`.
    #[config(default = false)]
    pub resume: bool,
    /// Hide progress bars (the per-epoch lines stay).
    #[config(default = false)]
    pub quiet: bool,
}

fn bad(field: &str, value: impl std::fmt::Display, rule: &str) -> TrainError {
    TrainError::Config {
        field: field.into(),
        value: value.to_string(),
        rule: rule.into(),
    }
}

impl TrainerConfig {
    /// Checks the settings the trainer owns (the sampler, loader and evaluation configs are
    /// checked by their crates when the run starts).
    pub fn check(&self) -> Result<()> {
        self.optimizer.check()?;
        if self.epochs == 0 {
            return Err(bad("epochs", 0, "must be at least 1"));
        }
        if self.eval_every_epochs == 0 {
            return Err(bad("eval_every_epochs", 0, "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(bad("eval_batch_size", 0, "must be at least 1"));
        }
        if self.log_every_steps == 0 {
            return Err(bad("log_every_steps", 0, "must be at least 1"));
        }
        if self.eval.recall_ks.is_empty() {
            return Err(bad(
                "eval.recall_ks",
                "[]",
                "needs at least one K: the first selects the best checkpoint",
            ));
        }
        Ok(())
    }

    /// The sampler a run of `loss` draws from `train` with: exactly what [`Trainer::fit`]
    /// builds (`require_even_instances` on exactly when the loss expands). Call it to check a
    /// run's batches against its data before any image is decoded.
    pub fn sampler<L: PairLoss>(&self, loss: &L, train: &Split) -> Result<ClassBalancedSampler> {
        Ok(self
            .sampler
            .clone()
            .with_require_even_instances(loss.expansion().n_inner_pts() > 0)
            .init(&train.labels(), self.seed)?)
    }

    /// Checks the config and builds the trainer, with the default loggers: metrics.jsonl,
    /// TensorBoard and the console.
    pub fn init(&self) -> Result<Trainer> {
        self.check()?;
        Ok(Trainer {
            config: self.clone(),
            loggers: Vec::new(),
            default_loggers: true,
            description: None,
            nan_at_step: None,
        })
    }
}

/// The data of a run.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// The training split (sampled classes x instances, train augmentation).
    pub train: &'a Split,
    /// Scored at every evaluation; selects the best checkpoint unless `validation` is set.
    pub test: &'a EvalSet,
    /// Held-out training classes that select the best checkpoint instead of the test split
    /// ("A Metric Learning Reality Check", Musgrave et al. 2020).
    pub validation: Option<&'a EvalSet>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Epochs trained in total.
    pub epochs: u64,
    /// Optimiser steps in total.
    pub steps: u64,
    /// Best Recall@1 of the selecting split (validation if given, else test).
    pub best_recall1: f64,
    /// Its epoch (0: no evaluation improved on 0).
    pub best_epoch: u64,
    /// Test Recall@1 at the best epoch (equal to `best_recall1` without validation).
    pub test_recall1_at_best: Option<f64>,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// The trained model and the run's summary.
#[derive(Debug)]
pub struct Fitted<M> {
    /// The model after the last step.
    pub model: M,
    /// What the run reports.
    pub summary: TrainSummary,
}

/// Trains embedding models; made by [`TrainerConfig::init`].
pub struct Trainer {
    config: TrainerConfig,
    loggers: Vec<Box<dyn TrainLogger>>,
    default_loggers: bool,
    description: Option<(String, String)>,
    nan_at_step: Option<u64>,
}

impl Trainer {
    /// The settings.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Adds a logger next to the default ones.
    pub fn with_logger(mut self, logger: impl TrainLogger + 'static) -> Self {
        self.loggers.push(Box::new(logger));
        self
    }

    /// Drops the default loggers (metrics.jsonl, TensorBoard, console); only those added
    /// with [`Trainer::with_logger`] remain.
    pub fn without_default_loggers(mut self) -> Self {
        self.default_loggers = false;
        self
    }

    /// Describes the run in the caller's own terms (the `ee` binary: its resolved TOML
    /// config): written to `run_dir/file_name` when the run starts and stored in every
    /// checkpoint, so that the model can be rebuilt from a checkpoint alone. By default the
    /// trainer's config, as JSON, in `trainer.json`.
    pub fn with_run_description(mut self, file_name: &str, text: impl Into<String>) -> Self {
        self.description = Some((file_name.into(), text.into()));
        self
    }

    /// Poisons the loss with NaN at a global step (1-based): for testing how a run stops.
    #[doc(hidden)]
    pub fn with_nan_at_step(mut self, step: Option<u64>) -> Self {
        self.nan_at_step = step;
        self
    }

    fn description(&self) -> (String, String) {
        self.description
            .clone()
            .unwrap_or_else(|| ("trainer.json".into(), self.config.to_string()))
    }

    /// Trains `model` with `loss` on `data`: `config.epochs` epochs, or the rest of them
    /// when resuming (the model's weights are then replaced by the checkpoint's).
    pub fn fit<B, M, L>(
        &mut self,
        model: M,
        loss: &L,
        data: TrainData<'_>,
        device: &B::Device,
    ) -> Result<Fitted<M>>
    where
        B: AutodiffBackend,
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        L: PairLoss + Sync,
    {
        self.fit_data_parallel(model, loss, data, std::slice::from_ref(device))
    }

    /// [`Trainer::fit`] over several devices of one backend (data-parallel, burn's
    /// collective; see [`crate::parallel`]): each device embeds whole classes of every batch,
    /// and the loss mines the whole batch, exactly as on one device. One device is
    /// [`Trainer::fit`]. The batch needs at least one class per device.
    pub fn fit_data_parallel<B, M, L>(
        &mut self,
        model: M,
        loss: &L,
        data: TrainData<'_>,
        devices: &[B::Device],
    ) -> Result<Fitted<M>>
    where
        B: AutodiffBackend,
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        L: PairLoss + Sync,
    {
        if devices.is_empty() {
            return Err(bad("run.devices", "[]", "needs at least one device"));
        }
        match self.config.optimizer.kind {
            OptimizerKind::Adam => {
                let make = || self.config.optimizer.adam().init::<B, M>();
                let (backbone, head) = (make(), make());
                self.run(model, loss, data, devices, backbone, head)
            }
            OptimizerKind::Adamw => {
                let make = || self.config.optimizer.adamw().init::<B, M>();
                let (backbone, head) = (make(), make());
                self.run(model, loss, data, devices, backbone, head)
            }
        }
    }

    fn run<B, M, L, O>(
        &mut self,
        mut model: M,
        loss: &L,
        data: TrainData<'_>,
        devices: &[B::Device],
        mut backbone_optimizer: O,
        mut head_optimizer: O,
    ) -> Result<Fitted<M>>
    where
        B: AutodiffBackend,
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        L: PairLoss + Sync,
        O: Optimizer<M, B>,
    {
        let device = &devices[0];
        let c = self.config.clone();
        let run_dir = c.run_dir.clone();
        let last = checkpoint::last_path(&run_dir);
        let best = checkpoint::best_path(&run_dir);
        if c.resume && !last.is_file() {
            return Err(TrainError::NothingToResume { path: last });
        }
        // Any trace of an earlier run (a best.mpk without last.mpk included) is a run: never
        // overwrite its checkpoints or truncate its metrics.
        if !c.resume && earlier_run(&run_dir) {
            return Err(TrainError::RunExists { dir: run_dir });
        }

        let sampler = c.sampler(loss, data.train)?;
        let classes_per_batch = sampler.batch_size() / sampler.instances_per_class().max(1);
        if devices.len() > classes_per_batch {
            return Err(bad(
                "run.devices",
                devices.len(),
                &format!(
                    "each device needs whole classes, and a batch has {classes_per_batch} \
                     class(es) (batch_size / instances_per_class)"
                ),
            ));
        }
        let train_loader = c.loader.init(data.train)?;
        let batches_per_epoch = sampler.batches_per_epoch();
        let schedule = MultiStepLr::from_epochs(
            c.optimizer.lr,
            c.optimizer.lr_decay_factor,
            &c.optimizer.lr_decay_epochs,
            batches_per_epoch,
        );
        let (description_file, description) = self.description();

        let created_dir = !run_dir.exists();
        std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
        ee_core::fs::remove_stale_temporaries(&run_dir)?;
        let mut state = TrainingState {
            sampler: SamplerState {
                seed: c.seed,
                epoch: 0,
                next_batch: 0,
            },
            global_step: 0,
            best_recall1: 0.0,
            best_epoch: 0,
            metrics_len: 0,
            test_recall1_at_best: None,
        };
        let mut keep_metrics = Some(0);
        if c.resume {
            let file = CheckpointFile::load(&last)?;
            if file.state.sampler.seed != c.seed {
                return Err(TrainError::Checkpoint {
                    path: last,
                    message: format!(
                        "was written with run.seed = {}, the config says {}",
                        file.state.sampler.seed, c.seed
                    ),
                });
            }
            model = model.load_record(checkpoint::record_from_bytes::<B, _>(
                file.network,
                device,
                &last,
            )?);
            backbone_optimizer =
                backbone_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
                    file.backbone_optimizer,
                    device,
                    &last,
                )?);
            head_optimizer = head_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
                file.head_optimizer,
                device,
                &last,
            )?);
            state = file.state;
            keep_metrics = Some(state.metrics_len);
        }
        ee_core::fs::write_atomic(&run_dir.join(&description_file), description.as_bytes())?;
        // Data-parallel: replicas 1.. start as copies of replica 0 (after any resume), with the
        // same parameter ids, so that their gradients pair up in the all-reduce.
        let parallel = match devices.len() {
            1 => None,
            _ => Some(DataParallel::<B>::start(devices)?),
        };
        let mut others: Vec<(M, O, O)> = devices[1..]
            .iter()
            .map(|d| {
                (
                    model.clone().fork(d),
                    backbone_optimizer.clone(),
                    head_optimizer.clone(),
                )
            })
            .collect();

        let mut loggers: Vec<Box<dyn TrainLogger>> = Vec::new();
        if self.default_loggers {
            loggers.push(Box::new(JsonlLogger::open(
                &run_dir.join("metrics.jsonl"),
                keep_metrics,
            )?));
            loggers.push(Box::new(TensorBoardLogger::create(
                &run_dir.join("tensorboard"),
            )?));
            loggers.push(Box::new(ConsoleLogger::new(c.quiet)));
        }
        loggers.append(&mut self.loggers);
        let mut run = Run {
            loggers,
            description,
            last_checkpoint: c.resume.then(|| last.clone()),
        };
        let result = (|| -> Result<M> {
            run.each(|l| {
                l.start(&RunStart {
                    epochs: c.epochs,
                    batches_per_epoch,
                    batch_size: sampler.batch_size(),
                    instances_per_class: sampler.instances_per_class(),
                    train_images: train_loader.len(),
                    train_classes: data.train.num_classes(),
                    test: data.test.describe("test"),
                    validation: data.validation.map(|v| v.describe("validation")),
                    run_dir: &run_dir,
                    devices: describe_devices::<B>(devices),
                    resumed: c.resume.then_some((
                        state.sampler.epoch + 1,
                        state.sampler.next_batch,
                        state.global_step,
                        state.best_recall1,
                    )),
                })
            })?;

            if c.eval_before_training && state.global_step == 0 {
                let valid = model.valid();
                for (set, split) in eval_sets(data) {
                    let summary =
                        evaluate(&valid, set, &c.eval, c.eval_batch_size, c.quiet, device)?;
                    run.log_eval(&summary, split, 0, &state)?;
                }
            }

            while state.sampler.epoch < c.epochs {
                let epoch = state.sampler.epoch;
                run.loggers.iter_mut().for_each(|l| {
                    l.epoch_start(
                        epoch + 1,
                        c.epochs,
                        batches_per_epoch,
                        state.sampler.next_batch,
                    )
                });
                let plan = BatchPlan::train(&sampler, state.sampler)?;
                let epoch_start = Instant::now();
                let mut since_log = Instant::now();
                let mut images_since_log = 0usize;
                let mut epoch_images = 0usize;
                let mut last_loss = f64::NAN;
                let mut last_lr = schedule.at(state.global_step);
                for batch in train_loader.iter::<B>(plan, device) {
                    let batch = batch?;
                    if !batch.skipped.is_empty() {
                        let paths: Vec<String> = batch
                            .skipped
                            .iter()
                            .map(|&i| train_loader.items()[i].path.display().to_string())
                            .collect();
                        eprintln!(
                            "warning: skipped {} unreadable image(s) with their class group \
                             ({} so far): {}",
                            paths.len(),
                            train_loader.skipped_count(),
                            paths.join(", ")
                        );
                    }
                    let mut classes = batch.class_ids.clone();
                    classes.dedup();
                    if classes.len() < 2 {
                        // A pair loss needs two classes; skipping left fewer.
                        if !batch.class_ids.is_empty() {
                            eprintln!(
                                "warning: batch {} of epoch {} skipped: one class left after \
                                 dropping unreadable images",
                                batch.batch_index + 1,
                                epoch + 1
                            );
                        }
                        state.sampler = sampler.state_after(epoch, batch.batch_index);
                        continue;
                    }
                    let iteration = epoch * batches_per_epoch as u64 + batch.batch_index as u64;
                    let lr = schedule.at(iteration);
                    let rows = batch.class_ids.len();
                    let log_now = (batch.batch_index as u64).is_multiple_of(c.log_every_steps);
                    // The batch layout is checked on the host labels the loader already has
                    // (no read-back in the hot path); a non-finite embedding surfaces as a
                    // non-finite loss below.
                    let host_labels: Vec<i64> =
                        batch.class_ids.iter().map(|&c| i64::from(c)).collect();
                    check_batch(&host_labels, rows, loss.expansion().n_inner_pts() > 0)?;
                    let step = iteration + 1;
                    let settings = StepSettings {
                        lr,
                        base_lr_mult: c.optimizer.base_lr_mult,
                        poison: self.nan_at_step == Some(step),
                        stats: log_now,
                    };
                    let outcome = match &parallel {
                        None => {
                            let embeddings = model.embed(batch.images);
                            let (stepped, outcome) = replica_step(
                                model,
                                embeddings,
                                batch.labels,
                                loss,
                                &settings,
                                &mut backbone_optimizer,
                                &mut head_optimizer,
                                None,
                            )?;
                            model = stepped;
                            outcome
                        }
                        Some(dp) => {
                            let ranges = split_rows(&batch.class_ids, dp.devices().len())?;
                            let replicas =
                                std::iter::once((model, backbone_optimizer, head_optimizer))
                                    .chain(others.drain(..));
                            let (images, labels) = (&batch.images, &batch.labels);
                            let settings = &settings;
                            let results: Vec<Result<(M, O, O, StepOutcome)>> =
                                std::thread::scope(|s| {
                                    let handles: Vec<_> = replicas
                                        .zip(ranges)
                                        .zip(dp.devices())
                                        .enumerate()
                                        .map(|(d, (((m, mut bo, mut ho), range), device))| {
                                            let (images, labels) =
                                                slice_batch(images, labels, range.clone(), device);
                                            s.spawn(move || {
                                                let own = m.embed(images);
                                                let full = gather_embeddings(d, own, range, rows)?;
                                                let (m, outcome) = replica_step(
                                                    m,
                                                    full,
                                                    labels,
                                                    loss,
                                                    settings,
                                                    &mut bo,
                                                    &mut ho,
                                                    Some(d),
                                                )?;
                                                Ok((m, bo, ho, outcome))
                                            })
                                        })
                                        .collect();
                                    handles
                                        .into_iter()
                                        .map(|h| {
                                            h.join().expect("a device's training step panicked")
                                        })
                                        .collect()
                                });
                            let mut results = results.into_iter().collect::<Result<Vec<_>>>()?;
                            let (m, bo, ho, outcome) = results.remove(0);
                            (model, backbone_optimizer, head_optimizer) = (m, bo, ho);
                            others = results
                                .into_iter()
                                .map(|(m, bo, ho, _)| (m, bo, ho))
                                .collect();
                            outcome
                        }
                    };
                    let StepOutcome {
                        loss_sum,
                        mean_loss,
                        stats,
                    } = outcome;
                    if !loss_sum.is_finite() {
                        return Err(TrainError::NonFiniteLoss {
                            epoch: epoch + 1,
                            step,
                            value: loss_sum,
                            checkpoint: run.last_checkpoint.clone(),
                        });
                    }

                    state.global_step = step;
                    state.sampler = sampler.state_after(epoch, batch.batch_index);
                    images_since_log += rows;
                    epoch_images += rows;
                    last_loss = mean_loss;
                    last_lr = lr;
                    if let Some(stats) = stats {
                        let images_per_sec =
                            images_since_log as f64 / since_log.elapsed().as_secs_f64().max(1e-9);
                        since_log = Instant::now();
                        images_since_log = 0;
                        let log = StepLog {
                            epoch: epoch + 1,
                            step,
                            loss: mean_loss,
                            loss_sum,
                            lr,
                            images_per_sec,
                            active_fraction: stats.active_fraction,
                            diagnostics: &stats.diagnostics,
                        };
                        run.each(|l| l.step(&log))?;
                    }
                    let done = BatchDone {
                        epoch: epoch + 1,
                        batch: batch.batch_index,
                        loss: mean_loss,
                        lr,
                        images_per_sec: epoch_images as f64
                            / epoch_start.elapsed().as_secs_f64().max(1e-9),
                    };
                    run.loggers.iter_mut().for_each(|l| l.batch(&done));
                    if c.checkpoint_every_steps > 0
                        && step.is_multiple_of(c.checkpoint_every_steps)
                        && state.sampler.next_batch != 0
                    {
                        run.save(
                            &model,
                            &backbone_optimizer,
                            &head_optimizer,
                            &mut state,
                            &last,
                        )?;
                    }
                }
                let seconds = epoch_start.elapsed().as_secs_f64();
                let log = EpochLog {
                    epoch: epoch + 1,
                    epochs: c.epochs,
                    loss: last_loss,
                    lr: last_lr,
                    images_per_sec: epoch_images as f64 / seconds.max(1e-9),
                    seconds,
                };
                run.each(|l| l.epoch(&log))?;
                state.sampler = SamplerState {
                    seed: c.seed,
                    epoch: epoch + 1,
                    next_batch: 0,
                };

                let finished = epoch + 1;
                if finished.is_multiple_of(c.eval_every_epochs) || finished == c.epochs {
                    let valid = model.valid();
                    let k = c.eval.recall_ks[0];
                    let mut test_r1 = None;
                    let mut improved = false;
                    // Validation (when given) first: it decides "best" for both lines.
                    let mut sets = eval_sets(data);
                    sets.reverse();
                    for (set, split) in sets {
                        let summary =
                            evaluate(&valid, set, &c.eval, c.eval_batch_size, c.quiet, device)?;
                        let r1 = summary.report.recall(k).unwrap_or(0.0);
                        if split == EvalSplit::Test {
                            test_r1 = Some(r1);
                        }
                        let selects = split == EvalSplit::Validation || data.validation.is_none();
                        if selects && r1 > state.best_recall1 {
                            improved = true;
                            state.best_recall1 = r1;
                            state.best_epoch = finished;
                        }
                        if split == EvalSplit::Test && improved {
                            state.test_recall1_at_best = test_r1;
                        }
                        run.log_eval(&summary, split, finished, &state)?;
                    }
                    if improved {
                        run.save(
                            &model,
                            &backbone_optimizer,
                            &head_optimizer,
                            &mut state,
                            &best,
                        )?;
                    }
                }
                run.save(
                    &model,
                    &backbone_optimizer,
                    &head_optimizer,
                    &mut state,
                    &last,
                )?;
            }
            run.each(|l| l.flush())?;
            Ok(model)
        })();
        let model = match result {
            Ok(model) => model,
            Err(e) => {
                run.loggers.iter_mut().for_each(|l| l.abort());
                drop(run);
                if !c.resume && !last.is_file() && !best.is_file() {
                    // Nothing was checkpointed: leave no empty husk of a run behind.
                    remove_empty_run(&run_dir, &description_file, created_dir);
                }
                return Err(e);
            }
        };
        Ok(Fitted {
            model,
            summary: TrainSummary {
                epochs: c.epochs,
                steps: state.global_step,
                best_recall1: state.best_recall1,
                best_epoch: state.best_epoch,
                test_recall1_at_best: state.test_recall1_at_best,
                run_dir,
            },
        })
    }
}

/// Whether `dir` holds anything of an earlier run: a checkpoint or a non-empty metrics log.
/// The devices in words for the run-start line: the backend's name, and with several
/// devices their count and each one.
fn describe_devices<B: burn::tensor::backend::Backend>(devices: &[B::Device]) -> String {
    match devices {
        [one] => B::name(one),
        many => format!(
            "{} devices of {}: {}",
            many.len(),
            B::name(&many[0]),
            many.iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn earlier_run(dir: &Path) -> bool {
    let nonempty = |p: PathBuf| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    checkpoint::last_path(dir).is_file()
        || checkpoint::best_path(dir).is_file()
        || nonempty(dir.join("metrics.jsonl"))
}

/// After a run failed before its first checkpoint: removes the files it created that hold
/// nothing (an empty metrics.jsonl, event files without scalars, then the description and the
/// directory if nothing else is left). Best effort: a file that cannot be removed stays.
fn remove_empty_run(dir: &Path, description_file: &str, created_dir: bool) {
    let metrics = dir.join("metrics.jsonl");
    if std::fs::metadata(&metrics).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(&metrics);
    }
    let events = dir.join("tensorboard");
    if let Ok(entries) = std::fs::read_dir(&events) {
        for entry in entries.flatten() {
            let path = entry.path();
            let scalars = crate::logging::tensorboard::read_records(&path).map(|r| r.len());
            if matches!(scalars, Ok(n) if n <= 1) {
                let _ = std::fs::remove_file(&path);
            }
        }
        let _ = std::fs::remove_dir(&events); // only if empty
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|e| e.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    if left.len() == 1 && left[0] == description_file {
        let _ = std::fs::remove_file(dir.join(description_file));
        if created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The evaluation sets in logging order: test, then validation.
fn eval_sets<'a>(data: TrainData<'a>) -> Vec<(&'a EvalSet, EvalSplit)> {
    let mut sets = vec![(data.test, EvalSplit::Test)];
    if let Some(v) = data.validation {
        sets.push((v, EvalSplit::Validation));
    }
    sets
}

/// A `[1]` tensor's value as f64 (through `TensorData`, without rounding).
fn scalar<B: burn::tensor::backend::Backend>(t: burn::tensor::Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_or(f64::NAN, |v| v[0])
}

/// What one step reports.
struct StepOutcome {
    loss_sum: f64,
    mean_loss: f64,
    stats: Option<LossStats>,
}

/// How a step runs.
struct StepSettings {
    lr: f64,
    base_lr_mult: f64,
    /// Poison the loss with NaN (the test hook).
    poison: bool,
    /// Read the loss statistics back for the log.
    stats: bool,
}

/// One replica's step from the whole batch's `embeddings` (its own rows attached to its
/// graph): Embedding Expansion, the loss, backward, the gradients summed over the peers
/// (when `peer` is set), then the two optimiser steps. A non-finite loss returns the model
/// unstepped: every peer sees the same loss, so all stop before any collective call.
#[allow(clippy::too_many_arguments)]
fn replica_step<B, M, L, O>(
    model: M,
    embeddings: burn::tensor::Tensor<B, 2>,
    labels: burn::tensor::Tensor<B, 1, burn::tensor::Int>,
    loss: &L,
    settings: &StepSettings,
    backbone_optimizer: &mut O,
    head_optimizer: &mut O,
    peer: Option<usize>,
) -> Result<(M, StepOutcome)>
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    L: PairLoss,
    O: Optimizer<M, B>,
{
    // Embedding Expansion, then the loss on real and synthetic points.
    let expanded = loss.expansion().expand_unchecked(embeddings, labels);
    let output = loss.forward_expanded(&expanded);
    let mut trained = output.loss.clone();
    if settings.poison {
        trained = trained.add_scalar(f32::NAN);
    }
    let loss_sum = scalar(trained.clone());
    if !loss_sum.is_finite() {
        let outcome = StepOutcome {
            loss_sum,
            mean_loss: f64::NAN,
            stats: None,
        };
        return Ok((model, outcome));
    }
    let stats = settings.stats.then(|| output.stats());
    let mean_loss = match &stats {
        Some(s) => s.mean_per_anchor,
        None => scalar(output.per_anchor.clone().detach().mean()),
    };
    let mut grads = trained.backward();
    let mut backbone_grads = model.backbone_gradients(&mut grads);
    let mut head_grads = GradientsParams::from_grads(grads, &model);
    if let Some(peer) = peer {
        backbone_grads = all_reduce_gradients::<B>(peer, backbone_grads)?;
        head_grads = all_reduce_gradients::<B>(peer, head_grads)?;
    }
    let model = apply_gradients(
        model,
        backbone_grads,
        head_grads,
        settings.lr,
        settings.base_lr_mult,
        backbone_optimizer,
        head_optimizer,
    );
    let outcome = StepOutcome {
        loss_sum,
        mean_loss,
        stats,
    };
    Ok((model, outcome))
}

struct Run {
    loggers: Vec<Box<dyn TrainLogger>>,
    description: String,
    last_checkpoint: Option<PathBuf>,
}

impl Run {
    fn each(&mut self, mut f: impl FnMut(&mut dyn TrainLogger) -> Result<()>) -> Result<()> {
        for logger in &mut self.loggers {
            f(logger.as_mut())?;
        }
        Ok(())
    }

    fn log_eval(
        &mut self,
        summary: &EvalSummary,
        split: EvalSplit,
        epoch: u64,
        state: &TrainingState,
    ) -> Result<()> {
        let log = EvalLog {
            epoch,
            step: state.global_step,
            split,
            report: &summary.report,
            seconds: summary.seconds,
            best_recall1: state.best_recall1,
            best_epoch: state.best_epoch,
        };
        self.each(|l| l.eval(&log))
    }

    fn save<B, M, O>(
        &mut self,
        model: &M,
        backbone_optimizer: &O,
        head_optimizer: &O,
        state: &mut TrainingState,
        path: &Path,
    ) -> Result<()>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        self.each(|l| l.flush())?;
        let mut mark = None;
        for logger in &mut self.loggers {
            if let Some(m) = logger.mark()? {
                mark.get_or_insert(m);
            }
        }
        state.metrics_len = mark.unwrap_or(0);
        let file = CheckpointFile {
            version: CHECKPOINT_VERSION,
            config: self.description.clone(),
            state: state.clone(),
            network: checkpoint::module_bytes::<B, _>(model, path)?,
            backbone_optimizer: checkpoint::record_bytes::<B, _>(
                backbone_optimizer.to_record(),
                path,
            )?,
            head_optimizer: checkpoint::record_bytes::<B, _>(head_optimizer.to_record(), path)?,
        };
        file.save(path)?;
        if path.file_name() == Some(std::ffi::OsStr::new("last.mpk")) {
            self.last_checkpoint = Some(path.to_path_buf());
        }
        Ok(())
    }
}
