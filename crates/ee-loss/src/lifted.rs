//! Lifted Structure loss, smooth log-sum-exp form (Oh Song et al. 2016), composable with
//! Embedding Expansion.
//!
//! Euclidean distances `D` over the expanded batch. Pairs of anchor `i` as in
//! [`crate::anchor_pairs`]; `N(i)` = the negatives of `i`: pairs `(r, c)` with `r` the anchor or
//! one of its synthetic points and `c` any expanded point of another class.
//!
//! ```text
//! J_ij = D_ij + log( sum_{(r,c) in N(i)} exp(margin - D_rc) + sum_{(r,c) in N(j)} exp(margin - D_rc) )
//! l_i  = mean_{j positive of i} max(0, J_ij)^2 / 2
//! ```
//!
//! The paper's loss is `1/(2|P|) sum_{(i,j) in P} max(0, J_ij)^2` over unordered positive pairs.
//! `J` is symmetric, so with [`Reduction::Mean`] (the default), `n = 0` and equal class sizes,
//! `mean_i l_i` is exactly that. Both ends of a positive pair bring their negatives (with EE,
//! their synthetic points' negatives too), as in the paper; the term is kept under anchor `i`
//! for each of its positives `j`.

use burn::config::Config;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use crate::anchor_pairs::AnchorPairs;
use crate::expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
use crate::masked::{logaddexp, masked_logsumexp, masked_mean};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::parameter_checks::non_negative;
use crate::reduction::Reduction;
use crate::LossError;

/// Configuration of [`LiftedStructureLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct LiftedStructureLossConfig {
    /// Margin `alpha` of the negatives (the paper's 1.0). Must be finite and >= 0.
    #[config(default = 1.0)]
    pub margin: f64,
    /// How per-anchor terms are reduced.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// The embedding expansion applied first (`n_inner_pts = 0` turns it off).
    #[config(default = "EmbeddingExpansionConfig::new()")]
    pub expansion: EmbeddingExpansionConfig,
}

impl LiftedStructureLossConfig {
    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<LiftedStructureLoss, LossError> {
        Ok(LiftedStructureLoss {
            margin: non_negative("margin", self.margin)?,
            reduction: self.reduction,
            expansion: self.expansion.init(),
        })
    }
}

/// Smooth Lifted Structure loss over an expanded batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiftedStructureLoss {
    margin: f64,
    reduction: Reduction,
    expansion: EmbeddingExpansion,
}

impl PairLoss for LiftedStructureLoss {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        let pairs = AnchorPairs::new(batch, batch.distance_matrix());
        let batch_size = pairs.batch_size();
        // log sum_{N(i)} exp(margin - D): [B]
        let negative_term = masked_logsumexp(
            pairs.negative_values.clone().neg().add_scalar(self.margin),
            pairs.negative_mask.clone(),
        );
        let both_ends = logaddexp(
            negative_term
                .clone()
                .reshape([batch_size, 1])
                .expand([batch_size, batch_size]),
            negative_term
                .reshape([1, batch_size])
                .expand([batch_size, batch_size]),
        );
        let j = pairs.positive_values.clone() + both_ends; // [B, B]
        let per_anchor = masked_mean(relu(j).square().div_scalar(2.0), pairs.positive_mask);
        LossOutput::new(self.reduction.apply(per_anchor.clone()), per_anchor)
    }
}
