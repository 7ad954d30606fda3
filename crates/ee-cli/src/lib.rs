//! `ee-cli`: the `ee` command that trains and evaluates Embedding Expansion models. It is
//! thin: it reads a TOML config and hands each crate its own settings: ee-data (datasets,
//! sampler, images), ee-model (network), ee-loss (expansion + losses), ee-eval (Recall@K)
//! and ee-train (the training loop, checkpoints, logs). Nothing here is needed to train from
//! Rust; see ee-train.
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
//! ee probe --what all --out probe/      # fixed computations as JSON, to compare backends
//! ```
//!
//! The library half holds the pieces the binary wires together, each testable alone:
//! [`config`] (TOML schema, overrides, validation, and the resolve step into each crate's
//! `Config`), one module per command: [`train`], [`evaluate`], [`embed`] (a checkpoint's
//! network over images), [`search`] (top-k retrieval), [`data_check`]; and [`dataset`]
//! (opening the configured dataset), [`backend`] (the compiled backend). What a researcher
//! could reuse lives in the library crates: pictures in ee-viz (`ee viz`), embeddings files
//! in `ee_eval::embedding_set`, the cross-backend probes in `ee_train::probe` (`ee probe`,
//! `cargo xtask gpu-check`).
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

#[cfg(not(any(feature = "flex", feature = "cuda", feature = "tch")))]
compile_error!("ee-cli needs a backend feature: `flex` (CPU), `cuda` or `tch` (LibTorch)");

pub mod backend;
pub mod config;
pub mod data_check;
pub mod dataset;
pub mod embed;
pub mod error;
pub mod evaluate;
pub mod search;
pub mod train;

pub use error::{CliError, Result};
