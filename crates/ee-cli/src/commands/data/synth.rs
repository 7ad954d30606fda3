//! `ee data synth`.

use std::path::PathBuf;

use clap::Args;
use ee_cli::config::SyntheticSection;
use ee_cli::dataset::write_synthetic;
use ee_cli::error::Result;

/// Arguments of `ee data synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// Folder to write (its `cars196/` subfolder holds the dataset).
    #[arg(long, default_value = "data/synth")]
    root: PathBuf,
    /// Number of classes (half train, half test).
    #[arg(long, default_value_t = SyntheticSection::default().num_classes)]
    classes: usize,
    /// Images per class.
    #[arg(long, default_value_t = SyntheticSection::default().images_per_class)]
    images_per_class: usize,
    /// Side of the square images in pixels.
    #[arg(long, default_value_t = SyntheticSection::default().image_side)]
    size: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SynthArgs {
    pub fn run(self) -> Result<()> {
        let options = SyntheticSection {
            num_classes: self.classes,
            images_per_class: self.images_per_class,
            image_side: self.size,
            seed: self.seed,
            ..SyntheticSection::default()
        };
        let written = write_synthetic(&self.root, &options)?;
        println!(
            "wrote {} classes x {} images ({} px) to {} (train classes 1..={})",
            written.num_classes,
            written.images_per_class,
            self.size,
            written.cars196_dir.display(),
            written.train_classes
        );
        Ok(())
    }
}
