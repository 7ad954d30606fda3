//! Forward + backward of every loss at the paper's batch (B = 128 = 4 classes x 32,
//! D = 512), without (n = 0) and with (n = 2) Embedding Expansion, on Autodiff<Flex>.
//!
//! `cargo bench -p ee-loss --bench losses`

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ee_loss::{EmbeddingExpansionConfig, LossConfig, PairLoss, TripletNegatives, LOSS_NAMES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = Autodiff<Flex>;

const CLASSES: usize = 4;
const INSTANCES: usize = 32;
const DIM: usize = 512;

fn config(name: &str, n: usize) -> LossConfig {
    let expansion = EmbeddingExpansionConfig::new().with_n_inner_pts(n);
    match LossConfig::default_for(name).expect("known loss") {
        LossConfig::HphnTriplet(c) => LossConfig::HphnTriplet(c.with_expansion(expansion)),
        LossConfig::Triplet(c) => LossConfig::Triplet(c.with_expansion(expansion)),
        LossConfig::Lifted(c) => LossConfig::Lifted(c.with_expansion(expansion)),
        LossConfig::Npair(c) => LossConfig::Npair(c.with_expansion(expansion)),
        LossConfig::MultiSimilarity(c) => LossConfig::MultiSimilarity(c.with_expansion(expansion)),
    }
}

fn losses(c: &mut Criterion) {
    let device = Default::default();
    let b = CLASSES * INSTANCES;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut values: Vec<f32> = (0..b * DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    for row in values.chunks_mut(DIM) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let data = TensorData::new(values, [b, DIM]);
    let label_values: Vec<i64> = (0..b).map(|row| (row / INSTANCES) as i64).collect();
    let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(label_values, [b]), &device);

    let mut cases: Vec<(String, LossConfig)> = Vec::new();
    for n in [0, 2] {
        for name in LOSS_NAMES {
            cases.push((format!("{name}/n{n}"), config(name, n)));
        }
        if let LossConfig::Triplet(t) = config("triplet", n) {
            let all = t.with_negatives(TripletNegatives::AllValid);
            cases.push((format!("triplet_all_valid/n{n}"), LossConfig::Triplet(all)));
        }
    }

    let mut group = c.benchmark_group("loss_fwd_bwd_b128_d512");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (id, config) in cases {
        let loss = config.init().expect("valid config");
        group.bench_function(BenchmarkId::from_parameter(id), |bencher| {
            bencher.iter(|| {
                let x = Tensor::<B, 2>::from_data(data.clone(), &device).require_grad();
                let output = loss
                    .forward(x.clone(), labels.clone())
                    .expect("valid batch");
                let grads = output.loss.backward();
                black_box(x.grad(&grads).expect("gradient").into_data())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
