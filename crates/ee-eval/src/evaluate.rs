//! The whole evaluation: retrieval metrics from an exact k-NN scan, clustering metrics from
//! k-means, gathered in an [`EvalReport`].

use std::collections::{HashMap, HashSet};

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::clustering::{normalized_mutual_information, pairwise_scores};
use crate::error::EvalError;
use crate::input::{check_finite, check_labels, EmbeddingMatrix};
use crate::kmeans::{kmeans, KMeansConfig};
use crate::knn::{check_dims, check_k, scan, KnnConfig, Neighbour, Ranking};
use crate::report::{ClusteringReport, EvalMode, EvalReport, RecallAtK};
use crate::retrieval::QueryOutcome;

/// What to measure and how.
#[derive(Config, Debug, PartialEq)]
pub struct EvalConfig {
    /// The Ks of Recall@K (the paper: 1, 2, 4, 8; SOP: 1, 10, 100, 1000). May be empty.
    #[config(default = "vec![1, 2, 4, 8]")]
    pub recall_ks: Vec<usize>,
    /// Compute MAP@R and R-precision.
    #[config(default = true)]
    pub map_at_r: bool,
    /// Compute NMI and F1 of a k-means clustering (k = number of classes).
    #[config(default = true)]
    pub clustering: bool,
    /// Chunking of the k-NN search.
    #[config(default = "KnnConfig::new()")]
    pub knn: KnnConfig,
    /// k-means settings.
    #[config(default = "KMeansConfig::new()")]
    pub kmeans: KMeansConfig,
    /// Seed of the k-means++ draws (ChaCha8).
    #[config(default = 0)]
    pub seed: u64,
    /// Count queries with no same-class item to retrieve (a class of one item in self mode)
    /// as documented on [`EvalReport::queries_without_positive`]; when false they are an
    /// error instead.
    #[config(default = true)]
    pub allow_classes_without_positive: bool,
}

impl EvalConfig {
    /// Checks every field (nested configurations included).
    pub fn check(&self) -> crate::Result<()> {
        if self.recall_ks.contains(&0) {
            return Err(EvalError::InvalidConfig {
                field: "recall_ks",
                value: format!("{:?}", self.recall_ks),
                rule: "every K must be at least 1",
            });
        } else if self.recall_ks.is_empty() && !self.map_at_r && !self.clustering {
            return Err(EvalError::InvalidConfig {
                field: "recall_ks",
                value: "[]".into(),
                rule: "nothing to compute: give a K, or enable map_at_r or clustering",
            });
        }
        self.knn.check()?;
        self.kmeans.check()
    }
}

/// Scores `embeddings` (`[n, dim]`) with `labels` (one per row), each item a query against
/// all the others (itself excluded).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Tensor, TensorData};
/// use ee_eval::{evaluate, EvalConfig};
///
/// let x = Tensor::<Flex, 2>::from_data(
///     TensorData::new(vec![0.0f32, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0], [4, 2]),
///     &Default::default(),
/// );
/// let config = EvalConfig::new().with_recall_ks(vec![1, 2]);
/// let report = evaluate(x, &[0, 0, 1, 1], &config).unwrap();
/// assert_eq!(report.recall(1), Some(1.0));
/// assert_eq!(report.map_at_r, Some(1.0));
/// println!("{report}");
/// ```
pub fn evaluate<B: Backend>(
    embeddings: Tensor<B, 2>,
    labels: &[i64],
    config: &EvalConfig,
) -> crate::Result<EvalReport> {
    config.check()?;
    check_labels("embeddings", embeddings.dims()[0], labels, 2)?;
    check_finite("embeddings", &embeddings)?;
    run(
        embeddings.clone(),
        labels,
        embeddings,
        labels,
        EvalMode::SelfRetrieval,
        config,
    )
}

/// Scores `queries` (`[n, dim]`) against a separate `gallery` (`[m, dim]`); no item is
/// excluded. Clustering metrics, when asked for, are computed on the queries.
pub fn evaluate_query_gallery<B: Backend>(
    queries: Tensor<B, 2>,
    query_labels: &[i64],
    gallery: Tensor<B, 2>,
    gallery_labels: &[i64],
    config: &EvalConfig,
) -> crate::Result<EvalReport> {
    config.check()?;
    check_labels("queries", queries.dims()[0], query_labels, 1)?;
    check_labels("gallery", gallery.dims()[0], gallery_labels, 1)?;
    check_dims(&queries, &gallery)?;
    check_finite("queries", &queries)?;
    check_finite("gallery", &gallery)?;
    run(
        queries,
        query_labels,
        gallery,
        gallery_labels,
        EvalMode::QueryGallery,
        config,
    )
}

