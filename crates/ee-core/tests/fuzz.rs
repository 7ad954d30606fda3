//! Fuzz / property tests of the `.npy` readers ([`read_matrix`], [`read_labels`]): random bytes,
//! random mutations (bit flips, truncations, insertions) of valid files, generated headers and
//! crafted headers whose length fields claim far more than the file holds.
//!
//! Every read must return `Ok` (with as many values as its shape says) or an error naming the
//! file: never a panic, never an allocation beyond what the file can hold, never a stack
//! overflow (which would abort this test binary).

#[path = "support/alloc_probe.rs"]
mod alloc_probe;
#[path = "support/mutate.rs"]
mod mutate;

#[global_allocator]
static ALLOC: alloc_probe::Probe = alloc_probe::Probe;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use ee_core::npy::{labels_bytes, matrix_bytes, read_labels, read_matrix};
use mutate::{mutated, mutations, panic_message};
use npyz::WriterBuilder;
use proptest::prelude::*;

/// What reading a file of `len` bytes may allocate at once: the readers' buffers plus a few
/// times the data (a `Vec` grows by doubling; `float64` data becomes `f32` values).
fn budget(len: usize) -> usize {
    256 * 1024 + 4 * len
}

/// Writes `bytes` to `path` and reads it with both readers; describes the first broken rule.
fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let show = |bytes: &[u8]| {
        format!(
            "{:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    };

    let start = Instant::now();
    let (result, largest) =
        alloc_probe::largest_allocation(|| catch_unwind(AssertUnwindSafe(|| read_matrix(path))));
    match result {
        Err(payload) => {
            return Err(format!(
                "read_matrix panicked ({}) on {}",
                panic_message(payload),
                show(bytes)
            ))
        }
        Ok(Ok(m)) if m.rows.checked_mul(m.cols) != Some(m.values.len()) => {
            return Err(format!(
                "read_matrix returned {} x {} with {} values on {}",
                m.rows,
                m.cols,
                m.values.len(),
                show(bytes)
            ))
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) if !e.to_string().contains(name) => {
            return Err(format!("read_matrix error does not name the file: {e}"))
        }
        Ok(Err(_)) => {}
    }
    if largest > budget(bytes.len()) {
        return Err(format!(
            "read_matrix allocated {largest} bytes at once for a {}-byte file {}",
            bytes.len(),
            show(bytes)
        ));
    }

    let (result, largest) =
        alloc_probe::largest_allocation(|| catch_unwind(AssertUnwindSafe(|| read_labels(path))));
    match result {
        Err(payload) => {
            return Err(format!(
                "read_labels panicked ({}) on {}",
                panic_message(payload),
                show(bytes)
            ))
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) if !e.to_string().contains(name) => {
            return Err(format!("read_labels error does not name the file: {e}"))
        }
        Ok(Err(_)) => {}
    }
    if largest > budget(bytes.len()) {
        return Err(format!(
            "read_labels allocated {largest} bytes at once for a {}-byte file {}",
            bytes.len(),
            show(bytes)
        ));
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err(format!(
            "reading a {}-byte file took {:?}",
            bytes.len(),
            start.elapsed()
        ));
    }
    Ok(())
}

/// A `.npy` file with `header` (a Python dict literal) and `data`, in format `version`.
fn npy_with_header(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut text = header.to_string();
    while !(prefix + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend((text.len() as u16).to_le_bytes());
    } else {
        bytes.extend((text.len() as u32).to_le_bytes());
    }
    bytes.extend(text.as_bytes());
    bytes.extend(data);
    bytes
}

fn header(descr: &str, fortran: bool, shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple}, }}")
}

/// A Fortran-order `float64` matrix (what `np.save` writes for a transposed array).
fn fortran_f64(rows: usize, cols: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .order(npyz::Order::Fortran)
        .shape(&[rows as u64, cols as u64])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend((0..rows * cols).map(|v| v as f64 * 0.5)).unwrap();
    w.finish().unwrap();
    bytes
}

