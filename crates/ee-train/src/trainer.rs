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
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use ee_data::{
    BatchPlan, ClassBalancedSampler, ImageBatch, ImageLoader, LoaderConfig, SamplerConfig,
    SamplerState, Split,
};
use ee_eval::EvalConfig;
use ee_loss::PairLoss;
use ee_model::Embed;

use crate::checkpoint::{self, CheckpointFile, TrainingState, CHECKPOINT_VERSION};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, EvalSet, EvalSummary};
use crate::logging::{
    BatchDone, ConsoleLogger, EpochLog, EvalLog, EvalSplit, JsonlLogger, RunStart, StepLog,
    TensorBoardLogger, TrainLogger,
};
use crate::model::TrainModel;
use crate::optimizer::{OptimizerConfig, OptimizerKind};
use crate::schedule::MultiStepLr;
use crate::step::{StepSettings, Stepper};

/// Everything about a training run except the model, the loss and the data.
///
/// The run directory receives `metrics.jsonl`, `tensorboard/` event files, `last.mpk` (end
/// of every epoch, and every `checkpoint_every_steps`) and `best.mpk` (best Recall@K, K the
/// first of `eval.recall_ks`, of the split that selects checkpoints). With `resume`, the run continues from `last.mpk`
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
    /// Checks the settings the trainer owns, and the sampler's rules that need no data
    /// (`SamplerConfig::check`; even K is checked with the loss, by
    /// [`TrainerConfig::sampler`]): a pair loss needs at least two classes per batch. The
    /// loader and evaluation configs are checked by their crates when the run starts.
    pub fn check(&self) -> Result<()> {
        self.optimizer.check()?;
        self.sampler
            .clone()
            .with_require_even_instances(false)
            .check()?;
        let (batch_size, instances) = (self.sampler.batch_size, self.sampler.instances_per_class);
        if batch_size / instances < 2 {
            return Err(bad(
                "sampler.batch_size",
                batch_size,
                &format!(
                    "needs at least 2 classes per batch (batch_size / instances_per_class = \
                     {}), or no anchor has a negative",
                    batch_size / instances
                ),
            ));
        }
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
        self.eval.check()?;
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
    /// Best Recall@K of the selecting split (validation if given, else test), K the first of
    /// `eval.recall_ks` (1 by default).
    pub best_recall: f64,
    /// Its epoch (0: no evaluation improved on 0).
    pub best_epoch: u64,
    /// Test Recall@K (the same K) at the best epoch (equal to `best_recall` without
    /// validation).
    pub test_recall_at_best: Option<f64>,
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

    /// A run: opens (or resumes) it, trains every epoch left, and on an error before the first
    /// checkpoint removes what it created.
    fn run<B, M, L, O>(
        &mut self,
        model: M,
        loss: &L,
        data: TrainData<'_>,
        devices: &[B::Device],
        backbone_optimizer: O,
        head_optimizer: O,
    ) -> Result<Fitted<M>>
    where
        B: AutodiffBackend,
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        L: PairLoss + Sync,
        O: Optimizer<M, B>,
    {
        let config = &self.config.clone();
        let session = Session::<B, L>::open(config, loss, data, devices, self.nan_at_step)?;
        let run_dir = config.run_dir.clone();
        let (description_file, description) = self.description();
        let created_dir = !run_dir.exists();
        std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
        ee_core::fs::remove_stale_temporaries(&run_dir)?;
        let (model, backbone_optimizer, head_optimizer, mut state) = match config.resume {
            true => session.resume(model, backbone_optimizer, head_optimizer)?,
            false => (
                model,
                backbone_optimizer,
                head_optimizer,
                session.fresh_state(),
            ),
        };
        ee_core::fs::write_atomic(&run_dir.join(&description_file), description.as_bytes())?;
        // Data-parallel: replicas 1.. start as copies of replica 0, after any resume.
        let mut stepper = Stepper::new(model, backbone_optimizer, head_optimizer, devices)?;
        let mut run = Run {
            loggers: self.take_loggers(Some(state.metrics_len))?,
            description,
            last_checkpoint: config.resume.then(|| session.last.clone()),
        };
        if let Err(error) = session.train(&mut run, &mut stepper, &mut state) {
            run.loggers.iter_mut().for_each(|l| l.abort());
            drop(run);
            if !config.resume && !session.last.is_file() && !session.best.is_file() {
                // Nothing was checkpointed: leave no empty husk of a run behind.
                remove_empty_run(&run_dir, &description_file, created_dir);
            }
            return Err(error);
        }
        Ok(Fitted {
            model: stepper.into_model(),
            summary: TrainSummary {
                epochs: config.epochs,
                steps: state.global_step,
                best_recall: state.best_recall,
                best_epoch: state.best_epoch,
                test_recall_at_best: state.test_recall_at_best,
                run_dir,
            },
        })
    }

    /// The run's loggers: the default ones (unless dropped), then those added. A resumed
    /// metrics log keeps its first `keep_metrics` bytes.
    fn take_loggers(&mut self, keep_metrics: Option<u64>) -> Result<Vec<Box<dyn TrainLogger>>> {
        let run_dir = &self.config.run_dir;
        let mut loggers: Vec<Box<dyn TrainLogger>> = Vec::new();
        if self.default_loggers {
            loggers.push(Box::new(JsonlLogger::open(
                &run_dir.join("metrics.jsonl"),
                keep_metrics,
            )?));
            loggers.push(Box::new(TensorBoardLogger::create(
                &run_dir.join("tensorboard"),
            )?));
            loggers.push(Box::new(ConsoleLogger::new(self.config.quiet)));
        }
        loggers.append(&mut self.loggers);
        Ok(loggers)
    }
}

