//! Multi-class N-pair loss with the embedding L2 penalty (Sohn 2016), composable with
//! Embedding Expansion.
//!
//! Dot-product similarities `S` over the expanded batch ([`crate::similarity::pairwise_dot`]).
//! Pairs of anchor `i` as in [`crate::anchor_pairs`]; `N(i)` = its negatives: pairs `(r, c)`
//! with `r` the anchor or one of its synthetic points and `c` any expanded point of another
//! class.
//!
//! ```text
//! l_i = mean_{j positive of i} log( 1 + sum_{(r,c) in N(i)} exp(S_rc - S_ij) )
//!       + l2_weight * |x_i|^2
//! ```
//!
//! Sohn's batch holds one pair per class and takes the other classes' positives as the
//! negatives. On a classes x instances batch this generalises to every original anchor, each of
//! its positives, and every point of another class as a negative; with two instances per
//! class, `n = 0` and negatives restricted to one per class it is the paper's formula. The
//! penalty is on the original embeddings only (synthetic points derive from them).

use burn::config::Config;
use burn::tensor::backend::Backend;

use crate::anchor_pairs::{off_diagonal, AnchorPairs};
use crate::expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
use crate::masked::{masked_logsumexp, masked_mean, masked_sum, softplus};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::parameter_checks::non_negative;
use crate::reduction::Reduction;
use crate::similarity::pairwise_dot;
use crate::LossError;

/// Configuration of [`NPairLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct NPairLossConfig {
    /// Weight of the squared L2 norm of each original embedding. Must be finite and >= 0.
    #[config(default = 0.02)]
    pub l2_weight: f64,
    /// How per-anchor terms are reduced.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// The embedding expansion applied first (`n_inner_pts = 0` turns it off).
    #[config(default = "EmbeddingExpansionConfig::new()")]
    pub expansion: EmbeddingExpansionConfig,
}

impl NPairLossConfig {
    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<NPairLoss, LossError> {
        Ok(NPairLoss {
            l2_weight: non_negative("l2_weight", self.l2_weight)?,
            reduction: self.reduction,
            expansion: self.expansion.init(),
        })
    }
}

/// Multi-class N-pair loss over an expanded batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NPairLoss {
    l2_weight: f64,
    reduction: Reduction,
    expansion: EmbeddingExpansion,
}

impl PairLoss for NPairLoss {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        let pairs = AnchorPairs::new(batch, batch.pairwise_matrix(pairwise_dot));
        let batch_size = pairs.batch_size();
        // log sum_{N(i)} exp(S_rc): [B]
        let negative_term =
            masked_logsumexp(pairs.negative_values.clone(), pairs.negative_mask.clone());
        // log(1 + sum exp(S_rc - S_ij)) = softplus(logsumexp(S_rc) - S_ij): [B, B]
        let per_pair = softplus(
            negative_term
                .reshape([batch_size, 1])
                .expand([batch_size, batch_size])
                - pairs.positive_values.clone(),
        );
        // |x_i|^2 is the diagonal of the originals' dot products.
        let squared_norm = masked_sum(
            pairs.positive_values.clone(),
            off_diagonal(batch_size, &pairs.positive_values.device()).bool_not(),
        );
        let per_anchor = masked_mean(per_pair, pairs.positive_mask.clone())
            + squared_norm.mul_scalar(self.l2_weight);
        LossOutput::new(self.reduction.apply(per_anchor.clone()), per_anchor)
    }
}
