//! `ee`: train, evaluate and check data for Embedding Expansion runs (see `ee --help`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use ee_cli::backend::{open_device, Compute, Train};
use ee_cli::config::{RawConfig, RunConfig, SyntheticSection};
use ee_cli::embed::{embed_images, embed_to_set, ImageList, TrainedNetwork};
use ee_cli::embedding_set::{EmbeddingSet, SetLayout};
use ee_cli::error::{CliError, Result};
use ee_cli::probe::{write_probes, Probe, ProbeSettings};
use ee_cli::search;
use ee_cli::train::{train, TrainOptions};
use ee_cli::viz::curves::{draw_curves, RunCurves};
use ee_cli::viz::retrieval;

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
        /// Skip unreadable images (each drops its class group from its batch) with a warning
        /// naming them, instead of stopping (same as --set data.skip_unreadable=true).
        #[arg(long)]
        skip_unreadable: bool,
        /// No progress bars (epoch and evaluation summaries are still printed).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Score a model: a checkpoint on the config's test set (Recall@K, MAP@R, R-precision,
    /// NMI/F1; queries against a gallery where the dataset defines them), two embedding
    /// files from `ee embed` as queries against a gallery, or one file against itself.
    #[command(group(
        ArgGroup::new("what")
            .required(true)
            .args(["checkpoint", "query", "embeddings"])
    ))]
    Eval {
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
    },
    /// Embed images with a trained model: a dataset split (--config), a folder (--images,
    /// recursively; subfolder names become labels) or a list file (--list: `PATH` or
    /// `PATH<TAB>LABEL` lines). Writes FILE.npy + FILE.csv (index,path,label) or
    /// FILE.safetensors, by the extension of --out.
    #[command(group(ArgGroup::new("source").required(true).args(["config", "images", "list"])))]
    Embed {
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
    },
    /// Find the k nearest gallery items of query images or embeddings (exact, Euclidean).
    Search {
        /// Gallery embeddings (`ee embed` output).
        #[arg(long)]
        gallery: PathBuf,
        /// Queries: an embeddings file, or images (one image, a folder, a list file) embedded
        /// with --checkpoint.
        #[arg(long)]
        query: PathBuf,
        /// Results per query (at least 1).
        #[arg(short, default_value_t = 10, allow_negative_numbers = true, value_parser = positive_count)]
        k: usize,
        /// The model that made the gallery, to embed query images.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Print JSON (a list of {query, label, hits: [{rank, index, path, label, distance}]}).
        #[arg(long)]
        json: bool,
        /// Images per forward pass when embedding queries.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Pictures of retrieval results and training curves (PNG).
    Viz {
        #[command(subcommand)]
        command: VizCommand,
    },
    /// Dataset tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Fixed computations (loss + gradient, GoogLeNet forward, a train step, train-step
    /// throughput, Recall@K at scale) on this binary's backend, written as JSON, to compare
    /// backends with each other and with PyTorch (`cargo xtask gpu-check` runs them on a GPU).
    Probe(ProbeArgs),
}

