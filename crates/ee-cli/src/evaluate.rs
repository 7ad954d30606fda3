//! Embedding a test split and scoring it with ee-eval (Recall@K, MAP@R, optionally NMI/F1);
//! also `ee eval CONFIG --checkpoint PATH`.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use ee_data::{BatchPlan, ImageLoader};
use ee_eval::{EmbeddingMatrix, EvalConfig, EvalReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, CheckpointFile};
use crate::config::{RawConfig, RunConfig};
use crate::dataset::open_dataset;
use crate::error::{CliError, Result};
use crate::network::{build_network, Network};
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

/// Embeds every image of `loader` (test transform, in order) with `network` in eval mode and
/// scores the embeddings.
pub fn embed_split<B: Backend>(
    network: &Network<B>,
    loader: &ImageLoader,
    config: &RunConfig,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalSummary> {
    let start = std::time::Instant::now();
    let c = config.get();
    let plan = BatchPlan::test(loader.len(), c.schedule.eval_batch_size);
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.batches.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("eval [{bar:30}] {pos}/{len} batches ({elapsed}<{eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut dim = c.model.embed_dim;
    for batch in loader.iter::<B>(plan, device) {
        let batch = batch?;
        let embeddings = network.forward(batch.images);
        dim = embeddings.dims()[1];
        let data: Vec<f32> = embeddings
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| CliError::DataCheck(format!("cannot read embeddings back: {e:?}")))?;
        values.extend(data);
        labels.extend(batch.class_ids.iter().map(|&l| i64::from(l)));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let matrix = EmbeddingMatrix::new(values, dim)?;
    let report = ee_eval::evaluate_matrix::<B>(&matrix, &labels, &eval_config(c), device)?;
    Ok(EvalSummary {
        report,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `ee eval`: loads `checkpoint` (its own config gives the network), embeds the test split of
/// `config` and returns the report.
pub fn evaluate_checkpoint<B: Backend>(
    config: &RunConfig,
    checkpoint_path: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<EvalReport> {
    let file = CheckpointFile::load(checkpoint_path)?;
    let stored = RawConfig::parse_str(&file.config, &[], &checkpoint_path.display().to_string())?;
    let mut network_config = config.get().clone();
    network_config.model = stored.model.clone();
    let network = build_network::<B>(&network_config, false, device)?;
    let network: Network<B> = network.load_record(checkpoint::record_from_bytes::<B, _>(
        file.network,
        device,
        checkpoint_path,
    )?);
    let dataset = open_dataset(config)?;
    let loader = loader_config(config).init(&dataset.test)?;
    Ok(embed_split(&network, &loader, config, quiet, device)?.report)
}
