//! `ee`: train, evaluate and check data for Embedding Expansion runs (see `ee --help`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ee_cli::backend::{open_device, Compute, Train};
use ee_cli::config::{BackendName, RawConfig, RunConfig, SyntheticSection};
use ee_cli::error::{CliError, Result};
use ee_cli::train::{train, TrainOptions};

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
    Train {
        #[command(flatten)]
        config: ConfigArgs,
        /// Continue the run in run.output_dir from its last.mpk.
        #[arg(long)]
        resume: bool,
        /// No progress bars (epoch and evaluation summaries are still printed).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Evaluate a checkpoint on the config's test split (Recall@K, MAP@R, R-precision, NMI/F1).
    Eval {
        #[command(flatten)]
        config: ConfigArgs,
        /// A checkpoint written by `ee train` (best.mpk or last.mpk).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Dataset tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Read every image of the config's dataset once and report unreadable images and
    /// classes too small to train on; non-zero exit code when anything is wrong.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write a synthetic dataset (coloured shapes, one look per class) in CARS196 layout with
    /// the reference's meta files, for demos and tests (`data.format = "synthetic"`).
    Synth {
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
    },
}

#[derive(Args)]
struct ConfigArgs {
    /// The run config (TOML), e.g. configs/demo.toml.
    config: PathBuf,
    /// Override a config value: --set optimizer.lr=1e-3 (repeatable; applied before validation).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<RunConfig> {
        Ok(RawConfig::load(&self.config, &self.overrides)?.check()?)
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            resume,
            quiet,
        } => {
            let config = config.load()?;
            let built = BackendName::compiled();
            let wanted = config.get().run.backend;
            if wanted != built {
                return Err(CliError::Backend {
                    wanted: wanted.as_str(),
                    built: built.as_str(),
                });
            }
            let device = open_device()?;
            let summary = train::<Train>(&config, &TrainOptions { resume, quiet }, &device)?;
            println!(
                "done: {} epochs, {} steps; best R@1 {:.4} at epoch {}; run directory {}",
                summary.epochs,
                summary.steps,
                summary.best_recall1,
                summary.best_epoch,
                summary.run_dir.display()
            );
            Ok(())
        }
        Command::Eval {
            config,
            checkpoint,
            json,
            quiet,
        } => {
            let config = config.load()?;
            let device = open_device()?;
            let report = ee_cli::evaluate::evaluate_checkpoint::<Compute>(
                &config,
                &checkpoint,
                quiet,
                &device,
            )?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            Ok(())
        }
        Command::Data {
            command: DataCommand::Check { config, quiet },
        } => ee_cli::data_check::data_check(&config.load()?, quiet),
        Command::Data {
            command:
                DataCommand::Synth {
                    root,
                    classes,
                    images_per_class,
                    size,
                    seed,
                },
        } => {
            let options = SyntheticSection {
                num_classes: classes,
                images_per_class,
                image_side: size,
                seed,
            };
            let written = ee_cli::dataset::write_synthetic(&root, &options)?;
            println!(
                "wrote {} classes x {} images ({size} px) to {} (train classes 1..={})",
                written.num_classes,
                written.images_per_class,
                written.cars196_dir.display(),
                written.train_classes
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
