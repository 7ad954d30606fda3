//! Embeddings on disk with what they embed: the file `ee embed` writes and `ee search`,
//! `ee eval --query/--gallery` and `ee viz retrieval` read.
//!
//! Two layouts, picked by the extension of the path:
//!
//! - `NAME.npy` + `NAME.csv`: the embeddings as a 2-D little-endian `float32` array
//!   (`np.load("NAME.npy")` gives `[items, dim]`), and an index with one line per row,
//!   `index,path,label` (a header line first; `label` is empty when unknown).
//! - `NAME.safetensors`: one tensor `embeddings` (F32, `[items, dim]`); the paths and labels
//!   are JSON arrays in the header's `__metadata__` (`paths`, `labels`), beside
//!   `format = "ee-embeddings/1"`.
//!
//! Labels are class names kept as text (`"17"` for a dataset's class id, a folder's name for
//! a folder tree): only equality between them matters.
//!
//! ```
//! use ee_eval::embedding_set::{integer_labels, EmbeddingSet};
//! use ee_eval::EmbeddingMatrix;
//!
//! let set = EmbeddingSet::new(
//!     EmbeddingMatrix::new(vec![0.0, 1.0, 1.0, 0.0], 2)?,
//!     vec!["a.jpg".into(), "b.jpg".into()],
//!     vec![Some("cat".into()), Some("dog".into())],
//! )?;
//! let dir = std::env::temp_dir().join(format!("ee-set-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! set.save(&dir.join("gallery.npy"))?; // gallery.npy + gallery.csv
//! let back = EmbeddingSet::load(&dir.join("gallery.npy"))?;
//! assert_eq!(back, set);
//! assert_eq!(integer_labels(&[("gallery", &back)])?, vec![vec![0, 1]]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), ee_eval::EvalError>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ee_core::fs::write_atomic;

use crate::error::{EvalError, Result};
use crate::input::EmbeddingMatrix;

/// Value of `__metadata__["format"]` in the safetensors layout.
pub const SAFETENSORS_FORMAT: &str = "ee-embeddings/1";

/// Header line of the CSV index.
pub const INDEX_HEADER: [&str; 3] = ["index", "path", "label"];

/// Embeddings with the path and (optional) class label of every row.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSet {
    /// `[items, dim]` embeddings.
    pub embeddings: EmbeddingMatrix,
    /// Where each row's image is (or any name the rows had when given directly).
    pub paths: Vec<String>,
    /// Each row's class label, where known.
    pub labels: Vec<Option<String>>,
}

/// The two file layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetLayout {
    /// `.npy` + `.csv` index.
    Npy,
    /// `.safetensors` with the index in its metadata.
    Safetensors,
}

impl SetLayout {
    /// The layout a path's extension names; an error naming the path otherwise.
    pub fn of(path: &Path) -> Result<SetLayout> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(SetLayout::Npy),
            Some("safetensors") => Ok(SetLayout::Safetensors),
            _ => Err(set_error(
                path,
                "an embeddings file must end in .npy (with a .csv index beside it) or .safetensors",
            )),
        }
    }

    /// Whether `path` names an embeddings file (by its extension).
    pub fn is_embeddings_file(path: &Path) -> bool {
        SetLayout::of(path).is_ok()
    }
}

