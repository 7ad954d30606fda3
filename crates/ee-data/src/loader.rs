//! Parallel image loading into burn tensors, with bounded prefetch and an opt-in cache.
//!
//! An [`ImageLoader`] owns a split's items. A [`BatchPlan`] lists the batches to load (from
//! the sampler for training, in file order for testing); [`ImageLoader::iter`] starts worker
//! threads that decode and transform whole batches while the caller trains on earlier ones,
//! and yields them in plan order as [`ImageBatch`]es of `[N, 3, S, S]` tensors. At most
//! `prefetch_batches` batches are decoded ahead (in flight or waiting), which bounds memory.
//!
//! Randomness: the augmentation of row `r` of batch `b` in epoch `e` comes from a ChaCha8
//! stream keyed by `(seed, e, b, r)`, so results do not depend on thread timing and a
//! resumed epoch gets the same images as an uninterrupted one.
//!
//! The train transform is [`LoaderConfig::augment`] (an [`AugmentConfig`]); its default is the
//! reference's transform. The test transform is always a plain resize to S x S.
//!
//! The cache (`cache_images`) decodes each image once and keeps it, box-cropped and resized to
//! `R = round(enlarge * S)` square RGB u8 (`R = round(1.125 S)` by default), in memory: later
//! epochs only crop (or resize to S) and flip. It costs `3 R^2` bytes per image (195 KB at
//! S = 227: 1.6 GB for the 8054 CARS196 training images). Images then pass through two
//! resizes in the resize-only branches, in `random_resized_crop` (which crops the cached
//! square, not the original image) and in the test transform, so cached and uncached pixels
//! differ slightly.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use crossbeam_channel::{bounded, Receiver, Sender};
use image::RgbImage;

use crate::augment::AugmentConfig;
use crate::decode::load_rgb;
use crate::error::{DataError, Result as DataResult};
use crate::item::{Item, Split};
use crate::sampler::{ClassBalancedSampler, SamplerState};
use crate::seeding::{keyed_rng, Purpose};
use crate::transform::{normalize_into, resize, test_transform};

/// Settings of an [`ImageLoader`]; [`LoaderConfig::init`] validates them.
#[derive(Config, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Output side `S` of the square images (the reference run uses 227).
    #[config(default = 227)]
    pub image_size: u32,
    /// Crop to each item's bounding box before transforming (off in the reference).
    #[config(default = false)]
    pub use_bbox: bool,
    /// Worker threads decoding batches; 0 means one per available CPU.
    #[config(default = 0)]
    pub workers: usize,
    /// Batches decoded ahead of the consumer at most (in flight plus waiting).
    #[config(default = 4)]
    pub prefetch_batches: usize,
    /// Keep every decoded image in memory, resized to `round(augment.enlarge * S)` square.
    #[config(default = false)]
    pub cache_images: bool,
    /// Skip missing or undecodable images (with a warning, counted) instead of failing.
    /// In a training batch the whole group of `K` rows of that class is dropped, so the
    /// batch keeps its pair layout but is shorter.
    #[config(default = false)]
    pub skip_unreadable: bool,
    /// The train augmentation (flip, crop policy, enlarge factor); the default is the
    /// reference's transform, draw for draw.
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
}

impl LoaderConfig {
    /// Checks the settings and builds a loader over `split`'s items.
    pub fn init(&self, split: &Split) -> DataResult<ImageLoader> {
        if self.image_size == 0 {
            return Err(DataError::config("image_size", 0, "must be at least 1"));
        }
        if self.prefetch_batches == 0 {
            return Err(DataError::config(
                "prefetch_batches",
                0,
                "must be at least 1",
            ));
        }
        self.augment.check()?;
        let workers = if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers
        };
        let cache = self.cache_images.then(|| ImageCache {
            side: self.augment.enlarged_side(self.image_size),
            slots: (0..split.len()).map(|_| OnceLock::new()).collect(),
        });
        Ok(ImageLoader {
            inner: Arc::new(LoaderInner {
                items: split.items().to_vec(),
                config: self.clone(),
                workers,
                cache,
                skipped: AtomicUsize::new(0),
            }),
        })
    }
}

/// How the images of a batch are transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augmentation {
    /// The random train transform, keyed by `seed` and `epoch`.
    Train {
        /// Seed of the run.
        seed: u64,
        /// Epoch the batches belong to.
        epoch: u64,
    },
    /// The deterministic test transform.
    Test,
}

/// Which batches to load, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Item indices of each batch.
    pub batches: Vec<Vec<usize>>,
    /// Index of the first batch within its epoch (keys the augmentation; non-zero on resume).
    pub first_batch: usize,
    /// The transform.
    pub augmentation: Augmentation,
    /// Rows that stand or fall together when an image is skipped (`K` in training, 1 in test).
    pub group_size: usize,
}

