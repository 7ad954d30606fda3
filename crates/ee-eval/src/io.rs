//! Loading embeddings and labels from files: NumPy `.npy` or CSV.
//!
//! - `.npy` embeddings: a 2-D C-order array of `f32` or `f64` (`np.save("emb.npy", x)`).
//! - `.npy` labels: a 1-D array of integers (`i8`..`i64`, `u8`..`u64`).
//! - CSV: one item per line, the label first then the `dim` values, no header
//!   (a first line whose label is not an integer is taken as a header and skipped).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use npyz::{DType, NpyFile, TypeChar};

use crate::error::{EvalError, Result};
use crate::input::EmbeddingMatrix;

fn format_error(path: &Path, reason: impl Into<String>) -> EvalError {
    EvalError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn open_npy(path: &Path) -> Result<NpyFile<BufReader<File>>> {
    let file = File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    NpyFile::new(BufReader::new(file))
        .map_err(|e| format_error(path, format!("not a readable .npy file: {e}")))
}

fn scalar_type(path: &Path, dtype: &DType) -> Result<(TypeChar, u64)> {
    match dtype {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => Err(format_error(
            path,
            format!(
                "expected a plain numeric array, found dtype {}",
                other.descr()
            ),
        )),
    }
}

/// Reads a 2-D `f32`/`f64` `.npy` array of embeddings.
pub fn load_embeddings_npy(path: impl AsRef<Path>) -> Result<EmbeddingMatrix> {
    let path = path.as_ref();
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(format_error(
            path,
            format!("expected a 2-D array [items, dim], found shape {shape:?}"),
        ));
    }
    if npy.order() != npyz::Order::C {
        return Err(format_error(
            path,
            "expected C (row-major) order, found Fortran order",
        ));
    }
    let dim = shape[1] as usize;
    let read_err = |e: std::io::Error| format_error(path, format!("reading data: {e}"));
    let data: Vec<f32> = match scalar_type(path, &npy.dtype())? {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(read_err)?,
        (TypeChar::Float, 8) => npy
            .into_vec::<f64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        (c, s) => {
            return Err(format_error(
                path,
                format!("expected float32 or float64 values, found type {c:?} of {s} bytes"),
            ))
        }
    };
    EmbeddingMatrix::new(data, dim).map_err(|e| format_error(path, e.to_string()))
}

/// Reads a 1-D integer `.npy` array of labels.
pub fn load_labels_npy(path: impl AsRef<Path>) -> Result<Vec<i64>> {
    let path = path.as_ref();
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 1 {
        return Err(format_error(
            path,
            format!("expected a 1-D array of labels, found shape {shape:?}"),
        ));
    }
    let read_err = |e: std::io::Error| format_error(path, format!("reading data: {e}"));
    let (c, s) = scalar_type(path, &npy.dtype())?;
    let labels: Vec<i64> = match (c, s) {
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(read_err)?,
        (TypeChar::Int, 4) => widen(npy.into_vec::<i32>().map_err(read_err)?),
        (TypeChar::Int, 2) => widen(npy.into_vec::<i16>().map_err(read_err)?),
        (TypeChar::Int, 1) => widen(npy.into_vec::<i8>().map_err(read_err)?),
        (TypeChar::Uint, 8) => npy
            .into_vec::<u64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| {
                i64::try_from(v).map_err(|_| format_error(path, format!("label {v} exceeds i64")))
            })
            .collect::<Result<_>>()?,
        (TypeChar::Uint, 4) => widen(npy.into_vec::<u32>().map_err(read_err)?),
        (TypeChar::Uint, 2) => widen(npy.into_vec::<u16>().map_err(read_err)?),
        (TypeChar::Uint, 1) => widen(npy.into_vec::<u8>().map_err(read_err)?),
        (c, s) => {
            return Err(format_error(
                path,
                format!("expected integer labels, found type {c:?} of {s} bytes"),
            ))
        }
    };
    Ok(labels)
}

fn widen<T: Into<i64>>(v: Vec<T>) -> Vec<i64> {
    v.into_iter().map(Into::into).collect()
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
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format_error(path, format!("line {}: {e}", line + 1)))?;
        let Some(first) = record.get(0) else { continue };
        let label = match first.parse::<i64>() {
            Ok(l) => l,
            Err(_) if line == 0 => continue, // a header
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
