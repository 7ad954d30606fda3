//! `ee train`.

use clap::Args;
use ee_cli::backend::{self, Train};
use ee_cli::error::Result;
use ee_cli::train::{train, TrainOptions};

use super::ConfigArgs;

/// Arguments of `ee train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Continue the run in run.output_dir from its last.mpk.
    #[arg(long)]
    resume: bool,
    /// Skip unreadable images (each drops its class group from its batch) with a warning
    /// naming them, instead of stopping (same as --set data.skip_unreadable=true).
    #[arg(long)]
    skip_unreadable: bool,
    /// No progress bars (epoch and evaluation summaries are still printed).
    #[arg(long, short)]
    quiet: bool,
}

impl TrainArgs {
    pub fn run(self) -> Result<()> {
        let mut config = self.config;
        if self.skip_unreadable {
            config.overrides.push("data.skip_unreadable=true".into());
        }
        let config = config.load()?;
        backend::check_compiled(&config)?;
        let devices = backend::open_devices(&config)?;
        let options = TrainOptions {
            resume: self.resume,
            quiet: self.quiet,
        };
        let summary = train::<Train>(&config, &options, &devices)?;
        println!(
            "done: {} epochs, {} steps; best R@1 {:.4} at epoch {}; run directory {}",
            summary.epochs,
            summary.steps,
            summary.best_recall,
            summary.best_epoch,
            summary.run_dir.display()
        );
        Ok(())
    }
}
