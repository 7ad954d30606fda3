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
    /// Named, detached `[1]` statistics of the loss's own (mining distances, the share of
    /// synthetic negatives, ...): the one place a loss reports what it saw, so that a trainer
    /// can log any loss without knowing which it is. Empty for losses with nothing to add.
    pub diagnostics: Vec<(&'static str, Tensor<B, 1>)>,
}

/// Batch statistics of a [`LossOutput`], read back to the host (for logging).
#[derive(Debug, Clone, PartialEq)]
pub struct LossStats {
    /// The reduced loss.
    pub loss: f64,
    /// Mean of the per-anchor terms.
    pub mean_per_anchor: f64,
    /// Fraction of anchors whose term is non-zero.
    pub active_fraction: f64,
    /// [`LossOutput::diagnostics`], read back, in order.
    pub diagnostics: Vec<(&'static str, f64)>,
}

/// A `[1]` tensor's value as f64, through `TensorData` (`into_scalar` would round to the
/// backend's element type).
fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_or(f64::NAN, |values| values[0])
}

impl<B: Backend> LossOutput<B> {
    /// An output without diagnostics.
    pub fn new(loss: Tensor<B, 1>, per_anchor: Tensor<B, 1>) -> Self {
        LossOutput {
            loss,
            per_anchor,
            diagnostics: Vec::new(),
        }
    }

    /// Adds a named statistic (detached, reduced to `[1]` by its mean).
    pub fn with_diagnostic(mut self, name: &'static str, value: Tensor<B, 1>) -> Self {
        self.diagnostics.push((name, value.detach().mean()));
        self
    }

    /// Reads the batch statistics back to the host.
    pub fn stats(&self) -> LossStats {
        let per_anchor = self.per_anchor.clone().detach();
        LossStats {
            loss: scalar(self.loss.clone().detach()),
            mean_per_anchor: scalar(per_anchor.clone().mean()),
            active_fraction: scalar(per_anchor.not_equal_elem(0.0).float().mean()),
            diagnostics: self
                .diagnostics
                .iter()
                .map(|(name, value)| (*name, scalar(value.clone())))
                .collect(),
        }
    }
}

/// A loss with one term per original anchor, scored on a batch after Embedding Expansion.
///
/// Implement [`PairLoss::expansion`] and [`PairLoss::forward_expanded`] for your own loss;
/// report anything worth logging in [`LossOutput::diagnostics`]. The trainer of `ee-train`
/// takes any `PairLoss`.
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
