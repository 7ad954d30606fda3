//! `ee-train`: the Embedding Expansion training loop as a library. It trains any embedding
//! model with any pair-based loss, on the classes x instances batches of `ee-data`, and
//! scores it with `ee-eval`.
//!
//! ```text
//! ee-data                 ee-model            ee-loss                          burn
//! sampler -> loader  ->   TrainModel::embed -> EmbeddingExpansion -> PairLoss -> two optimisers
//!                         model.valid()     -> ee-eval (Recall@K, MAP@R, NMI/F1) -> best.mpk
//! ```
//!
//! # The pieces
//!
//! * [`TrainerConfig`] (a burn `Config`: optimiser, sampler, loader, evaluation, epochs,
//!   logging and checkpoint intervals) and its [`Trainer`], made by
//!   [`TrainerConfig::init`]. [`Trainer::fit`] runs the loop.
//! * [`Stepper`]: the training step, the only one (batch check, embed, Embedding Expansion,
//!   loss, backward, the all-reduce with several devices, two optimisers); the trainer calls
//!   it for every batch, and [`optimizer_step`] / [`optimizer_step_with`] are its optimiser
//!   half for a loss computed elsewhere.
//! * Models through [`TrainModel`]: `ee_model::Embed` (images to embeddings) plus which
//!   parameters form the backbone, trained at `lr * base_lr_mult`. ee-model's
//!   `EmbeddingModel` (GoogLeNet, the small CNN) implements both.
//! * Losses through `ee_loss::PairLoss`. Embedding Expansion runs as its own stage before the
//!   loss (`loss.expansion().expand(..)`, then `loss.forward_expanded(..)`), and every loss
//!   reports its statistics in `LossOutput::diagnostics`, so the loop has no loss-specific
//!   branch.
//! * [`EvalSet`]: what evaluations score (a split against itself, or queries against a
//!   gallery); [`TrainData`] holds the training split, the test set and optional held-out
//!   validation classes that select the best checkpoint instead of the test split.
//! * [`checkpoint`]: `last.mpk` / `best.mpk`, written atomically (temporary file + rename),
//!   resumable exactly (weights, BatchNorm statistics, both optimisers, sampler position).
//! * [`logging`]: the [`TrainLogger`] trait, with metrics.jsonl, TensorBoard and console
//!   (progress bars) implementations.
//! * [`probe`]: fixed computations (loss and gradient, forward, one training step,
//!   throughput, Recall@K) written as JSON to compare backends number by number; `ee probe`
//!   and `cargo xtask gpu-check` run them.
//! * [`TrainError`]: every failure, naming the file, setting or step at fault; a NaN loss
//!   stops the run and leaves the last checkpoint intact.
//!
//! # Example: train ee-model's small CNN with EE + HPHN
//!
//! ```no_run
//! use burn::backend::{Autodiff, Flex};
//! use ee_data::{LoaderConfig, SamplerConfig, Split};
//! use ee_loss::{HphnTripletLossConfig, EmbeddingExpansionConfig};
//! use ee_model::{BackboneKind, EmbeddingModelConfig};
//! use ee_train::{EvalSet, TrainData, TrainerConfig};
//!
//! # fn splits() -> (Split, Split) { unimplemented!() }
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! let (train, test) = splits(); // e.g. from ee_data::formats
//! let model = EmbeddingModelConfig::new()
//!     .with_backbone(Some(BackboneKind::SmallCnn))
//!     .with_embed_dim(64)
//!     .init::<B>(&device)?;
//! let loss = HphnTripletLossConfig::new()
//!     .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(2))
//!     .init()?;
//! let loader = LoaderConfig::new().with_image_size(32);
//! let test = EvalSet::SelfRetrieval(loader.init(&test)?);
//! let mut trainer = TrainerConfig::new("runs/small".into())
//!     .with_epochs(10)
//!     .with_sampler(SamplerConfig::new().with_batch_size(32).with_instances_per_class(4))
//!     .with_loader(loader)
//!     .init()?;
//! let data = TrainData { train: &train, test: &test, validation: None };
//! let fitted = trainer.fit(model, &loss, data, &device)?;
//! println!("best R@1 {:.3} at epoch {}", fitted.summary.best_recall, fitted.summary.best_epoch);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Your own model and loss: see `examples/own_model_and_loss.rs` (about 60 lines).

pub mod checkpoint;
mod error;
pub mod eval;
pub mod logging;
mod model;
mod optimizer;
pub mod parallel;
pub mod probe;
pub mod schedule;
pub mod step;
mod trainer;

pub use error::{Result, TrainError};
pub use eval::{embed_loader, evaluate, Embedded, EvalSet, EvalSummary};
pub use logging::TrainLogger;
pub use model::TrainModel;
pub use optimizer::{
    apply_gradients, optimizer_step, optimizer_step_with, OptimizerConfig, OptimizerKind,
};
pub use parallel::DataParallel;
pub use step::{StepOutcome, StepSettings, Stepper};
pub use trainer::{Fitted, TrainData, TrainSummary, Trainer, TrainerConfig};
