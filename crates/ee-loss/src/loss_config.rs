//! Choosing a loss by name: [`LossConfig`] (serialisable, for config files) and the built
//! [`Loss`].
//!
//! In TOML the loss is a table with a `name` and any parameters to change; parameters left out
//! keep their defaults (those of the variant's config `new()`), unknown ones are an error:
//!
//! ```
//! use ee_loss::{LossConfig, PairLoss};
//! let config: LossConfig = serde_json::from_str(
//!     r#"{ "name": "multi_similarity", "beta": 40.0, "expansion": { "n_inner_pts": 0 } }"#,
//! )?;
//! let LossConfig::MultiSimilarity(ms) = &config else { panic!() };
//! assert_eq!((ms.alpha, ms.beta, ms.expansion.n_inner_pts), (2.0, 40.0, 0));
//! let loss = config.init()?; // validated
//! assert_eq!(loss.name(), "multi_similarity");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use burn::tensor::{backend::Backend, Int, Tensor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::expansion::EmbeddingExpansion;
use crate::hphn::{HphnTripletLoss, HphnTripletLossConfig};
use crate::lifted::{LiftedStructureLoss, LiftedStructureLossConfig};
use crate::multi_similarity::{MultiSimilarityLoss, MultiSimilarityLossConfig};
use crate::npair::{NPairLoss, NPairLossConfig};
use crate::pair_loss::{LossOutput, PairLoss};
use crate::triplet::{TripletLoss, TripletLossConfig};
use crate::LossError;

/// The loss names [`LossConfig`] accepts, in the order of its variants.
pub const LOSS_NAMES: [&str; 5] = [
    "hphn_triplet",
    "triplet",
    "lifted",
    "npair",
    "multi_similarity",
];

/// A loss chosen by name with its parameters; serialised as `{ name = "...", <parameters> }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", remote = "LossConfig")]
pub enum LossConfig {
    /// The EE paper's hard-positive / hard-negative triplet loss ([`HphnTripletLoss`]).
    HphnTriplet(HphnTripletLossConfig),
    /// Triplet loss, semi-hard or all valid triplets ([`TripletLoss`]).
    Triplet(TripletLossConfig),
    /// Smooth Lifted Structure loss ([`LiftedStructureLoss`]).
    Lifted(LiftedStructureLossConfig),
    /// Multi-class N-pair loss ([`NPairLoss`]).
    Npair(NPairLossConfig),
    /// Multi-Similarity loss ([`MultiSimilarityLoss`]).
    MultiSimilarity(MultiSimilarityLossConfig),
}

impl burn::config::Config for LossConfig {}

impl Serialize for LossConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LossConfig::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for LossConfig {
    /// Reads `name`, starts from that loss's defaults and applies the given parameters.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let given = Value::deserialize(deserializer)?;
        let Value::Object(given) = given else {
            return Err(D::Error::custom(
                "a loss is a table with a `name` and its parameters",
            ));
        };
        let name = match given.get("name") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "loss `name` must be a string, found {other}"
                )))
            }
            None => {
                return Err(D::Error::custom(format!(
                    "the loss needs a `name`, one of {}",
                    LOSS_NAMES.join(", ")
                )))
            }
        };
        let defaults = LossConfig::default_for(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown loss `{name}`: expected one of {}",
                LOSS_NAMES.join(", ")
            ))
        })?;
        let mut merged = serde_json::to_value(&defaults).map_err(D::Error::custom)?;
        merge(&mut merged, given, &format!("loss `{name}`")).map_err(D::Error::custom)?;
        LossConfig::deserialize(merged).map_err(|e| D::Error::custom(format!("loss `{name}`: {e}")))
    }
}

