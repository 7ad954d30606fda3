//! The training loop (METHOD.md sections 5-7):
//!
//! ```text
//! sampler -> image pipeline -> network (BatchNorm in train mode) -> expansion + loss
//!   -> backward -> split gradients: backbone at lr * base_lr_mult, head at lr (two optimisers)
//!   -> multi-step lr decay in iterations -> every N epochs: Recall@K on the test split
//! ```
//!
//! The run directory holds `config.toml` (resolved), `metrics.jsonl`, `tensorboard/` event
//! files, `last.mpk` (end of every epoch) and `best.mpk` (best Recall@1). `--resume`
//! continues from `last.mpk` exactly: the sampler and the augmentation are keyed by
//! (seed, epoch, batch), and the checkpoint holds the weights, BatchNorm statistics and both
//! optimisers' moments.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use ee_data::{BatchPlan, LoaderConfig, SamplerConfig, SamplerState};
use ee_loss::{Loss, PairLoss};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, CheckpointFile, TrainingState, CHECKPOINT_VERSION};
use crate::config::{OptimizerName, OptimizerSection, RunConfig};
use crate::dataset::open_dataset;
use crate::error::{CliError, Result};
use crate::evaluate::{evaluate_network, EvalSummary, TestSet};
use crate::events::EventWriter;
use crate::metrics::{EvalLine, MetricsLog, TrainLine};
use crate::network::{build_network, Network};
use crate::schedule::MultiStepLr;

#[cfg(test)]
mod parity;

/// Environment variable that poisons the loss with NaN at a global step (1-based): a hidden
/// debugging aid for testing how a run stops.
pub const POISON_ENV: &str = "EE_DEBUG_NAN_AT_STEP";

/// Options of `ee train` beyond the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `last.mpk` in the run directory.
    pub resume: bool,
    /// Hide progress bars.
    pub quiet: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Epochs trained in total.
    pub epochs: u64,
    /// Optimiser steps in total.
    pub steps: u64,
    /// Best Recall@1.
    pub best_recall1: f64,
    /// Its epoch.
    pub best_epoch: u64,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// The image loader settings of a config (`train`: the train split).
pub fn loader_config(config: &RunConfig) -> LoaderConfig {
    let d = &config.get().data;
    LoaderConfig::new()
        .with_image_size(d.image_size)
        .with_use_bbox(d.use_bbox)
        .with_workers(d.workers)
        .with_prefetch_batches(d.prefetch_batches)
        .with_cache_images(d.cache_images)
}

fn progress(len: u64, quiet: bool, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The Adam the config describes: MXNet's (and PyTorch's) Adam, L2 weight decay added to the
/// gradient; epsilon set explicitly (burn's default is 1e-5, the reference's 1e-8).
pub fn adam_config(o: &OptimizerSection) -> AdamConfig {
    AdamConfig::new()
        .with_beta_1(o.beta1)
        .with_beta_2(o.beta2)
        .with_epsilon(o.epsilon)
        .with_weight_decay((o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay)))
}

/// The AdamW (decoupled weight decay) the config describes.
pub fn adamw_config(o: &OptimizerSection) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(o.beta1)
        .with_beta_2(o.beta2)
        .with_epsilon(o.epsilon)
        .with_weight_decay(o.weight_decay)
}

/// Trains the run a config describes on backend `B`.
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    options: &TrainOptions,
    device: &B::Device,
) -> Result<TrainSummary> {
    let o = &config.get().optimizer;
    match o.name {
        OptimizerName::Adam => {
            let make = || adam_config(o).init::<B, Network<B>>();
            run_loop(config, options, device, make(), make())
        }
        OptimizerName::Adamw => {
            let make = || adamw_config(o).init::<B, Network<B>>();
            run_loop(config, options, device, make(), make())
        }
    }
}