/// A valid `.npy` of one of the kinds the readers accept.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..4, 1usize..4).prop_map(|(rows, cols)| {
            let values: Vec<f32> = (0..rows * cols).map(|v| v as f32 - 1.5).collect();
            matrix_bytes(&values, rows, cols)
        }),
        proptest::collection::vec(any::<i64>(), 0..6).prop_map(|l| labels_bytes(&l)),
        (1usize..4, 1usize..4).prop_map(|(rows, cols)| fortran_f64(rows, cols)),
    ]
}

/// Text that matters in a header.
const NPY_TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "'",
    "\"",
    " ",
    "\n",
    "\\",
    "0",
    "1",
    "9",
    "18446744073709551616",
    "-1",
    "True",
    "False",
    "None",
    "'shape'",
    "'descr'",
    "'<f8'",
    "'|u1'",
    "'fortran_order'",
    "NUMPY",
    "\u{ff}",
];

fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..5,
        1 => Just(1u64 << 31),
        1 => Just(1u64 << 32),
        1 => Just(1u64 << 40),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_are_an_error_or_a_matrix(
        magic in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = if magic { b"\x93NUMPY\x01\x00".to_vec() } else { Vec::new() };
        bytes.extend(tail);
        if let Err(e) = check_bytes(&dir.path().join("random.npy"), &bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_valid_files_are_an_error_or_a_matrix(
        file in valid_file(),
        mutations in mutations(NPY_TOKENS),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = mutated(file, &mutations);
        if let Err(e) = check_bytes(&dir.path().join("mutated.npy"), &bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn generated_headers_are_an_error_or_a_matrix(
        version in prop::sample::select(vec![1u8, 2, 3]),
        descr in prop::sample::select(vec![
            "<f4", "<f8", ">f4", "<f2", "<i8", "<i4", "|i1", "|u1", "<u8", ">u2", "|b1",
            "<c8", "|O", "<U3", "|S4", "<f0", "<f99999999999", "<M8[s]",
        ]),
        fortran in any::<bool>(),
        shape in proptest::collection::vec(dim(), 0..4),
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = npy_with_header(version, &header(descr, fortran, &shape), &data);
        if let Err(e) = check_bytes(&dir.path().join("header.npy"), &bytes) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Reads `bytes` as a matrix and as labels; both must fail promptly, naming the file and
/// containing `needle`.
fn assert_refused(bytes: &[u8], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.npy");
    check_bytes(&path, bytes).unwrap();
    let start = Instant::now();
    for err in [
        read_matrix(&path).map(|_| ()).unwrap_err(),
        read_labels(&path).map(|_| ()).unwrap_err(),
    ] {
        let err = err.to_string();
        assert!(
            err.contains("crafted.npy") && err.contains(needle),
            "{needle:?} not in {err}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_shape_whose_product_overflows_is_refused() {
    // 2^40 x 2^40 values: the product does not fit in 64 bits.
    let h = header("<f4", false, &[1 << 40, 1 << 40]);
    assert_refused(&npy_with_header(1, &h, &[0; 16]), "shape");
    // 2^32 x 2^32 wraps to 0 in 64 bits: it must not read as an empty matrix.
    let h = header("<f4", false, &[1 << 32, 1 << 32]);
    assert_refused(&npy_with_header(1, &h, &[]), "shape");
    let h = header("<i8", false, &[u64::MAX]);
    assert_refused(&npy_with_header(1, &h, &[0; 16]), "shape");
}

#[test]
fn a_shape_larger_than_the_file_is_refused_before_reading() {
    // 2^40 x 4 float32 values (16 TiB) in a file of 16 bytes of data.
    let h = header("<f4", false, &[1 << 40, 4]);
    assert_refused(&npy_with_header(1, &h, &[0; 16]), "bytes");
    let h = header("<i8", false, &[1 << 40]);
    assert_refused(&npy_with_header(1, &h, &[0; 16]), "bytes");
    // One value short.
    let h = header("<f4", false, &[3, 4]);
    assert_refused(&npy_with_header(1, &h, &[0; 44]), "bytes");
}

#[test]
fn a_header_shorter_than_the_length_field_read_ahead_is_an_error() {
    // Version 1.0 headers of 0 and 1 bytes: the reader reads 12 bytes ahead for the prefix.
    for len in [0u16, 1] {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend(len.to_le_bytes());
        bytes.extend(b"}\n\0\0\0\0");
        assert_refused(&bytes, "header");
    }
}

#[test]
fn a_header_length_beyond_the_file_is_refused_without_allocating_it() {
    // A version 2.0 header claims 4 GiB of header text; the file holds 20 bytes.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(0xFFFF_FF00u32.to_le_bytes());
    bytes.extend(b"{'descr': '<f4'}\n  ");
    assert_refused(&bytes, "header");
}

#[test]
fn a_deeply_nested_header_is_refused_promptly() {
    // 30 nested lists in a 120-byte header: npyz's Python-literal parser backtracks
    // exponentially on them (20 levels take seconds, 30 take hours).
    for (open, close, needle) in [("[", "]", "nested"), ("{1: ", "}", "header")] {
        let h = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}, }}",
            open.repeat(30),
            close.repeat(30)
        );
        assert_refused(&npy_with_header(1, &h, &[]), needle);
    }
    // 30,000 nested brackets: longer than the 10,000-byte header numpy accepts.
    let h = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}{}, }}",
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    assert_refused(&npy_with_header(1, &h, &[]), "10000 bytes");
}

