//! `ee viz curves`.

use std::path::PathBuf;

use clap::Args;
use ee_cli::error::Result;
use ee_viz::curves::{draw_curves, RunCurves};
use ee_viz::save_png;

use crate::commands::pixels;

/// Arguments of `ee viz curves`.
#[derive(Args)]
pub struct CurvesArgs {
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
    #[arg(long, default_value_t = 1200, value_parser = pixels("--width", 200..=8000))]
    width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 450, value_parser = pixels("--height", 150..=8000))]
    height: u32,
}

impl CurvesArgs {
    pub fn run(self) -> Result<()> {
        let mut curves = self
            .runs
            .iter()
            .map(|run| RunCurves::read(run))
            .collect::<Result<Vec<_>, _>>()?;
        // Runs of the same folder name are told apart by their paths in the legend.
        let names: Vec<String> = curves.iter().map(|curve| curve.name.clone()).collect();
        for (i, curve) in curves.iter_mut().enumerate() {
            if names.iter().filter(|&name| *name == names[i]).count() > 1 {
                curve.name = self.runs[i].display().to_string();
            }
        }
        let (width, height) = (self.width, self.height);
        let image = draw_curves(&curves, &self.recall_k, width, height)?;
        save_png(&image, &self.out)?;
        println!(
            "wrote {} ({width} x {height} px): {} run(s)",
            self.out.display(),
            curves.len()
        );
        Ok(())
    }
}
