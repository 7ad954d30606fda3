//! Triplet loss with semi-hard negatives (Schroff et al. 2015, FaceNet), or over all valid
//! triplets, composable with Embedding Expansion.
//!
//! Euclidean distances `D` over the expanded batch ([`ExpandedBatch::distance_matrix`]).
//! Pairs of anchor `i` as in [`crate::anchor_pairs`]: positives `(x_i, x_j)` among originals,
//! negatives `(r, c)` with `r` the anchor or one of its synthetic points and `c` any expanded
//! point of another class.
//!
//! Semi-hard (the default; the negative choice of TensorFlow's `triplet_semihard_loss`): for
//! each positive `j` of anchor `i`
//!
//! ```text
//! d_an(i, j) = min { D_rc : (r, c) negative of i, D_rc > D_ij }     (semi-hard)
//!            = max { D_rc : (r, c) negative of i }                  (when none is farther)
//! l_i        = mean_{j positive of i} max(0, D_ij - d_an(i, j) + margin)
//! ```
//!
//! All valid triplets:
//!
//! ```text
//! l_i = mean_{j positive of i, (r, c) negative of i} max(0, D_ij - D_rc + margin)
//! ```
//!
//! With `n = 0` and [`Reduction::Mean`] (the default) this is the mean over all positive pairs
//! (all valid triplets) of the published hinge, as a batch of equal class sizes gives every
//! anchor as many positives.
//!
//! The semi-hard choice is one column per (anchor, positive) and the gradient flows through that
//! column only: the derivative of the loss as a function of the embeddings. (The HPHN loss
//! instead follows the reference's tie rule, [`crate::ties`], which gives a synthetic hardest
//! negative, present twice in the expanded set, twice that gradient.)

use burn::config::Config;
use burn::tensor::activation::relu;
use burn::tensor::{backend::Backend, get_device_settings, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::anchor_pairs::AnchorPairs;
use crate::expansion::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch};
use crate::masked::{masked_mean, masked_sum};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::parameter_checks::non_negative;
use crate::reduction::Reduction;
use crate::LossError;

/// Which triplets a [`TripletLoss`] scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripletNegatives {
    /// One negative per (anchor, positive): the closest farther than the positive (FaceNet).
    #[default]
    SemiHard,
    /// Every (anchor, positive, negative) triplet.
    AllValid,
}

impl burn::config::Config for TripletNegatives {}

/// Configuration of [`TripletLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct TripletLossConfig {
    /// Hinge margin (FaceNet's 0.2). Must be finite and >= 0.
    #[config(default = 0.2)]
    pub margin: f64,
    /// Semi-hard negatives (FaceNet) or all valid triplets.
    #[config(default = "TripletNegatives::SemiHard")]
    pub negatives: TripletNegatives,
    /// How per-anchor terms are reduced.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// The embedding expansion applied first (`n_inner_pts = 0` turns it off).
    #[config(default = "EmbeddingExpansionConfig::new()")]
    pub expansion: EmbeddingExpansionConfig,
}

impl TripletLossConfig {
    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<TripletLoss, LossError> {
        Ok(TripletLoss {
            margin: non_negative("margin", self.margin)?,
            negatives: self.negatives,
            reduction: self.reduction,
            expansion: self.expansion.init(),
        })
    }
}

/// Triplet loss (semi-hard or all valid triplets) over an expanded batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripletLoss {
    margin: f64,
    negatives: TripletNegatives,
    reduction: Reduction,
    expansion: EmbeddingExpansion,
}

impl PairLoss for TripletLoss {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        let pairs = AnchorPairs::new(batch, batch.distance_matrix());
        let per_anchor = match self.negatives {
            TripletNegatives::SemiHard => semi_hard(&pairs, self.margin),
            TripletNegatives::AllValid => all_valid(&pairs, self.margin),
        };
        LossOutput::new(self.reduction.apply(per_anchor.clone()), per_anchor)
    }
}

