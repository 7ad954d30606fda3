//! Forward and forward+backward of the full embedding model, batch 16 at 227 px, on the CPU
//! (`Flex`) backend, beside a baseline: GoogLeNet's stem + inception3a at batch 8, the
//! configuration measured in the project's BURN.md (flex 451 ms forward, 1418 ms
//! forward+backward; PyTorch CPU 68 / 157-177 ms), so that figures from a busy machine can be
//! read as ratios. Slow (seconds per iteration): 10 samples, short measurement.

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use ee_model::{EmbeddingModelConfig, GoogLeNet, GoogLeNetConfig};

const BATCH: usize = 16;
const SIZE: usize = 227;
const BASELINE_BATCH: usize = 8;

/// conv1 .. inception3a: BURN.md's measured slice of the network.
fn stem_and_inception3a<B: Backend>(net: &GoogLeNet<B>, images: Tensor<B, 4>) -> Tensor<B, 4> {
    let x = net.maxpool1.forward(net.conv1.forward(images));
    let x = net
        .maxpool2
        .forward(net.conv3.forward(net.conv2.forward(x)));
    net.inception3a.forward(x)
}

fn bench_baseline(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group("baseline_stem_inception3a_b8_227px_flex");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));

    let net = GoogLeNetConfig::new().init::<Flex>(&device).unwrap();
    let shape = [BASELINE_BATCH, 3, SIZE, SIZE];
    let images = Tensor::<Flex, 4>::random(shape, Distribution::Default, &device);
    group.bench_function("forward_eval", |b| {
        b.iter(|| stem_and_inception3a(&net, images.clone()).into_data())
    });

    let net = GoogLeNetConfig::new()
        .init::<Autodiff<Flex>>(&device)
        .unwrap();
    let images = Tensor::<Autodiff<Flex>, 4>::random(shape, Distribution::Default, &device);
    group.bench_function("forward_backward_train", |b| {
        b.iter(|| {
            let grads = stem_and_inception3a(&net, images.clone()).sum().backward();
            net.conv1.conv.weight.grad(&grads).unwrap().into_data()
        })
    });
    group.finish();
}

fn bench_full_model(c: &mut Criterion) {
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
        b.iter(|| model.forward(images.clone()).into_data())
    });

    // Forward + backward, training mode (batch statistics): a training step minus the
    // optimiser.
    let model = EmbeddingModelConfig::new()
        .init::<Autodiff<Flex>>(&device)
        .unwrap();
    let images =
        Tensor::<Autodiff<Flex>, 4>::random([BATCH, 3, SIZE, SIZE], Distribution::Default, &device);
    group.bench_function("forward_backward_train", |b| {
        b.iter(|| {
            let grads = model.forward(images.clone()).sum().backward();
            model
                .head
                .embedding
                .weight
                .grad(&grads)
                .unwrap()
                .into_data()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_baseline, bench_full_model);
criterion_main!(benches);
