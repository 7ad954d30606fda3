//! Loading embeddings and labels from files: NumPy `.npy` or CSV.
//!
//! - `.npy` embeddings: a 2-D array of `f32` or `f64` (`np.save("emb.npy", x)`), through
//!   ee-core's reader.
//! - `.npy` labels: a 1-D array of integers (`i8`..`i64`, `u8`..`u64`).
//! - CSV: one item per line, the label first then the `dim` values, no header
//!   (a first line whose label is not an integer is taken as a header and skipped).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::error::{EvalError, Result};
use crate::input::EmbeddingMatrix;

fn format_error(path: &Path, reason: impl Into<String>) -> EvalError {
    EvalError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn npy_error(error: ee_core::npy::NpyError) -> EvalError {
    match error.io {
        Some(source) => EvalError::Io {
            path: error.path,
            source,
        },
        None => EvalError::Format {
            path: error.path,
            reason: error.reason,
        },
    }
}

/// Reads a 2-D `f32`/`f64` `.npy` array of embeddings (C or Fortran order).
pub fn load_embeddings_npy(path: impl AsRef<Path>) -> Result<EmbeddingMatrix> {
    let path = path.as_ref();
    let matrix = ee_core::npy::read_matrix(path).map_err(npy_error)?;
    EmbeddingMatrix::new(matrix.values, matrix.cols).map_err(|e| format_error(path, e.to_string()))
}

/// Reads a 1-D integer `.npy` array of labels.
pub fn load_labels_npy(path: impl AsRef<Path>) -> Result<Vec<i64>> {
    ee_core::npy::read_labels(path.as_ref()).map_err(npy_error)
}

/// Reads a CSV of `label,v1,...,vdim` lines into embeddings and labels.
pub fn load_csv(path: impl AsRef<Path>) -> Result<(EmbeddingMatrix, Vec<i64>)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::new(file));
    let mut labels = Vec::new();
    let mut data = Vec::new();
    let mut dim = None;
    for (index, record) in reader.records().enumerate() {
        // The line in the file where the record starts (the reader skips blank lines).
        let record = record.map_err(|e| {
            let line = e.position().map_or(index + 1, |p| p.line() as usize);
            format_error(path, format!("line {line}: {e}"))
        })?;
        let line = record.position().map_or(index + 1, |p| p.line() as usize) - 1;
        let Some(first) = record.get(0) else { continue };
        let label = match first.parse::<i64>() {
            Ok(l) => l,
            Err(_) if index == 0 => continue, // a header
            Err(_) => {
                return Err(format_error(
                    path,
                    format!("line {}: label {first:?} is not an integer", line + 1),
                ))
            }
        };
        let row_dim = record.len() - 1;
        match dim {
            None if row_dim == 0 => {
                return Err(format_error(
                    path,
                    format!("line {}: no embedding values after the label", line + 1),
                ))
            }
            None => dim = Some(row_dim),
            Some(d) if d != row_dim => {
                return Err(format_error(
                    path,
                    format!(
                        "line {}: {row_dim} values, but earlier lines have {d}",
                        line + 1
                    ),
                ))
            }
            Some(_) => {}
        }
        for (col, field) in record.iter().skip(1).enumerate() {
            let v = field.parse::<f32>().map_err(|_| {
                format_error(
                    path,
                    format!(
                        "line {}, value {}: {field:?} is not a number",
                        line + 1,
                        col + 1
                    ),
                )
            })?;
            data.push(v);
        }
        labels.push(label);
    }
    let dim = dim.ok_or_else(|| format_error(path, "no data lines"))?;
    Ok((EmbeddingMatrix::new(data, dim)?, labels))
}
