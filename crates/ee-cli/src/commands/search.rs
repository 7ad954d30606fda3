//! `ee search`.

use std::path::PathBuf;

use clap::Args;
use ee_cli::backend::{open_device, Compute};
use ee_cli::error::Result;
use ee_cli::search;
use ee_eval::embedding_set::EmbeddingSet;

use super::count;

/// Arguments of `ee search`.
#[derive(Args)]
pub struct SearchArgs {
    /// Gallery embeddings (`ee embed` output).
    #[arg(long)]
    gallery: PathBuf,
    /// Queries: an embeddings file, or images (one image, a folder, a list file) embedded
    /// with --checkpoint.
    #[arg(long)]
    query: PathBuf,
    /// Results per query (at least 1).
    #[arg(short, default_value_t = 10, allow_negative_numbers = true, value_parser = count("-k"))]
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
}

impl SearchArgs {
    pub fn run(self) -> Result<()> {
        let gallery_set = EmbeddingSet::load(&self.gallery)?;
        search::check_k(self.k, gallery_set.len())?;
        let device = open_device()?;
        let results = search::search_query::<Compute>(
            &gallery_set,
            &self.gallery,
            &self.query,
            self.checkpoint.as_deref(),
            self.k,
            self.batch_size,
            self.quiet,
            &device,
        )?;
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&results).expect("results serialise")
            );
        } else {
            print!("{}", search::table(&results));
        }
        Ok(())
    }
}
