//! Embedding a test set and scoring it with ee-eval (Recall@K, MAP@R, optionally NMI/F1),
//! test split against itself or queries against a gallery; also `ee eval`.

use std::path::Path;

use burn::tensor::backend::Backend;
use ee_data::{Dataset, ImageLoader};
use ee_eval::{EvalConfig, EvalReport};

use crate::config::{RawConfig, RunConfig};
use crate::dataset::{open_dataset, open_query_gallery};
use crate::embed::{embed_loader, TrainedNetwork};
use crate::embedding_set::{integer_labels, EmbeddingSet};
use crate::error::{CliError, Result};
use crate::network::Network;
use crate::train::loader_config;

/// An evaluation's report and how long it took.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// ee-eval's report.
    pub report: EvalReport,
    /// Seconds spent (embedding + scoring).
    pub seconds: f64,
}

impl EvalSummary {
    /// `eval epoch 5: R@1 0.6123  R@2 ...  (best R@1 0.6123 at epoch 5)`.
    pub fn one_line(&self, epoch: u64, best: f64, best_epoch: u64) -> String {
        let recalls: Vec<String> = self
            .report
            .recall_at_k
            .iter()
            .map(|r| format!("R@{} {:.4}", r.k, r.recall))
            .collect();
        format!(
            "eval epoch {epoch}: {}  (best R@1 {best:.4} at epoch {best_epoch}; {:.1} s)",
            recalls.join("  "),
            self.seconds
        )
    }
}

/// The evaluation settings of a config.
pub fn eval_config(config: &RawConfig) -> EvalConfig {
    EvalConfig::new()
        .with_recall_ks(config.schedule.recall_k.clone())
        .with_map_at_r(true)
        .with_clustering(config.schedule.eval_clustering)
        .with_seed(config.run.seed)
}

/// The images a model is scored on.
#[derive(Debug, Clone)]
pub enum TestSet {
    /// The test split, each image queried against the others.
    SelfRetrieval(ImageLoader),
    /// Queries searched in a separate gallery (In-Shop, or `data.query_split` and
    /// `data.gallery_split`).
    QueryGallery {
        /// The query images.
        query: ImageLoader,
        /// The gallery images.
        gallery: ImageLoader,
    },
}

impl TestSet {
    /// The test set of `config`'s dataset: query/gallery where the dataset defines them,
    /// else `dataset.test`.
    pub fn open(config: &RunConfig, dataset: &Dataset) -> Result<TestSet> {
        let loader = loader_config(config);
        Ok(match open_query_gallery(config)? {
            Some((query, gallery)) => TestSet::QueryGallery {
                query: loader.init(&query)?,
                gallery: loader.init(&gallery)?,
            },
            None => TestSet::SelfRetrieval(loader.init(&dataset.test)?),
        })
    }

    /// Number of images embedded per evaluation.
    pub fn len(&self) -> usize {
        match self {
            TestSet::SelfRetrieval(l) => l.len(),
            TestSet::QueryGallery { query, gallery } => query.len() + gallery.len(),
        }
    }

    /// Always false (splits are never empty).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// "N test images" or "Q queries against a gallery of G".
    pub fn describe(&self) -> String {
        match self {
            TestSet::SelfRetrieval(l) => format!("{} test images", l.len()),
            TestSet::QueryGallery { query, gallery } => format!(
                "{} queries against a gallery of {}",
                query.len(),
                gallery.len()
            ),
        }
    }
}

fn labels_of(loader: &ImageLoader) -> Vec<i64> {
    loader
        .items()
        .iter()
        .map(|item| i64::from(item.class_id))
        .collect()
}

/// Embeds the test set with `network` in eval mode and scores the embeddings.
pub fn evaluate_network<B: Backend>(
    network: &Network<B>,
    test: &TestSet,
    config: &RunConfig,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalSummary> {
    let start = std::time::Instant::now();
    let c = config.get();
    let batch = c.schedule.eval_batch_size;
    let report = match test {
        TestSet::SelfRetrieval(loader) => {
            let matrix = embed_loader(network, loader, batch, "eval", quiet, device)?.embeddings;
            ee_eval::evaluate_matrix::<B>(&matrix, &labels_of(loader), &eval_config(c), device)?
        }
        TestSet::QueryGallery { query, gallery } => {
            let q = embed_loader(network, query, batch, "eval query", quiet, device)?.embeddings;
            let g =
                embed_loader(network, gallery, batch, "eval gallery", quiet, device)?.embeddings;
            ee_eval::evaluate_query_gallery_matrix::<B>(
                &q,
                &labels_of(query),
                &g,
                &labels_of(gallery),
                &eval_config(c),
                device,
            )?
        }
    };
    Ok(EvalSummary {
        report,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `ee eval CONFIG --checkpoint PATH`: loads the checkpoint (its own config gives the
/// network), embeds the test set of `config` (query/gallery where the dataset defines them)
/// and returns the report.
pub fn evaluate_checkpoint<B: Backend>(
    config: &RunConfig,
    checkpoint_path: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalReport> {
    let trained = TrainedNetwork::<B>::load(checkpoint_path, device)?;
    let dataset = open_dataset(config)?;
    let test = TestSet::open(config, &dataset)?;
    Ok(evaluate_network(&trained.network, &test, config, quiet, device)?.report)
}

/// `ee eval --query FILE --gallery FILE`: scores two embedding files (`ee embed`'s output,
/// every row labelled) as queries against a gallery; no model needed.
pub fn evaluate_files<B: Backend>(
    query: &Path,
    gallery: &Path,
    config: &EvalConfig,
    device: &B::Device,
) -> Result<EvalReport> {
    let q = EmbeddingSet::load(query)?;
    let g = EmbeddingSet::load(gallery)?;
    if q.dim() != g.dim() {
        return Err(CliError::Usage(format!(
            "{} holds {}-dimensional embeddings but {} holds {}-dimensional ones",
            query.display(),
            q.dim(),
            gallery.display(),
            g.dim()
        )));
    }
    let labels = integer_labels(&[("query", &q), ("gallery", &g)])?;
    Ok(ee_eval::evaluate_query_gallery_matrix::<B>(
        &q.embeddings,
        &labels[0],
        &g.embeddings,
        &labels[1],
        config,
        device,
    )?)
}

/// `ee eval --embeddings FILE`: scores one embedding file (`ee embed` output, every row
/// labelled) against itself, each item left out of its own results; no model needed.
pub fn evaluate_file<B: Backend>(
    path: &Path,
    config: &EvalConfig,
    device: &B::Device,
) -> Result<EvalReport> {
    let set = EmbeddingSet::load(path)?;
    let labels = integer_labels(&[("embeddings", &set)])?;
    Ok(ee_eval::evaluate_matrix::<B>(
        &set.embeddings,
        &labels[0],
        config,
        device,
    )?)
}
