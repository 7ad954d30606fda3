//! The HPHN triplet loss of the Embedding Expansion paper (METHOD.md section 4).
//!
//! ```text
//! l_i = max(0, d_ap(i) - d_an(i) + margin)         (hinge, the reference's default)
//! l_i = log(1 + exp(d_ap(i) - d_an(i)))            (soft_margin)
//! ```
//! with `d_ap`, `d_an` from [`crate::mining::hardest_pairs`] over the expanded batch.

use burn::config::Config;
use burn::tensor::activation::relu;
use burn::tensor::{backend::Backend, ElementConversion, Int, Tensor};

use crate::expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
use crate::mining::{hardest_pairs_distinct, HardestPairs};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::reduction::Reduction;
use crate::LossError;

/// Configuration of [`HphnTripletLoss`]; defaults are the reference's EE run.
#[derive(Config, Debug, PartialEq)]
pub struct HphnTripletLossConfig {
    /// Hinge margin (the reference's default is 1e-5). Must be finite and >= 0.
    #[config(default = 1e-5)]
    pub margin: f64,
    /// Use `log(1 + exp(d_ap - d_an))` instead of the hinge (the margin is then unused).
    #[config(default = false)]
    pub soft_margin: bool,
    /// How per-anchor losses are reduced; the reference backpropagates the sum.
    #[config(default = "Reduction::Sum")]
    pub reduction: Reduction,
    /// The embedding expansion applied before mining (`n_inner_pts = 0` turns it off).
    #[config(default = "EmbeddingExpansionConfig::new()")]
    pub expansion: EmbeddingExpansionConfig,
}

impl HphnTripletLossConfig {
    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<HphnTripletLoss, LossError> {
        if !self.margin.is_finite() || self.margin < 0.0 {
            return Err(LossError::InvalidParameter {
                name: "margin",
                value: self.margin.to_string(),
                rule: "must be finite and >= 0",
            });
        }
        Ok(HphnTripletLoss {
            margin: self.margin,
            soft_margin: self.soft_margin,
            reduction: self.reduction,
            expansion: self.expansion.init(),
        })
    }
}

/// Embedding Expansion + hard-positive/hard-negative triplet loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HphnTripletLoss {
    margin: f64,
    soft_margin: bool,
    reduction: Reduction,
    expansion: EmbeddingExpansion,
}

/// What [`HphnTripletLoss`] computed for one batch.
#[derive(Debug, Clone)]
pub struct HphnOutput<B: Backend> {
    /// The reduced loss to backpropagate: [1].
    pub loss: Tensor<B, 1>,
    /// One loss per original anchor: [B].
    pub per_anchor: Tensor<B, 1>,
    /// The mined distances behind it.
    pub pairs: HardestPairs<B>,
}

impl HphnTripletLoss {
    /// The expansion this loss applies.
    pub fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    /// Checks the batch, expands it and scores it: `embeddings` [B, D], `labels` [B].
    pub fn forward<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<HphnOutput<B>, LossError> {
        let batch = self.expansion.expand(embeddings, labels)?;
        Ok(self.forward_expanded(&batch))
    }

    /// Scores an already expanded batch (for instance one expanded with other settings).
    pub fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> HphnOutput<B> {
        let pairs = hardest_pairs_distinct(batch);
        let difference = pairs.positive_distance.clone() - pairs.negative_distance.clone();
        let per_anchor = if self.soft_margin {
            softplus(difference)
        } else {
            // relu: zero gradient at exactly 0, as MXNet's relu.
            relu(difference.add_scalar(self.margin))
        };
        HphnOutput {
            loss: self.reduction.apply(per_anchor.clone()),
            per_anchor,
            pairs,
        }
    }
}

/// The generic interface: [`HphnOutput::into_output`] of the inherent methods.
impl PairLoss for HphnTripletLoss {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        HphnTripletLoss::forward_expanded(self, batch).into_output()
    }
}

/// `log(1 + exp(z))` without overflow, with gradient `sigmoid(z)` everywhere (0.5 at z = 0).
fn softplus<B: Backend>(z: Tensor<B, 1>) -> Tensor<B, 1> {
    let positive = z.clone().greater_elem(0.0);
    let z_pos = z.clone().mask_fill(positive.clone().bool_not(), 0.0); // z > 0, else 0
    let z_neg = z.mask_fill(positive, 0.0); // z <= 0, else 0
                                            // z > 0: z + log(1 + e^-z); z <= 0: log(1 + e^z). The idle branch adds log(2) - log(2).
    z_pos.clone() + z_pos.neg().exp().log1p() + z_neg.exp().log1p() - std::f64::consts::LN_2
}

/// Batch statistics of a loss output, read back to the host (for logging every few steps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HphnStats {
    /// Mean hardest-positive distance.
    pub mean_positive_distance: f64,
    /// Mean hardest-negative distance.
    pub mean_negative_distance: f64,
    /// Fraction of anchors with a non-zero loss.
    pub active_fraction: f64,
    /// Fraction of anchors whose hardest negative pair involves a synthetic point (the
    /// paper's selection ratio).
    pub synthetic_negative_fraction: f64,
}

impl<B: Backend> HphnOutput<B> {
    /// The generic [`LossOutput`], with the mining statistics as its diagnostics:
    /// `mean_positive_distance`, `mean_negative_distance` and `synthetic_negative_fraction`
    /// (the paper's selection ratio).
    pub fn into_output(self) -> LossOutput<B> {
        let synthetic = self.pairs.negative_is_synthetic.clone().float();
        LossOutput::new(self.loss, self.per_anchor)
            .with_diagnostic("mean_positive_distance", self.pairs.positive_distance)
            .with_diagnostic("mean_negative_distance", self.pairs.negative_distance)
            .with_diagnostic("synthetic_negative_fraction", synthetic)
    }

    /// Reads the batch statistics back to the host.
    pub fn stats(&self) -> HphnStats {
        let scalar = |t: Tensor<B, 1>| t.into_scalar().elem::<f64>();
        HphnStats {
            mean_positive_distance: scalar(self.pairs.positive_distance.clone().detach().mean()),
            mean_negative_distance: scalar(self.pairs.negative_distance.clone().detach().mean()),
            active_fraction: scalar(
                self.per_anchor
                    .clone()
                    .detach()
                    .greater_elem(0.0)
                    .float()
                    .mean(),
            ),
            synthetic_negative_fraction: scalar(
                self.pairs.negative_is_synthetic.clone().float().mean(),
            ),
        }
    }
}
