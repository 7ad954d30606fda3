//! Hand-computed small cases for every metric through the public entry points, the
//! clustering metrics against brute force, and file loading.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ee_eval::{
    evaluate, evaluate_matrix, evaluate_query_gallery, load_csv, load_embeddings_npy,
    load_labels_npy, normalized_mutual_information, pairwise_scores, EmbeddingMatrix, EvalConfig,
    EvalError, EvalMode, EvalReport, KMeansConfig,
};
use npyz::WriterBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn line(points: &[f32]) -> Tensor<Flex, 2> {
    Tensor::from_data(
        TensorData::new(points.to_vec(), [points.len(), 1]),
        &Default::default(),
    )
}

/// Points on a line, so every distance is easy to do by hand:
///
/// ```text
/// index:  0    1    2    3    4    5
/// x:      0    1    3    6   10   15
/// label:  a    b    a    b    a    a
/// ```
///
/// Rankings (self excluded, nearest first):
/// - 0 (a): 1(b) 2(a) 3(b) 4(a) 5(a)   R=3: rel 0 1 0   first hit at rank 2
/// - 1 (b): 0(a) 2(a) 3(b) ...         R=1: rel 0       first hit at rank 3
/// - 2 (a): 1(b) 0(a) 3(b) 4(a) 5(a)   R=3: rel 0 1 0   first hit at rank 2
///   (0 and 3 are both at distance 9: the lower index, 0, ranks first)
/// - 3 (b): 2(a) 4(a) 1(b) 0(a) 5(a)   R=1: rel 0       first hit at rank 3
/// - 4 (a): 3(b) 5(a) 2(a) 1(b) 0(a)   R=3: rel 0 1 1   first hit at rank 2
/// - 5 (a): 4(a) 3(b) 2(a) 1(b) 0(a)   R=3: rel 1 0 1   first hit at rank 1
#[test]
fn hand_computed_retrieval_metrics_on_a_line() {
    let x = line(&[0.0, 1.0, 3.0, 6.0, 10.0, 15.0]);
    let labels = [0, 1, 0, 1, 0, 0];
    let config = EvalConfig::new()
        .with_recall_ks(vec![1, 2, 3])
        .with_clustering(false);
    let report = evaluate(x, &labels, &config).unwrap();
    // First-hit ranks (1-based): 2, 3, 2, 3, 2, 1.
    assert_eq!(report.recall(1), Some(1.0 / 6.0));
    assert_eq!(report.recall(2), Some(4.0 / 6.0));
    assert_eq!(report.recall(3), Some(1.0));
    // AP@R: q0 (0,1,0)/R=3 -> (1/2)/3 = 1/6; q1 0; q2 1/6; q3 0;
    //       q4 (0,1,1) -> (1/2 + 2/3)/3 = 7/18; q5 (1,0,1) -> (1 + 2/3)/3 = 5/9
    let map = (1.0 / 6.0 + 0.0 + 1.0 / 6.0 + 0.0 + 7.0 / 18.0 + 5.0 / 9.0) / 6.0;
    assert!(
        (report.map_at_r.unwrap() - map).abs() < 1e-12,
        "{:?}",
        report.map_at_r
    );
    // R-precision: 1/3, 0, 1/3, 0, 2/3, 2/3
    let rp = (1.0 / 3.0 + 1.0 / 3.0 + 2.0 / 3.0 + 2.0 / 3.0) / 6.0;
    assert!((report.r_precision.unwrap() - rp).abs() < 1e-12);
    assert_eq!(report.queries_without_positive, 0);
    assert_eq!(
        (report.queries, report.gallery, report.classes, report.dim),
        (6, 6, 2, 1)
    );
}

#[test]
fn ties_break_by_the_lower_index() {
    // Query 0 at 0; items 1 (class b) and 2 (class a) both at distance 1.
    // Lower index first: item 1 (b) ranks first, so query 0 misses at K = 1.
    let report = evaluate(
        line(&[0.0, 1.0, -1.0, 10.0]),
        &[0, 1, 0, 1],
        &EvalConfig::new()
            .with_recall_ks(vec![1])
            .with_clustering(false),
    )
    .unwrap();
    // q0: 1(b) first -> miss; q1: 0(a) -> miss; q2: 0(a) -> hit; q3: 1(b) -> hit
    assert_eq!(report.recall(1), Some(0.5));
    // Swapping the classes of 1 and 2 makes query 0 a hit.
    let report = evaluate(
        line(&[0.0, 1.0, -1.0, 10.0]),
        &[0, 0, 1, 1],
        &EvalConfig::new()
            .with_recall_ks(vec![1])
            .with_clustering(false),
    )
    .unwrap();
    // q0: 1(a) hit; q1: 0(a) hit; q2: 0(a) miss; q3: 1(a) miss
    assert_eq!(report.recall(1), Some(0.5));
}

#[test]
fn hand_computed_query_gallery_mode() {
    // Gallery: 0 (a) at 0, 1 (b) at 2, 2 (a) at 5. Queries: at 1.9 (a), at 4.6 (b).
    // q0: 1(b) 0(a) 2(a): R=2, rel 0 1 -> AP 1/4, RP 1/2, first hit rank 2
    // q1: 2(a) 1(b) 0(a): R=1, rel 0   -> AP 0,   RP 0,   first hit rank 2
    let report = evaluate_query_gallery(
        line(&[1.9, 4.6]),
        &[0, 1],
        line(&[0.0, 2.0, 5.0]),
        &[0, 1, 0],
        &EvalConfig::new()
            .with_recall_ks(vec![1, 2, 3])
            .with_clustering(false),
    )
    .unwrap();
    assert_eq!(report.mode, EvalMode::QueryGallery);
    assert_eq!((report.queries, report.gallery), (2, 3));
    assert_eq!(report.recall(1), Some(0.0));
    assert_eq!(report.recall(2), Some(1.0));
    assert_eq!(report.map_at_r, Some(0.125));
    assert_eq!(report.r_precision, Some(0.25));
}

