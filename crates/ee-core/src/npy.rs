//! NumPy `.npy` arrays: 2-D float matrices and 1-D integer labels.
//!
//! Errors are [`NpyError`]s that name the file; each crate wraps them in its own error type.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, TypeChar, WriterBuilder};

/// A `.npy` file that cannot be read as asked.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct NpyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
    /// The I/O error behind it, if any (a missing file, a permission).
    #[source]
    pub io: Option<std::io::Error>,
}

fn error(path: &Path, reason: impl Into<String>) -> NpyError {
    NpyError {
        path: path.to_path_buf(),
        reason: reason.into(),
        io: None,
    }
}

/// A row-major `[rows, cols]` matrix read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub values: Vec<f32>,
}

fn open(path: &Path) -> Result<NpyFile<BufReader<File>>, NpyError> {
    let file = File::open(path).map_err(|e| NpyError {
        path: path.to_path_buf(),
        reason: format!("cannot open: {e}"),
        io: Some(e),
    })?;
    NpyFile::new(BufReader::new(file))
        .map_err(|e| error(path, format!("not a readable .npy file: {e}")))
}

fn plain_type(path: &Path, dtype: &DType) -> Result<(TypeChar, u64), NpyError> {
    match dtype {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => Err(error(
            path,
            format!(
                "expected a plain numeric array, found dtype {}",
                other.descr()
            ),
        )),
    }
}

/// Reads a 2-D `float32` or `float64` array (C or Fortran order) as a row-major `f32`
/// matrix.
pub fn read_matrix(path: &Path) -> Result<Matrix, NpyError> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(error(
            path,
            format!("expected a 2-D array [rows, dim], found shape {shape:?}"),
        ));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let fortran = npy.order() == npyz::Order::Fortran;
    let read_err = |e: std::io::Error| error(path, format!("cannot read data: {e}"));
    let values: Vec<f32> = match plain_type(path, &npy.dtype())? {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(read_err)?,
        (TypeChar::Float, 8) => npy
            .into_vec::<f64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        (c, s) => {
            return Err(error(
                path,
                format!("expected float32 or float64 values, found type {c:?} of {s} bytes"),
            ))
        }
    };
    let values = if fortran {
        let mut c_order = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                c_order[r * cols + c] = values[c * rows + r];
            }
        }
        c_order
    } else {
        values
    };
    Ok(Matrix { rows, cols, values })
}

/// Reads a 1-D integer array (`int8` .. `int64`, `uint8` .. `uint64`) as `i64` labels.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, NpyError> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 1 {
        return Err(error(
            path,
            format!("expected a 1-D array of labels, found shape {shape:?}"),
        ));
    }
    let read_err = |e: std::io::Error| error(path, format!("cannot read data: {e}"));
    fn widen<T: Into<i64>>(v: Vec<T>) -> Vec<i64> {
        v.into_iter().map(Into::into).collect()
    }
    Ok(match plain_type(path, &npy.dtype())? {
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(read_err)?,
        (TypeChar::Int, 4) => widen(npy.into_vec::<i32>().map_err(read_err)?),
        (TypeChar::Int, 2) => widen(npy.into_vec::<i16>().map_err(read_err)?),
        (TypeChar::Int, 1) => widen(npy.into_vec::<i8>().map_err(read_err)?),
        (TypeChar::Uint, 8) => npy
            .into_vec::<u64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| i64::try_from(v).map_err(|_| error(path, format!("label {v} exceeds i64"))))
            .collect::<Result<_, _>>()?,
        (TypeChar::Uint, 4) => widen(npy.into_vec::<u32>().map_err(read_err)?),
        (TypeChar::Uint, 2) => widen(npy.into_vec::<u16>().map_err(read_err)?),
        (TypeChar::Uint, 1) => widen(npy.into_vec::<u8>().map_err(read_err)?),
        (c, s) => {
            return Err(error(
                path,
                format!("expected integer labels, found type {c:?} of {s} bytes"),
            ))
        }
    })
}

/// A row-major `[rows, cols]` `f32` matrix as the bytes of a version 1.0 `.npy` file (C
/// order, little-endian `<f4`).
///
/// # Panics
/// If `values.len() != rows * cols`.
pub fn matrix_bytes(values: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(values.len(), rows * cols, "{rows} x {cols} matrix");
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(&mut bytes)
        .begin_nd()
        .expect("in-memory write");
    writer
        .extend(values.iter().copied())
        .expect("in-memory write");
    writer.finish().expect("in-memory write");
    bytes
}

/// 1-D `int64` labels as the bytes of a `.npy` file.
pub fn labels_bytes(labels: &[i64]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[labels.len() as u64])
        .writer(&mut bytes)
        .begin_nd()
        .expect("in-memory write");
    writer
        .extend(labels.iter().copied())
        .expect("in-memory write");
    writer.finish().expect("in-memory write");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_and_labels_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.npy");
        std::fs::write(&m, matrix_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3)).unwrap();
        let back = read_matrix(&m).unwrap();
        assert_eq!((back.rows, back.cols), (2, 3));
        assert_eq!(back.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let l = dir.path().join("l.npy");
        std::fs::write(&l, labels_bytes(&[3, -1, 7])).unwrap();
        assert_eq!(read_labels(&l).unwrap(), vec![3, -1, 7]);
        // Wrong ranks are refused with the file's name.
        let err = read_labels(&m).unwrap_err().to_string();
        assert!(err.contains("m.npy") && err.contains("1-D"), "{err}");
        let err = read_matrix(&l).unwrap_err().to_string();
        assert!(err.contains("2-D"), "{err}");
        std::fs::write(&l, b"not numpy").unwrap();
        let err = read_matrix(&l).unwrap_err().to_string();
        assert!(err.contains("not a readable .npy file"), "{err}");
        let err = read_matrix(&dir.path().join("missing.npy")).unwrap_err();
        assert!(err.io.is_some(), "{err}");
    }

    #[test]
    fn fortran_order_and_float64_read_row_major() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        let mut bytes = Vec::new();
        let mut w = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .order(npyz::Order::Fortran)
            .shape(&[2, 3])
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        // Column-major storage of [[1, 2, 3], [4, 5, 6]].
        w.extend([1.0, 4.0, 2.0, 5.0, 3.0, 6.0]).unwrap();
        w.finish().unwrap();
        std::fs::write(&path, bytes).unwrap();
        let m = read_matrix(&path).unwrap();
        assert_eq!(m.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
}