/// [`evaluate`] on a host matrix, copied to `device` first.
pub fn evaluate_matrix<B: Backend>(
    embeddings: &EmbeddingMatrix,
    labels: &[i64],
    config: &EvalConfig,
    device: &B::Device,
) -> crate::Result<EvalReport> {
    evaluate(embeddings.to_tensor::<B>(device), labels, config)
}

/// [`evaluate_query_gallery`] on host matrices, copied to `device` first.
pub fn evaluate_query_gallery_matrix<B: Backend>(
    queries: &EmbeddingMatrix,
    query_labels: &[i64],
    gallery: &EmbeddingMatrix,
    gallery_labels: &[i64],
    config: &EvalConfig,
    device: &B::Device,
) -> crate::Result<EvalReport> {
    evaluate_query_gallery(
        queries.to_tensor::<B>(device),
        query_labels,
        gallery.to_tensor::<B>(device),
        gallery_labels,
        config,
    )
}

fn run<B: Backend>(
    queries: Tensor<B, 2>,
    query_labels: &[i64],
    gallery: Tensor<B, 2>,
    gallery_labels: &[i64],
    mode: EvalMode,
    config: &EvalConfig,
) -> crate::Result<EvalReport> {
    let exclude_self = mode == EvalMode::SelfRetrieval;
    let [n_queries, dim] = queries.dims();
    let n_gallery = gallery.dims()[0];
    let retrievable = if exclude_self {
        n_gallery - 1
    } else {
        n_gallery
    };

    let mut class_sizes: HashMap<i64, usize> = HashMap::new();
    for &l in gallery_labels {
        *class_sizes.entry(l).or_default() += 1;
    }
    let positives: Vec<usize> = query_labels
        .iter()
        .map(|l| class_sizes.get(l).copied().unwrap_or(0) - usize::from(exclude_self))
        .collect();
    if !config.allow_classes_without_positive {
        if let Some(q) = positives.iter().position(|&p| p == 0) {
            return Err(EvalError::ClassWithoutPositive {
                label: query_labels[q],
                index: q,
            });
        }
    }
    let max_recall_k = config.recall_ks.iter().copied().max().unwrap_or(0);
    if max_recall_k > 0 {
        check_k(max_recall_k, retrievable)?;
    }

    let mut report = EvalReport {
        mode,
        queries: n_queries,
        gallery: n_gallery,
        dim,
        classes: query_labels.iter().collect::<HashSet<_>>().len(),
        queries_without_positive: positives.iter().filter(|&&p| p == 0).count(),
        recall_at_k: Vec::new(),
        map_at_r: None,
        r_precision: None,
        clustering: None,
    };

    if max_recall_k > 0 || config.map_at_r {
        let with_map = config.map_at_r;
        let k_of = |q: usize| max_recall_k.max(if with_map { positives[q] } else { 0 });
        // Recall@K and MAP@R read only which neighbours share the query's class, so the f64
        // re-scoring is needed only where it could reorder a relevant and an irrelevant item.
        let relevant = |q: usize, j: usize| gallery_labels[j] == query_labels[q];
        let visit = |q: usize, found: &[Neighbour]| {
            let relevant: Vec<bool> = found
                .iter()
                .map(|n| relevant(q, n.index as usize))
                .collect();
            QueryOutcome::new(&relevant, positives[q], with_map)
        };
        let outcomes = scan(
            queries.clone(),
            gallery,
            exclude_self,
            &config.knn,
            Ranking::Relevance(&relevant),
            &k_of,
            &visit,
        )?;
        report.recall_at_k = config
            .recall_ks
            .iter()
            .map(|&k| RecallAtK {
                k,
                recall: outcomes
                    .iter()
                    .filter(|o| o.first_positive.is_some_and(|r| r < k))
                    .count() as f64
                    / n_queries as f64,
            })
            .collect();
        let scored: Vec<(f64, f64)> = outcomes.iter().filter_map(|o| o.ap_and_rp).collect();
        if !scored.is_empty() {
            let m = scored.len() as f64;
            report.map_at_r = Some(scored.iter().map(|s| s.0).sum::<f64>() / m);
            report.r_precision = Some(scored.iter().map(|s| s.1).sum::<f64>() / m);
        }
    }

    if config.clustering {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let km = kmeans(queries, report.classes, &config.kmeans, &mut rng)?;
        let pair = pairwise_scores(query_labels, &km.assignments);
        report.clustering = Some(ClusteringReport {
            clusters: report.classes,
            nmi: normalized_mutual_information(query_labels, &km.assignments),
            f1: pair.f1,
            precision: pair.precision,
            recall: pair.recall,
            inertia: km.inertia,
            iterations: km.iterations,
            algorithm: km.algorithm.name().to_string(),
            converged: km.converged,
        });
    }
    Ok(report)
}
