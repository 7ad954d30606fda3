//! Images per second of the training pipeline (decode + train transform + normalise + tensor)
//! on 500 x 375 JPEGs at S = 227, without and with the decoded-image cache.
//!
//! `cargo bench -p ee-data` (short measurement). Criterion reports elements/s = images/s.

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::time::Duration;

use burn::backend::Flex;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ee_data::synth::render_class_image;
use ee_data::{Augmentation, BatchPlan, Item, LoaderConfig, Split};
use rand::SeedableRng;

const IMAGES: usize = 64;
const BATCH: usize = 32;

fn write_jpegs(dir: &std::path::Path) -> Split {
    let mut items = Vec::new();
    for i in 0..IMAGES {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
        let (img, _) = render_class_image(i % 8, 0, 500, 375, &mut rng);
        let path = dir.join(format!("{i:04}.jpg"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 90)
            .encode_image(&img)
            .unwrap();
        items.push(Item {
            path,
            class_id: (i % 8) as u32,
            bbox: None,
        });
    }
    Split::new(items, "bench").unwrap()
}

fn plan(epoch: u64) -> BatchPlan {
    BatchPlan {
        batches: (0..IMAGES)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(<[usize]>::to_vec)
            .collect(),
        first_batch: 0,
        augmentation: Augmentation::Train { seed: 1, epoch },
        group_size: 2,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let split = write_jpegs(dir.path());
    let device = Default::default();
    let mut group = c.benchmark_group("train_pipeline_500x375_jpeg_to_227");
    group.throughput(Throughput::Elements(IMAGES as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));

    for workers in [1usize, 2] {
        let loader = LoaderConfig::new()
            .with_workers(workers)
            .init(&split)
            .unwrap();
        let mut epoch = 0;
        group.bench_function(format!("uncached_{workers}_workers"), |b| {
            b.iter(|| {
                epoch += 1;
                for batch in loader.iter::<Flex>(plan(epoch), &device) {
                    criterion::black_box(batch.unwrap());
                }
            })
        });
        let cached = LoaderConfig::new()
            .with_workers(workers)
            .with_cache_images(true)
            .init(&split)
            .unwrap();
        for batch in cached.iter::<Flex>(plan(0), &device) {
            batch.unwrap();
        }
        group.bench_function(format!("cached_{workers}_workers"), |b| {
            b.iter(|| {
                epoch += 1;
                for batch in cached.iter::<Flex>(plan(epoch), &device) {
                    criterion::black_box(batch.unwrap());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
