//! `ee train`: the config's dataset, model and loss handed to ee-train's [`Trainer`]
//! (METHOD.md sections 5-7; the loop itself lives in ee-train).
//!
//! The run directory holds `config.toml` (resolved), `metrics.jsonl`, `tensorboard/` event
//! files, `last.mpk` (end of every epoch) and `best.mpk` (best Recall@1). `--resume`
//! continues from `last.mpk` exactly.
//!
//! [`Trainer`]: ee_train::Trainer

use burn::tensor::backend::AutodiffBackend;
use ee_train::{TrainData, TrainSummary};

use crate::config::resolve::{build_model, trainer_config};
use crate::config::RunConfig;
use crate::dataset::open_dataset;
use crate::error::Result;
use crate::evaluate::RunSplits;

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

/// Trains the run a config describes on backend `B`.
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    options: &TrainOptions,
    device: &B::Device,
) -> Result<TrainSummary> {
    let c = config.get();
    // Data first: its errors are the likeliest and cost nothing to find.
    let dataset = open_dataset(config)?;
    let sets = RunSplits::open(config, dataset)?;
    let loss = config.loss().init()?;
    let model = build_model::<B>(c, !options.resume, device)?;
    let mut trainer = trainer_config(config, options.resume, options.quiet)
        .init()?
        .with_run_description("config.toml", config.to_toml())
        .with_nan_at_step(std::env::var(POISON_ENV).ok().and_then(|v| v.parse().ok()));
    let data = TrainData {
        train: &sets.train,
        test: &sets.test,
        validation: sets.validation.as_ref(),
    };
    Ok(trainer.fit(model, &loss, data, device)?.summary)
}