fn set_error(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::EmbeddingsFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The CSV index that goes with `NAME.npy`: `NAME.csv`.
pub fn index_path(npy: &Path) -> PathBuf {
    npy.with_extension("csv")
}

impl EmbeddingSet {
    /// Wraps embeddings and their index; errors unless there is one path and label per row.
    pub fn new(
        embeddings: EmbeddingMatrix,
        paths: Vec<String>,
        labels: Vec<Option<String>>,
    ) -> Result<Self> {
        if paths.len() != embeddings.rows() || labels.len() != embeddings.rows() {
            return Err(EvalError::SetLengthMismatch {
                embeddings: embeddings.rows(),
                paths: paths.len(),
                labels: labels.len(),
            });
        }
        Ok(EmbeddingSet {
            embeddings,
            paths,
            labels,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.embeddings.rows()
    }

    /// Whether the set has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.embeddings.dim()
    }

    /// Whether every row has a label.
    pub fn all_labelled(&self) -> bool {
        self.labels.iter().all(Option::is_some)
    }

    /// Writes the set to `path` in the layout its extension names (both files atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        match SetLayout::of(path)? {
            SetLayout::Npy => {
                write_atomic(path, &npy_bytes(&self.embeddings))?;
                let index = index_path(path);
                Ok(write_atomic(&index, &self.index_csv(&index)?)?)
            }
            SetLayout::Safetensors => Ok(write_atomic(path, &self.safetensors_bytes(path)?)?),
        }
    }

    /// Reads a set written by [`EmbeddingSet::save`] (or a `.npy` of embeddings whose index
    /// the user wrote, with the same columns).
    pub fn load(path: &Path) -> Result<Self> {
        match SetLayout::of(path)? {
            SetLayout::Npy => {
                let embeddings = crate::io::load_embeddings_npy(path)?;
                let index = index_path(path);
                if !index.is_file() {
                    return Err(set_error(
                        &index,
                        format!(
                            "missing: the index (index,path,label) of {} must be beside it",
                            path.display()
                        ),
                    ));
                }
                let (paths, labels) = read_index_csv(&index, embeddings.rows())?;
                Self::new(embeddings, paths, labels)
            }
            SetLayout::Safetensors => read_safetensors(path),
        }
    }

    fn index_csv(&self, path: &Path) -> Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let fail = |e: csv::Error| set_error(path, e.to_string());
        writer.write_record(INDEX_HEADER).map_err(fail)?;
        for (i, (p, label)) in self.paths.iter().zip(&self.labels).enumerate() {
            writer
                .write_record([i.to_string().as_str(), p, label.as_deref().unwrap_or("")])
                .map_err(fail)?;
        }
        writer
            .into_inner()
            .map_err(|e| set_error(path, e.to_string()))
    }

    fn safetensors_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let data: Vec<u8> = self
            .embeddings
            .as_slice()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![self.len(), self.dim()],
            &data,
        )
        .map_err(|e| set_error(path, e.to_string()))?;
        let metadata = HashMap::from([
            ("format".to_string(), SAFETENSORS_FORMAT.to_string()),
            (
                "paths".to_string(),
                serde_json::to_string(&self.paths).expect("strings serialise"),
            ),
            (
                "labels".to_string(),
                serde_json::to_string(&self.labels).expect("strings serialise"),
            ),
        ]);
        safetensors::serialize([("embeddings", view)], Some(metadata))
            .map_err(|e| set_error(path, e.to_string()))
    }
}

/// A `[rows, dim]` f32 matrix as the bytes of a version 1.0 `.npy` file (ee-core's writer).
pub fn npy_bytes(matrix: &EmbeddingMatrix) -> Vec<u8> {
    ee_core::npy::matrix_bytes(matrix.as_slice(), matrix.rows(), matrix.dim())
}

