//! The embedding head: (optional hidden layer) -> Linear -> L2 normalisation, and the global
//! average pool that feeds it from a feature map.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::distr::{Distribution, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::ModelError;

/// The reference's L2 normalisation (shared with ee-loss through ee-core).
pub use ee_core::{l2_normalize, L2_NORM_EPSILON};

/// Settings of an [`EmbeddingHead`].
#[derive(Config, Debug)]
pub struct EmbeddingHeadConfig {
    /// Size of the input feature vector (1024 after GoogLeNet's global average pool).
    #[config(default = 1024)]
    pub in_features: usize,
    /// Size of the embedding.
    #[config(default = 512)]
    pub embed_dim: usize,
    /// Optional hidden layer `Linear(in_features, hidden_dim) -> ReLU` before the embedding
    /// layer, for training on precomputed (frozen) features. `None` in the reference.
    #[config(default = "None")]
    pub hidden_dim: Option<usize>,
    /// Seed of the weight initialisation (ChaCha8, so equal on every backend).
    #[config(default = 0)]
    pub seed: u64,
}

impl EmbeddingHeadConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), ModelError> {
        for (field, value) in [
            ("in_features", Some(self.in_features)),
            ("embed_dim", Some(self.embed_dim)),
            ("hidden_dim", self.hidden_dim),
        ] {
            if value == Some(0) {
                return Err(ModelError::InvalidConfig {
                    field,
                    value: "0".into(),
                    rule: "must be at least 1",
                });
            }
        }
        Ok(())
    }

    /// Builds the head: every Linear gets MXNet's `Xavier(magnitude=2)` (uniform, average fan)
    /// weights and zero bias (see [`xavier_bound`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<EmbeddingHead<B>, ModelError> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (hidden, embedding_input) = match self.hidden_dim {
            Some(hidden_dim) => (
                Some(xavier_linear(
                    self.in_features,
                    hidden_dim,
                    &mut rng,
                    device,
                )),
                hidden_dim,
            ),
            None => (None, self.in_features),
        };
        let embedding = xavier_linear(embedding_input, self.embed_dim, &mut rng, device);
        Ok(EmbeddingHead { hidden, embedding })
    }
}

/// Bound `a` of MXNet's `Xavier(rnd_type="uniform", factor_type="avg", magnitude=2)`, whose
/// weights are drawn from `U(-a, a)`:
///
/// ```text
/// a = sqrt(magnitude / ((fan_in + fan_out) / 2)) = sqrt(4 / (fan_in + fan_out))
/// ```
pub fn xavier_bound(fan_in: usize, fan_out: usize) -> f64 {
    const MAGNITUDE: f64 = 2.0;
    (MAGNITUDE / ((fan_in + fan_out) as f64 / 2.0)).sqrt()
}

/// `Linear(fan_in, fan_out)` with [`xavier_bound`] uniform weights and zero bias.
fn xavier_linear<B: Backend>(
    fan_in: usize,
    fan_out: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Linear<B> {
    let bound = xavier_bound(fan_in, fan_out) as f32;
    let uniform = Uniform::new_inclusive(-bound, bound).expect("finite positive bound");
    let values: Vec<f32> = (0..fan_in * fan_out).map(|_| uniform.sample(rng)).collect();
    // Zeros init first so burn's own RNG is not consumed; then the weights we drew.
    let mut linear = LinearConfig::new(fan_in, fan_out)
        .with_initializer(Initializer::Zeros)
        .init(device);
    // burn's Linear weight is [d_input, d_output].
    linear.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [fan_in, fan_out]),
        device,
    ));
    linear
}

/// `(hidden Linear -> ReLU) -> Linear -> L2 normalise`: features `[batch, in_features]` to
/// unit-norm embeddings `[batch, embed_dim]`.
///
/// Used after the backbone's global average pool in [`EmbeddingModel`](crate::EmbeddingModel),
/// and alone for training on precomputed features.
#[derive(Module, Debug)]
pub struct EmbeddingHead<B: Backend> {
    /// Optional hidden layer (ReLU after it).
    pub hidden: Option<Linear<B>>,
    /// The embedding layer (the reference's `embedding_layer`).
    pub embedding: Linear<B>,
}

impl<B: Backend> EmbeddingHead<B> {
    /// `[batch, in_features]` -> `[batch, embed_dim]`, each row of unit L2 norm.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = match &self.hidden {
            Some(hidden) => relu(hidden.forward(features)),
            None => features,
        };
        l2_normalize(self.embedding.forward(x))
    }

    /// Expected input width.
    pub fn in_features(&self) -> usize {
        match &self.hidden {
            Some(hidden) => hidden.weight.dims()[0],
            None => self.embedding.weight.dims()[0],
        }
    }

    /// Output width.
    pub fn embed_dim(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// Checks that `dims` is `[batch >= 1, in_features]`.
    pub fn check_input(&self, dims: [usize; 2]) -> Result<(), ModelError> {
        if dims[0] == 0 || dims[1] != self.in_features() {
            return Err(ModelError::BadInput {
                what: "embedding head input",
                expected: format!("[batch >= 1, {}]", self.in_features()),
                got: dims.to_vec(),
            });
        }
        Ok(())
    }
}

/// Global average pool: `[batch, channels, h, w]` -> `[batch, channels]`.
pub fn global_avg_pool<B: Backend>(features: Tensor<B, 4>) -> Tensor<B, 2> {
    let [batch, channels, h, w] = features.dims();
    features
        .reshape([batch, channels, h * w])
        .mean_dim(2)
        .reshape([batch, channels])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xavier_bound_matches_mxnet() {
        // sqrt(2 / ((1024 + 512) / 2)) = sqrt(2 / 768)
        assert!((xavier_bound(1024, 512) - (2.0f64 / 768.0).sqrt()).abs() < 1e-15);
        assert!((xavier_bound(1, 1) - 2.0f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn check_rejects_zero_sizes() {
        for bad in [
            EmbeddingHeadConfig::new().with_embed_dim(0),
            EmbeddingHeadConfig::new().with_in_features(0),
            EmbeddingHeadConfig::new().with_hidden_dim(Some(0)),
        ] {
            let err = bad.check().unwrap_err().to_string();
            assert!(err.contains("must be at least 1"), "{err}");
        }
        assert!(EmbeddingHeadConfig::new().check().is_ok());
    }
}
