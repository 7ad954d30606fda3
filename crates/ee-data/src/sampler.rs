//! The reference's classes x instances sampler (METHOD.md section 7).
//!
//! An epoch holds `epoch_size` samples, by default `K * number of classes` (98 * 32 = 3136 on
//! CARS196: 24 batches of 128). To build it, walk a random permutation of all items; skip an
//! item whose class is already in the current batch; otherwise emit it followed by `K - 1`
//! items drawn at random from its class (without replacement when the class has at least
//! `K - 1` items, else with replacement; the draw may include the item itself); start a new
//! set of batch classes whenever the emitted count is a multiple of the batch size; stop once
//! `epoch_size` samples are emitted, walking further permutations if needed; drop the
//! incomplete last batch.
//!
//! So every batch holds `P = batch_size / K` distinct classes with the `K` rows of each class
//! consecutive, which is the layout the Embedding Expansion loss needs (rows `(0,1), (2,3), ...`
//! share a label).
//!
//! One difference from the reference code, which matters only for epochs longer than the
//! default: the reference forgets the current batch's classes when it starts a new
//! permutation mid-batch, which can repeat a class inside a batch; we keep them, so the
//! distinct-classes contract always holds. With the default epoch size a single permutation
//! always suffices (its first occurrence of each class is always emitted), so the two agree.
//!
//! Randomness: the batches of epoch `e` come from a ChaCha8 stream keyed by `(seed, e)`, so a
//! seed gives the same batches on every machine, and resuming needs only a [`SamplerState`].

use burn::config::Config;
use rand::seq::{index, SliceRandom};
use rand::Rng;

use crate::error::{DataError, Result as DataResult};
use crate::seeding::{keyed_rng, Purpose};

/// Hyper-parameters of [`ClassBalancedSampler`]; [`SamplerConfig::init`] validates them
/// against the labels.
#[derive(Config, Debug, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Rows per batch, `B = P * K`.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Instances per class, `K` (the reference's `num_instances`).
    #[config(default = 32)]
    pub instances_per_class: usize,
    /// Samples per epoch before the incomplete last batch is dropped; `None` means
    /// `K * number of classes`, as the reference.
    #[config(default = "None")]
    pub epoch_size: Option<usize>,
    /// Refuse an odd `K`: Embedding Expansion pairs rows `(0,1), (2,3), ...` of a class.
    #[config(default = true)]
    pub require_even_instances: bool,
}

