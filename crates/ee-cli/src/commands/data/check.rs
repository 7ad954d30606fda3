//! `ee data check`.

use clap::Args;
use ee_cli::data_check::data_check;
use ee_cli::error::Result;

use crate::commands::ConfigArgs;

/// Arguments of `ee data check`.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Report unreadable images as warnings, as a run with --skip-unreadable would skip
    /// them (same as --set data.skip_unreadable=true).
    #[arg(long)]
    skip_unreadable: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl CheckArgs {
    pub fn run(self) -> Result<()> {
        let mut config = self.config;
        if self.skip_unreadable {
            config.overrides.push("data.skip_unreadable=true".into());
        }
        data_check(&config.load()?, self.quiet)
    }
}
