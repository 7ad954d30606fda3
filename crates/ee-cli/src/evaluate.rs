//! `ee eval`, and the images a run is scored on: a checkpoint's model over the test set
//! (test split against itself, or queries against a gallery), or embeddings files alone.

use std::path::Path;

use burn::tensor::backend::Backend;
use ee_data::{Dataset, Split};
use ee_eval::{EvalConfig, EvalReport};
use ee_train::EvalSet;

pub use crate::config::resolve::eval_config;
use crate::config::resolve::loader_config;
use crate::config::RunConfig;
use crate::dataset::{open_dataset, open_query_gallery};
use crate::embed::TrainedNetwork;
use crate::error::{CliError, Result};
use ee_eval::embedding_set::{integer_labels, EmbeddingSet};

/// The images of a run: the training split, the test set, and the held-out validation
/// classes that select the best checkpoint when `data.validation_classes` is set.
#[derive(Debug, Clone)]
pub struct RunSplits {
    /// Training images (without the validation classes).
    pub train: Split,
    /// Scored at every evaluation.
    pub test: EvalSet,
    /// Held-out training classes, if any.
    pub validation: Option<EvalSet>,
}

impl RunSplits {
    /// The splits of `config`'s dataset.
    pub fn open(config: &RunConfig, dataset: Dataset) -> Result<RunSplits> {
        let test = test_set(config, &dataset)?;
        let raw = config.get();
        let (train, validation) = match raw.data.validation_classes {
            None => (dataset.train, None),
            Some(n) => {
                let (train, held) = dataset.train.hold_out_classes(n).map_err(|e| match e {
                    ee_data::DataError::InvalidConfig { value, rule, .. } => CliError::Config(
                        crate::config::invalid("data.validation_classes", value, rule),
                    ),
                    other => other.into(),
                })?;
                let loader = loader_config(raw).init(&held)?;
                (train, Some(EvalSet::SelfRetrieval(loader)))
            }
        };
        Ok(RunSplits {
            train,
            test,
            validation,
        })
    }
}

/// The test set of `config`'s dataset: query/gallery where the dataset defines them, else
/// `dataset.test` against itself.
pub fn test_set(config: &RunConfig, dataset: &Dataset) -> Result<EvalSet> {
    let loader = loader_config(config.get());
    Ok(match open_query_gallery(config)? {
        Some((query, gallery)) => EvalSet::QueryGallery {
            query: loader.init(&query)?,
            gallery: loader.init(&gallery)?,
        },
        None => EvalSet::SelfRetrieval(loader.init(&dataset.test)?),
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
    let trained =
        TrainedNetwork::<B>::load_with_config(checkpoint_path, Some(config.get()), device)?;
    let dataset = open_dataset(config)?;
    let test = test_set(config, &dataset)?;
    let raw = config.get();
    Ok(ee_train::evaluate(
        &trained.network,
        &test,
        &eval_config(raw),
        raw.schedule.eval_batch_size,
        quiet,
        device,
    )?
    .report)
}

/// `ee eval --query FILE --gallery FILE`: scores two embedding files (`ee embed`'s output,
/// every row labelled) as queries against a gallery; no model needed.
pub fn evaluate_files<B: Backend>(
    query: &Path,
    gallery: &Path,
    config: &EvalConfig,
    device: &B::Device,
) -> Result<EvalReport> {
    let queries = EmbeddingSet::load(query)?;
    let gallery_set = EmbeddingSet::load(gallery)?;
    if queries.dim() != gallery_set.dim() {
        return Err(CliError::Usage(format!(
            "{} holds {}-dimensional embeddings but {} holds {}-dimensional ones",
            query.display(),
            queries.dim(),
            gallery.display(),
            gallery_set.dim()
        )));
    }
    let labels = integer_labels(&[("query", &queries), ("gallery", &gallery_set)])?;
    Ok(ee_eval::evaluate_query_gallery_matrix::<B>(
        &queries.embeddings,
        &labels[0],
        &gallery_set.embeddings,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn config(root: &std::path::Path, extra: &[&str]) -> Result<RunConfig> {
        let text = format!(
            "[data]\nformat = \"synthetic\"\nroot = \"{}\"\nimage_size = 16\n\
             [data.synthetic]\nnum_classes = 8\nimages_per_class = 4\nimage_side = 16\n\
             [model]\nbackbone = \"small_cnn\"\n[run]\noutput_dir = \"runs/t\"\n",
            root.display()
        );
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Ok(RawConfig::parse_str(&text, &extra, "t.toml")?.check()?)
    }

    #[test]
    fn validation_classes_are_held_out_of_the_training_split() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), &[]).unwrap();
        let plain = RunSplits::open(&c, open_dataset(&c).unwrap()).unwrap();
        assert!(plain.validation.is_none());
        assert_eq!(plain.train.num_classes(), 4);

        let c = config(dir.path(), &["data.validation_classes=1"]).unwrap();
        let held = RunSplits::open(&c, open_dataset(&c).unwrap()).unwrap();
        assert_eq!(held.train.num_classes(), 3);
        let Some(EvalSet::SelfRetrieval(v)) = &held.validation else {
            panic!("no validation set");
        };
        assert_eq!(v.len(), 4, "one class of 4 images");
        assert!(v
            .items()
            .iter()
            .all(|i| !held.train.classes().contains(&i.class_id)));

        let c = config(dir.path(), &["data.validation_classes=4"]).unwrap();
        let e = RunSplits::open(&c, open_dataset(&c).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid data.validation_classes = 4: must be between 1 and 3 (the training split has 4 classes)"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