impl SamplerConfig {
    /// Checks the rules that need no data: `K >= 1`, `K` even when `require_even_instances`
    /// is set, `batch_size` a positive multiple of `K`, and an explicit `epoch_size` that
    /// holds a batch. [`SamplerConfig::init`] calls
    /// it; call it alone to check a config before the dataset is read.
    pub fn check(&self) -> DataResult<()> {
        let instances = self.instances_per_class;
        let batch = self.batch_size;
        if instances == 0 {
            return Err(DataError::config(
                "instances_per_class",
                instances,
                "must be at least 1",
            ));
        }
        if self.require_even_instances && !instances.is_multiple_of(2) {
            return Err(DataError::config(
                "instances_per_class",
                instances,
                "must be even: Embedding Expansion pairs consecutive rows of a class",
            ));
        }
        if batch == 0 || !batch.is_multiple_of(instances) {
            return Err(DataError::config(
                "batch_size",
                batch,
                format!("must be a positive multiple of instances_per_class = {instances}"),
            ));
        }
        // The walk emits whole groups of K: an epoch of `epoch_size` samples holds
        // ceil(epoch_size / K) * K of them.
        if let Some(epoch_size) = self.epoch_size {
            if epoch_size.div_ceil(instances) * instances < batch {
                return Err(DataError::config(
                    "epoch_size",
                    epoch_size,
                    format!("gives no complete batch of {batch}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the parameters against `labels` (one class label per item) and builds the
    /// sampler; `seed` keys all its randomness.
    ///
    /// Errors name the parameter and the rule: batch size divisible by `K`, `K` even when
    /// required, at least `batch_size / K` classes, an epoch of at least one batch.
    pub fn init(&self, labels: &[u32], seed: u64) -> DataResult<ClassBalancedSampler> {
        self.check()?;
        let k = self.instances_per_class;
        let b = self.batch_size;
        if labels.is_empty() {
            return Err(DataError::EmptySplit(
                "sampler: the split has no items".into(),
            ));
        }
        let mut sorted: Vec<u32> = labels.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let class_of_item: Vec<usize> = labels
            .iter()
            .map(|l| sorted.binary_search(l).expect("label is in the sorted set"))
            .collect();
        let mut members = vec![Vec::new(); sorted.len()];
        for (item, &class) in class_of_item.iter().enumerate() {
            members[class].push(item);
        }
        let classes_per_batch = b / k;
        if sorted.len() < classes_per_batch {
            return Err(DataError::config(
                "batch_size",
                b,
                format!(
                    "needs {classes_per_batch} distinct classes per batch (batch_size / instances_per_class) but the split has only {}",
                    sorted.len()
                ),
            ));
        }
        let epoch_size = self.epoch_size.unwrap_or(k * sorted.len());
        // the walk emits whole groups of K, so it stops at the first multiple of K >= epoch_size
        let emitted = epoch_size.div_ceil(k) * k;
        let batches_per_epoch = emitted / b;
        if batches_per_epoch == 0 {
            return Err(DataError::config(
                "epoch_size",
                epoch_size,
                format!(
                    "gives no complete batch of {b} (K * classes = {})",
                    k * sorted.len()
                ),
            ));
        }
        Ok(ClassBalancedSampler {
            config: self.clone(),
            seed,
            class_labels: sorted,
            class_of_item,
            members,
            epoch_size,
            batches_per_epoch,
        })
    }
}

/// Where a training run is in the sampler's stream: enough to resume exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamplerState {
    /// The seed the sampler was built with.
    pub seed: u64,
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// The next batch of that epoch to be used (0-based).
    pub next_batch: usize,
}

/// Yields batches of item indices: `P` distinct classes x `K` consecutive rows each.
///
/// Stateless between epochs: `epoch(e)` always returns the same batches for the same seed.
#[derive(Debug, Clone)]
pub struct ClassBalancedSampler {
    config: SamplerConfig,
    seed: u64,
    class_labels: Vec<u32>,
    class_of_item: Vec<usize>,
    members: Vec<Vec<usize>>,
    epoch_size: usize,
    batches_per_epoch: usize,
}

impl ClassBalancedSampler {
    /// The batches of epoch `epoch`, each a list of `batch_size` item indices.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let batch_size = self.config.batch_size;
        let emitted = self.walk(epoch);
        emitted
            .chunks_exact(batch_size)
            .take(self.batches_per_epoch)
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The batches left in the epoch `state` points into (from `state.next_batch` on).
    ///
    /// Returns an error when `state` was made with another seed.
    pub fn resume(&self, state: SamplerState) -> DataResult<Vec<Vec<usize>>> {
        if state.seed != self.seed {
            return Err(DataError::config(
                "sampler state seed",
                state.seed,
                format!("does not match the sampler's seed {}", self.seed),
            ));
        }
        Ok(self
            .epoch(state.epoch)
            .into_iter()
            .skip(state.next_batch)
            .collect())
    }

    /// The state after using batch `batch` of epoch `epoch` (rolls over to the next epoch).
    pub fn state_after(&self, epoch: u64, batch: usize) -> SamplerState {
        if batch + 1 >= self.batches_per_epoch {
            SamplerState {
                seed: self.seed,
                epoch: epoch + 1,
                next_batch: 0,
            }
        } else {
            SamplerState {
                seed: self.seed,
                epoch,
                next_batch: batch + 1,
            }
        }
    }

    /// Complete batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    /// Samples per epoch before dropping the incomplete last batch.
    pub fn epoch_size(&self) -> usize {
        self.epoch_size
    }

    /// Rows per batch.
    pub fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    /// Rows per class in a batch, `K`.
    pub fn instances_per_class(&self) -> usize {
        self.config.instances_per_class
    }

    /// Number of distinct classes among the items.
    pub fn num_classes(&self) -> usize {
        self.class_labels.len()
    }

    /// The seed keying this sampler.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The validated configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The reference's walk: all emitted indices (a multiple of K, at least `epoch_size`).
    fn walk(&self, epoch: u64) -> Vec<usize> {
        let instances = self.config.instances_per_class;
        let batch_size = self.config.batch_size;
        let items = self.class_of_item.len();
        let mut rng = keyed_rng(self.seed, Purpose::Sampler, epoch, 0);
        let mut out = Vec::with_capacity(self.epoch_size + instances);
        let mut in_batch = vec![false; self.members.len()];
        let mut batch_classes = Vec::with_capacity(batch_size / instances);
        let mut permutation: Vec<usize> = (0..items).collect();
        loop {
            permutation.shuffle(&mut rng);
            for &item in &permutation {
                let class = self.class_of_item[item];
                if in_batch[class] {
                    continue;
                }
                in_batch[class] = true;
                batch_classes.push(class);
                out.push(item);
                let members = &self.members[class];
                if members.len() >= instances - 1 {
                    out.extend(
                        index::sample(&mut rng, members.len(), instances - 1)
                            .iter()
                            .map(|j| members[j]),
                    );
                } else {
                    out.extend(
                        (0..instances - 1).map(|_| members[rng.random_range(0..members.len())]),
                    );
                }
                if out.len() >= self.epoch_size {
                    return out;
                }
                if out.len() % batch_size == 0 {
                    for c in batch_classes.drain(..) {
                        in_batch[c] = false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(class_sizes: &[usize]) -> Vec<u32> {
        class_sizes
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as u32 * 10, n))
            .collect()
    }

    #[test]
    fn defaults_match_the_reference_run() {
        let c = SamplerConfig::new();
        assert_eq!(
            (c.batch_size, c.instances_per_class, c.epoch_size),
            (128, 32, None)
        );
        // CARS196: 98 classes x 32 = 3136 samples = 24 full batches of 128 + 64 dropped
        let s = c.init(&labels(&[82; 98]), 0).unwrap();
        assert_eq!(s.batches_per_epoch(), 24);
        assert_eq!(s.epoch(0).len(), 24);
    }

    #[test]
    fn validation_names_the_parameter() {
        let l = labels(&[5; 10]);
        let err = SamplerConfig::new()
            .with_batch_size(10)
            .with_instances_per_class(4)
            .init(&l, 0);
        assert!(err.unwrap_err().to_string().contains("batch_size = 10"));
        let err = SamplerConfig::new()
            .with_batch_size(9)
            .with_instances_per_class(3)
            .init(&l, 0);
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("instances_per_class = 3"));
        // odd K is fine without EE
        SamplerConfig::new()
            .with_batch_size(9)
            .with_instances_per_class(3)
            .with_require_even_instances(false)
            .init(&l, 0)
            .unwrap();
        let err = SamplerConfig::new()
            .with_batch_size(44)
            .with_instances_per_class(4)
            .init(&l, 0);
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("11 distinct classes") && msg.contains("only 10"),
            "{msg}"
        );
        let err = SamplerConfig::new()
            .with_batch_size(8)
            .with_instances_per_class(2)
            .with_epoch_size(Some(5))
            .init(&l, 0);
        assert!(err.unwrap_err().to_string().contains("epoch_size = 5"));
        assert!(SamplerConfig::new().init(&[], 0).is_err());
    }
}