#[test]
fn clustering_of_separated_classes_is_perfect() {
    // Three tight blobs far apart, one per class: k-means with k = 3 recovers them.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for i in 0..60 {
        let class = (i % 3) as i64;
        let centre = [class as f32 * 20.0, (class * class) as f32 * 7.0];
        values.push(centre[0] + rng.random::<f32>());
        values.push(centre[1] + rng.random::<f32>());
        labels.push(class + 100);
    }
    let x = EmbeddingMatrix::new(values, 2).unwrap();
    let report =
        evaluate_matrix::<Flex>(&x, &labels, &EvalConfig::new(), &Default::default()).unwrap();
    let c = report.clustering.unwrap();
    assert_eq!(c.clusters, 3);
    assert!((c.nmi - 1.0).abs() < 1e-12, "{c:?}");
    assert!((c.f1 - 1.0).abs() < 1e-12, "{c:?}");
    assert!(c.converged);
}

#[test]
fn nmi_of_independent_partitions_is_near_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 20_000;
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let clusters: Vec<usize> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let nmi = normalized_mutual_information(&labels, &clusters);
    // Expected value for independent partitions is about (10-1)^2 / (2 n ln 10) ~ 1e-3.
    assert!(nmi < 0.005, "{nmi}");
    assert!(
        (normalized_mutual_information(
            &labels,
            &labels.iter().map(|&l| l as usize).collect::<Vec<_>>()
        ) - 1.0)
            .abs()
            < 1e-12
    );
}

#[test]
fn pairwise_f1_equals_brute_force_over_pairs() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for (n, classes, clusters) in [(50, 5, 7), (200, 20, 20), (31, 2, 9)] {
        let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..classes)).collect();
        let assign: Vec<usize> = (0..n).map(|_| rng.random_range(0..clusters)).collect();
        let (mut tp, mut pred, mut actual) = (0u64, 0u64, 0u64);
        for i in 0..n {
            for j in i + 1..n {
                let same_class = labels[i] == labels[j];
                let same_cluster = assign[i] == assign[j];
                tp += (same_class && same_cluster) as u64;
                pred += same_cluster as u64;
                actual += same_class as u64;
            }
        }
        let p = tp as f64 / pred as f64;
        let r = tp as f64 / actual as f64;
        let s = pairwise_scores(&labels, &assign);
        assert!((s.precision - p).abs() < 1e-12);
        assert!((s.recall - r).abs() < 1e-12);
        assert!((s.f1 - 2.0 * p * r / (p + r)).abs() < 1e-12);
    }
}

#[test]
fn same_seed_gives_the_same_report_and_json_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let values: Vec<f32> = (0..300 * 8).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<i64> = (0..300).map(|i| i / 10).collect();
    let x = EmbeddingMatrix::new(values, 8).unwrap();
    let config = EvalConfig::new()
        .with_seed(42)
        .with_kmeans(KMeansConfig::new().with_n_init(2));
    let a = evaluate_matrix::<Flex>(&x, &labels, &config, &Default::default()).unwrap();
    let b = evaluate_matrix::<Flex>(&x, &labels, &config, &Default::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(EvalReport::from_json(&a.to_json()).unwrap(), a);
}

#[test]
fn loads_npy_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let emb = dir.path().join("emb.npy");
    let lab = dir.path().join("labels.npy");
    {
        let mut w = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&[3, 2])
            .writer(std::fs::File::create(&emb).unwrap())
            .begin_nd()
            .unwrap();
        w.extend([0.0f64, 1.0, 2.0, 3.0, 4.5, 5.0]).unwrap();
        w.finish().unwrap();
        let mut w = npyz::WriteOptions::<i32>::new()
            .default_dtype()
            .shape(&[3])
            .writer(std::fs::File::create(&lab).unwrap())
            .begin_nd()
            .unwrap();
        w.extend([7i32, 7, 9]).unwrap();
        w.finish().unwrap();
    }
    let x = load_embeddings_npy(&emb).unwrap();
    assert_eq!((x.rows(), x.dim()), (3, 2));
    assert_eq!(x.row(2), &[4.5, 5.0]);
    assert_eq!(load_labels_npy(&lab).unwrap(), vec![7, 7, 9]);
    // Labels are not embeddings: a 1-D array is refused with the file named.
    let err = load_embeddings_npy(&lab).unwrap_err();
    assert!(
        matches!(err, EvalError::Format { .. }) && err.to_string().contains("labels.npy"),
        "{err}"
    );
    let err = load_embeddings_npy(dir.path().join("missing.npy")).unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }), "{err:?}");

    let csv = dir.path().join("emb.csv");
    std::fs::write(&csv, "label,x,y\n1, 0.5, 1\n2, 3, -4\n").unwrap();
    let (x, labels) = load_csv(&csv).unwrap();
    assert_eq!(labels, vec![1, 2]);
    assert_eq!(x.as_slice(), &[0.5, 1.0, 3.0, -4.0]);
    std::fs::write(&csv, "1,0.5,1\n2,3\n").unwrap();
    let err = load_csv(&csv).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    std::fs::write(&csv, "1,0.5,abc\n").unwrap();
    let err = load_csv(&csv).unwrap_err();
    assert!(err.to_string().contains("\"abc\" is not a number"), "{err}");
}
