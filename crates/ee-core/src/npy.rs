//! NumPy `.npy` arrays: 2-D float matrices and 1-D integer labels.
//!
//! Errors are [`NpyError`]s that name the file; each crate wraps them in its own error type.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
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

/// The longest `.npy` header read, in bytes: numpy refuses longer ones too (`np.load`'s
/// default `max_header_size`). A header is read whole into memory before it is parsed.
pub const MAX_HEADER_LEN: usize = 10_000;

/// The reader npyz gets: the header, already read and checked, then the rest of the file.
type Source = std::io::Chain<Cursor<Vec<u8>>, BufReader<File>>;

fn open(path: &Path) -> Result<NpyFile<Source>, NpyError> {
    let io_error = |what: &str, e: std::io::Error| NpyError {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
        io: Some(e),
    };
    let mut file = File::open(path).map_err(|e| io_error("cannot open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| io_error("cannot open", e))?
        .len();
    let head = read_checked_header(path, &mut file, file_len)?;
    NpyFile::new(Cursor::new(head).chain(BufReader::new(file)))
        .map_err(|e| error(path, format!("not a readable .npy file: {e}")))
}

/// Reads the magic, version, header length and header of a `.npy` file and checks every size
/// they claim against the file's length, before npyz sees them: npyz allocates the header
/// length it reads, and multiplies the shape's dimensions without checking for overflow
/// (a panic, or in release builds a wrapped element count, e.g. 0 for `(2**32, 2**32)`);
/// its header parser takes exponential time on nested brackets (see [`HeaderParser`]).
///
/// Returns the bytes read. What is not a `.npy` header of a known version is left to npyz to
/// report.
fn read_checked_header(path: &Path, file: &mut File, file_len: u64) -> Result<Vec<u8>, NpyError> {
    let read_err = |e: std::io::Error| NpyError {
        path: path.to_path_buf(),
        reason: format!("cannot read the header: {e}"),
        io: Some(e),
    };
    let mut head = Vec::with_capacity(12);
    file.by_ref()
        .take(12)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Ok(head);
    }
    let (prefix, header_len) = match head[6] {
        1 => (10, u64::from(u16::from_le_bytes([head[8], head[9]]))),
        2 | 3 if head.len() == 12 => (
            12,
            u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]])),
        ),
        _ => return Ok(head),
    };
    if header_len > MAX_HEADER_LEN as u64 {
        return Err(error(
            path,
            format!(
                "its header claims {header_len} bytes, more than the {MAX_HEADER_LEN} bytes numpy accepts"
            ),
        ));
    }
    let data_start = prefix + header_len;
    if data_start > file_len {
        return Err(error(
            path,
            format!(
                "its header claims {header_len} bytes but the file holds only {} after the \
                 {prefix}-byte prefix (a truncated file?)",
                file_len.saturating_sub(prefix)
            ),
        ));
    }
    // A version 1.0 header shorter than 2 bytes ends inside the 12 bytes read.
    let mut rest = Vec::with_capacity(header_len as usize);
    file.by_ref()
        .take(data_start.saturating_sub(head.len() as u64))
        .read_to_end(&mut rest)
        .map_err(read_err)?;
    head.extend(rest);
    if (head.len() as u64) < data_start {
        return Err(error(path, "the file ends inside its header"));
    }
    let text = &head[prefix as usize..data_start as usize];
    check_header_text(path, text, file_len - data_start)?;
    Ok(head)
}