impl BatchPlan {
    /// The training batches left in the epoch that `state` points into, with the train
    /// transform keyed by the sampler's seed.
    pub fn train(sampler: &ClassBalancedSampler, state: SamplerState) -> DataResult<Self> {
        Ok(BatchPlan {
            batches: sampler.resume(state)?,
            first_batch: state.next_batch,
            augmentation: Augmentation::Train {
                seed: sampler.seed(),
                epoch: state.epoch,
            },
            group_size: sampler.instances_per_class(),
        })
    }

    /// All `len` items in order, in batches of `batch_size` (the last one may be shorter),
    /// with the test transform.
    pub fn test(len: usize, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        BatchPlan {
            batches: (0..len)
                .step_by(batch_size)
                .map(|start| (start..(start + batch_size).min(len)).collect())
                .collect(),
            first_batch: 0,
            augmentation: Augmentation::Test,
            group_size: 1,
        }
    }
}

/// One batch on the device.
#[derive(Debug, Clone)]
pub struct ImageBatch<B: Backend> {
    /// Normalised images, `[N, 3, S, S]`.
    pub images: Tensor<B, 4>,
    /// Class labels, `[N]`.
    pub labels: Tensor<B, 1, Int>,
    /// Class labels on the host, in row order.
    pub class_ids: Vec<u32>,
    /// Item index of each row.
    pub item_indices: Vec<usize>,
    /// Index of the batch within its epoch (or test pass).
    pub batch_index: usize,
    /// Items dropped from this batch because they could not be loaded (`skip_unreadable`).
    pub skipped: Vec<usize>,
}

/// A batch decoded on the host, before it goes to a device.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Normalised pixels, `[rows, 3, S, S]` row-major.
    pub pixels: Vec<f32>,
    /// Output side `S`.
    pub image_size: u32,
    /// Class labels, in row order.
    pub class_ids: Vec<u32>,
    /// Item index of each row.
    pub item_indices: Vec<usize>,
    /// Index of the batch within its epoch (or test pass).
    pub batch_index: usize,
    /// Items dropped because they could not be loaded.
    pub skipped: Vec<usize>,
}

impl HostBatch {
    /// Moves the batch to `device`.
    pub fn to_device<B: Backend>(self, device: &B::Device) -> ImageBatch<B> {
        let count = self.item_indices.len();
        let side = self.image_size as usize;
        let labels: Vec<i64> = self.class_ids.iter().map(|&c| i64::from(c)).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(self.pixels, [count, 3, side, side]), device),
            labels: Tensor::from_data(TensorData::new(labels, [count]), device),
            class_ids: self.class_ids,
            item_indices: self.item_indices,
            batch_index: self.batch_index,
            skipped: self.skipped,
        }
    }
}

struct ImageCache {
    side: u32,
    slots: Vec<OnceLock<Box<[u8]>>>,
}

struct LoaderInner {
    items: Vec<Item>,
    config: LoaderConfig,
    workers: usize,
    cache: Option<ImageCache>,
    skipped: AtomicUsize,
}

/// Loads a split's images into batches; cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct ImageLoader {
    inner: Arc<LoaderInner>,
}

impl std::fmt::Debug for ImageLoader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ImageLoader")
            .field("items", &self.inner.items.len())
            .field("config", &self.inner.config)
            .field("workers", &self.inner.workers)
            .finish()
    }
}

