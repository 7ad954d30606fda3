// The cases of `tests/brute_force.rs`, compiled there once per backend: this file is
// `include!`d into a module that defines `B`, the backend under test.

use burn::tensor::{Tensor, TensorData};
use ee_eval::{
    evaluate, evaluate_query_gallery, knn_query_gallery, knn_self, Engine, EvalConfig, KnnConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Set {
    rows: Vec<Vec<f64>>,
    labels: Vec<i64>,
}

impl Set {
    /// Points on the integer grid {-2..2}^dim: frequent exact ties.
    fn random(rng: &mut ChaCha8Rng, n: usize, dim: usize, classes: i64) -> Self {
        let rows = (0..n)
            .map(|_| (0..dim).map(|_| rng.random_range(-2..=2) as f64).collect())
            .collect();
        let labels = (0..n).map(|_| rng.random_range(0..classes)).collect();
        Set { rows, labels }
    }

    /// Continuous f32 values in [-1, 1)^dim.
    fn continuous(rng: &mut ChaCha8Rng, n: usize, dim: usize, classes: i64) -> Self {
        let rows = (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| (rng.random::<f32>() * 2.0 - 1.0) as f64)
                    .collect()
            })
            .collect();
        let labels = (0..n).map(|_| rng.random_range(0..classes)).collect();
        Set { rows, labels }
    }

    fn tensor(&self) -> Tensor<B, 2> {
        let dim = self.rows[0].len();
        let flat: Vec<f32> = self.rows.iter().flatten().map(|&v| v as f32).collect();
        Tensor::from_data(
            TensorData::new(flat, [self.rows.len(), dim]),
            &Default::default(),
        )
    }
}

/// Full ranking of the gallery for every query, by (f64 distance, index).
fn brute_rankings(queries: &Set, gallery: &Set, exclude_self: bool) -> Vec<Vec<usize>> {
    queries
        .rows
        .iter()
        .enumerate()
        .map(|(qi, q)| {
            let mut cands: Vec<(f64, usize)> = gallery
                .rows
                .iter()
                .enumerate()
                .filter(|&(gi, _)| !(exclude_self && gi == qi))
                .map(|(gi, g)| (q.iter().zip(g).map(|(a, b)| (a - b) * (a - b)).sum(), gi))
                .collect();
            cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            cands.into_iter().map(|c| c.1).collect()
        })
        .collect()
}

struct Brute {
    recall: Vec<f64>,
    map_at_r: f64,
    r_precision: f64,
    without_positive: usize,
}

fn brute_metrics(queries: &Set, gallery: &Set, exclude_self: bool, ks: &[usize]) -> Brute {
    let rankings = brute_rankings(queries, gallery, exclude_self);
    let n = queries.rows.len() as f64;
    let mut recall = vec![0.0; ks.len()];
    let (mut map, mut rp, mut scored, mut without) = (0.0, 0.0, 0usize, 0usize);
    for (qi, ranking) in rankings.iter().enumerate() {
        let label = queries.labels[qi];
        let rel: Vec<bool> = ranking
            .iter()
            .map(|&g| gallery.labels[g] == label)
            .collect();
        let r = rel.iter().filter(|&&x| x).count();
        for (slot, &k) in recall.iter_mut().zip(ks) {
            if rel[..k].iter().any(|&x| x) {
                *slot += 1.0 / n;
            }
        }
        if r == 0 {
            without += 1;
            continue;
        }
        let mut hits = 0.0;
        let mut ap = 0.0;
        for (i, &hit) in rel[..r].iter().enumerate() {
            if hit {
                hits += 1.0;
                ap += hits / (i + 1) as f64;
            }
        }
        map += ap / r as f64;
        rp += hits / r as f64;
        scored += 1;
    }
    Brute {
        recall,
        map_at_r: map / scored as f64,
        r_precision: rp / scored as f64,
        without_positive: without,
    }
}

const ENGINES: [Engine; 2] = [Engine::Host, Engine::Backend];

fn config(ks: &[usize], chunk: usize, engine: Engine) -> EvalConfig {
    EvalConfig::new()
        .with_recall_ks(ks.to_vec())
        .with_clustering(false)
        .with_knn(knn(chunk, engine))
}

fn knn(chunk: usize, engine: Engine) -> KnnConfig {
    KnnConfig::new().with_chunk_size(chunk).with_engine(engine)
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: {a} vs brute force {b}");
}

#[test]
fn self_mode_metrics_equal_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (n, dim, classes, grid) in [
        (120, 4, 12, true),
        (200, 6, 40, true),
        (90, 3, 5, true),
        (300, 32, 30, false),
        (150, 3, 60, false),
    ] {
        let set = if grid {
            Set::random(&mut rng, n, dim, classes)
        } else {
            Set::continuous(&mut rng, n, dim, classes)
        };
        let ks = [1, 2, 4, 8, 16];
        let brute = brute_metrics(&set, &set, true, &ks);
        for (chunk, engine) in [7, 64, n].into_iter().flat_map(|c| ENGINES.map(|e| (c, e))) {
            let report = evaluate(set.tensor(), &set.labels, &config(&ks, chunk, engine)).unwrap();
            for (r, b) in report.recall_at_k.iter().zip(&brute.recall) {
                assert_close(
                    r.recall,
                    *b,
                    &format!("Recall@{} (n={n}, chunk={chunk}, {engine:?})", r.k),
                );
            }
            assert_close(report.map_at_r.unwrap(), brute.map_at_r, "MAP@R");
            assert_close(
                report.r_precision.unwrap(),
                brute.r_precision,
                "R-precision",
            );
            assert_eq!(report.queries_without_positive, brute.without_positive);
        }
    }
}