/// Overwrites `base` with `given`, table by table; a key that `base` lacks is an error.
fn merge(base: &mut Value, given: Map<String, Value>, path: &str) -> Result<(), String> {
    let Value::Object(base) = base else {
        return Err(format!("{path} is not a table"));
    };
    for (key, value) in given {
        let here = format!("{path}.{key}");
        match (base.get_mut(&key), value) {
            (None, _) => {
                let known: Vec<&str> = base.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown parameter `{here}`: expected one of {}",
                    known.join(", ")
                ));
            }
            (Some(slot @ Value::Object(_)), Value::Object(table)) => merge(slot, table, &here)?,
            (Some(slot), value) => *slot = value,
        }
    }
    Ok(())
}

impl LossConfig {
    /// The default configuration of the loss called `name` (one of [`LOSS_NAMES`]).
    pub fn default_for(name: &str) -> Option<Self> {
        Some(match name {
            "hphn_triplet" => Self::HphnTriplet(HphnTripletLossConfig::new()),
            "triplet" => Self::Triplet(TripletLossConfig::new()),
            "lifted" => Self::Lifted(LiftedStructureLossConfig::new()),
            "npair" => Self::Npair(NPairLossConfig::new()),
            "multi_similarity" => Self::MultiSimilarity(MultiSimilarityLossConfig::new()),
            _ => return None,
        })
    }

    /// The loss's name, as written in config files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HphnTriplet(_) => LOSS_NAMES[0],
            Self::Triplet(_) => LOSS_NAMES[1],
            Self::Lifted(_) => LOSS_NAMES[2],
            Self::Npair(_) => LOSS_NAMES[3],
            Self::MultiSimilarity(_) => LOSS_NAMES[4],
        }
    }

    /// Validates the parameters and builds the loss.
    pub fn init(&self) -> Result<Loss, LossError> {
        Ok(match self {
            Self::HphnTriplet(config) => Loss::HphnTriplet(config.init()?),
            Self::Triplet(config) => Loss::Triplet(config.init()?),
            Self::Lifted(config) => Loss::Lifted(config.init()?),
            Self::Npair(config) => Loss::Npair(config.init()?),
            Self::MultiSimilarity(config) => Loss::MultiSimilarity(config.init()?),
        })
    }
}

/// A built, validated loss of any kind (from [`LossConfig::init`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// See [`HphnTripletLoss`].
    HphnTriplet(HphnTripletLoss),
    /// See [`TripletLoss`].
    Triplet(TripletLoss),
    /// See [`LiftedStructureLoss`].
    Lifted(LiftedStructureLoss),
    /// See [`NPairLoss`].
    Npair(NPairLoss),
    /// See [`MultiSimilarityLoss`].
    MultiSimilarity(MultiSimilarityLoss),
}

impl Loss {
    /// The loss's name, as written in config files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HphnTriplet(_) => LOSS_NAMES[0],
            Self::Triplet(_) => LOSS_NAMES[1],
            Self::Lifted(_) => LOSS_NAMES[2],
            Self::Npair(_) => LOSS_NAMES[3],
            Self::MultiSimilarity(_) => LOSS_NAMES[4],
        }
    }
}

impl PairLoss for Loss {
    fn expansion(&self) -> &EmbeddingExpansion {
        match self {
            Self::HphnTriplet(loss) => loss.expansion(),
            Self::Triplet(loss) => loss.expansion(),
            Self::Lifted(loss) => loss.expansion(),
            Self::Npair(loss) => loss.expansion(),
            Self::MultiSimilarity(loss) => loss.expansion(),
        }
    }

    fn forward_expanded<B: Backend>(
        &self,
        batch: &crate::expansion::ExpandedBatch<B>,
    ) -> LossOutput<B> {
        match self {
            Self::HphnTriplet(loss) => {
                let output = loss.forward_expanded(batch);
                output.into_output()
            }
            Self::Triplet(loss) => loss.forward_expanded(batch),
            Self::Lifted(loss) => loss.forward_expanded(batch),
            Self::Npair(loss) => loss.forward_expanded(batch),
            Self::MultiSimilarity(loss) => loss.forward_expanded(batch),
        }
    }

    fn forward<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<LossOutput<B>, LossError> {
        let batch = self.expansion().expand(embeddings, labels)?;
        Ok(self.forward_expanded(&batch))
    }
}
