//! Pictures: `ee viz retrieval` (a grid of queries and their top-k, framed green or red by
//! label) and `ee viz curves` (loss and Recall@K per epoch of one or more runs).

pub mod curves;
pub mod retrieval;

use std::path::Path;

use image::RgbImage;

use crate::checkpoint::write_atomic;
use crate::error::{CliError, Result};

/// Encodes `image` as PNG and writes it to `path` atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| CliError::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}