impl ImageLoader {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.inner.items.len()
    }

    /// Always false: splits are never empty.
    pub fn is_empty(&self) -> bool {
        self.inner.items.is_empty()
    }

    /// The items, in split order.
    pub fn items(&self) -> &[Item] {
        &self.inner.items
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.config
    }

    /// Number of worker threads [`ImageLoader::iter`] starts.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Images skipped so far because they could not be loaded (`skip_unreadable`).
    pub fn skipped_count(&self) -> usize {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Images decoded into the cache so far (0 without cache).
    pub fn cached_count(&self) -> usize {
        self.inner
            .cache
            .as_ref()
            .map_or(0, |c| c.slots.iter().filter(|s| s.get().is_some()).count())
    }

    /// Loads one batch on the calling thread (no workers, no prefetch).
    pub fn load<B: Backend>(
        &self,
        indices: &[usize],
        batch_index: usize,
        augmentation: Augmentation,
        group_size: usize,
        device: &B::Device,
    ) -> DataResult<ImageBatch<B>> {
        Ok(self
            .inner
            .load_host(indices, batch_index, augmentation, group_size)?
            .to_device(device))
    }

    /// Starts worker threads loading `plan`'s batches ahead of the consumer; the iterator
    /// yields them in plan order. After the first error it yields nothing more. Dropping it
    /// stops the workers.
    pub fn iter<B: Backend>(&self, plan: BatchPlan, device: &B::Device) -> BatchIter<B> {
        let capacity = self.inner.config.prefetch_batches;
        let total = plan.batches.len();
        let (job_tx, job_rx) = bounded::<(usize, Vec<usize>)>(capacity);
        let (result_tx, result_rx) = bounded::<(usize, DataResult<HostBatch>)>(capacity);
        let (token_tx, token_rx) = bounded::<()>(capacity);
        for _ in 0..capacity {
            token_tx.send(()).expect("capacity tokens fit");
        }
        let mut threads = Vec::new();
        let BatchPlan {
            batches,
            first_batch,
            augmentation,
            group_size,
        } = plan;
        threads.push(std::thread::spawn(move || {
            for (position, batch) in batches.into_iter().enumerate() {
                if token_rx.recv().is_err() || job_tx.send((position, batch)).is_err() {
                    return;
                }
            }
        }));
        for _ in 0..self.inner.workers.min(total.max(1)) {
            let inner = Arc::clone(&self.inner);
            let job_rx = job_rx.clone();
            let result_tx = result_tx.clone();
            threads.push(std::thread::spawn(move || {
                while let Ok((position, indices)) = job_rx.recv() {
                    let result =
                        inner.load_host(&indices, first_batch + position, augmentation, group_size);
                    if result_tx.send((position, result)).is_err() {
                        return;
                    }
                }
            }));
        }
        BatchIter {
            results: result_rx,
            tokens: Some(token_tx),
            pending: BTreeMap::new(),
            next: 0,
            total,
            device: device.clone(),
            threads,
            failed: false,
            _backend: PhantomData,
        }
    }
}

impl LoaderInner {
    /// The source image of item `index` for the transform: cached, or freshly decoded.
    fn source(&self, index: usize) -> DataResult<RgbImage> {
        let item = &self.items[index];
        let bbox = if self.config.use_bbox {
            item.bbox
        } else {
            None
        };
        match &self.cache {
            None => load_rgb(&item.path, bbox),
            Some(cache) => {
                let slot = &cache.slots[index];
                if slot.get().is_none() {
                    let resized = resize(&load_rgb(&item.path, bbox)?, cache.side, cache.side);
                    let _ = slot.set(resized.into_raw().into_boxed_slice());
                }
                let bytes = slot.get().expect("slot was just filled").to_vec();
                Ok(RgbImage::from_raw(cache.side, cache.side, bytes).expect("cached size matches"))
            }
        }
    }

