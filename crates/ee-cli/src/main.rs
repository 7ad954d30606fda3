//! `ee`: train, evaluate and check data for Embedding Expansion runs (see `ee --help`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ee_cli::error::Result;

mod commands;

use commands::{data, embed, eval, probe, search, train, viz};

#[derive(Parser)]
#[command(
    name = "ee",
    version,
    about = "Embedding Expansion (CVPR 2020) for deep metric learning, on burn",
    long_about = "Embedding Expansion (CVPR 2020) for deep metric learning, on burn.\n\n\
        A run is described by a TOML config (see configs/): sections [data], [model], [loss], \
        [optimizer], [schedule], [run]. Any value can be overridden on the command line with \
        --set section.key=value."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model: writes config.toml, metrics.jsonl, tensorboard/ and checkpoints
    /// (last.mpk every epoch, best.mpk on each new best Recall@1) to run.output_dir.
    Train(train::TrainArgs),
    /// Score a model: a checkpoint on the config's test set (Recall@K, MAP@R, R-precision,
    /// NMI/F1; queries against a gallery where the dataset defines them), two embedding
    /// files from `ee embed` as queries against a gallery, or one file against itself.
    Eval(eval::EvalArgs),
    /// Embed images with a trained model: a dataset split (--config), a folder (--images,
    /// recursively; subfolder names become labels) or a list file (--list: `PATH` or
    /// `PATH<TAB>LABEL` lines). Writes FILE.npy + FILE.csv (index,path,label) or
    /// FILE.safetensors, by the extension of --out.
    Embed(embed::EmbedArgs),
    /// Find the k nearest gallery items of query images or embeddings (exact, Euclidean).
    Search(search::SearchArgs),
    /// Pictures of retrieval results and training curves (PNG).
    Viz(viz::VizArgs),
    /// Dataset tools.
    Data(data::DataArgs),
    /// Fixed computations (loss + gradient, GoogLeNet forward, a train step, train-step
    /// throughput, Recall@K at scale) on this binary's backend, written as JSON, to compare
    /// backends with each other and with PyTorch (`cargo xtask gpu-check` runs them on a GPU).
    Probe(probe::ProbeArgs),
}

impl Command {
    fn run(self) -> Result<()> {
        match self {
            Command::Train(args) => args.run(),
            Command::Eval(args) => args.run(),
            Command::Embed(args) => args.run(),
            Command::Search(args) => args.run(),
            Command::Viz(args) => args.run(),
            Command::Data(args) => args.run(),
            Command::Probe(args) => args.run(),
        }
    }
}

/// The command line, or exit: help and version as clap prints them; a value that a flag's
/// parser refuses (`-k 0`) as one `error: ...` line naming the flag, the value and the rule
/// (clap's hint lines dropped), exit code 2 like every other usage error.
fn parse_command_line() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.kind() == clap::error::ErrorKind::ValueValidation => {
            let rendered = error.to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or_default());
            std::process::exit(2);
        }
        Err(error) => error.exit(),
    }
}

fn main() -> ExitCode {
    match parse_command_line().command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
