//! Bad input gives a clear, typed error naming what is wrong.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ee_eval::{
    evaluate, evaluate_query_gallery, knn_self, EmbeddingMatrix, EvalConfig, EvalError,
    KMeansConfig, KnnConfig,
};

fn tensor(values: &[f32], dim: usize) -> Tensor<Flex, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len() / dim, dim]),
        &Default::default(),
    )
}

fn grid(n: usize) -> Tensor<Flex, 2> {
    let values: Vec<f32> = (0..n * 2).map(|i| (i % 7) as f32).collect();
    tensor(&values, 2)
}

#[test]
fn labels_and_embeddings_of_different_lengths() {
    let err = evaluate(
        grid(4),
        &[0, 0, 1],
        &EvalConfig::new().with_recall_ks(vec![1]),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::LengthMismatch {
                embeddings: 4,
                labels: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("4 embeddings but 3 labels"),
        "{err}"
    );

    let err = evaluate_query_gallery(grid(3), &[0, 1, 2], grid(5), &[0, 1], &EvalConfig::new())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("gallery: 5 embeddings but 2 labels"),
        "{err}"
    );
}

#[test]
fn non_finite_values_name_their_position() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = vec![0.0f32; 8];
        values[5] = bad;
        let err = evaluate(tensor(&values, 2), &[0, 0, 1, 1], &EvalConfig::new()).unwrap_err();
        match err {
            EvalError::NonFinite { row, col, .. } => assert_eq!((row, col), (2, 1)),
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
    let mut values = vec![1.0f32; 8];
    values[0] = f32::NAN;
    let err = evaluate_query_gallery(
        tensor(&[0.0, 0.0], 2),
        &[0],
        tensor(&values, 2),
        &[0, 0, 1, 1],
        &EvalConfig::new().with_recall_ks(vec![1]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("gallery: row 0, column 0 holds NaN"),
        "{err}"
    );
}

#[test]
fn overflowing_norms_are_rejected() {
    let err = evaluate(
        tensor(&[1e20, 0.0, 0.0, 0.0, 1.0, 1.0], 2),
        &[0, 0, 1],
        &EvalConfig::new()
            .with_recall_ks(vec![1])
            .with_clustering(false),
    )
    .unwrap_err();
    assert!(
        matches!(err, EvalError::NormOverflow { row: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn k_larger_than_the_gallery() {
    // Self mode: 4 items, a query can retrieve 3.
    let err = evaluate(
        grid(4),
        &[0, 0, 1, 1],
        &EvalConfig::new().with_recall_ks(vec![1, 4]),
    )
    .unwrap_err();
    assert!(
        matches!(err, EvalError::KTooLarge { k: 4, gallery: 3 }),
        "{err:?}"
    );
    assert!(evaluate(
        grid(4),
        &[0, 0, 1, 1],
        &EvalConfig::new().with_recall_ks(vec![3])
    )
    .is_ok());
    // Query/gallery: the whole gallery is retrievable.
    let cfg = EvalConfig::new()
        .with_recall_ks(vec![5])
        .with_clustering(false);
    assert!(evaluate_query_gallery(grid(2), &[0, 1], grid(5), &[0, 1, 0, 1, 0], &cfg).is_ok());
    let cfg = EvalConfig::new().with_recall_ks(vec![6]);
    let err =
        evaluate_query_gallery(grid(2), &[0, 1], grid(5), &[0, 1, 0, 1, 0], &cfg).unwrap_err();
    assert!(
        matches!(err, EvalError::KTooLarge { k: 6, gallery: 5 }),
        "{err:?}"
    );
    let err = knn_self(grid(4), 4, &KnnConfig::new()).unwrap_err();
    assert!(
        matches!(err, EvalError::KTooLarge { k: 4, gallery: 3 }),
        "{err:?}"
    );
}

#[test]
fn class_of_one_item_is_counted_or_rejected() {
    // Items 0 and 1 (class 5) are close, item 2 (class 9) is alone in its class.
    let x = || tensor(&[0.0, 0.0, 0.0, 1.0, 0.0, 2.0], 2);
    let labels = [5, 5, 9];
    let cfg = EvalConfig::new()
        .with_recall_ks(vec![1, 2])
        .with_clustering(false);
    let report = evaluate(x(), &labels, &cfg).unwrap();
    assert_eq!(report.queries_without_positive, 1);
    // The lonely query is a miss in Recall@K (denominator 3) ...
    assert_eq!(report.recall(1), Some(2.0 / 3.0));
    assert_eq!(report.recall(2), Some(2.0 / 3.0));
    // ... and left out of MAP@R and R-precision (both others are perfect).
    assert_eq!(report.map_at_r, Some(1.0));
    assert_eq!(report.r_precision, Some(1.0));

    let err = evaluate(
        x(),
        &labels,
        &cfg.with_allow_classes_without_positive(false),
    )
    .unwrap_err();
    assert!(
        matches!(err, EvalError::ClassWithoutPositive { label: 9, index: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("label 9"), "{err}");
}

#[test]
fn no_query_with_a_positive_gives_no_map() {
    let report = evaluate(
        grid(3),
        &[1, 2, 3],
        &EvalConfig::new()
            .with_recall_ks(vec![1])
            .with_clustering(false),
    )
    .unwrap();
    assert_eq!(report.map_at_r, None);
    assert_eq!(report.recall(1), Some(0.0));
    assert!(report.to_string().contains("n/a"));
}

#[test]
fn invalid_configurations_name_the_field() {
    let cases = [
        (EvalConfig::new().with_recall_ks(vec![1, 0]), "recall_ks"),
        (
            EvalConfig::new()
                .with_recall_ks(vec![])
                .with_map_at_r(false)
                .with_clustering(false),
            "recall_ks",
        ),
        (
            EvalConfig::new().with_knn(KnnConfig::new().with_chunk_size(0)),
            "chunk_size",
        ),
        (
            EvalConfig::new().with_kmeans(KMeansConfig::new().with_n_init(0)),
            "kmeans.n_init",
        ),
        (
            EvalConfig::new().with_kmeans(KMeansConfig::new().with_max_iter(0)),
            "kmeans.max_iter",
        ),
    ];
    for (cfg, field) in cases {
        let err = evaluate(grid(4), &[0, 0, 1, 1], &cfg).unwrap_err();
        assert!(
            matches!(err, EvalError::InvalidConfig { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn too_few_items_and_ragged_buffers() {
    let err = evaluate(grid(1), &[0], &EvalConfig::new()).unwrap_err();
    assert!(matches!(err, EvalError::Empty { needed: 2, .. }), "{err:?}");
    let err = EmbeddingMatrix::new(vec![0.0; 7], 2).unwrap_err();
    assert!(
        matches!(err, EvalError::RaggedData { len: 7, dim: 2, .. }),
        "{err:?}"
    );
    let err = evaluate_query_gallery(
        grid(2),
        &[0, 1],
        tensor(&[0.0; 6], 3),
        &[0, 1],
        &EvalConfig::new(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::DimensionMismatch {
                queries: 2,
                gallery: 3
            }
        ),
        "{err:?}"
    );
}
