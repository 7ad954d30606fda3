//! `ee-cli`: the `ee` command that trains and evaluates Embedding Expansion models, built on
//! ee-data (sampler, images), ee-model (network), ee-loss (expansion + HPHN) and ee-eval
//! (Recall@K).
//!
//! ```text
//! ee train CONFIG [--set section.key=value ...] [--resume]
//! ee eval CONFIG --checkpoint runs/x/best.mpk
//! ee embed --checkpoint runs/x/best.mpk --images photos/ --out gallery.npy
//! ee search --gallery gallery.npy --query photo.jpg --checkpoint runs/x/best.mpk -k 10
//! ee viz retrieval --gallery gallery.npy --out grid.png
//! ee viz curves runs/inner0 runs/inner2 --out curves.png
//! ee data check CONFIG
//! ee data synth [--root data/synth]
//! ```
//!
//! The library half holds the pieces the binary wires together, each testable alone:
//! [`config`] (TOML schema, overrides, validation), [`schedule`] (multi-step lr),
//! [`events`] (TensorBoard files), [`metrics`] (metrics.jsonl), [`checkpoint`] (atomic
//! checkpoints), [`network`] (backbone + head), [`train`], [`evaluate`], [`data_check`],
//! [`embed`] (a checkpoint's network over images), [`embedding_set`] (embeddings files),
//! [`search`] (top-k retrieval), [`viz`] (retrieval grids and training curves).
//!
//! ```
//! use ee_cli::config::RawConfig;
//! let config = RawConfig::parse_str(
//!     "[data]\nformat = \"synthetic\"\nroot = \"data/synth\"\n[run]\noutput_dir = \"runs/demo\"\n",
//!     &["schedule.instances_per_class=5".into()],
//!     "demo.toml",
//! )
//! .unwrap()
//! .check();
//! // K = 5 is odd, and Embedding Expansion (n_inner_pts = 2 by default) pairs rows.
//! assert!(config.unwrap_err().to_string().starts_with("invalid schedule.instances_per_class = 5"));
//! ```

#[cfg(not(any(feature = "flex", feature = "cuda")))]
compile_error!("ee-cli needs a backend feature: `flex` (CPU) or `cuda`");

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod data_check;
pub mod dataset;
pub mod embed;
pub mod embedding_set;
pub mod error;
pub mod evaluate;
pub mod events;
pub mod metrics;
pub mod network;
pub mod schedule;
pub mod search;
pub mod train;
pub mod viz;

pub use error::{CliError, Result};
