//! Scoring a model during training: embedding an image set in eval mode and scoring it with
//! ee-eval (Recall@K, MAP@R, optionally NMI/F1), a split against itself or queries against
//! a gallery.

use burn::tensor::backend::Backend;
use ee_data::{BatchPlan, ImageLoader};
use ee_eval::{EmbeddingMatrix, EvalConfig, EvalReport};
use ee_model::Embed;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Result, TrainError};

/// The images a model is scored on.
#[derive(Debug, Clone)]
pub enum EvalSet {
    /// One split, each image queried against the others (CARS196, CUB-200, SOP).
    SelfRetrieval(ImageLoader),
    /// Queries searched in a separate gallery (In-Shop).
    QueryGallery {
        /// The query images.
        query: ImageLoader,
        /// The gallery images.
        gallery: ImageLoader,
    },
}

impl EvalSet {
    /// Number of images embedded per evaluation.
    pub fn len(&self) -> usize {
        match self {
            EvalSet::SelfRetrieval(l) => l.len(),
            EvalSet::QueryGallery { query, gallery } => query.len() + gallery.len(),
        }
    }

    /// Whether there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// "N {what} images" or "Q queries against a gallery of G".
    pub fn describe(&self, what: &str) -> String {
        match self {
            EvalSet::SelfRetrieval(l) => format!("{} {what} images", l.len()),
            EvalSet::QueryGallery { query, gallery } => format!(
                "{} queries against a gallery of {}",
                query.len(),
                gallery.len()
            ),
        }
    }
}

/// An evaluation's report and how long it took.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// ee-eval's report.
    pub report: EvalReport,
    /// Seconds spent (embedding + scoring).
    pub seconds: f64,
}

impl EvalSummary {
    /// `R@1 0.6123  R@2 0.7012 ...`.
    pub fn recalls(&self) -> String {
        let recalls: Vec<String> = self
            .report
            .recall_at_k
            .iter()
            .map(|r| format!("R@{} {:.4}", r.k, r.recall))
            .collect();
        recalls.join("  ")
    }
}

/// Embeddings of a loader's images.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// One row per embedded item, in item order.
    pub embeddings: EmbeddingMatrix,
    /// The loader's item index of each row.
    pub items: Vec<usize>,
    /// Items the loader skipped as unreadable (`skip_unreadable`), in order.
    pub skipped: Vec<usize>,
}

/// Embeds every image of `loader` in order (test transform) in batches of `batch_size`,
/// with a progress bar labelled `what` unless `quiet`. Items the loader skips (with
/// `skip_unreadable`) are left out and listed.
pub fn embed_loader<B: Backend, M: Embed<B>>(
    model: &M,
    loader: &ImageLoader,
    batch_size: usize,
    what: &str,
    quiet: bool,
    device: &B::Device,
) -> Result<Embedded> {
    let plan = BatchPlan::test(loader.len(), batch_size);
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(loader.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} images ({{elapsed}}<{{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut values = Vec::new();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let mut dim = 0;
    for batch in loader.iter::<B>(plan, device) {
        let batch = batch?;
        bar.inc((batch.item_indices.len() + batch.skipped.len()) as u64);
        skipped.extend(&batch.skipped);
        if batch.item_indices.is_empty() {
            continue;
        }
        let embeddings = model.embed(batch.images);
        dim = embeddings.dims()[1];
        let data: Vec<f32> = embeddings
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| TrainError::Readback(format!("{e:?}")))?;
        values.extend(data);
        items.extend(&batch.item_indices);
    }
    bar.finish_and_clear();
    if items.is_empty() {
        return Err(TrainError::NoImages {
            count: loader.len(),
        });
    }
    Ok(Embedded {
        embeddings: EmbeddingMatrix::new(values, dim)?,
        items,
        skipped,
    })
}

fn labels_of(loader: &ImageLoader) -> Vec<i64> {
    loader
        .items()
        .iter()
        .map(|item| i64::from(item.class_id))
        .collect()
}

/// Embeds `set` with `model` (pass the eval-mode copy, `model.valid()`) and scores it.
pub fn evaluate<B: Backend, M: Embed<B>>(
    model: &M,
    set: &EvalSet,
    config: &EvalConfig,
    batch_size: usize,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalSummary> {
    let start = std::time::Instant::now();
    let report = match set {
        EvalSet::SelfRetrieval(loader) => {
            let matrix = embed_loader(model, loader, batch_size, "eval", quiet, device)?;
            let labels = pick(&labels_of(loader), &matrix.items);
            ee_eval::evaluate_matrix::<B>(&matrix.embeddings, &labels, config, device)?
        }
        EvalSet::QueryGallery { query, gallery } => {
            let queries = embed_loader(model, query, batch_size, "eval query", quiet, device)?;
            let gallery_set =
                embed_loader(model, gallery, batch_size, "eval gallery", quiet, device)?;
            ee_eval::evaluate_query_gallery_matrix::<B>(
                &queries.embeddings,
                &pick(&labels_of(query), &queries.items),
                &gallery_set.embeddings,
                &pick(&labels_of(gallery), &gallery_set.items),
                config,
                device,
            )?
        }
    };
    Ok(EvalSummary {
        report,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The labels of the embedded rows (a skipped image has no row).
fn pick(labels: &[i64], items: &[usize]) -> Vec<i64> {
    items.iter().map(|&i| labels[i]).collect()
}