/// Checks a header's text (the bytes after the prefix) and the sizes it claims: it must be a
/// dict of the plain Python literals numpy writes (see [`HeaderParser`]); every `shape` must
/// have an element count that fits in 64 bits (npyz multiplies the dimensions, and their
/// prefix products, unchecked); with a plain `descr`, the data it claims must fit in the
/// `data_len` bytes after the header.
fn check_header_text(path: &Path, header: &[u8], data_len: u64) -> Result<(), NpyError> {
    let bad = |reason: String| {
        error(
            path,
            format!("its header is not a dict as numpy writes it: {reason}"),
        )
    };
    let text = std::str::from_utf8(header).map_err(|_| bad("not UTF-8 text".into()))?;
    let entries = HeaderParser::new(text).header().map_err(bad)?;
    let mut item_sizes = Vec::new();
    for (_, descr) in entries.iter().filter(|(k, _)| k == "descr") {
        if let Literal::Str(descr) = descr {
            if let Some(size) = descr
                .parse::<npyz::TypeStr>()
                .ok()
                .and_then(|t| t.num_bytes())
            {
                item_sizes.push((descr.clone(), size as u64));
            }
        }
    }
    for (_, shape) in entries.iter().filter(|(k, _)| k == "shape") {
        let dims: Option<Vec<u64>> = match shape {
            Literal::Seq(dims) => dims
                .iter()
                .map(|d| match d {
                    Literal::Int(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        let Some(dims) = dims else {
            return Err(bad("'shape' is not a tuple of non-negative integers".into()));
        };
        // The product of the non-zero dimensions bounds every partial product.
        let count = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(count) = count else {
            return Err(error(
                path,
                format!("its shape {dims:?} has more elements than 64 bits can count"),
            ));
        };
        let count = if dims.contains(&0) { 0 } else { count };
        for (descr, size) in &item_sizes {
            match count.checked_mul(*size) {
                Some(bytes) if bytes <= data_len => {}
                bytes => {
                    let needs = bytes.map_or("more than 2^64".to_string(), |b| b.to_string());
                    return Err(error(
                        path,
                        format!(
                            "its shape {dims:?} of '{descr}' needs {needs} bytes of data but the \
                             file holds only {data_len} bytes after its header (a truncated file?)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A Python literal of the kinds numpy writes in a header.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    /// A tuple or a list.
    Seq(Vec<Literal>),
}

/// A strict parser of `.npy` headers: a dict with string keys whose values are strings
/// without backslashes, non-negative integers, `True`, `False`, `None`, and tuples or lists of
/// these nested at most [`HeaderParser::MAX_DEPTH`] deep (structured dtypes). This is all
/// `np.save` writes.
///
/// npyz parses headers with `py_literal`, whose parser takes time exponential in the nesting
/// depth (a 100-byte header of 30 nested lists takes hours), so only headers this parser
/// accepts reach it. No backslashes: so that every string means the same to both parsers.
struct HeaderParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> HeaderParser<'a> {
    /// The dict counts as one level.
    const MAX_DEPTH: usize = 5;

    fn new(text: &'a str) -> Self {
        HeaderParser { text, pos: 0 }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// The whole header: a dict, then only white space (numpy pads with spaces and `\n`).
    fn header(mut self) -> Result<Vec<(String, Literal)>, String> {
        if !self.eat("{") {
            return self.fail("expected `{`");
        }
        let mut entries = Vec::new();
        loop {
            if self.eat("}") {
                break;
            }
            self.skip_space();
            let key = self.string()?;
            if !self.eat(":") {
                return self.fail("expected `:`");
            }
            let value = self.value(2)?;
            entries.push((key, value));
            if !self.eat(",") {
                if self.eat("}") {
                    break;
                }
                return self.fail("expected `,` or `}`");
            }
        }
        self.skip_space();
        if !self.rest().is_empty() {
            return self.fail("unexpected text after the dict");
        }
        Ok(entries)
    }

    fn value(&mut self, depth: usize) -> Result<Literal, String> {
        self.skip_space();
        let rest = self.rest();
        let close = match rest.as_bytes().first() {
            Some(b'(') => ")",
            Some(b'[') => "]",
            Some(b'\'' | b'"') => return self.string().map(Literal::Str),
            Some(b'0'..=b'9') => return self.integer(),
            _ => {
                for (word, literal) in [
                    ("True", Literal::Bool(true)),
                    ("False", Literal::Bool(false)),
                    ("None", Literal::None),
                ] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return Ok(literal);
                    }
                }
                return self
                    .fail("expected a string, a number, True, False, None, a tuple or a list");
            }
        };
        if depth > Self::MAX_DEPTH {
            return self.fail(&format!("nested deeper than {} levels", Self::MAX_DEPTH));
        }
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                break;
            }
            items.push(self.value(depth + 1)?);
            if !self.eat(",") {
                if self.eat(close) {
                    break;
                }
                return self.fail(&format!("expected `,` or `{close}`"));
            }
        }
        Ok(Literal::Seq(items))
    }

    fn string(&mut self) -> Result<String, String> {
        let rest = self.rest();
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            return self.fail("expected a quoted string");
        };
        let body = &rest[1..];
        match body.find([quote, '\\', '\n']) {
            Some(end) if body[end..].starts_with(quote) => {
                self.pos += end + 2;
                Ok(body[..end].to_string())
            }
            Some(end) if body[end..].starts_with('\\') => {
                self.pos += end + 1;
                self.fail("a backslash in a string")
            }
            _ => self.fail("an unterminated string"),
        }
    }

    fn integer(&mut self) -> Result<Literal, String> {
        let rest = self.rest();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(n) = rest[..digits].parse::<u64>() else {
            return self.fail("an integer larger than 2^64");
        };
        self.pos += digits;
        if self
            .rest()
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return self.fail("expected an integer");
        }
        Ok(Literal::Int(n))
    }
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
    // An empty array needs no transpose; looping over its rows would take as long as the
    // (possibly 2^32) row count in the header, for a file of a few bytes.
    let values = if fortran && !values.is_empty() {
        // Fortran order stores column `c` as `values[c * rows..(c + 1) * rows]`.
        let mut c_order = vec![0.0; values.len()];
        for (c, column) in values.chunks_exact(rows).enumerate() {
            for (r, &v) in column.iter().enumerate() {
                c_order[r * cols + c] = v;
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
