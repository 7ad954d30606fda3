//! Forward and forward+backward of Embedding Expansion + HPHN triplet at the reference's
//! batch shape (B = 128 = 4 classes x 32, D = 512) on the CPU backend, n in {0, 2, 4, 8}.
//!
//! `cargo bench -p ee-loss --bench hphn`

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Int, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig};
use std::time::Duration;

type B = Autodiff<Flex>;

fn batch() -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([128, 512], Distribution::Normal(0.0, 1.0), &device);
    let norm = x.clone().square().sum_dim(1).sqrt();
    let labels: Vec<i32> = (0..128).map(|i| i / 32).collect();
    (
        x / norm,
        Tensor::<B, 1, Int>::from_data(labels.as_slice(), &device),
    )
}

fn hphn(c: &mut Criterion) {
    let (x, labels) = batch();
    let mut group = c.benchmark_group("hphn_b128_d512");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [0usize, 2, 4, 8] {
        let loss = HphnTripletLossConfig::new()
            .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
            .init()
            .unwrap();
        group.bench_with_input(BenchmarkId::new("forward", n), &n, |bench, _| {
            bench.iter(|| {
                let out = loss
                    .forward(x.clone().inner(), labels.clone().inner())
                    .unwrap();
                out.loss.into_scalar()
            })
        });
        group.bench_with_input(BenchmarkId::new("forward_backward", n), &n, |bench, _| {
            bench.iter(|| {
                let x = x.clone().detach().require_grad();
                let out = loss.forward(x.clone(), labels.clone()).unwrap();
                let grads = out.loss.backward();
                x.grad(&grads).unwrap().sum().into_scalar()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hphn);
criterion_main!(benches);
