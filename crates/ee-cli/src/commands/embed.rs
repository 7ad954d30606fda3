//! `ee embed`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, ValueEnum};
use ee_cli::backend::{open_device, Compute};
use ee_cli::config::{RawConfig, RunConfig};
use ee_cli::embed::{embed_images, embed_to_set, ImageList, TrainedNetwork};
use ee_cli::error::{CliError, Result};
use ee_eval::embedding_set::{index_path, EmbeddingSet, SetLayout};

/// Arguments of `ee embed`.
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["config", "images", "list"])))]
pub struct EmbedArgs {
    /// A checkpoint written by `ee train`, or a PyTorch state dict (.pth / safetensors:
    /// torchvision backbone + embedding head) whose network --config describes.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Embed a split of this config's dataset (labels from the dataset).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a value of --config (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", requires = "config")]
    overrides: Vec<String>,
    /// Which split of --config's dataset.
    #[arg(long, value_enum, default_value_t = SplitName::Test, requires = "config")]
    split: SplitName,
    /// Embed every image under this folder.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Embed the images a list file names.
    #[arg(long)]
    list: Option<PathBuf>,
    /// Output file: NAME.npy (with NAME.csv beside it) or NAME.safetensors.
    #[arg(long)]
    out: PathBuf,
    /// Images per forward pass (default: the checkpoint's schedule.eval_batch_size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Leave out images that cannot be read (each named in a warning) instead of stopping.
    #[arg(long)]
    skip_unreadable: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// A split of a config's dataset.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SplitName {
    Train,
    Test,
    /// The query images (In-Shop, or data.query_split).
    Query,
    /// The gallery images (In-Shop, or data.gallery_split).
    Gallery,
}

impl EmbedArgs {
    pub fn run(self) -> Result<()> {
        SetLayout::of(&self.out)?;
        let device = open_device()?;
        // A PyTorch state dict takes its network from --config.
        let run_config = self
            .config
            .as_ref()
            .map(|path| RawConfig::load(path, &self.overrides)?.check())
            .transpose()?;
        let trained = TrainedNetwork::<Compute>::load_with_config(
            &self.checkpoint,
            run_config.as_ref().map(|config| config.get()),
            &device,
        )?;
        let batch = self
            .batch_size
            .unwrap_or(trained.config.schedule.eval_batch_size)
            .max(1);
        let (skip_unreadable, quiet) = (self.skip_unreadable, self.quiet);
        let set = match (run_config, self.images, self.list) {
            (Some(config), _, _) => {
                let split = dataset_split(&config, self.split)?;
                let loader = ee_cli::config::resolve::loader_config(config.get())
                    .with_skip_unreadable(skip_unreadable)
                    .init(&split)?;
                let list = ImageList::from_split(&split);
                embed_to_set(&trained.network, &loader, &list, batch, quiet, &device)?
            }
            (None, Some(dir), _) => {
                let list = ImageList::from_dir(&dir)?;
                embed_images(&trained, &list, batch, skip_unreadable, quiet, &device)?
            }
            (None, None, Some(file)) => {
                let list = ImageList::from_list(&file)?;
                embed_images(&trained, &list, batch, skip_unreadable, quiet, &device)?
            }
            _ => unreachable!("clap requires one source"),
        };
        set.save(&self.out)?;
        report_written(&set, &self.out)
    }
}

/// Prints what `ee embed` wrote.
fn report_written(set: &EmbeddingSet, out: &std::path::Path) -> Result<()> {
    let labelled = set.labels.iter().filter(|label| label.is_some()).count();
    println!(
        "wrote {} embeddings of dimension {} ({labelled} labelled) to {}{}",
        set.len(),
        set.dim(),
        out.display(),
        if SetLayout::of(out)? == SetLayout::Npy {
            format!(" and {}", index_path(out).display())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The split of `config`'s dataset that `ee embed --split` names.
fn dataset_split(config: &RunConfig, split: SplitName) -> Result<ee_data::Split> {
    if matches!(split, SplitName::Query | SplitName::Gallery) {
        let Some((query, gallery)) = ee_cli::dataset::open_query_gallery(config)? else {
            return Err(CliError::Usage(
                "--split query/gallery: this dataset defines no query and gallery (use \
                 data.format = \"inshop\", or data.query_split and data.gallery_split)"
                    .into(),
            ));
        };
        return Ok(if split == SplitName::Query {
            query
        } else {
            gallery
        });
    }
    let dataset = ee_cli::dataset::open_dataset(config)?;
    Ok(if split == SplitName::Train {
        dataset.train
    } else {
        dataset.test
    })
}