/// The optimiser half of a training step: back-propagates `loss`, then steps the backbone's
/// parameters at `lr * base_lr_mult` and the head's at `lr`, each group with its own
/// optimiser (burn 0.21 has no parameter groups).
pub fn optimizer_step<B, O>(
    network: Network<B>,
    loss: burn::tensor::Tensor<B, 1>,
    lr: f64,
    base_lr_mult: f64,
    backbone_optimizer: &mut O,
    head_optimizer: &mut O,
) -> Network<B>
where
    B: AutodiffBackend,
    O: Optimizer<Network<B>, B>,
{
    let mut grads = loss.backward();
    let backbone_grads = GradientsParams::from_module(&mut grads, &network.backbone);
    let head_grads = GradientsParams::from_module(&mut grads, &network.head);
    let network = backbone_optimizer.step(lr * base_lr_mult, network, backbone_grads);
    head_optimizer.step(lr, network, head_grads)
}

struct RunFiles {
    dir: PathBuf,
    metrics: MetricsLog,
    events: EventWriter,
}

impl RunFiles {
    fn events_io(&self, e: std::io::Error) -> CliError {
        CliError::io(self.events.path(), e)
    }
}

fn run_loop<B, O>(
    config: &RunConfig,
    options: &TrainOptions,
    device: &B::Device,
    mut backbone_optimizer: O,
    mut head_optimizer: O,
) -> Result<TrainSummary>
where
    B: AutodiffBackend,
    O: Optimizer<Network<B>, B>,
{
    let c = config.get();
    let run_dir = c.run.output_dir.clone();
    let last = checkpoint::last_path(&run_dir);
    let best = checkpoint::best_path(&run_dir);
    if options.resume && !last.is_file() {
        return Err(CliError::NothingToResume { path: last });
    }
    if !options.resume && last.is_file() {
        return Err(CliError::RunExists { dir: run_dir });
    }

    // Data first: its errors are the likeliest and cost nothing to find.
    let dataset = open_dataset(config)?;
    let sampler = SamplerConfig::new()
        .with_batch_size(c.schedule.batch_size)
        .with_instances_per_class(c.schedule.instances_per_class)
        .with_epoch_size(c.schedule.samples_per_epoch)
        .with_require_even_instances(c.loss.n_inner_pts > 0)
        .init(&dataset.train.labels(), c.run.seed)?;
    let train_loader = loader_config(config).init(&dataset.train)?;
    let test_set = TestSet::open(config, &dataset)?;
    let loss = config.loss().init()?;
    let batches_per_epoch = sampler.batches_per_epoch();
    let schedule = MultiStepLr::from_epochs(
        c.optimizer.lr,
        c.optimizer.lr_decay_factor,
        &c.optimizer.lr_decay_epochs,
        batches_per_epoch,
    );

    std::fs::create_dir_all(&run_dir).map_err(|e| CliError::io(&run_dir, e))?;
    let mut network = build_network::<B>(c, !options.resume, device)?;
    let mut state = TrainingState {
        sampler: SamplerState {
            seed: c.run.seed,
            epoch: 0,
            next_batch: 0,
        },
        global_step: 0,
        best_recall1: 0.0,
        best_epoch: 0,
        metrics_len: 0,
    };
    let mut keep_metrics = Some(0);
    if options.resume {
        let file = CheckpointFile::load(&last)?;
        network = network.load_record(checkpoint::record_from_bytes::<B, _>(
            file.network,
            device,
            &last,
        )?);
        backbone_optimizer = backbone_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
            file.backbone_optimizer,
            device,
            &last,
        )?);
        head_optimizer = head_optimizer.load_record(checkpoint::record_from_bytes::<B, _>(
            file.head_optimizer,
            device,
            &last,
        )?);
        if file.state.sampler.seed != c.run.seed {
            return Err(CliError::Checkpoint {
                path: last,
                message: format!(
                    "was written with run.seed = {}, the config says {}",
                    file.state.sampler.seed, c.run.seed
                ),
            });
        }
        state = file.state;
        keep_metrics = Some(state.metrics_len);
        eprintln!(
            "resuming {} at epoch {}, batch {} (step {}, best R@1 {:.4})",
            run_dir.display(),
            state.sampler.epoch + 1,
            state.sampler.next_batch,
            state.global_step,
            state.best_recall1
        );
    }
    let config_path = run_dir.join("config.toml");
    checkpoint::write_atomic(&config_path, config.to_toml().as_bytes())?;
    let metrics_path = run_dir.join("metrics.jsonl");
    let metrics = MetricsLog::open(&metrics_path, keep_metrics)?;
    let tb_dir = run_dir.join("tensorboard");
    let events = EventWriter::create(&tb_dir).map_err(|e| CliError::io(&tb_dir, e))?;
    let mut files = RunFiles {
        dir: run_dir.clone(),
        metrics,
        events,
    };

    let epochs = c.schedule.epochs;
    let poison_step: Option<u64> = std::env::var(POISON_ENV).ok().and_then(|v| v.parse().ok());
    let mut last_checkpoint = options.resume.then(|| last.clone());
    eprintln!(
        "training {} epochs x {} batches of {} ({} classes x {}) on {} train images ({} classes), testing on {}; run directory {}",
        epochs,
        batches_per_epoch,
        sampler.batch_size(),
        sampler.batch_size() / sampler.instances_per_class(),
        sampler.instances_per_class(),
        train_loader.len(),
        dataset.train.num_classes(),
        test_set.describe(),
        run_dir.display()
    );

    if c.schedule.eval_before_training && state.global_step == 0 {
        let summary = evaluate_epoch(&network, &test_set, config, options.quiet, device)?;
        log_eval(&mut files, &summary, 0, &state)?;
        let recalls: Vec<String> = summary
            .report
            .recall_at_k
            .iter()
            .map(|r| format!("R@{} {:.4}", r.k, r.recall))
            .collect();
        println!("eval before training: {}", recalls.join("  "));
    }

    while state.sampler.epoch < epochs {
        let epoch = state.sampler.epoch;
        let bar = progress(
            batches_per_epoch as u64,
            options.quiet,
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
        bar.set_position(state.sampler.next_batch as u64);
        let plan = BatchPlan::train(&sampler, state.sampler)?;
        let epoch_start = Instant::now();
        let mut since_log = Instant::now();
        let mut images_since_log = 0usize;
        let mut epoch_images = 0usize;
        let mut last_loss = f64::NAN;
        let mut last_lr = schedule.at(state.global_step);
        for batch in train_loader.iter::<B>(plan, device) {
            let batch = batch?;
            let iteration = epoch * batches_per_epoch as u64 + batch.batch_index as u64;
            let lr = schedule.at(iteration);
            let rows = batch.class_ids.len();
            let embeddings = network.forward(batch.images);
            let log_now = (batch.batch_index as u64).is_multiple_of(c.run.log_every_steps);
            // HPHN reports its mining (distances, synthetic negatives); the others their loss.
            let (trained_loss, per_anchor, hphn_stats) = match &loss {
                Loss::HphnTriplet(hphn) => {
                    let output = hphn.forward(embeddings, batch.labels)?;
                    let stats = log_now.then(|| output.stats());
                    (output.loss, output.per_anchor, stats)
                }
                other => {
                    let output = other.forward(embeddings, batch.labels)?;
                    (output.loss, output.per_anchor, None)
                }
            };
            let step = iteration + 1;
            let mut trained = trained_loss;
            if poison_step == Some(step) {
                trained = trained.add_scalar(f32::NAN);
            }
            let loss_sum: f64 = trained.clone().into_scalar().elem();
            if !loss_sum.is_finite() {
                bar.abandon();
                return Err(CliError::NonFiniteLoss {
                    epoch: epoch + 1,
                    step,
                    value: loss_sum,
                    checkpoint: last_checkpoint,
                });
            }
            let mean_loss: f64 = per_anchor.clone().mean().into_scalar().elem();
            let active_fraction: Option<f64> = log_now.then(|| {
                let active = per_anchor
                    .clone()
                    .detach()
                    .not_equal_elem(0.0)
                    .float()
                    .mean();
                active.into_scalar().elem()
            });

            network = optimizer_step(
                network,
                trained,
                lr,
                c.optimizer.base_lr_mult,
                &mut backbone_optimizer,
                &mut head_optimizer,
            );

            state.global_step = step;
            state.sampler = sampler.state_after(epoch, batch.batch_index);
            images_since_log += rows;
            epoch_images += rows;
            last_loss = mean_loss;
            last_lr = lr;
            if let Some(active_fraction) = active_fraction {
                let images_per_sec =
                    images_since_log as f64 / since_log.elapsed().as_secs_f64().max(1e-9);
                since_log = Instant::now();
                images_since_log = 0;
                files.metrics.write(&TrainLine {
                    kind: "train",
                    epoch: epoch + 1,
                    step,
                    loss: mean_loss,
                    loss_sum,
                    lr,
                    images_per_sec,
                    mean_positive_distance: hphn_stats.map(|s| s.mean_positive_distance),
                    mean_negative_distance: hphn_stats.map(|s| s.mean_negative_distance),
                    active_fraction,
                    synthetic_negative_fraction: hphn_stats.map(|s| s.synthetic_negative_fraction),
                })?;
                let ev = &mut files.events;
                let mut scalars = vec![
                    ("loss", mean_loss),
                    ("lr", lr),
                    ("loss_stats/active_fraction", active_fraction),
                    ("images_per_sec", images_per_sec),
                ];
                if let Some(stats) = hphn_stats {
                    scalars.extend([
                        (
                            "loss_stats/mean_positive_distance",
                            stats.mean_positive_distance,
                        ),
                        (
                            "loss_stats/mean_negative_distance",
                            stats.mean_negative_distance,
                        ),
                        (
                            "loss_stats/synthetic_negative_fraction",
                            stats.synthetic_negative_fraction,
                        ),
                    ]);
                }
                for (tag, value) in scalars {
                    ev.scalar(tag, value, step)
                        .map_err(|e| CliError::io(ev.path(), e))?;
                }
            }
            let rate = epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {mean_loss:.4} lr {lr:.2e} {rate:.0} img/s"));
            bar.inc(1);
            if c.run.checkpoint_every_steps > 0
                && step.is_multiple_of(c.run.checkpoint_every_steps)
                && state.sampler.next_batch != 0
            {
                state.metrics_len = files.metrics.len()?;
                save(
                    &network,
                    &backbone_optimizer,
                    &head_optimizer,
                    config,
                    &state,
                    &last,
                )?;
                last_checkpoint = Some(last.clone());
            }
        }
        bar.finish_and_clear();
        let epoch_secs = epoch_start.elapsed().as_secs_f64();
        let events = &mut files.events;
        events
            .scalar("lr_epoch", last_lr, epoch + 1)
            .map_err(|e| CliError::io(events.path(), e))?;
        events
            .scalar("loss_epoch", last_loss, epoch + 1)
            .map_err(|e| CliError::io(events.path(), e))?;
        println!(
            "epoch {}/{}: loss {:.4}, lr {:.2e}, {:.0} img/s, {:.1} s",
            epoch + 1,
            epochs,
            last_loss,
            last_lr,
            epoch_images as f64 / epoch_secs.max(1e-9),
            epoch_secs
        );
        state.sampler = SamplerState {
            seed: c.run.seed,
            epoch: epoch + 1,
            next_batch: 0,
        };

        let finished = epoch + 1;
        if finished.is_multiple_of(c.schedule.eval_every_epochs) || finished == epochs {
            let summary = evaluate_epoch(&network, &test_set, config, options.quiet, device)?;
            let r1 = summary.report.recall(c.schedule.recall_k[0]).unwrap_or(0.0);
            let improved = r1 > state.best_recall1;
            if improved {
                state.best_recall1 = r1;
                state.best_epoch = finished;
            }
            log_eval(&mut files, &summary, finished, &state)?;
            println!(
                "{}",
                summary.one_line(finished, state.best_recall1, state.best_epoch)
            );
            if improved {
                state.metrics_len = files.metrics.len()?;
                save(
                    &network,
                    &backbone_optimizer,
                    &head_optimizer,
                    config,
                    &state,
                    &best,
                )?;
            }
        }
        files.events.flush().map_err(|e| files.events_io(e))?;
        state.metrics_len = files.metrics.len()?;
        save(
            &network,
            &backbone_optimizer,
            &head_optimizer,
            config,
            &state,
            &last,
        )?;
        last_checkpoint = Some(last.clone());
    }
    files.events.flush().map_err(|e| files.events_io(e))?;
    Ok(TrainSummary {
        epochs,
        steps: state.global_step,
        best_recall1: state.best_recall1,
        best_epoch: state.best_epoch,
        run_dir: files.dir,
    })
}