#[test]
fn query_gallery_metrics_equal_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let queries = Set::continuous(&mut rng, 70, 5, 15);
    let gallery = Set::continuous(&mut rng, 130, 5, 12); // classes 12..14 have no positive
    let ks = [1, 3, 10, 130];
    let brute = brute_metrics(&queries, &gallery, false, &ks);
    assert!(
        brute.without_positive > 0,
        "the test needs queries without positive"
    );
    for engine in ENGINES {
        let report = evaluate_query_gallery(
            queries.tensor(),
            &queries.labels,
            gallery.tensor(),
            &gallery.labels,
            &config(&ks, 16, engine),
        )
        .unwrap();
        for (r, b) in report.recall_at_k.iter().zip(&brute.recall) {
            assert_close(r.recall, *b, &format!("Recall@{} ({engine:?})", r.k));
        }
        assert_close(report.map_at_r.unwrap(), brute.map_at_r, "MAP@R");
        assert_close(
            report.r_precision.unwrap(),
            brute.r_precision,
            "R-precision",
        );
        assert_eq!(report.queries_without_positive, brute.without_positive);
        assert_eq!(report.gallery, 130);
    }
}

#[test]
fn neighbours_equal_brute_force_rankings_including_ties() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for set in [
        Set::random(&mut rng, 150, 3, 10),
        Set::continuous(&mut rng, 150, 24, 10),
    ] {
        let k = 25;
        let rankings = brute_rankings(&set, &set, true);
        for engine in ENGINES {
            let found = knn_self(set.tensor(), k, &knn(33, engine)).unwrap();
            for (q, ranking) in rankings.iter().enumerate() {
                assert_eq!(found.indices_of(q), ranking[..k], "query {q}");
                for nb in found.of(q) {
                    let g = nb.index as usize;
                    let d: f64 = set.rows[q]
                        .iter()
                        .zip(&set.rows[g])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    assert_eq!(nb.distance, d, "distance of query {q} to {g}");
                }
            }
        }
    }
}

#[test]
fn chunked_and_unchunked_neighbours_are_identical() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 97;
    // Continuous values this time: the chunking must not change a single neighbour.
    let flat: Vec<f32> = (0..n * 16).map(|_| rng.random::<f32>() - 0.5).collect();
    let x =
        || Tensor::<B, 2>::from_data(TensorData::new(flat.clone(), [n, 16]), &Default::default());
    let whole = knn_self(x(), 20, &knn(n, Engine::Backend)).unwrap();
    for chunk in [1, 5, 32, 96] {
        let chunked = knn_self(x(), 20, &knn(chunk, Engine::Backend)).unwrap();
        assert_eq!(chunked, whole, "chunk size {chunk}");
    }
    assert_eq!(
        knn_self(x(), 20, &knn(1, Engine::Host)).unwrap(),
        whole,
        "host engine"
    );
    let g = || x().slice([0..60, 0..16]);
    let q = || x().slice([60..n, 0..16]);
    let whole = knn_query_gallery(q(), g(), 60, &knn(n, Engine::Backend)).unwrap();
    let chunked = knn_query_gallery(q(), g(), 60, &knn(4, Engine::Backend)).unwrap();
    assert_eq!(chunked, whole);
    let host = knn_query_gallery(q(), g(), 60, &knn(4, Engine::Host)).unwrap();
    assert_eq!(host, whole, "host engine");
    assert_eq!(whole.num_queries(), n - 60);
}

#[test]
fn query_gallery_with_the_same_set_retrieves_the_query_itself() {
    // Without self-exclusion, a query that is also in the gallery is its own nearest item.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let set = Set::random(&mut rng, 40, 8, 4);
    let brute = brute_rankings(&set, &set, false);
    for engine in ENGINES {
        let found = knn_query_gallery(set.tensor(), set.tensor(), 1, &knn(512, engine)).unwrap();
        for (q, ranking) in brute.iter().enumerate() {
            assert_eq!(found.indices_of(q)[0], ranking[0]);
            assert_eq!(found.of(q)[0].distance, 0.0);
        }
    }
}

/// At the host engine's tile scale (several 256-row blocks and 512-column tiles, partial
/// ones included), in its symmetric scan and in its rows-only fallback, with many exact ties:
/// the same neighbours as the backend engine and the brute force.
#[test]
fn host_engine_tiles_equal_brute_force_at_scale() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let set = Set::random(&mut rng, 1_300, 6, 40);
    let k = 40;
    let rankings = brute_rankings(&set, &set, true);
    let backend = knn_self(set.tensor(), k, &knn(200, Engine::Backend)).unwrap();
    for memory in [usize::MAX, 0] {
        let config = knn(200, Engine::Host).with_host_symmetric_memory(memory);
        let host = knn_self(set.tensor(), k, &config).unwrap();
        assert_eq!(host, backend, "symmetric memory {memory}");
        for (q, ranking) in rankings.iter().enumerate() {
            assert_eq!(host.indices_of(q), ranking[..k], "query {q}");
        }
    }
    // Query/gallery at the same scale.
    let queries = Set::continuous(&mut rng, 700, 12, 9);
    let gallery = Set::continuous(&mut rng, 1_100, 12, 9);
    let rankings = brute_rankings(&queries, &gallery, false);
    let host = knn_query_gallery(
        queries.tensor(),
        gallery.tensor(),
        30,
        &knn(64, Engine::Host),
    )
    .unwrap();
    for (q, ranking) in rankings.iter().enumerate() {
        assert_eq!(host.indices_of(q), ranking[..30], "query {q}");
    }
}
