//! Precomputed feature vectors with labels, for training an embedding head on features that
//! another model produced. The same [`crate::ClassBalancedSampler`] serves them through
//! [`FeatureSet::labels`], and [`FeatureSet::batch`] gathers the sampled rows into tensors.
//!
//! Formats:
//! - CSV: one row per sample, `label,f_0,f_1,...,f_{D-1}`; an optional first line starting with
//!   `label` is a header. Every row must have the same number of features.
//! - NumPy: a 2-D `.npy` of features (`float32` or `float64`, C or Fortran order) and a 1-D
//!   `.npy` of integer labels of the same length.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{DataError, Result};

/// Feature vectors (row-major `[len, dim]`) and one class label per row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    dim: usize,
    features: Vec<f32>,
    labels: Vec<u32>,
}

impl FeatureSet {
    /// Wraps row-major `features` of width `dim` and their labels; `what` names the source in
    /// errors. Refuses an empty set, a ragged buffer and non-finite values.
    pub fn new(features: Vec<f32>, dim: usize, labels: Vec<u32>, what: &str) -> Result<Self> {
        if labels.is_empty() || dim == 0 {
            return Err(DataError::EmptySplit(format!("{what}: no feature vectors")));
        }
        if features.len() != labels.len() * dim {
            return Err(DataError::EmptySplit(format!(
                "{what}: {} values are not {} rows of {dim} features",
                features.len(),
                labels.len()
            )));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(DataError::EmptySplit(format!(
                "{what}: row {} feature {} is {} (features must be finite)",
                i / dim,
                i % dim,
                features[i]
            )));
        }
        Ok(FeatureSet {
            dim,
            features,
            labels,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false: a feature set is never empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The class label of every row (what the sampler takes).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Row `index` of the features.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.features[index * self.dim..(index + 1) * self.dim]
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// Gathers `indices` into `[indices.len(), dim]` features and `[indices.len()]` labels.
    ///
    /// # Panics
    /// When an index is out of range (indices come from a sampler built on these labels).
    pub fn batch<B: Backend>(
        &self,
        indices: &[usize],
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        let mut values = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            values.extend_from_slice(self.row(i));
        }
        let labels: Vec<i64> = indices.iter().map(|&i| i64::from(self.labels[i])).collect();
        (
            Tensor::from_data(TensorData::new(values, [indices.len(), self.dim]), device),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}

/// Reads a CSV of `label,f_0,...,f_{D-1}` rows (optional header line starting with `label`).
pub fn read_features_csv(path: &Path) -> Result<FeatureSet> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut dim = None;
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let Some(first) = record.get(0) else { continue };
        if labels.is_empty() && dim.is_none() && first.eq_ignore_ascii_case("label") {
            continue;
        }
        if record.len() == 1 && first.is_empty() {
            continue;
        }
        let label: u32 = first.parse().map_err(|_| {
            DataError::parse(
                path,
                line,
                format!("label {first:?} is not a non-negative integer"),
            )
        })?;
        let width = record.len() - 1;
        match dim {
            None if width == 0 => {
                return Err(DataError::parse(
                    path,
                    line,
                    "a row needs a label and at least one feature",
                ))
            }
            None => dim = Some(width),
            Some(d) if d != width => {
                return Err(DataError::parse(
                    path,
                    line,
                    format!("{width} features, but earlier rows have {d}"),
                ))
            }
            Some(_) => {}
        }
        for (k, field) in record.iter().skip(1).enumerate() {
            let value: f32 = field.parse().map_err(|_| {
                DataError::parse(path, line, format!("feature {k} {field:?} is not a number"))
            })?;
            if !value.is_finite() {
                return Err(DataError::parse(
                    path,
                    line,
                    format!("feature {k} is {value}"),
                ));
            }
            features.push(value);
        }
        labels.push(label);
    }
    FeatureSet::new(
        features,
        dim.unwrap_or(0),
        labels,
        &path.display().to_string(),
    )
}

/// Writes a feature set as CSV with a `label,f0,...` header.
pub fn write_features_csv(path: &Path, set: &FeatureSet) -> Result<()> {
    let mut writer = csv::Writer::from_path(path).map_err(|e| csv_error(path, e))?;
    let mut header = vec!["label".to_string()];
    header.extend((0..set.dim).map(|k| format!("f{k}")));
    writer
        .write_record(&header)
        .map_err(|e| csv_error(path, e))?;
    for (i, label) in set.labels.iter().enumerate() {
        let mut row = vec![label.to_string()];
        row.extend(set.row(i).iter().map(|v| v.to_string()));
        writer.write_record(&row).map_err(|e| csv_error(path, e))?;
    }
    writer.flush().map_err(|e| DataError::io(path, e))
}

fn npy_error(error: ee_core::npy::NpyError) -> DataError {
    match error.io {
        Some(io) => DataError::io(error.path, io),
        None => DataError::format(&error.path, error.reason),
    }
}

/// Reads a 2-D features `.npy` (`float32`/`float64`, C or Fortran order) and a 1-D integer
/// labels `.npy`, through ee-core's reader.
pub fn read_features_npy(features_path: &Path, labels_path: &Path) -> Result<FeatureSet> {
    let matrix = ee_core::npy::read_matrix(features_path).map_err(npy_error)?;
    let wide = ee_core::npy::read_labels(labels_path).map_err(npy_error)?;
    if wide.len() != matrix.rows {
        return Err(DataError::format(
            labels_path,
            format!(
                "labels must be a 1-D array of {} entries (one per feature row), found {}",
                matrix.rows,
                wide.len()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(wide.len());
    for (i, v) in wide.into_iter().enumerate() {
        labels.push(u32::try_from(v).map_err(|_| {
            DataError::format(
                labels_path,
                format!("label {i} = {v} is not in 0..=4294967295"),
            )
        })?);
    }
    FeatureSet::new(
        matrix.values,
        matrix.cols,
        labels,
        &features_path.display().to_string(),
    )
}

/// Writes a feature set as `float32` features `[rows, dim]` and `int64` labels `[rows]`.
pub fn write_features_npy(
    features_path: &Path,
    labels_path: &Path,
    set: &FeatureSet,
) -> Result<()> {
    let labels: Vec<i64> = set.labels.iter().map(|&l| i64::from(l)).collect();
    let features = ee_core::npy::matrix_bytes(&set.features, set.len(), set.dim);
    std::fs::write(features_path, features).map_err(|e| DataError::io(features_path, e))?;
    std::fs::write(labels_path, ee_core::npy::labels_bytes(&labels))
        .map_err(|e| DataError::io(labels_path, e))
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map(|p| p.line() as usize);
    match (error.into_kind(), line) {
        (csv::ErrorKind::Io(io), _) => DataError::io(path, io),
        (kind, Some(line)) => DataError::parse(path, line, format!("{kind:?}")),
        (kind, None) => DataError::format(path, format!("{kind:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type B = burn::backend::Flex;

    #[test]
    fn csv_round_trip_and_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let set =
            FeatureSet::new(vec![1.0, 2.0, 3.5, -4.0, 5.0, 6.25], 2, vec![7, 8, 7], "t").unwrap();
        write_features_csv(&path, &set).unwrap();
        let read = read_features_csv(&path).unwrap();
        assert_eq!(read, set);
        let (x, y) = read.batch::<B>(&[2, 0], &Default::default());
        assert_eq!(
            x.into_data().to_vec::<f32>().unwrap(),
            vec![5.0, 6.25, 1.0, 2.0]
        );
        assert_eq!(
            y.into_data().convert::<i64>().to_vec::<i64>().unwrap(),
            vec![7, 7]
        );
    }

    #[test]
    fn csv_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "label,a,b\n1,0.5,0.25\n2,0.5\n").unwrap();
        let err = read_features_csv(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.csv:3:") && err.contains("1 features"),
            "{err}"
        );
        std::fs::write(&path, "1,0.5,0.25\n2,0.5,abc\n").unwrap();
        let err = read_features_csv(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.csv:2:") && err.contains("\"abc\""),
            "{err}"
        );
        std::fs::write(&path, "1,0.5,NaN\n").unwrap();
        let err = read_features_csv(&path).unwrap_err().to_string();
        assert!(err.contains("bad.csv:1:") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (f, l) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
        let set = FeatureSet::new(
            (0..12).map(|v| v as f32 * 0.5).collect(),
            4,
            vec![0, 1, 1],
            "t",
        )
        .unwrap();
        write_features_npy(&f, &l, &set).unwrap();
        assert_eq!(read_features_npy(&f, &l).unwrap(), set);
    }

    #[test]
    fn npy_label_count_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (f, l) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
        let set = FeatureSet::new(vec![0.0; 6], 2, vec![0, 1, 1], "t").unwrap();
        write_features_npy(&f, &l, &set).unwrap();
        let short = FeatureSet::new(vec![0.0; 4], 2, vec![0, 1], "t").unwrap();
        let l2 = dir.path().join("y2.npy");
        write_features_npy(&dir.path().join("x2.npy"), &l2, &short).unwrap();
        let err = read_features_npy(&f, &l2).unwrap_err().to_string();
        assert!(err.contains("y2.npy") && err.contains("3 entries"), "{err}");
        let err = read_features_npy(&l, &l).unwrap_err().to_string();
        assert!(err.contains("2-D"), "{err}");
    }
}
