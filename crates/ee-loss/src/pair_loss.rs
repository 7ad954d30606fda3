//! What the pair-based losses share: the [`PairLoss`] interface and its [`LossOutput`].

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::expansion::{EmbeddingExpansion, ExpandedBatch};
use crate::LossError;

/// What a pair-based loss computed for one batch.
#[derive(Debug, Clone)]
pub struct LossOutput<B: Backend> {
    /// The reduced loss to backpropagate: [1].
    pub loss: Tensor<B, 1>,
    /// One term per original anchor: [B].
    pub per_anchor: Tensor<B, 1>,
}

/// Batch statistics of a [`LossOutput`], read back to the host (for logging).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossStats {
    /// The reduced loss.
    pub loss: f64,
    /// Fraction of anchors whose term is non-zero.
    pub active_fraction: f64,
}

impl<B: Backend> LossOutput<B> {
    /// Reads the batch statistics back to the host.
    pub fn stats(&self) -> LossStats {
        // Through TensorData: `into_scalar` would round to the backend's element type.
        let scalar = |t: Tensor<B, 1>| {
            t.into_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .map_or(f64::NAN, |values| values[0])
        };
        LossStats {
            loss: scalar(self.loss.clone().detach()),
            active_fraction: scalar(
                self.per_anchor
                    .clone()
                    .detach()
                    .not_equal_elem(0.0)
                    .float()
                    .mean(),
            ),
        }
    }
}

/// A loss with one term per original anchor, scored on a batch after Embedding Expansion.
pub trait PairLoss {
    /// The expansion applied by [`PairLoss::forward`].
    fn expansion(&self) -> &EmbeddingExpansion;

    /// Scores an already expanded batch.
    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B>;

    /// Checks the batch, expands it and scores it: `embeddings` [B, D], `labels` [B].
    fn forward<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<LossOutput<B>, LossError> {
        let batch = self.expansion().expand(embeddings, labels)?;
        Ok(self.forward_expanded(&batch))
    }
}