fn semi_hard<B: Backend>(pairs: &AnchorPairs<B>, margin: f64) -> Tensor<B, 1> {
    let [b, columns] = pairs.negative_values.dims();
    // Selection on detached values, by ranks, so that nothing is [B, B, columns]: the number of
    // negatives closer than D_ij is D_ij's rank among negatives and positives together minus
    // its rank among positives. Entries outside a mask sort last (+inf).
    let negatives = pairs
        .negative_values
        .clone()
        .detach()
        .mask_fill(pairs.negative_mask.clone().bool_not(), f64::INFINITY); // [B, columns]
    let positives = pairs
        .positive_values
        .clone()
        .detach()
        .mask_fill(pairs.positive_mask.clone().bool_not(), f64::INFINITY); // [B, B]
    let merged_rank = ranks(Tensor::cat(vec![negatives.clone(), positives.clone()], 1))
        .slice([0..b, columns..columns + b]);
    let closer = merged_rank - ranks(positives); // [B, B] negatives sorted before D_ij
    let negative_count = pairs.negative_mask.clone().int().sum_dim(1).expand([b, b]);
    let has_farther = closer.clone().lower(negative_count);
    let closest_farther = negatives
        .clone()
        .argsort(1)
        .gather(1, closer.clamp(0, columns as i64 - 1));
    let farthest = negatives
        .mask_fill(pairs.negative_mask.clone().bool_not(), f64::NEG_INFINITY)
        .argmax(1)
        .expand([b, b]);
    let chosen = farthest.mask_where(has_farther, closest_farther); // [B, B] column indices
    let negative_distance = pairs.negative_values.clone().gather(1, chosen); // [B, B]
    let hinge = relu(pairs.positive_values.clone() - negative_distance + margin);
    masked_mean(hinge, pairs.positive_mask.clone())
}

fn all_valid<B: Backend>(pairs: &AnchorPairs<B>, margin: f64) -> Tensor<B, 1> {
    let [b, columns] = pairs.negative_values.dims();
    // sum_c max(0, t - v_c) over the negatives v_c below t = D_ij + margin is
    // k t - (sum of the k smallest negatives): sorted negatives and their prefix sums, so that
    // nothing is [B, B, columns]. Entries outside a mask sort last (+inf) and are never summed.
    let negatives = pairs
        .negative_values
        .clone()
        .detach()
        .mask_fill(pairs.negative_mask.clone().bool_not(), f64::INFINITY); // [B, columns]
    let order = negatives.clone().argsort(1);
    let sorted = pairs.negative_values.clone().gather(1, order); // with gradient
    let device = sorted.device();
    let prefix = Tensor::cat(vec![Tensor::zeros([b, 1], &device), sorted.cumsum(1)], 1); // [B, columns + 1]

    let threshold = pairs.positive_values.clone().add_scalar(margin); // [B, B]
    let threshold_sorted_last = threshold
        .clone()
        .detach()
        .mask_fill(pairs.positive_mask.clone().bool_not(), f64::INFINITY);
    let below = ranks(Tensor::cat(
        vec![negatives, threshold_sorted_last.clone()],
        1,
    ))
    .slice([0..b, columns..columns + b])
        - ranks(threshold_sorted_last); // [B, B] negatives below the threshold
                                        // Non-positive (i, j) tie at +inf and may rank anywhere among the +inf entries: clamp.
    let below = below.clamp(0, columns as i64);
    let hinge_sum = below.clone().float() * threshold - prefix.gather(1, below); // [B, B]
    let count = pairs.positive_mask.clone().float().sum_dim(1)
        * pairs.negative_mask.clone().float().sum_dim(1);
    (masked_sum(hinge_sum, pairs.positive_mask.clone()).reshape([b, 1]) / count.clamp_min(1.0))
        .reshape([b])
}

/// The rank of each entry within its row (0 = smallest): [rows, cols].
///
/// Cast to the device's default integer type: an argsort of integers may return another
/// integer type than the default, and integer ops refuse to mix them.
fn ranks<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2, Int> {
    let dtype = get_device_settings::<B>(&x.device()).int_dtype;
    x.argsort(1).argsort(1).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Int;

    /// With the backend's default dtypes (f32, and flex's default int, which its int argsort
    /// does not return), both variants run forward and backward.
    #[test]
    fn both_variants_run_with_the_default_dtypes() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<B, 2>::from_data(
            [
                [1.0, 0.0],
                [0.9, 0.1],
                [0.0, 1.0],
                [0.2, 0.9],
                [-1.0, 0.1],
                [-0.8, -0.3],
            ],
            &device,
        )
        .require_grad();
        let labels = Tensor::<B, 1, Int>::from_data([0, 0, 1, 1, 2, 2], &device);
        for negatives in [TripletNegatives::SemiHard, TripletNegatives::AllValid] {
            let loss = TripletLossConfig::new()
                .with_negatives(negatives)
                .with_margin(1.0)
                .init()
                .unwrap();
            let output = loss.forward(x.clone(), labels.clone()).unwrap();
            let grads = output.loss.backward();
            let gradient: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            assert!(gradient.iter().all(|g| g.is_finite()), "{negatives:?}");
            assert!(gradient.iter().any(|g| *g != 0.0), "{negatives:?}");
        }
    }
}
