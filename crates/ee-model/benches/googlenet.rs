//! Forward and forward+backward of the full embedding model, batch 16 at 227 px, on the CPU
//! (`Flex`) backend. Slow (seconds per iteration): 10 samples, short measurement.

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use ee_model::EmbeddingModelConfig;

const BATCH: usize = 16;
const SIZE: usize = 227;

fn bench_googlenet(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group("embedding_model_b16_227px_flex");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(20));

    // Forward, inference mode (running BatchNorm statistics, no autodiff graph).
    let model = EmbeddingModelConfig::new().init::<Flex>(&device).unwrap();
    let images = Tensor::<Flex, 4>::random([BATCH, 3, SIZE, SIZE], Distribution::Default, &device);
    group.bench_function("forward_eval", |b| {
        b.iter(|| {
            let out = model.forward(images.clone());
            out.into_data() // wait for the result
        })
    });

    // Forward + backward, training mode (batch statistics), as one training step minus the
    // optimiser.
    let model = EmbeddingModelConfig::new()
        .init::<Autodiff<Flex>>(&device)
        .unwrap();
    let images =
        Tensor::<Autodiff<Flex>, 4>::random([BATCH, 3, SIZE, SIZE], Distribution::Default, &device);
    group.bench_function("forward_backward_train", |b| {
        b.iter(|| {
            let out = model.forward(images.clone());
            let grads = out.sum().backward();
            let g = model.head.embedding.weight.grad(&grads).unwrap();
            g.into_data()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_googlenet);
criterion_main!(benches);
