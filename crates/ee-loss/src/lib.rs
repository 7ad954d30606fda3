//! `ee-loss`: Embedding Expansion (Ko & Gu, CVPR 2020) and pair-based metric-learning losses
//! for [burn](https://burn.dev), matching the reference implementation number for number,
//! gradients included.
//!
//! The pieces compose the way pytorch-metric-learning's do, so they can sit in anyone's burn
//! model:
//!
//! | step | piece | shapes |
//! |---|---|---|
//! | expansion (a transform of embeddings and labels) | [`EmbeddingExpansion`] | [B, D] -> [(n+1)B, D] |
//! | distance | [`distance::pairwise_euclidean`], [`ExpandedBatch::distance_matrix`] | [N, D] -> [N, N] |
//! | mining | [`mining::hardest_pairs`] | -> `d_ap`, `d_an` [B] |
//! | loss + reduction | [`HphnTripletLoss`], [`Reduction`] | -> per anchor [B], scalar |
//!
//! The paper's other losses sit on the same expanded batch: [`TripletLoss`] (semi-hard or all
//! valid triplets), [`LiftedStructureLoss`], [`NPairLoss`] and [`MultiSimilarityLoss`], all
//! [`PairLoss`]es; [`LossConfig`] chooses one by name (`hphn_triplet`, `triplet`, `lifted`,
//! `npair`, `multi_similarity`) for config files. Under EE every loss follows the paper's rule:
//! positive pairs among original points only, negatives may be synthetic, one term per original
//! anchor ([`anchor_pairs`]; each loss's module documents which pairs enter which term).
//!
//! Batches follow the classes x instances layout: each class's K instances in consecutive
//! rows, K even, so rows (0,1), (2,3), ... are same-class partners ([`batch`]).
//! Every max and min passes its gradient to all tied elements, as the reference does
//! ([`ties`]).
//!
//! # Example
//!
//! ```
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::{Int, Tensor};
//! use ee_loss::HphnTripletLossConfig;
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! // 2 classes x 2 instances, embeddings of dimension 3 (from your model).
//! let embeddings = Tensor::<B, 2>::from_data(
//!     [[0.6, 0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.6, 0.8], [0.0, 0.8, 0.6]],
//!     &device,
//! )
//! .require_grad();
//! let labels = Tensor::<B, 1, Int>::from_data([7, 7, 3, 3], &device);
//!
//! // The reference's EE run: 2 inner points, L2-normalised, margin 1e-5, summed.
//! let loss = HphnTripletLossConfig::new().init()?;
//! let output = loss.forward(embeddings.clone(), labels)?;
//! let gradients = output.loss.backward();
//! assert!(embeddings.grad(&gradients).is_some());
//! # Ok::<(), ee_loss::LossError>(())
//! ```

pub mod anchor_pairs;
pub mod batch;
pub mod distance;
mod error;
pub mod expansion;
pub mod hphn;
pub mod lifted;
pub mod loss_config;
pub mod masked;
pub mod mining;
pub mod multi_similarity;
pub mod npair;
pub mod pair_loss;
pub mod pairs;
pub mod parameter_checks;
pub mod reduction;
pub mod similarity;
pub mod ties;
pub mod triplet;

pub use error::LossError;
pub use expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
pub use hphn::{HphnOutput, HphnStats, HphnTripletLoss, HphnTripletLossConfig};
pub use lifted::{LiftedStructureLoss, LiftedStructureLossConfig};
pub use loss_config::{Loss, LossConfig, LOSS_NAMES};
pub use multi_similarity::{MultiSimilarityLoss, MultiSimilarityLossConfig};
pub use npair::{NPairLoss, NPairLossConfig};
pub use pair_loss::{LossOutput, LossStats, PairLoss};
pub use reduction::Reduction;
pub use triplet::{TripletLoss, TripletLossConfig, TripletNegatives};