fn read_index_csv(path: &Path, rows: usize) -> Result<(Vec<String>, Vec<Option<String>>)> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::EmbeddingsIo {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(|e| set_error(path, e.to_string()))?
        .clone();
    if header.iter().collect::<Vec<_>>() != INDEX_HEADER {
        return Err(set_error(
            path,
            format!(
                "line 1: expected the header {:?}, found {:?}",
                INDEX_HEADER.join(","),
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut paths = Vec::with_capacity(rows);
    let mut labels = Vec::with_capacity(rows);
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| set_error(path, format!("line {line}: {e}")))?;
        if record.get(0) != Some(i.to_string().as_str()) {
            return Err(set_error(
                path,
                format!(
                    "line {line}: index {:?} out of order (expected {i})",
                    record.get(0).unwrap_or("")
                ),
            ));
        }
        paths.push(record[1].to_string());
        labels.push(Some(record[2].to_string()).filter(|l| !l.is_empty()));
    }
    if paths.len() != rows {
        return Err(set_error(
            path,
            format!(
                "{} rows in the index but {rows} embeddings in the .npy file",
                paths.len()
            ),
        ));
    }
    Ok((paths, labels))
}

fn read_safetensors(path: &Path) -> Result<EmbeddingSet> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::EmbeddingsIo {
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |message: String| set_error(path, message);
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let view = tensors
        .tensor("embeddings")
        .map_err(|_| fail("no tensor named \"embeddings\"".into()))?;
    let shape = view.shape().to_vec();
    if shape.len() != 2 || view.dtype() != safetensors::Dtype::F32 {
        return Err(fail(format!(
            "tensor \"embeddings\" must be F32 [items, dim], found {:?} {shape:?}",
            view.dtype()
        )));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let embeddings = EmbeddingMatrix::new(values, shape[1])?;
    let info = metadata.metadata().clone().unwrap_or_default();
    let field = |name: &str| -> Result<&String> {
        info.get(name).ok_or_else(|| {
            fail(format!(
                "no \"{name}\" in the header's __metadata__ (written by `ee embed`?)"
            ))
        })
    };
    let paths: Vec<String> = serde_json::from_str(field("paths")?)
        .map_err(|e| fail(format!("__metadata__ \"paths\": {e}")))?;
    let labels: Vec<Option<String>> = serde_json::from_str(field("labels")?)
        .map_err(|e| fail(format!("__metadata__ \"labels\": {e}")))?;
    if paths.len() != shape[0] || labels.len() != shape[0] {
        return Err(fail(format!(
            "{} embeddings but {} paths and {} labels in __metadata__",
            shape[0],
            paths.len(),
            labels.len()
        )));
    }
    EmbeddingSet::new(embeddings, paths, labels)
}

/// Integer labels for ee-eval: equal texts get equal numbers, numbered in order of first
/// appearance over `sets` together (so a query set and a gallery set share the numbering).
/// Errors naming the first unlabelled row.
pub fn integer_labels(sets: &[(&str, &EmbeddingSet)]) -> Result<Vec<Vec<i64>>> {
    let mut numbers: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::with_capacity(sets.len());
    for (name, set) in sets {
        let mut labels = Vec::with_capacity(set.len());
        for (row, label) in set.labels.iter().enumerate() {
            let Some(label) = label else {
                return Err(EvalError::Unlabelled {
                    set: name.to_string(),
                    row,
                    path: set.paths[row].clone(),
                });
            };
            let next = numbers.len() as i64;
            labels.push(*numbers.entry(label.as_str()).or_insert(next));
        }
        out.push(labels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: usize, dim: usize) -> EmbeddingSet {
        let values = (0..rows * dim).map(|i| i as f32 * 0.25 - 1.0).collect();
        EmbeddingSet::new(
            EmbeddingMatrix::new(values, dim).unwrap(),
            (0..rows).map(|i| format!("img, {i}.jpg")).collect(),
            (0..rows)
                .map(|i| (i % 3 != 2).then(|| format!("class {}", i % 2)))
                .collect(),
        )
        .unwrap()
    }

    /// The `.npy` layout checked byte by byte against the format's specification
    /// (numpy/lib/format.py, version 1.0): magic, version, header length, a Python dict
    /// literal padded with spaces to a multiple of 64 bytes and ending in a newline, then the
    /// data in C order, little-endian.
    #[test]
    fn npy_bytes_follow_the_format_specification() {
        let s = set(3, 5);
        let bytes = npy_bytes(&s.embeddings);
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!((bytes[6], bytes[7]), (1, 0), "version 1.0");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let data_start = 10 + header_len;
        assert_eq!(data_start % 64, 0, "the data starts 64-byte aligned");
        let header = std::str::from_utf8(&bytes[10..data_start]).unwrap();
        assert!(header.ends_with('\n'), "{header:?}");
        let dict = header.trim_end();
        assert!(dict.starts_with('{') && dict.ends_with('}'), "{dict:?}");
        // The dict's three keys, whatever their order and spacing.
        let squeezed: String = dict.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(squeezed.contains("'descr':'<f4'"), "{dict}");
        assert!(squeezed.contains("'fortran_order':False"), "{dict}");
        // The shape is a Python tuple literal: "(3, 5)" or "(3, 5, )".
        let shape_start = squeezed.find("'shape':(").expect("a shape key") + "'shape':(".len();
        let shape_len = squeezed[shape_start..].find(')').expect("a closed tuple");
        let shape: Vec<u64> = squeezed[shape_start..shape_start + shape_len]
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().unwrap())
            .collect();
        assert_eq!(shape, vec![3, 5], "{dict}");
        assert_eq!(bytes.len(), data_start + 3 * 5 * 4);
        for (i, chunk) in bytes[data_start..].chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes(chunk.try_into().unwrap());
            assert_eq!(v, s.embeddings.as_slice()[i], "value {i}");
        }
    }

    #[test]
    fn both_layouts_round_trip_paths_labels_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let s = set(7, 4);
        for name in ["e.npy", "e.safetensors"] {
            let path = dir.path().join(name);
            s.save(&path).unwrap();
            let back = EmbeddingSet::load(&path).unwrap();
            assert_eq!(back, s, "{name}");
        }
        let index = std::fs::read_to_string(dir.path().join("e.csv")).unwrap();
        let mut lines = index.lines();
        assert_eq!(lines.next(), Some("index,path,label"));
        assert_eq!(lines.next(), Some("0,\"img, 0.jpg\",class 0"));
        assert_eq!(
            lines.nth(1),
            Some("2,\"img, 2.jpg\","),
            "unknown label: empty"
        );
    }

    #[test]
    fn broken_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = set(4, 2);
        let npy = dir.path().join("g.npy");
        s.save(&npy).unwrap();
        let csv = index_path(&npy);
        let text = std::fs::read_to_string(&csv).unwrap();
        let short: Vec<&str> = text.lines().take(4).collect();
        std::fs::write(&csv, short.join("\n")).unwrap();
        let e = EmbeddingSet::load(&npy).unwrap_err().to_string();
        assert!(
            e.contains("g.csv") && e.contains("3 rows in the index but 4"),
            "{e}"
        );
        std::fs::remove_file(&csv).unwrap();
        let e = EmbeddingSet::load(&npy).unwrap_err().to_string();
        assert!(e.contains("g.csv") && e.contains("missing"), "{e}");
        let st = dir.path().join("g.safetensors");
        std::fs::write(&st, b"not at all").unwrap();
        let e = EmbeddingSet::load(&st).unwrap_err().to_string();
        assert!(
            e.contains("g.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );
        let e = EmbeddingSet::load(&dir.path().join("g.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(".npy") && e.contains(".safetensors"), "{e}");
    }

    #[test]
    fn integer_labels_share_one_numbering_and_need_every_label() {
        let a = set(2, 1); // class 0, class 1
        let mut b = set(2, 1);
        b.labels = vec![Some("class 1".into()), Some("new".into())];
        let got = integer_labels(&[("query", &b), ("gallery", &a)]).unwrap();
        assert_eq!(got, vec![vec![0, 1], vec![2, 0]]);
        let unlabelled = set(3, 1);
        let e = integer_labels(&[("gallery", &unlabelled)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("gallery") && e.contains("row 2"), "{e}");
    }

    /// numpy reads the file as written. Runs where python3 with numpy is installed (.ci/run
    /// installs it); with EE_REQUIRE_NUMPY=1, which .ci/run sets once numpy imports, a
    /// failed probe is an error instead of a skip.
    #[test]
    fn numpy_loads_the_npy_file() {
        let has_numpy = std::process::Command::new("python3")
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_numpy {
            assert!(
                std::env::var_os("EE_REQUIRE_NUMPY").is_none(),
                "EE_REQUIRE_NUMPY is set but python3 cannot import numpy"
            );
            eprintln!("skipped: python3 with numpy not found");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let s = set(6, 3);
        let path = dir.path().join("e.npy");
        s.save(&path).unwrap();
        let script = "import sys, numpy as np\n\
            x = np.load(sys.argv[1])\n\
            assert x.dtype == np.float32 and x.shape == (6, 3), (x.dtype, x.shape)\n\
            print(' '.join(repr(float(v)) for v in x.ravel()))\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let values: Vec<f32> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap() as f32)
            .collect();
        assert_eq!(values, s.embeddings.as_slice());
    }
}
