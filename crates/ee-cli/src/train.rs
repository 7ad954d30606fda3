//! `ee train`: the config's dataset, model and loss handed to ee-train's [`Trainer`]
//! (METHOD.md sections 5-7; the loop itself lives in ee-train).
//!
//! The run directory holds `config.toml` (resolved), `metrics.jsonl`, `tensorboard/` event
//! files, `last.mpk` (end of every epoch) and `best.mpk` (best Recall@K, K the first of
//! `schedule.recall_k`). `--resume`
//! continues from `last.mpk` exactly.
//!
//! [`Trainer`]: ee_train::Trainer

use burn::tensor::backend::AutodiffBackend;
use ee_train::{EvalSet, TrainData, TrainError, TrainSummary, Trainer};

use crate::backend::check_compiled;
use crate::config::resolve::{build_model, trainer_config};
use crate::config::{invalid, RunConfig};
use crate::dataset::open_dataset;
use crate::error::{CliError, Result};
use crate::evaluate::RunSplits;

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

/// Everything `ee train` checks before decoding an image: the backend, the dataset and its
/// splits, the loss, the trainer's settings and the sampler against the training split.
/// `ee data check` runs it too, so it passes exactly the configs `train` accepts.
pub fn prepare(config: &RunConfig, options: &TrainOptions) -> Result<Prepared> {
    check_compiled(config)?;
    // Data first: its errors are the likeliest and cost nothing to find.
    prepare_dataset(config, options, open_dataset(config)?)
}

/// [`prepare`] on a dataset already opened (after the backend check).
pub fn prepare_dataset(
    config: &RunConfig,
    options: &TrainOptions,
    dataset: ee_data::Dataset,
) -> Result<Prepared> {
    let splits = RunSplits::open(config, dataset)?;
    let loss = config.loss().init()?;
    // The trainer's settings are checked here, once (`init`); the sampler is built against
    // the training split to report a batch that does not fit it before any image is decoded.
    let trainer = trainer_config(config, options.resume, options.quiet).init()?;
    trainer
        .config()
        .sampler(&loss, &splits.train)
        .map_err(|e| match e {
            TrainError::Data(ee_data::DataError::InvalidConfig { field, value, rule }) => {
                let key = match field {
                    "epoch_size" => "schedule.samples_per_epoch".to_string(),
                    other => format!("schedule.{other}"),
                };
                let split = if splits.validation.is_some() {
                    "the training split, without its validation classes"
                } else {
                    "the training split"
                };
                CliError::Config(invalid(&key, value, format!("{rule} ({split})")))
            }
            other => other.into(),
        })?;
    // Evaluations run after training epochs: their settings must fit the sets now.
    let ks = &config.get().schedule.recall_k;
    let sets = [
        ("test", Some(&splits.test)),
        ("validation", splits.validation.as_ref()),
    ];
    for (name, set) in sets {
        let Some(set) = set else { continue };
        let retrievable = match set {
            EvalSet::SelfRetrieval(loader) => loader.len().saturating_sub(1),
            EvalSet::QueryGallery { gallery, .. } => gallery.len(),
        };
        if let Some(k) = ks.iter().copied().find(|&k| k > retrievable) {
            return Err(CliError::Config(invalid(
                "schedule.recall_k",
                format!("{ks:?}"),
                format!(
                    "K = {k} is larger than the {retrievable} items a query of the {name} set can retrieve"
                ),
            )));
        }
    }
    Ok(Prepared {
        splits,
        loss,
        trainer,
    })
}

/// A checked run, ready to train: see [`prepare`].
pub struct Prepared {
    /// The training split, the test set and the validation classes.
    pub splits: RunSplits,
    /// The loss.
    pub loss: ee_loss::Loss,
    /// The trainer, its settings checked.
    pub trainer: Trainer,
}

/// Trains the run a config describes on backend `B`, data-parallel when `devices` holds
/// more than one (`run.devices`).
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    options: &TrainOptions,
    devices: &[B::Device],
) -> Result<TrainSummary> {
    let device = &devices[0];
    let Prepared {
        splits,
        loss,
        trainer,
    } = prepare(config, options)?;
    let model = build_model::<B>(config.get(), !options.resume, device)?;
    let mut trainer = trainer
        .with_run_description("config.toml", config.to_toml())
        .with_nan_at_step(std::env::var(POISON_ENV).ok().and_then(|v| v.parse().ok()));
    let data = TrainData {
        train: &splits.train,
        test: &splits.test,
        validation: splits.validation.as_ref(),
    };
    Ok(trainer
        .fit_data_parallel(model, &loss, data, devices)?
        .summary)
}