    fn load_host(
        &self,
        indices: &[usize],
        batch_index: usize,
        augmentation: Augmentation,
        group_size: usize,
    ) -> DataResult<HostBatch> {
        let side = self.config.image_size;
        let plane = 3 * (side as usize) * (side as usize);
        let group_size = group_size.max(1);
        let mut pixels = vec![0.0f32; indices.len() * plane];
        let mut keep = vec![true; indices.len()];
        let mut skipped = Vec::new();
        for (row, &index) in indices.iter().enumerate() {
            if index >= self.items.len() {
                return Err(DataError::config(
                    "item index",
                    index,
                    format!("out of range for a split of {} items", self.items.len()),
                ));
            }
            if !keep[row] {
                continue;
            }
            let image = match self.source(index) {
                Ok(image) => image,
                Err(e) if self.config.skip_unreadable => {
                    let count = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
                    log::warn!("skipping unreadable image ({count} so far): {e}");
                    skipped.push(index);
                    let group = row / group_size;
                    let end = ((group + 1) * group_size).min(indices.len());
                    keep[group * group_size..end]
                        .iter_mut()
                        .for_each(|k| *k = false);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let out = match augmentation {
                Augmentation::Test => test_transform(&image, side),
                Augmentation::Train { seed, epoch } => {
                    let mut rng = keyed_rng(
                        seed,
                        Purpose::Augment,
                        epoch,
                        ((batch_index as u64) << 32) | row as u64,
                    );
                    self.config.augment.transform(&image, side, &mut rng)
                }
            };
            normalize_into(&out, &mut pixels[row * plane..(row + 1) * plane]);
        }
        let mut class_ids = Vec::with_capacity(indices.len());
        let mut item_indices = Vec::with_capacity(indices.len());
        let mut write = 0;
        for (row, &index) in indices.iter().enumerate() {
            if !keep[row] {
                continue;
            }
            if write != row {
                pixels.copy_within(row * plane..(row + 1) * plane, write * plane);
            }
            class_ids.push(self.items[index].class_id);
            item_indices.push(index);
            write += 1;
        }
        pixels.truncate(write * plane);
        Ok(HostBatch {
            pixels,
            image_size: side,
            class_ids,
            item_indices,
            batch_index,
            skipped,
        })
    }
}

/// Batches of a [`BatchPlan`], in order, loaded ahead by worker threads.
pub struct BatchIter<B: Backend> {
    results: Receiver<(usize, DataResult<HostBatch>)>,
    tokens: Option<Sender<()>>,
    pending: BTreeMap<usize, DataResult<HostBatch>>,
    next: usize,
    total: usize,
    device: B::Device,
    threads: Vec<JoinHandle<()>>,
    failed: bool,
    _backend: PhantomData<B>,
}

impl<B: Backend> BatchIter<B> {
    /// Number of batches still to come.
    pub fn remaining(&self) -> usize {
        if self.failed {
            0
        } else {
            self.total - self.next
        }
    }

    /// The next batch on the host (no device transfer).
    pub fn next_host(&mut self) -> Option<DataResult<HostBatch>> {
        if self.failed || self.next >= self.total {
            return None;
        }
        let result = loop {
            if let Some(r) = self.pending.remove(&self.next) {
                break r;
            }
            match self.results.recv() {
                Ok((position, r)) => {
                    self.pending.insert(position, r);
                }
                Err(_) => {
                    break Err(DataError::Loader(
                        "the worker threads stopped unexpectedly".into(),
                    ))
                }
            }
        };
        self.next += 1;
        if let Some(tokens) = &self.tokens {
            let _ = tokens.send(());
        }
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

impl<B: Backend> Iterator for BatchIter<B> {
    type Item = DataResult<ImageBatch<B>>;

    fn next(&mut self) -> Option<Self::Item> {
        let device = self.device.clone();
        self.next_host().map(|r| r.map(|h| h.to_device(&device)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining()))
    }
}

impl<B: Backend> Drop for BatchIter<B> {
    fn drop(&mut self) {
        // Closing the token and result channels makes the feeder and the workers return.
        self.tokens = None;
        let (_, dead) = bounded(0);
        self.results = dead;
        self.pending.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::ResizePolicy;
    use crate::transform::train_transform;

    /// The loader's train rows are `config.augment.transform` with the stream keyed by
    /// `(seed, epoch, batch, row)`; with the default config that is the reference's
    /// `train_transform`, cached or not.
    #[test]
    fn train_rows_use_the_augment_config_with_keyed_streams() {
        let dir = tempfile::tempdir().unwrap();
        let src = RgbImage::from_fn(45, 31, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 8) as u8, ((x * y) % 251) as u8])
        });
        let path = dir.path().join("a.png");
        src.save(&path).unwrap();
        let split = Split::new(
            vec![Item {
                path,
                class_id: 0,
                bbox: None,
            }],
            "t",
        )
        .unwrap();
        let size = 16;
        let plane = 3 * 16 * 16;
        let configs = [
            AugmentConfig::new(),
            AugmentConfig::new().with_flip(false),
            AugmentConfig::new()
                .with_policy(ResizePolicy::RandomResizedCrop)
                .with_enlarge(1.5),
            AugmentConfig::new().with_policy(ResizePolicy::RandomCrop),
        ];
        for (i, augment) in configs.iter().enumerate() {
            for cache in [false, true] {
                let loader = LoaderConfig::new()
                    .with_image_size(size)
                    .with_cache_images(cache)
                    .with_augment(augment.clone())
                    .init(&split)
                    .unwrap();
                let (seed, epoch, batch_index) = (11, 3, 5);
                let host = loader
                    .inner
                    .load_host(&[0; 6], batch_index, Augmentation::Train { seed, epoch }, 2)
                    .unwrap();
                let source = if cache {
                    let side = augment.enlarged_side(size);
                    resize(&src, side, side)
                } else {
                    src.clone()
                };
                for row in 0..6 {
                    let key = ((batch_index as u64) << 32) | row as u64;
                    let mut rng = keyed_rng(seed, Purpose::Augment, epoch, key);
                    let want = augment.transform(&source, size, &mut rng);
                    let mut want_px = vec![0.0; plane];
                    normalize_into(&want, &mut want_px);
                    let got = &host.pixels[row * plane..(row + 1) * plane];
                    assert_eq!(got, &want_px[..], "config {i} cache {cache} row {row}");
                    if i == 0 {
                        let mut rng = keyed_rng(seed, Purpose::Augment, epoch, key);
                        assert_eq!(want, train_transform(&source, size, &mut rng));
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_augment_settings_are_refused_by_init() {
        let dir = tempfile::tempdir().unwrap();
        let split = Split::new(
            vec![Item {
                path: dir.path().join("x.png"),
                class_id: 0,
                bbox: None,
            }],
            "t",
        )
        .unwrap();
        let err = LoaderConfig::new()
            .with_augment(AugmentConfig::new().with_enlarge(0.5))
            .init(&split)
            .unwrap_err()
            .to_string();
        assert!(err.contains("augment.enlarge = 0.5"), "{err}");
    }
}
