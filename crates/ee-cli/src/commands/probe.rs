//! `ee probe`.

use std::path::PathBuf;

use clap::Args;
use ee_cli::backend::{open_device, Train};
use ee_cli::config::BackendName;
use ee_cli::error::Result;
use ee_train::probe::{write_probes, Probe, ProbeSettings};

/// Arguments of `ee probe`.
#[derive(Args)]
pub struct ProbeArgs {
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

impl ProbeArgs {
    pub fn run(self) -> Result<()> {
        let probes = if self.what == "all" {
            Probe::ALL.to_vec()
        } else {
            self.what
                .split(',')
                .map(|name| Probe::parse(name.trim()))
                .collect::<Result<Vec<_>, _>>()?
        };
        let settings = ProbeSettings {
            batch: self.batch,
            image_size: self.image_size,
            instances: self.instances,
            warmup: self.warmup,
            steps: self.steps,
            recall_n: self.recall_n,
            recall_classes: self.recall_classes,
            recall_ks: self.recall_ks,
        };
        let device = open_device()?;
        let backend = BackendName::compiled().as_str();
        let path = write_probes::<Train>(&probes, &settings, &self.out, &device, backend)?;
        println!("wrote {}", path.display());
        Ok(())
    }
}
