//! `ee viz`: `retrieval` and `curves`.

use clap::{Args, Subcommand};
use ee_cli::error::Result;

mod curves;
mod retrieval;

/// Arguments of `ee viz`: which picture.
#[derive(Args)]
pub struct VizArgs {
    #[command(subcommand)]
    command: VizCommand,
}

#[derive(Subcommand)]
enum VizCommand {
    /// A grid of queries (first column, blue) and their top-k results, framed green when the
    /// result's label is the query's and red when not (grey when a label is unknown).
    Retrieval(retrieval::RetrievalArgs),
    /// Loss and Recall@K against epochs from runs' metrics.jsonl, runs overlaid (e.g. the
    /// inner-0 and inner-2 runs).
    Curves(curves::CurvesArgs),
}

impl VizArgs {
    pub fn run(self) -> Result<()> {
        match self.command {
            VizCommand::Retrieval(args) => args.run(),
            VizCommand::Curves(args) => args.run(),
        }
    }
}