#[derive(Subcommand)]
enum VizCommand {
    /// A grid of queries (first column, blue) and their top-k results, framed green when the
    /// result's label is the query's and red when not (grey when a label is unknown).
    Retrieval {
        /// Gallery embeddings (`ee embed` output; paths must point at the images).
        #[arg(long)]
        gallery: PathBuf,
        /// Queries as for `ee search`; without it every gallery item is a query and is left
        /// out of its own results.
        #[arg(long)]
        query: Option<PathBuf>,
        /// The model that made the gallery, to embed query images.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Results per query (at least 1).
        #[arg(short, default_value_t = 5, allow_negative_numbers = true, value_parser = positive_count)]
        k: usize,
        /// Number of query rows.
        #[arg(long, default_value_t = 8)]
        queries: usize,
        /// Show the worst queries first (fewest correct results, then the latest first
        /// correct one) instead of the first ones.
        #[arg(long)]
        worst_first: bool,
        /// Side of the thumbnails in pixels.
        #[arg(long, default_value_t = 96)]
        thumb: u32,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Loss and Recall@K against epochs from runs' metrics.jsonl, runs overlaid (e.g. the
    /// inner-0 and inner-2 runs).
    Curves {
        /// Run directories (each with a metrics.jsonl).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The PNG to write.
        #[arg(long, default_value = "curves.png")]
        out: PathBuf,
        /// Which Recall@K to draw (repeatable; default: every K logged).
        #[arg(long = "recall-k")]
        recall_k: Vec<usize>,
        /// Picture width in pixels.
        #[arg(long, default_value_t = 1200)]
        width: u32,
        /// Picture height in pixels.
        #[arg(long, default_value_t = 450)]
        height: u32,
    },
}

/// Arguments of `ee probe`.
#[derive(Args)]
struct ProbeArgs {
    /// Probes to run, comma-separated: loss, forward, step, throughput, recall, or all.
    #[arg(long, default_value = "all")]
    what: String,
    /// Folder for probe.json (and the recall probe's .npy files).
    #[arg(long)]
    out: PathBuf,
    /// Throughput: images per step.
    #[arg(long, default_value_t = ProbeSettings::default().batch)]
    batch: usize,
    /// Throughput: image side in pixels.
    #[arg(long, default_value_t = ProbeSettings::default().image_size)]
    image_size: usize,
    /// Throughput: instances per class.
    #[arg(long, default_value_t = ProbeSettings::default().instances)]
    instances: usize,
    /// Throughput: untimed warm-up steps.
    #[arg(long, default_value_t = ProbeSettings::default().warmup)]
    warmup: usize,
    /// Throughput: timed steps (the median is reported).
    #[arg(long, default_value_t = ProbeSettings::default().steps)]
    steps: usize,
    /// Recall: number of embeddings.
    #[arg(long, default_value_t = ProbeSettings::default().recall_n)]
    recall_n: usize,
    /// Recall: number of classes.
    #[arg(long, default_value_t = ProbeSettings::default().recall_classes)]
    recall_classes: usize,
    /// Recall: the Ks, comma-separated.
    #[arg(long, default_value = "1,10,100,1000", value_delimiter = ',')]
    recall_ks: Vec<usize>,
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

#[derive(Subcommand)]
enum DataCommand {
    /// Read every image of the config's dataset once and report unreadable images and
    /// classes too small to train on; non-zero exit code when anything is wrong.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Report unreadable images as warnings, as a run with --skip-unreadable would skip
        /// them (same as --set data.skip_unreadable=true).
        #[arg(long)]
        skip_unreadable: bool,
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

/// `-k`: a whole number (a negative one is named as such rather than taken for a flag; 0 and
/// values above the gallery size are refused by the command, which knows the gallery).
fn positive_count(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<i64>() {
        Ok(k) if k >= 0 => Ok(k as usize),
        Ok(k) => Err(format!("invalid -k {k}: must be at least 1")),
        Err(_) => Err(format!(
            "expected a whole number of at least 1, got {text:?}"
        )),
    }
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
            skip_unreadable,
            quiet,
        } => {
            let mut config = config;
            if skip_unreadable {
                config.overrides.push("data.skip_unreadable=true".into());
            }
            let config = config.load()?;
            ee_cli::backend::check_compiled(&config)?;
            let devices = ee_cli::backend::open_devices(&config)?;
            let summary = train::<Train>(&config, &TrainOptions { resume, quiet }, &devices)?;
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
            overrides,
            checkpoint,
            query,
            gallery,
            embeddings,
            json,
            quiet,
        } => {
            let config = config
                .map(|path| -> Result<RunConfig> {
                    Ok(RawConfig::load(&path, &overrides)?.check()?)
                })
                .transpose()?;
            let device = match &config {
                Some(config) => ee_cli::backend::open_device_for(config)?,
                None => open_device()?,
            };
            let eval_config = match &config {
                Some(c) => ee_cli::evaluate::eval_config(c.get()),
                None => ee_eval::EvalConfig::new().with_map_at_r(true),
            };
            let report = match (checkpoint, query, gallery) {
                _ if embeddings.is_some() => ee_cli::evaluate::evaluate_file::<Compute>(
                    embeddings.as_deref().expect("checked"),
                    &eval_config,
                    &device,
                )?,
                (Some(checkpoint), _, _) => {
                    let config = config.expect("clap requires CONFIG with --checkpoint");
                    ee_cli::evaluate::evaluate_checkpoint::<Compute>(
                        &config,
                        &checkpoint,
                        quiet,
                        &device,
                    )?
                }
                (None, Some(query), Some(gallery)) => ee_cli::evaluate::evaluate_files::<Compute>(
                    &query,
                    &gallery,
                    &eval_config,
                    &device,
                )?,
                _ => unreachable!(
                    "clap requires --checkpoint, --query with --gallery, or --embeddings"
                ),
            };
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            Ok(())
        }
        Command::Embed {
            checkpoint,
            config,
            overrides,
            split,
            images,
            list,
            out,
            batch_size,
            skip_unreadable,
            quiet,
        } => {
            SetLayout::of(&out)?;
            let device = open_device()?;
            // A PyTorch state dict takes its network from --config.
            let run_config = config
                .as_ref()
                .map(|path| RawConfig::load(path, &overrides)?.check())
                .transpose()?;
            let trained = TrainedNetwork::<Compute>::load_with_config(
                &checkpoint,
                run_config.as_ref().map(|c| c.get()),
                &device,
            )?;
            let batch = batch_size
                .unwrap_or(trained.config.schedule.eval_batch_size)
                .max(1);
            let set = match (run_config, images, list) {
                (Some(config), _, _) => {
                    let split = dataset_split(&config, split)?;
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
            set.save(&out)?;
            let labelled = set.labels.iter().filter(|l| l.is_some()).count();
            println!(
                "wrote {} embeddings of dimension {} ({labelled} labelled) to {}{}",
                set.len(),
                set.dim(),
                out.display(),
                if SetLayout::of(&out)? == SetLayout::Npy {
                    format!(" and {}", ee_cli::embedding_set::index_path(&out).display())
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Search {
            gallery,
            query,
            k,
            checkpoint,
            json,
            batch_size,
            quiet,
        } => {
            let gallery_set = EmbeddingSet::load(&gallery)?;
            search::check_k(k, gallery_set.len())?;
            let device = open_device()?;
            let results = search::search_query::<Compute>(
                &gallery_set,
                &gallery,
                &query,
                checkpoint.as_deref(),
                k,
                batch_size,
                quiet,
                &device,
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&results).expect("results serialise")
                );
            } else {
                print!("{}", search::table(&results));
            }
            Ok(())
        }
        Command::Viz {
            command:
                VizCommand::Retrieval {
                    gallery,
                    query,
                    checkpoint,
                    k,
                    queries,
                    worst_first,
                    thumb,
                    out,
                    quiet,
                },
        } => {
            if queries == 0 {
                return Err(CliError::Usage(
                    "invalid --queries 0: must be at least 1".into(),
                ));
            }
            if !(8..=1024).contains(&thumb) {
                return Err(CliError::Usage(format!(
                    "invalid --thumb {thumb}: must be in 8..=1024"
                )));
            }
            let gallery_set = EmbeddingSet::load(&gallery)?;
            let device = open_device()?;
            let results = match query {
                Some(query) => search::search_query::<Compute>(
                    &gallery_set,
                    &gallery,
                    &query,
                    checkpoint.as_deref(),
                    k,
                    64,
                    quiet,
                    &device,
                )?,
                None => search::search_self::<Compute>(&gallery_set, k, &device)?,
            };
            let rows = retrieval::select_queries(&results, queries, worst_first)?;
            let (grid, unreadable) = retrieval::draw_grid(&results, &rows, thumb)?;
            for path in &unreadable {
                eprintln!("warning: cannot read {path}: drawn as a dark square");
            }
            ee_cli::viz::save_png(&grid, &out)?;
            let correct: usize = rows
                .iter()
                .map(|&q| {
                    results[q]
                        .hits
                        .iter()
                        .filter(|h| results[q].is_match(h) == Some(true))
                        .count()
                })
                .sum();
            println!(
                "wrote {} ({} x {} px): {} queries x {k} results, {correct} of the class of their query",
                out.display(),
                grid.width(),
                grid.height(),
                rows.len()
            );
            Ok(())
        }
        Command::Viz {
            command:
                VizCommand::Curves {
                    runs,
                    out,
                    recall_k,
                    width,
                    height,
                },
        } => {
            if !(200..=8000).contains(&width) || !(150..=8000).contains(&height) {
                return Err(CliError::Usage(format!(
                    "invalid --width {width} / --height {height}: width must be in 200..=8000, height in 150..=8000"
                )));
            }
            let mut curves = runs
                .iter()
                .map(|r| RunCurves::read(r))
                .collect::<Result<Vec<_>>>()?;
            // Runs of the same folder name are told apart by their paths in the legend.
            let names: Vec<String> = curves.iter().map(|c| c.name.clone()).collect();
            for (i, curve) in curves.iter_mut().enumerate() {
                if names.iter().filter(|&n| *n == names[i]).count() > 1 {
                    curve.name = runs[i].display().to_string();
                }
            }
            let image = draw_curves(&curves, &recall_k, width, height)?;
            ee_cli::viz::save_png(&image, &out)?;
            println!(
                "wrote {} ({width} x {height} px): {} run(s)",
                out.display(),
                curves.len()
            );
            Ok(())
        }
        Command::Probe(args) => {
            let probes = if args.what == "all" {
                Probe::ALL.to_vec()
            } else {
                args.what
                    .split(',')
                    .map(|name| Probe::parse(name.trim()))
                    .collect::<Result<Vec<_>>>()?
            };
            let settings = ProbeSettings {
                batch: args.batch,
                image_size: args.image_size,
                instances: args.instances,
                warmup: args.warmup,
                steps: args.steps,
                recall_n: args.recall_n,
                recall_classes: args.recall_classes,
                recall_ks: args.recall_ks,
            };
            let device = open_device()?;
            let backend = ee_cli::config::BackendName::compiled().as_str();
            let path = write_probes::<Train>(&probes, &settings, &args.out, &device, backend)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Data {
            command:
                DataCommand::Check {
                    mut config,
                    skip_unreadable,
                    quiet,
                },
        } => {
            if skip_unreadable {
                config.overrides.push("data.skip_unreadable=true".into());
            }
            ee_cli::data_check::data_check(&config.load()?, quiet)
        }
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
                ..SyntheticSection::default()
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
