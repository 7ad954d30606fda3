//! `ee viz retrieval`.

use std::path::PathBuf;

use clap::Args;
use ee_cli::backend::{open_device, Compute};
use ee_cli::error::Result;
use ee_cli::search;
use ee_eval::embedding_set::EmbeddingSet;
use ee_viz::{retrieval, save_png, QueryHits};

use crate::commands::{count, pixels};

/// Arguments of `ee viz retrieval`.
#[derive(Args)]
pub struct RetrievalArgs {
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
    #[arg(short, default_value_t = 5, allow_negative_numbers = true, value_parser = count("-k"))]
    k: usize,
    /// Number of query rows.
    #[arg(long, default_value_t = 8, value_parser = count("--queries"))]
    queries: usize,
    /// Show the worst queries first (fewest correct results, then the latest first
    /// correct one) instead of the first ones.
    #[arg(long)]
    worst_first: bool,
    /// Side of the thumbnails in pixels.
    #[arg(long, default_value_t = 96, value_parser = pixels("--thumb", 8..=1024))]
    thumb: u32,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl RetrievalArgs {
    pub fn run(self) -> Result<()> {
        let gallery_set = EmbeddingSet::load(&self.gallery)?;
        let device = open_device()?;
        let results = match &self.query {
            Some(query) => search::search_query::<Compute>(
                &gallery_set,
                &self.gallery,
                query,
                self.checkpoint.as_deref(),
                self.k,
                64,
                self.quiet,
                &device,
            )?,
            None => search::search_self::<Compute>(&gallery_set, self.k, &device)?,
        };
        let rows = retrieval::select_queries(&results, self.queries, self.worst_first)?;
        let (grid, unreadable) = retrieval::draw_grid(&results, &rows, self.thumb)?;
        for path in &unreadable {
            eprintln!("warning: cannot read {path}: drawn as a dark square");
        }
        save_png(&grid, &self.out)?;
        println!(
            "wrote {} ({} x {} px): {} queries x {} results, {} of the class of their query",
            self.out.display(),
            grid.width(),
            grid.height(),
            rows.len(),
            self.k,
            correct_hits(&results, &rows)
        );
        Ok(())
    }
}

/// Results of the drawn `rows` whose label is their query's.
fn correct_hits(results: &[QueryHits], rows: &[usize]) -> usize {
    rows.iter()
        .map(|&row| {
            let result = &results[row];
            result
                .hits
                .iter()
                .filter(|hit| result.is_match(hit) == Some(true))
                .count()
        })
        .sum()
}