fn evaluate_epoch<B: AutodiffBackend>(
    network: &Network<B>,
    test_set: &TestSet,
    config: &RunConfig,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalSummary> {
    let valid = network.valid();
    evaluate_network::<B::InnerBackend>(&valid, test_set, config, quiet, device)
}

fn log_eval(
    files: &mut RunFiles,
    summary: &EvalSummary,
    epoch: u64,
    state: &TrainingState,
) -> Result<()> {
    let report = &summary.report;
    let step = state.global_step;
    let ev = &mut files.events;
    for r in &report.recall_at_k {
        ev.scalar(&format!("metric/R{}", r.k), r.recall, step)
            .map_err(|e| CliError::io(ev.path(), e))?;
        ev.scalar(&format!("metric_epoch/R{}", r.k), r.recall, epoch)
            .map_err(|e| CliError::io(ev.path(), e))?;
    }
    if let Some(first) = report.recall_at_k.first().filter(|_| state.best_epoch > 0) {
        ev.scalar(
            &format!("metric/R{}/best", first.k),
            state.best_recall1,
            step,
        )
        .map_err(|e| CliError::io(ev.path(), e))?;
        ev.scalar(
            &format!("metric_epoch/R{}/best", first.k),
            state.best_recall1,
            epoch,
        )
        .map_err(|e| CliError::io(ev.path(), e))?;
    }
    if let Some(map) = report.map_at_r {
        ev.scalar("metric/MAP@R", map, step)
            .map_err(|e| CliError::io(ev.path(), e))?;
    }
    if let Some(c) = &report.clustering {
        ev.scalar("metric/NMI", c.nmi, step)
            .map_err(|e| CliError::io(ev.path(), e))?;
        ev.scalar("metric/F1", c.f1, step)
            .map_err(|e| CliError::io(ev.path(), e))?;
    }
    files.metrics.write(&EvalLine {
        kind: "eval",
        epoch,
        step,
        recall: report
            .recall_at_k
            .iter()
            .map(|r| (r.k.to_string(), r.recall))
            .collect(),
        map_at_r: report.map_at_r,
        nmi: report.clustering.as_ref().map(|c| c.nmi),
        f1: report.clustering.as_ref().map(|c| c.f1),
        best_recall1: state.best_recall1,
        best_epoch: state.best_epoch,
    })
}

fn save<B, O>(
    network: &Network<B>,
    backbone_optimizer: &O,
    head_optimizer: &O,
    config: &RunConfig,
    state: &TrainingState,
    path: &Path,
) -> Result<()>
where
    B: AutodiffBackend,
    O: Optimizer<Network<B>, B>,
{
    let file = CheckpointFile {
        version: CHECKPOINT_VERSION,
        config: config.to_toml(),
        state: state.clone(),
        network: checkpoint::module_bytes::<B, _>(network, path)?,
        backbone_optimizer: checkpoint::record_bytes::<B, _>(backbone_optimizer.to_record(), path)?,
        head_optimizer: checkpoint::record_bytes::<B, _>(head_optimizer.to_record(), path)?,
    };
    file.save(path)
}
