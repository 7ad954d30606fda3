//! What the trainer tests share: a small generated dataset and a quick trainer config.

use std::path::Path;

use ee_data::{formats, Dataset, LoaderConfig, SamplerConfig, SynthOptions};
use ee_eval::EvalConfig;
use ee_train::TrainerConfig;

/// 8 classes x 8 images of 24 px, in the CARS196 format: 4 train and 4 test classes.
pub fn dataset(root: &Path) -> Dataset {
    let synth = SynthOptions::new()
        .with_num_classes(8)
        .with_images_per_class(8)
        .with_width(24)
        .with_height(24);
    let written = ee_data::write_synthetic_dataset(root, &synth).unwrap();
    let dir = &written.cars196_dir;
    formats::read_meta_dataset(dir, &dir.join("train.txt"), &dir.join("test.txt")).unwrap()
}

/// 16 px images.
pub fn loader() -> LoaderConfig {
    LoaderConfig::new().with_image_size(16)
}

/// Batches of 8 (`8 / instances_per_class` classes), 2 batches per epoch, an evaluation
/// and a log line at every epoch and step.
pub fn trainer(run_dir: &Path, epochs: u64, instances_per_class: usize) -> TrainerConfig {
    TrainerConfig::new(run_dir.to_path_buf())
        .with_sampler(
            SamplerConfig::new()
                .with_batch_size(8)
                .with_instances_per_class(instances_per_class)
                .with_epoch_size(Some(16)),
        )
        .with_loader(loader())
        .with_eval(EvalConfig::new().with_recall_ks(vec![1, 2]))
        .with_epochs(epochs)
        .with_eval_every_epochs(1)
        .with_eval_batch_size(16)
        .with_log_every_steps(1)
        .with_quiet(true)
}
