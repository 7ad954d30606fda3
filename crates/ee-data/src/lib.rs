//! `ee-data` turns a metric-learning dataset on disk into training and test batches, as the
//! reference implementation of Embedding Expansion does (METHOD.md sections 7 and 8).
//!
//! - [`formats`]: readers for the reference's meta files, CARS196 (`cars_annos.mat`),
//!   CUB-200-2011, Stanford Online Products and folder-per-class trees, each giving a
//!   class-disjoint [`Dataset`] of [`Item`]s (path, class label, optional box) and naming the
//!   file and line of anything malformed; plus writers of the reference's meta files.
//! - [`features`]: precomputed feature vectors with labels (CSV, `.npy`).
//! - [`sampler`]: the reference's classes x instances sampler ([`SamplerConfig`] ->
//!   [`ClassBalancedSampler`]), seeded with ChaCha8 so a seed gives the same batches everywhere.
//! - [`loader`]: parallel decoding with bounded prefetch into `[N, 3, S, S]` burn tensors, with
//!   the reference's train and test transforms ([`transform`]) and an opt-in image cache.
//! - [`augment`]: the configurable train augmentation ([`AugmentConfig`]: flip, crop policy,
//!   enlarge factor), the reference's transform by default.
//! - [`synth`]: small synthetic datasets in every layout, for tests and demos.
//!
//! # Example: one training epoch and a test pass
//!
//! ```no_run
//! use burn::backend::Flex;
//! use ee_data::{formats, BatchPlan, LoaderConfig, SamplerConfig};
//!
//! # fn main() -> Result<(), ee_data::DataError> {
//! let root = std::path::Path::new("data/CARS_196");
//! let dataset = formats::read_meta_dataset(root, &root.join("train.txt"), &root.join("test.txt"))?;
//! let sampler = SamplerConfig::new()          // 128 = 4 classes x 32 instances
//!     .init(&dataset.train.labels(), 42)?;    // validated against the labels
//! let train = LoaderConfig::new().with_cache_images(true).init(&dataset.train)?;
//! let device = Default::default();
//!
//! let epoch = 0;
//! let state = ee_data::SamplerState { seed: sampler.seed(), epoch, next_batch: 0 };
//! for batch in train.iter::<Flex>(BatchPlan::train(&sampler, state)?, &device) {
//!     let batch = batch?;      // batch.images: [128, 3, 227, 227], batch.labels: [128]
//!     // ... forward, loss, backward; checkpoint sampler.state_after(epoch, batch.batch_index)
//! }
//!
//! let test = LoaderConfig::new().init(&dataset.test)?;
//! for batch in test.iter::<Flex>(BatchPlan::test(test.len(), 128), &device) {
//!     let _embeddings_input = batch?.images;
//! }
//! # Ok(()) }
//! ```

pub mod augment;
pub mod decode;
pub mod error;
pub mod features;
pub mod formats;
pub mod item;
pub mod loader;
pub mod sampler;
mod seeding;
pub mod synth;
pub mod transform;

pub use augment::{AugmentConfig, ResizePolicy};
pub use decode::load_rgb;
pub use error::{DataError, Result};
pub use features::{
    read_features_csv, read_features_npy, write_features_csv, write_features_npy, FeatureSet,
};
pub use item::{BoundingBox, Dataset, Item, Split};
pub use loader::{
    Augmentation, BatchIter, BatchPlan, HostBatch, ImageBatch, ImageLoader, LoaderConfig,
};
pub use sampler::{ClassBalancedSampler, SamplerConfig, SamplerState};
pub use synth::{
    write_synthetic_dataset, SynthDataset, SynthImageFormat, SynthLayout, SynthOptions,
};
pub use transform::{IMAGENET_MEAN, IMAGENET_STD};
