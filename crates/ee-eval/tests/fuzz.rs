//! Fuzz / property tests of the embedding readers ([`load_csv`], [`load_embeddings_npy`],
//! [`load_labels_npy`]) on random and mutated files: each returns `Ok` or an error naming the
//! file, never panics, and never allocates beyond what the file can hold.

#[path = "../../ee-core/tests/support/alloc_probe.rs"]
mod alloc_probe;
#[path = "../../ee-core/tests/support/mutate.rs"]
mod mutate;

#[global_allocator]
static ALLOC: alloc_probe::Probe = alloc_probe::Probe;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use ee_eval::io::{load_csv, load_embeddings_npy, load_labels_npy};
use mutate::{mutated, mutations, panic_message, show};
use proptest::prelude::*;

fn budget(len: usize) -> usize {
    256 * 1024 + 8 * len
}

/// Runs `read` on `path`, which holds `input`, under the rules above.
fn check<T>(
    path: &Path,
    input: &[u8],
    read: impl FnOnce() -> ee_eval::error::Result<T>,
) -> Result<(), String> {
    let name = path.file_name().unwrap().to_str().unwrap();
    let start = Instant::now();
    let (result, largest) =
        alloc_probe::largest_allocation(|| catch_unwind(AssertUnwindSafe(read)));
    match result {
        Err(payload) => {
            return Err(format!(
                "panicked ({}) reading {name}: {}",
                panic_message(payload),
                show(input)
            ))
        }
        Ok(Err(e)) if !e.to_string().contains(name) => {
            return Err(format!("the error does not name {name}: {e}"))
        }
        Ok(_) => {}
    }
    if largest > budget(input.len()) {
        return Err(format!(
            "allocated {largest} bytes at once for {} bytes: {}",
            input.len(),
            show(input)
        ));
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err(format!("reading {name} took {:?}", start.elapsed()));
    }
    Ok(())
}

fn check_all(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("emb.csv");
    std::fs::write(&csv, bytes).unwrap();
    check(&csv, bytes, || load_csv(&csv))?;
    let npy = dir.path().join("emb.npy");
    std::fs::write(&npy, bytes).unwrap();
    check(&npy, bytes, || load_embeddings_npy(&npy))?;
    check(&npy, bytes, || load_labels_npy(&npy))
}

const CSV_TOKENS: &[&str] = &[
    ",",
    "\n",
    "\r\n",
    "\n\n",
    "\"",
    " ",
    "0",
    "1",
    "-3",
    "0.5",
    "1e39",
    "nan",
    "inf",
    "",
    "label",
    "9223372036854775808",
    "-9223372036854775809",
    "\u{0}",
    "\u{feff}",
    "é",
];

const VALID_CSV: &[u8] = b"label,v1,v2\n0,0.5,1.0\n1,-2.0,3.25\n1,1e-3,0\n";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_csv_text_is_an_error_or_embeddings(
        tokens in proptest::collection::vec(prop::sample::select(CSV_TOKENS), 0..40),
    ) {
        if let Err(e) = check_all(tokens.concat().as_bytes()) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_files_are_an_error_or_embeddings(
        npy in any::<bool>(),
        ms in mutations(CSV_TOKENS),
    ) {
        let valid = if npy {
            ee_core::npy::matrix_bytes(&[0.5, 1.0, -2.0, 3.25], 2, 2)
        } else {
            VALID_CSV.to_vec()
        };
        if let Err(e) = check_all(&mutated(valid, &ms)) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn random_bytes_are_an_error_or_embeddings(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Err(e) = check_all(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn csv_errors_give_the_line_of_the_file() {
    // Blank lines are skipped: the bad value is on line 4 of the file, the third record.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.csv");
    std::fs::write(&path, "0,1.0,2.0\n\n1,3.0,4.0\n2,x,5.0\n").unwrap();
    let err = load_csv(&path).unwrap_err().to_string();
    assert!(err.contains("emb.csv") && err.contains("line 4"), "{err}");
    std::fs::write(&path, "label,a\n\n\n0,1.0\n1,2.0,3.0\n").unwrap();
    let err = load_csv(&path).unwrap_err().to_string();
    assert!(err.contains("line 5") && err.contains("2 values"), "{err}");
}