/// A run's fixed parts, checked and built before any file is written: the sampler, the
/// loader, the schedule and the checkpoint paths.
struct Session<'a, B: AutodiffBackend, L> {
    config: &'a TrainerConfig,
    loss: &'a L,
    data: TrainData<'a>,
    devices: &'a [B::Device],
    sampler: ClassBalancedSampler,
    loader: ImageLoader,
    schedule: MultiStepLr,
    last: PathBuf,
    best: PathBuf,
    nan_at_step: Option<u64>,
}

/// An epoch's running totals, for the step and epoch log lines.
struct EpochProgress {
    start: Instant,
    since_log: Instant,
    images_since_log: usize,
    images: usize,
    last_loss: f64,
    last_lr: f64,
}

impl<'a, B, L> Session<'a, B, L>
where
    B: AutodiffBackend,
    L: PairLoss + Sync,
{
    /// Checks that the run can start (or resume) and builds its fixed parts.
    fn open(
        config: &'a TrainerConfig,
        loss: &'a L,
        data: TrainData<'a>,
        devices: &'a [B::Device],
        nan_at_step: Option<u64>,
    ) -> Result<Self> {
        let run_dir = &config.run_dir;
        let last = checkpoint::last_path(run_dir);
        let best = checkpoint::best_path(run_dir);
        if config.resume && !last.is_file() {
            return Err(TrainError::NothingToResume { path: last });
        }
        // Any trace of an earlier run (a best.mpk without last.mpk included) is a run: never
        // overwrite its checkpoints or truncate its metrics.
        if !config.resume && earlier_run(run_dir) {
            return Err(TrainError::RunExists {
                dir: run_dir.clone(),
            });
        }
        let sampler = config.sampler(loss, data.train)?;
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
        let loader = config.loader.init(data.train)?;
        let schedule = MultiStepLr::from_epochs(
            config.optimizer.lr,
            config.optimizer.lr_decay_factor,
            &config.optimizer.lr_decay_epochs,
            sampler.batches_per_epoch(),
        );
        Ok(Self {
            config,
            loss,
            data,
            devices,
            sampler,
            loader,
            schedule,
            last,
            best,
            nan_at_step,
        })
    }

    fn device(&self) -> &B::Device {
        &self.devices[0]
    }

    /// The state of a run that has not started.
    fn fresh_state(&self) -> TrainingState {
        TrainingState {
            sampler: SamplerState {
                seed: self.config.seed,
                epoch: 0,
                next_batch: 0,
            },
            global_step: 0,
            best_recall: 0.0,
            best_epoch: 0,
            metrics_len: 0,
            test_recall_at_best: None,
        }
    }

    /// The model, both optimisers and the state of `last.mpk`.
    fn resume<M, O>(
        &self,
        model: M,
        backbone_optimizer: O,
        head_optimizer: O,
    ) -> Result<(M, O, O, TrainingState)>
    where
        M: TrainModel<B>,
        O: Optimizer<M, B>,
    {
        let last = &self.last;
        let file = CheckpointFile::load(last)?;
        if file.state.sampler.seed != self.config.seed {
            return Err(TrainError::Checkpoint {
                path: last.clone(),
                message: format!(
                    "was written with run.seed = {}, the config says {}",
                    file.state.sampler.seed, self.config.seed
                ),
            });
        }
        let device = self.device();
        let model = model.load_record(checkpoint::record_from_bytes::<B, _>(
            file.network,
            device,
            last,
        )?);
        let backbone_optimizer =
            backbone_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
                file.backbone_optimizer,
                device,
                last,
            )?);
        let head_optimizer = head_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
            file.head_optimizer,
            device,
            last,
        )?);
        Ok((model, backbone_optimizer, head_optimizer, file.state))
    }

    /// The run-start line's facts.
    fn run_start(&self, state: &TrainingState) -> RunStart<'a> {
        let config = self.config;
        RunStart {
            epochs: config.epochs,
            batches_per_epoch: self.sampler.batches_per_epoch(),
            batch_size: self.sampler.batch_size(),
            instances_per_class: self.sampler.instances_per_class(),
            train_images: self.loader.len(),
            train_classes: self.data.train.num_classes(),
            test: self.data.test.describe("test"),
            validation: self.data.validation.map(|v| v.describe("validation")),
            run_dir: &config.run_dir,
            devices: describe_devices::<B>(self.devices),
            resumed: config.resume.then_some((
                state.sampler.epoch + 1,
                state.sampler.next_batch,
                state.global_step,
                state.best_recall,
            )),
        }
    }

    /// Every epoch left, each followed by its evaluation (when due) and `last.mpk`.
    fn train<M, O>(
        &self,
        run: &mut Run,
        stepper: &mut Stepper<B, M, O>,
        state: &mut TrainingState,
    ) -> Result<()>
    where
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let config = self.config;
        let start = self.run_start(state);
        run.each(|l| l.start(&start))?;
        if config.eval_before_training && state.global_step == 0 {
            let valid = stepper.model().valid();
            for (set, split) in eval_sets(self.data) {
                let summary = evaluate(
                    &valid,
                    set,
                    &config.eval,
                    config.eval_batch_size,
                    config.quiet,
                    self.device(),
                )?;
                run.log_eval(&summary, split, 0, state)?;
            }
        }
        while state.sampler.epoch < config.epochs {
            let epoch = state.sampler.epoch;
            self.train_epoch(run, stepper, state, epoch)?;
            state.sampler = SamplerState {
                seed: config.seed,
                epoch: epoch + 1,
                next_batch: 0,
            };
            let finished = epoch + 1;
            if finished.is_multiple_of(config.eval_every_epochs) || finished == config.epochs {
                self.evaluate_and_select(run, stepper, state, finished)?;
            }
            run.save(stepper, state, &self.last)?;
        }
        run.each(|l| l.flush())
    }

    /// The batches left of `epoch`, then its log line.
    fn train_epoch<M, O>(
        &self,
        run: &mut Run,
        stepper: &mut Stepper<B, M, O>,
        state: &mut TrainingState,
        epoch: u64,
    ) -> Result<()>
    where
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let config = self.config;
        let batches_per_epoch = self.sampler.batches_per_epoch();
        run.loggers.iter_mut().for_each(|l| {
            l.epoch_start(
                epoch + 1,
                config.epochs,
                batches_per_epoch,
                state.sampler.next_batch,
            )
        });
        let plan = BatchPlan::train(&self.sampler, state.sampler)?;
        let mut progress = EpochProgress {
            start: Instant::now(),
            since_log: Instant::now(),
            images_since_log: 0,
            images: 0,
            last_loss: f64::NAN,
            last_lr: self.schedule.at(state.global_step),
        };
        for batch in self.loader.iter::<B>(plan, self.device()) {
            self.train_batch(run, stepper, state, epoch, batch?, &mut progress)?;
        }
        let seconds = progress.start.elapsed().as_secs_f64();
        let log = EpochLog {
            epoch: epoch + 1,
            epochs: config.epochs,
            loss: progress.last_loss,
            lr: progress.last_lr,
            images_per_sec: progress.images as f64 / seconds.max(1e-9),
            seconds,
        };
        run.each(|l| l.epoch(&log))
    }

    /// One batch: warns about skipped images, steps (unless fewer than two classes are
    /// left), logs, and writes `last.mpk` when `checkpoint_every_steps` says so.
    fn train_batch<M, O>(
        &self,
        run: &mut Run,
        stepper: &mut Stepper<B, M, O>,
        state: &mut TrainingState,
        epoch: u64,
        batch: ImageBatch<B>,
        progress: &mut EpochProgress,
    ) -> Result<()>
    where
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let config = self.config;
        if !batch.skipped.is_empty() {
            self.warn_skipped(&batch.skipped);
        }
        let mut classes = batch.class_ids.clone();
        classes.dedup();
        if classes.len() < 2 {
            // A pair loss needs two classes; skipping left fewer.
            if !batch.class_ids.is_empty() {
                eprintln!(
                    "warning: batch {} of epoch {} skipped: one class left after dropping \
                     unreadable images",
                    batch.batch_index + 1,
                    epoch + 1
                );
            }
            state.sampler = self.sampler.state_after(epoch, batch.batch_index);
            return Ok(());
        }
        let iteration = epoch * self.sampler.batches_per_epoch() as u64 + batch.batch_index as u64;
        let step = iteration + 1;
        let lr = self.schedule.at(iteration);
        let rows = batch.class_ids.len();
        let settings = StepSettings {
            lr,
            base_lr_mult: config.optimizer.base_lr_mult,
            // The batch layout is checked on the host labels the loader already has (no
            // read-back in the hot path); a non-finite embedding surfaces as a non-finite
            // loss below.
            stats: (batch.batch_index as u64).is_multiple_of(config.log_every_steps),
            poison: self.nan_at_step == Some(step),
        };
        let outcome = stepper.step(
            batch.images,
            batch.labels,
            &batch.class_ids,
            self.loss,
            &settings,
        )?;
        if !outcome.loss_sum.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                epoch: epoch + 1,
                step,
                value: outcome.loss_sum,
                checkpoint: run.last_checkpoint.clone(),
            });
        }
        state.global_step = step;
        state.sampler = self.sampler.state_after(epoch, batch.batch_index);
        progress.images_since_log += rows;
        progress.images += rows;
        progress.last_loss = outcome.mean_loss;
        progress.last_lr = lr;
        if let Some(stats) = &outcome.stats {
            let images_per_sec = progress.images_since_log as f64
                / progress.since_log.elapsed().as_secs_f64().max(1e-9);
            progress.since_log = Instant::now();
            progress.images_since_log = 0;
            let log = StepLog {
                epoch: epoch + 1,
                step,
                loss: outcome.mean_loss,
                loss_sum: outcome.loss_sum,
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
            loss: outcome.mean_loss,
            lr,
            images_per_sec: progress.images as f64
                / progress.start.elapsed().as_secs_f64().max(1e-9),
        };
        run.loggers.iter_mut().for_each(|l| l.batch(&done));
        if config.checkpoint_every_steps > 0
            && step.is_multiple_of(config.checkpoint_every_steps)
            && state.sampler.next_batch != 0
        {
            run.save(stepper, state, &self.last)?;
        }
        Ok(())
    }

    /// The warning for images the loader dropped (with their class group).
    fn warn_skipped(&self, skipped: &[usize]) {
        let paths: Vec<String> = skipped
            .iter()
            .map(|&item| self.loader.items()[item].path.display().to_string())
            .collect();
        eprintln!(
            "warning: skipped {} unreadable image(s) with their class group ({} so far): {}",
            paths.len(),
            self.loader.skipped_count(),
            paths.join(", ")
        );
    }

    /// Scores the model after epoch `finished` (validation first, when given: it decides
    /// "best" for both lines) and writes `best.mpk` when the selecting split improved.
    fn evaluate_and_select<M, O>(
        &self,
        run: &mut Run,
        stepper: &Stepper<B, M, O>,
        state: &mut TrainingState,
        finished: u64,
    ) -> Result<()>
    where
        M: TrainModel<B>,
        M::InnerModule: Embed<B::InnerBackend>,
        O: Optimizer<M, B>,
    {
        let config = self.config;
        let valid = stepper.model().valid();
        let first_k = config.eval.recall_ks[0];
        let mut test_recall = None;
        let mut improved = false;
        let mut sets = eval_sets(self.data);
        sets.reverse();
        for (set, split) in sets {
            let summary = evaluate(
                &valid,
                set,
                &config.eval,
                config.eval_batch_size,
                config.quiet,
                self.device(),
            )?;
            let recall = summary.report.recall(first_k).unwrap_or(0.0);
            if split == EvalSplit::Test {
                test_recall = Some(recall);
            }
            let selects = split == EvalSplit::Validation || self.data.validation.is_none();
            if selects && recall > state.best_recall {
                improved = true;
                state.best_recall = recall;
                state.best_epoch = finished;
            }
            if split == EvalSplit::Test && improved {
                state.test_recall_at_best = test_recall;
            }
            run.log_eval(&summary, split, finished, state)?;
        }
        if improved {
            run.save(stepper, state, &self.best)?;
        }
        Ok(())
    }
}

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

/// Whether `dir` holds anything of an earlier run: a checkpoint or a non-empty metrics log.
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
            best_recall: state.best_recall,
            best_epoch: state.best_epoch,
        };
        self.each(|l| l.eval(&log))
    }

    /// Writes the checkpoint of replica 0 to `path`, after flushing the loggers (whose
    /// position it records, so that a resume truncates the logs to it).
    fn save<B, M, O>(
        &mut self,
        stepper: &Stepper<B, M, O>,
        state: &mut TrainingState,
        path: &Path,
    ) -> Result<()>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let model = stepper.model();
        let (backbone_optimizer, head_optimizer) = stepper.optimizers();
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
