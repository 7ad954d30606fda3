//! `ee data`: `check` and `synth`.

use clap::{Args, Subcommand};
use ee_cli::error::Result;

mod check;
mod synth;

/// Arguments of `ee data`: which tool.
#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Read every image of the config's dataset once and report unreadable images and
    /// classes too small to train on; non-zero exit code when anything is wrong.
    Check(check::CheckArgs),
    /// Write a synthetic dataset (coloured shapes, one look per class) in CARS196 layout with
    /// the reference's meta files, for demos and tests (`data.format = "synthetic"`).
    Synth(synth::SynthArgs),
}

impl DataArgs {
    pub fn run(self) -> Result<()> {
        match self.command {
            DataCommand::Check(args) => args.run(),
            DataCommand::Synth(args) => args.run(),
        }
    }
}