#[test]
fn only_headers_as_numpy_writes_them_are_read() {
    // A backslash escape would let the two parsers disagree on a key (`'sh\x61pe'` is
    // `'shape'` to Python).
    let h = "{'descr': '<f4', 'fortran_order': False, 'sh\\x61pe': (1 << 40,), 'shape': (1,), }";
    assert_refused(&npy_with_header(1, h, &[0; 4]), "backslash");
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }";
    assert_refused(&npy_with_header(1, h, &[0; 8]), "header");
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), } junk";
    assert_refused(&npy_with_header(1, h, &[0; 16]), "after the dict");
    // What numpy writes, in double quotes too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.npy");
    for h in [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }",
        "{\"descr\": \"<f4\", \"shape\": [2, 1], \"fortran_order\": False}",
    ] {
        std::fs::write(&path, npy_with_header(1, h, &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        let m = read_matrix(&path).unwrap();
        assert_eq!((m.rows, m.cols, m.values), (2, 1, vec![1.0, 2.0]));
    }
    // A structured dtype is still refused by name.
    let h = "{'descr': [('a', '<f4', (2,)), ('b', [('c', '<i8')])], 'fortran_order': False, 'shape': (1, 1), }";
    std::fs::write(&path, npy_with_header(1, h, &[0; 16])).unwrap();
    let err = read_matrix(&path).unwrap_err().to_string();
    assert!(err.contains("plain numeric array"), "{err}");
}

#[test]
fn valid_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.npy");
    std::fs::write(&path, fortran_f64(2, 3)).unwrap();
    let m = read_matrix(&path).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.values, vec![0.0, 1.0, 2.0, 0.5, 1.5, 2.5]);
    std::fs::write(&path, matrix_bytes(&[], 0, 5)).unwrap();
    let m = read_matrix(&path).unwrap();
    assert_eq!((m.rows, m.cols, m.values.len()), (0, 5, 0));
    // Trailing bytes after the data are ignored, as numpy does.
    let mut bytes = labels_bytes(&[4, 5]);
    bytes.extend([0; 3]);
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(read_labels(&path).unwrap(), vec![4, 5]);
}

#[test]
fn an_empty_fortran_matrix_with_a_huge_dimension_reads_promptly_as_empty() {
    // Found by `generated_headers_are_an_error_or_a_matrix`: [2^32, 0] in Fortran order is a
    // valid empty matrix, but transposing it row by row took seconds for a 160-byte file.
    for shape in [[1u64 << 32, 0], [0, 1 << 32]] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.npy");
        std::fs::write(
            &path,
            npy_with_header(2, &header(">f4", true, &shape), &[0; 32]),
        )
        .unwrap();
        let start = Instant::now();
        let m = read_matrix(&path).unwrap();
        assert_eq!((m.rows as u64, m.cols as u64), (shape[0], shape[1]));
        assert!(m.values.is_empty());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}
