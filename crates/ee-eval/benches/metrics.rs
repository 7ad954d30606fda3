//! Speed of the metrics at the paper's scales, on the CPU backend (flex).
//!
//! - N = 8,131 (Cars196 test set), D = 512, 98 classes: Recall@{1,2,4,8} + MAP@R, and NMI/F1
//!   with k = 98; a baseline beside them: the bare chunked distance matmul read back to the
//!   host (what any exact k-NN must at least do), to report the metrics as a ratio of it.
//! - N = 60,502 (SOP test set), D = 512: a full self-mode evaluation took about 4 minutes
//!   per run on the shared 2-core machine, too long for criterion's 10 samples; the bench
//!   times 1,024 queries against the full 60,502 gallery (query/gallery mode), whose cost
//!   scales linearly in the number of queries (x 59.08 for the full set);
//!   `cargo run --release -p ee-eval --example sop_scale` times one full run.
//!   NMI at k = 98 on all 60,502 points.
//!
//! k-means in the bench: 1 restart, at most 10 Lloyd iterations (the evaluation default is 5
//! restarts, 100 iterations): figures are per (restart x 10 iterations), plus seeding.

// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use std::time::Duration;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion};
use ee_eval::{evaluate, evaluate_query_gallery, EvalConfig, KMeansConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = Flex;

const DIM: usize = 512;

fn embeddings(n: usize, seed: u64) -> Tensor<B, 2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n * DIM).map(|_| rng.random::<f32>() - 0.5).collect();
    Tensor::from_data(TensorData::new(values, [n, DIM]), &Default::default())
}

fn labels(n: usize, classes: usize) -> Vec<i64> {
    (0..n).map(|i| (i * classes / n) as i64).collect()
}

fn retrieval_config(ks: Vec<usize>) -> EvalConfig {
    EvalConfig::new().with_recall_ks(ks).with_clustering(false)
}

fn clustering_config() -> EvalConfig {
    EvalConfig::new()
        .with_recall_ks(vec![])
        .with_map_at_r(false)
        .with_kmeans(KMeansConfig::new().with_n_init(1).with_max_iter(10))
}

/// The floor of any exact k-NN: the chunked distance matmul, read back to the host.
fn bare_distances(x: &Tensor<B, 2>, chunk: usize) -> f32 {
    let [n, d] = x.dims();
    let xt = x.clone().transpose();
    let mut acc = 0.0;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let block: Vec<f32> = x
            .clone()
            .slice([start..end, 0..d])
            .matmul(xt.clone())
            .into_data()
            .into_vec()
            .unwrap();
        acc += block[0];
        start = end;
    }
    acc
}

fn cars_scale(c: &mut Criterion) {
    let n = 8_131;
    let x = embeddings(n, 1);
    let y = labels(n, 98);
    let mut group = c.benchmark_group("n8131_d512");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("baseline_chunked_distance_matmul", |b| {
        b.iter(|| bare_distances(&x, 512))
    });
    group.bench_function("recall_1_2_4_8_and_map_at_r", |b| {
        b.iter(|| evaluate(x.clone(), &y, &retrieval_config(vec![1, 2, 4, 8])).unwrap())
    });
    group.bench_function("nmi_f1_kmeans_k98_1restart_10iters", |b| {
        b.iter(|| evaluate(x.clone(), &y, &clustering_config()).unwrap())
    });
    group.finish();
}

fn sop_scale(c: &mut Criterion) {
    let n = 60_502;
    let x = embeddings(n, 2);
    let y = labels(n, 11_316);
    let queries = x.clone().slice([0..1024, 0..DIM]);
    let mut group = c.benchmark_group("n60502_d512");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.bench_function("recall_1_10_100_1000_and_map_at_r_1024_queries", |b| {
        b.iter(|| {
            evaluate_query_gallery(
                queries.clone(),
                &y[..1024],
                x.clone(),
                &y,
                &retrieval_config(vec![1, 10, 100, 1000]),
            )
            .unwrap()
        })
    });
    let y98 = labels(n, 98);
    group.bench_function("nmi_f1_kmeans_k98_1restart_10iters", |b| {
        b.iter(|| evaluate(x.clone(), &y98, &clustering_config()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, cars_scale, sop_scale);
criterion_main!(benches);
