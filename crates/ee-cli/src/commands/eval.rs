//! `ee eval`.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use ee_cli::backend::{self, Compute};
use ee_cli::config::{RawConfig, RunConfig};
use ee_cli::error::Result;
use ee_cli::evaluate;

/// Arguments of `ee eval`.
#[derive(Args)]
#[command(group(
    ArgGroup::new("what")
        .required(true)
        .args(["checkpoint", "query", "embeddings"])
))]
pub struct EvalArgs {
    /// The run config (TOML). Needed with --checkpoint; with --query/--gallery it only
    /// gives the metrics' settings (schedule.recall_k, schedule.eval_clustering).
    config: Option<PathBuf>,
    /// Override a config value (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// A checkpoint written by `ee train` (best.mpk or last.mpk), or a PyTorch state dict
    /// (.pth / safetensors: torchvision backbone + embedding head, keys of
    /// model.head_key) whose network CONFIG's [model] describes.
    #[arg(long, requires = "config")]
    checkpoint: Option<PathBuf>,
    /// Query embeddings (`ee embed` output: .npy with its .csv index, or .safetensors).
    #[arg(long, requires = "gallery", conflicts_with = "checkpoint")]
    query: Option<PathBuf>,
    /// Gallery embeddings, same formats as --query.
    #[arg(long, requires = "query")]
    gallery: Option<PathBuf>,
    /// One embeddings file scored against itself (each item left out of its own results).
    #[arg(long, conflicts_with_all = ["checkpoint", "query"])]
    embeddings: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl EvalArgs {
    pub fn run(self) -> Result<()> {
        let config = self
            .config
            .as_ref()
            .map(|path| -> Result<RunConfig> {
                Ok(RawConfig::load(path, &self.overrides)?.check()?)
            })
            .transpose()?;
        let device = match &config {
            Some(config) => backend::open_device_for(config)?,
            None => backend::open_device()?,
        };
        let eval_config = match &config {
            Some(config) => evaluate::eval_config(config.get()),
            None => ee_eval::EvalConfig::new().with_map_at_r(true),
        };
        let report = match (self.checkpoint, self.query, self.gallery) {
            _ if self.embeddings.is_some() => evaluate::evaluate_file::<Compute>(
                self.embeddings.as_deref().expect("checked"),
                &eval_config,
                &device,
            )?,
            (Some(checkpoint), _, _) => {
                let config = config.expect("clap requires CONFIG with --checkpoint");
                evaluate::evaluate_checkpoint::<Compute>(&config, &checkpoint, self.quiet, &device)?
            }
            (None, Some(query), Some(gallery)) => {
                evaluate::evaluate_files::<Compute>(&query, &gallery, &eval_config, &device)?
            }
            _ => {
                unreachable!("clap requires --checkpoint, --query with --gallery, or --embeddings")
            }
        };
        if self.json {
            println!("{}", report.to_json());
        } else {
            println!("{report}");
        }
        Ok(())
    }
}
