//! Multi-Similarity loss with its pair mining (Wang et al. 2019), composable with Embedding
//! Expansion.
//!
//! Cosine similarities `S` over the expanded batch ([`crate::similarity::pairwise_cosine`]).
//! Pairs of anchor `i` as in [`crate::anchor_pairs`]: positives `P(i)` = `(x_i, x_j)` among
//! originals, negatives `N(i)` = `(r, c)` with `r` the anchor or one of its synthetic points
//! and `c` any expanded point of another class.
//!
//! ```text
//! mining:  keep negative (r,c) in N(i)  if  S_rc + epsilon > min_{j in P(i)} S_ij
//!          keep positive j in P(i)      if  S_ij - epsilon < max_{(r,c) in N(i)} S_rc
//! l_i = 1/alpha log(1 + sum_{kept j} exp(-alpha (S_ij - lambda)))
//!     + 1/beta  log(1 + sum_{kept (r,c)} exp( beta (S_rc - lambda)))
//! l_i = 0 when no positive or no negative is kept
//! ```
//!
//! As the authors' code: the mining thresholds come from all (unmined) pairs, the masks carry
//! no gradient, an anchor with an empty kept set contributes 0, and the batch loss is the sum
//! over anchors divided by `B` ([`Reduction::Mean`], the default). Their code drops positives
//! with `S >= 1 - epsilon` to remove the anchor itself; here the anchor is excluded by index, so
//! a positive identical to the anchor still counts.

use burn::config::Config;
use burn::tensor::backend::Backend;

use crate::anchor_pairs::AnchorPairs;
use crate::expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
use crate::masked::{masked_log1p_sum_exp, masked_max_detached, masked_min_detached};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::parameter_checks::{finite, non_negative, positive};
use crate::reduction::Reduction;
use crate::similarity::pairwise_cosine;
use crate::LossError;

/// Configuration of [`MultiSimilarityLoss`]; defaults are the paper's.
#[derive(Config, Debug, PartialEq)]
pub struct MultiSimilarityLossConfig {
    /// Scale of the positive term. Must be finite and > 0.
    #[config(default = 2.0)]
    pub alpha: f64,
    /// Scale of the negative term. Must be finite and > 0.
    #[config(default = 50.0)]
    pub beta: f64,
    /// Similarity threshold `lambda`. Must be finite.
    #[config(default = 1.0)]
    pub lambda: f64,
    /// Mining margin `epsilon`. Must be finite and >= 0.
    #[config(default = 0.1)]
    pub epsilon: f64,
    /// How per-anchor terms are reduced.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// The embedding expansion applied first (`n_inner_pts = 0` turns it off).
    #[config(default = "EmbeddingExpansionConfig::new()")]
    pub expansion: EmbeddingExpansionConfig,
}

impl MultiSimilarityLossConfig {
    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<MultiSimilarityLoss, LossError> {
        Ok(MultiSimilarityLoss {
            alpha: positive("alpha", self.alpha)?,
            beta: positive("beta", self.beta)?,
            lambda: finite("lambda", self.lambda)?,
            epsilon: non_negative("epsilon", self.epsilon)?,
            reduction: self.reduction,
            expansion: self.expansion.init(),
        })
    }
}

/// Multi-Similarity loss with its mining, over an expanded batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiSimilarityLoss {
    alpha: f64,
    beta: f64,
    lambda: f64,
    epsilon: f64,
    reduction: Reduction,
    expansion: EmbeddingExpansion,
}

impl PairLoss for MultiSimilarityLoss {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        let pairs = AnchorPairs::new(batch, batch.pairwise_matrix(pairwise_cosine));
        let [b, columns] = pairs.negative_values.dims();
        let positives = pairs.positive_values.clone();
        let negatives = pairs.negative_values.clone();

        // Mining on the detached similarities. Empty sets never keep anything: +inf / -inf.
        let hardest_positive = masked_min_detached(
            positives.clone(),
            pairs.positive_mask.clone(),
            f64::INFINITY,
        );
        let hardest_negative = masked_max_detached(
            negatives.clone(),
            pairs.negative_mask.clone(),
            f64::NEG_INFINITY,
        );
        let kept_negatives = negatives
            .clone()
            .detach()
            .add_scalar(self.epsilon)
            .greater(hardest_positive.expand([b, columns]))
            .bool_and(pairs.negative_mask.clone());
        let kept_positives = positives
            .clone()
            .detach()
            .sub_scalar(self.epsilon)
            .lower(hardest_negative.expand([b, b]))
            .bool_and(pairs.positive_mask.clone());
        let active = kept_positives
            .clone()
            .any_dim(1)
            .bool_and(kept_negatives.clone().any_dim(1))
            .reshape([b]);

        let positive_term = masked_log1p_sum_exp(
            positives.sub_scalar(self.lambda).mul_scalar(-self.alpha),
            kept_positives,
        )
        .div_scalar(self.alpha);
        let negative_term = masked_log1p_sum_exp(
            negatives.sub_scalar(self.lambda).mul_scalar(self.beta),
            kept_negatives,
        )
        .div_scalar(self.beta);
        let per_anchor = (positive_term + negative_term).mask_fill(active.bool_not(), 0.0);
        LossOutput::new(self.reduction.apply(per_anchor.clone()), per_anchor)
    }
}
