//! Fuzz / property tests of the dataset readers on random and mutated input: `cars_annos.mat`
//! ([`read_cars_annotations`]), the reference's meta files, SOP's, CUB's and In-Shop's text
//! files, and the CSV / `.npy` feature files.
//!
//! Every read must return `Ok` or an error naming the file: never a panic, never an allocation
//! beyond what the file can hold, never a stack overflow (which would abort this test binary).
//! Crafted MAT-files whose length fields claim gigabytes must be refused promptly.

#[path = "../../ee-core/tests/support/alloc_probe.rs"]
mod alloc_probe;
#[path = "../../ee-core/tests/support/mutate.rs"]
mod mutate;

#[global_allocator]
static ALLOC: alloc_probe::Probe = alloc_probe::Probe;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use ee_data::formats::{
    read_cars_annotations, read_cub, read_inshop, read_meta_boxes, read_meta_records,
    read_sop_split, write_cars_annotations, write_inshop_partition, write_meta_boxes,
    write_meta_records, CarsAnnotation, MetaRecord,
};
use ee_data::{read_features_csv, read_features_npy, write_features_csv, BoundingBox, FeatureSet};
use mutate::{mutated, mutations, panic_message, show};
use proptest::prelude::*;

/// What reading a text file of `len` bytes may allocate at once.
fn text_budget(len: usize) -> usize {
    256 * 1024 + 8 * len
}

/// What reading a MAT-file of `len` bytes may allocate at once: a compressed file holds up to
/// about 1032 times its size.
fn mat_budget(len: usize) -> usize {
    1024 * 1024 + 1100 * len
}

/// Runs `read` on `path`, whose file holds `input`: it must not panic, must not allocate
/// more than `budget` bytes at once, must not take seconds, and an error must name `path`'s
/// file.
fn check<T>(
    path: &Path,
    input: &[u8],
    budget: usize,
    read: impl FnOnce() -> ee_data::Result<T>,
) -> Result<(), String> {
    check_in(&[path], input, budget, read)
}

/// As [`check`], for a reader of several files: an error must name one of `paths`.
fn check_in<T>(
    paths: &[&Path],
    input: &[u8],
    budget: usize,
    read: impl FnOnce() -> ee_data::Result<T>,
) -> Result<(), String> {
    let names: Vec<&str> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    let name = names.join(" or ");
    let start = Instant::now();
    let (result, largest) =
        alloc_probe::largest_allocation(|| catch_unwind(AssertUnwindSafe(read)));
    let elapsed = start.elapsed();
    match result {
        Err(payload) => {
            return Err(format!(
                "panicked ({}) reading {name}: {}",
                panic_message(payload),
                show(input)
            ))
        }
        Ok(Err(e)) if !names.iter().any(|n| e.to_string().contains(n)) => {
            return Err(format!("the error does not name {name}: {e}"))
        }
        Ok(_) => {}
    }
    if largest > budget {
        return Err(format!(
            "allocated {largest} bytes at once reading {name} ({} bytes): {}",
            input.len(),
            show(input)
        ));
    }
    if elapsed > Duration::from_secs(5) {
        return Err(format!("reading {name} took {elapsed:?}"));
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// MAT-files
// ---------------------------------------------------------------------------------------------

/// A hand-made little-endian level 5 MAT-file, for crafted inputs.
mod mat {
    pub const INT8: u32 = 1;
    pub const INT32: u32 = 5;
    pub const UINT32: u32 = 6;
    pub const DOUBLE: u32 = 9;
    pub const MATRIX: u32 = 14;
    pub const COMPRESSED: u32 = 15;
    pub const UTF8: u32 = 16;
    pub const CELL: u8 = 1;
    pub const STRUCT: u8 = 2;
    pub const CHAR: u8 = 4;
    pub const DOUBLE_CLASS: u8 = 6;

    pub fn header() -> Vec<u8> {
        let mut h = b"MATLAB 5.0 MAT-file, crafted by ee-data's fuzz tests".to_vec();
        h.resize(116, b' ');
        h.extend([0u8; 8]);
        h.extend(0x0100u16.to_le_bytes());
        h.extend(b"IM");
        h
    }

    /// A tag claiming `n` bytes.
    pub fn tag(ty: u32, n: u32) -> Vec<u8> {
        let mut t = ty.to_le_bytes().to_vec();
        t.extend(n.to_le_bytes());
        t
    }

    /// A data element: its tag, then `data` padded to 8 bytes.
    pub fn element(ty: u32, data: &[u8]) -> Vec<u8> {
        let mut e = tag(ty, data.len() as u32);
        e.extend(data);
        e.resize(e.len().div_ceil(8) * 8, 0);
        e
    }

    /// A small data element (at most 4 bytes of data).
    pub fn small(ty: u32, data: &[u8]) -> Vec<u8> {
        let mut e = ((data.len() as u32) << 16 | ty).to_le_bytes().to_vec();
        e.extend(data);
        e.resize(8, 0);
        e
    }

    pub fn flags(class: u8) -> Vec<u8> {
        element(UINT32, &[class, 0, 0, 0, 0, 0, 0, 0])
    }

    pub fn dims(dims: &[u32]) -> Vec<u8> {
        element(
            INT32,
            &dims
                .iter()
                .flat_map(|d| d.to_le_bytes())
                .collect::<Vec<_>>(),
        )
    }

    pub fn name(name: &str) -> Vec<u8> {
        element(INT8, name.as_bytes())
    }

    /// A matrix of the given sub-elements.
    pub fn matrix(parts: &[Vec<u8>]) -> Vec<u8> {
        element(MATRIX, &parts.concat())
    }

    pub fn text(s: &str) -> Vec<u8> {
        matrix(&[
            flags(CHAR),
            dims(&[1, s.len() as u32]),
            name(""),
            element(UTF8, s.as_bytes()),
        ])
    }

    pub fn double(v: f64) -> Vec<u8> {
        matrix(&[
            flags(DOUBLE_CLASS),
            dims(&[1, 1]),
            name(""),
            element(DOUBLE, &v.to_le_bytes()),
        ])
    }

    /// A struct array named `var` of `dims`, `values` element by element.
    pub fn struct_array(var: &str, dims_: &[u32], fields: &[&str], values: &[Vec<u8>]) -> Vec<u8> {
        let names: Vec<u8> = fields
            .iter()
            .flat_map(|f| {
                let mut n = f.as_bytes().to_vec();
                n.resize(32, 0);
                n
            })
            .collect();
        let mut parts = vec![
            flags(STRUCT),
            dims(dims_),
            name(var),
            small(INT32, &32u32.to_le_bytes()),
            element(INT8, &names),
        ];
        parts.extend(values.iter().cloned());
        matrix(&parts)
    }

    pub const FIELDS: [&str; 7] = [
        "relative_im_path",
        "bbox_x1",
        "bbox_y1",
        "bbox_x2",
        "bbox_y2",
        "class",
        "test",
    ];

    /// The values of one annotation, with `path` as its `relative_im_path` matrix.
    pub fn annotation(path: Vec<u8>, i: u32) -> Vec<Vec<u8>> {
        vec![
            path,
            double(f64::from(i)),
            double(2.0),
            double(f64::from(100 + i)),
            double(50.0),
            double(f64::from(1 + i % 3)),
            double(0.0),
        ]
    }

    /// A whole file: header and an `annotations` variable of `n` elements.
    pub fn annotations_file(n: u32) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..n)
            .flat_map(|i| annotation(text(&format!("car_ims/{i:06}.jpg")), i))
            .collect();
        let mut file = header();
        file.extend(struct_array("annotations", &[1, n], &FIELDS, &values));
        file
    }
}

fn annotations(n: u32) -> Vec<CarsAnnotation> {
    (1..=n)
        .map(|i| CarsAnnotation {
            relative_im_path: format!("car_ims/{i:06}.jpg"),
            corners: [i, 2 * i, 300 + i, 400],
            class: 1 + i % 5,
            test: i % 2 == 0,
        })
        .collect()
}

/// `cars_annos.mat` as [`write_cars_annotations`] writes it (compressed, as MATLAB's v7).
fn matrw_file(n: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cars_annos.mat");
    write_cars_annotations(&path, &annotations(n), &["audi".into(), "bmw".into()]).unwrap();
    std::fs::read(path).unwrap()
}

/// Reads `bytes` as `cars_annos.mat` under the rules of [`check`].
fn check_mat(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cars_annos.mat");
    std::fs::write(&path, bytes).unwrap();
    check(&path, bytes, mat_budget(bytes.len()), || {
        read_cars_annotations(&path)
    })
}

/// Reads a crafted `bytes` as `cars_annos.mat`: it must be refused promptly, with an error
/// naming the file and containing `needle`, allocating at most `budget` bytes at once.
fn assert_mat_refused(bytes: &[u8], budget: usize, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cars_annos.mat");
    std::fs::write(&path, bytes).unwrap();
    let start = Instant::now();
    let (result, largest) = alloc_probe::largest_allocation(|| read_cars_annotations(&path));
    let err = result.map(|_| ()).unwrap_err().to_string();
    assert!(
        largest <= budget,
        "allocated {largest} bytes at once: {err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.contains("cars_annos.mat") && err.contains(needle),
        "{needle:?} not in {err}"
    );
}

/// Bytes that matter in a MAT-file: tags, classes, the endian indicator.
const MAT_TOKENS: &[&str] = &[
    "\u{0}",
    "\u{1}",
    "\u{2}",
    "\u{5}",
    "\u{6}",
    "\u{e}",
    "\u{f}",
    "\u{10}",
    "IM",
    "MI",
    "MATLAB 7.3 MAT-file",
    "\u{0}\u{0}\u{0}\u{0}",
    "\u{ff}",
];

#[test]
fn crafted_and_matrw_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cars_annos.mat");
    std::fs::write(&path, matrw_file(4)).unwrap();
    assert_eq!(read_cars_annotations(&path).unwrap(), annotations(4));
    std::fs::write(&path, mat::annotations_file(3)).unwrap();
    let read = read_cars_annotations(&path).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[2].relative_im_path, "car_ims/000002.jpg");
    assert_eq!((read[2].corners, read[2].class), ([2, 2, 102, 50], 3));
}

#[test]
fn a_name_claiming_4_gib_is_refused_without_allocating_it() {
    // The variable's name element claims 4 GiB; 16 bytes follow.
    let mut body = [mat::flags(mat::STRUCT), mat::dims(&[1, 1])].concat();
    body.extend(mat::tag(mat::INT8, 0xFFFF_FFF0));
    body.extend([b'a'; 16]);
    let mut file = mat::header();
    file.extend(mat::tag(mat::MATRIX, body.len() as u32));
    file.extend(body);
    assert_mat_refused(&file, text_budget(file.len()), "claims 4294967280 bytes");
}

#[test]
fn a_char_array_claiming_4_gib_is_refused_without_allocating_it() {
    // One annotation whose relative_im_path's data element claims 4 GiB.
    let mut path = [
        mat::flags(mat::CHAR),
        mat::dims(&[1, 4]),
        mat::name(""),
        mat::tag(mat::UTF8, u32::MAX),
    ]
    .concat();
    path.extend(b"abcd\0\0\0\0");
    let path = mat::element(mat::MATRIX, &path);
    let values = mat::annotation(path, 1);
    let mut file = mat::header();
    file.extend(mat::struct_array(
        "annotations",
        &[1, 1],
        &mat::FIELDS,
        &values,
    ));
    assert_mat_refused(&file, text_budget(file.len()), "claims 4294967295 bytes");
}

#[test]
fn a_top_level_element_claiming_more_than_the_file_is_refused() {
    let mut file = mat::annotations_file(2);
    file[132..136].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    assert_mat_refused(&file, text_budget(file.len()), "claims");
}

#[test]
fn a_compressed_variable_inflating_past_the_limit_is_refused() {
    // 300 MiB of zeros behind a matrix tag, compressed to about 300 KiB.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&mat::tag(mat::MATRIX, 300 << 20)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        z.write_all(&zeros).unwrap();
    }
    let compressed = z.finish().unwrap();
    let mut file = mat::header();
    file.extend(mat::tag(mat::COMPRESSED, compressed.len() as u32));
    file.extend(&compressed);
    // The reader stops at 256 MiB (and allocates no more than that, plus a byte).
    assert_mat_refused(&file, (256 << 20) + 1, "inflate to more than 256 MiB");
}

#[test]
fn deeply_nested_cells_do_not_overflow_the_stack() {
    // A variable of 100,000 cells nested in each other (4.8 MB), then `annotations` whose
    // bbox_x1 is 10,000 nested cells: a recursive parser overflows its stack on either.
    fn nested_cells(depth: usize, var: &str) -> Vec<u8> {
        let leaf = mat::double(1.0);
        let level =
            |name: &str| [mat::flags(mat::CELL), mat::dims(&[1, 1]), mat::name(name)].concat();
        let mut out = Vec::new();
        // Sizes from the outside in: level k holds the levels below it and the leaf.
        let below = |k: usize| (depth - k - 1) * (8 + level("").len()) + leaf.len();
        for k in 0..depth {
            let head = level(if k == 0 { var } else { "" });
            out.extend(mat::tag(mat::MATRIX, (head.len() + below(k)) as u32));
            out.extend(head);
        }
        out.extend(leaf);
        out
    }
    let mut file = mat::header();
    file.extend(nested_cells(100_000, "deep"));
    let mut values = mat::annotation(mat::text("car_ims/000001.jpg"), 1);
    values[1] = nested_cells(10_000, "");
    file.extend(mat::struct_array(
        "annotations",
        &[1, 1],
        &mat::FIELDS,
        &values,
    ));
    assert_mat_refused(&file, text_budget(file.len()), "bbox_x1 is not a number");
}

#[test]
fn a_struct_claiming_more_elements_than_its_bytes_is_refused() {
    // 2^16 x 2^16 elements of 7 fields; and 50 million elements in 3 elements' bytes.
    for dims in [[1u32 << 16, 1 << 16], [1, 50_000_000]] {
        let values: Vec<Vec<u8>> = (0..3)
            .flat_map(|i| mat::annotation(mat::text("a.jpg"), i))
            .collect();
        let mut file = mat::header();
        file.extend(mat::struct_array(
            "annotations",
            &dims,
            &mat::FIELDS,
            &values,
        ));
        assert_mat_refused(&file, text_budget(file.len()), "struct of 7 fields");
    }
}

#[test]
fn malformed_field_names_are_errors() {
    // A field name length of 0 (matrw divides by it), and names not a whole number of them.
    for (length, names) in [(0u32, vec![b'a'; 32]), (5, vec![b'a'; 32])] {
        let mut file = mat::header();
        file.extend(mat::matrix(&[
            mat::flags(mat::STRUCT),
            mat::dims(&[1, 1]),
            mat::name("annotations"),
            mat::small(mat::INT32, &length.to_le_bytes()),
            mat::element(mat::INT8, &names),
        ]));
        assert_mat_refused(&file, text_budget(file.len()), "field names");
    }
}

#[test]
fn a_full_size_annotation_file_reads_quickly() {
    // As many annotations as the real cars_annos.mat (16,185).
    let bytes = matrw_file(16_185);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cars_annos.mat");
    std::fs::write(&path, &bytes).unwrap();
    let start = Instant::now();
    let (read, largest) = alloc_probe::largest_allocation(|| read_cars_annotations(&path).unwrap());
    assert_eq!(read, annotations(16_185));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(largest < 64 << 20, "{largest} bytes at once");
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn random_bytes_are_not_a_mat_file(
        header in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = if header { mat::header() } else { Vec::new() };
        bytes.extend(tail);
        if let Err(e) = check_mat(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_mat_files_are_an_error_or_annotations(
        n in 1u32..4,
        kind in 0u8..3,
        ms in mutations(MAT_TOKENS),
    ) {
        let valid = match kind {
            0 => matrw_file(n),
            _ => mat::annotations_file(n),
        };
        let bytes = mutated(valid, &ms);
        // kind 2: the mutated (uncompressed) variable, compressed again.
        let bytes = if kind == 2 && bytes.len() > 128 {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&bytes[128..]).unwrap();
            let compressed = z.finish().unwrap();
            let mut file = bytes[..128].to_vec();
            file.extend(mat::tag(mat::COMPRESSED, compressed.len() as u32));
            file.extend(compressed);
            file
        } else {
            bytes
        };
        if let Err(e) = check_mat(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text and CSV files
// ---------------------------------------------------------------------------------------------

/// Tokens of the text formats, and the numbers and characters that break naive parsers.
const TEXT_TOKENS: &[&str] = &[
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\n\n",
    ",",
    "\"",
    "0",
    "1",
    "7",
    "-1",
    "+3",
    "1.5",
    "1e39",
    "nan",
    "inf",
    "-0",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "a.jpg",
    "img/x/1.jpg",
    "id_",
    "id_00000001",
    "train",
    "query",
    "gallery",
    "label",
    "image_id",
    "class_id",
    "view_id",
    "path",
    "super_class_id",
    "image_name",
    "item_id",
    "evaluation_status",
    "\u{0}",
    "\u{feff}",
    "é",
    "\u{ff}",
];

fn text_from(tokens: Vec<&str>) -> Vec<u8> {
    tokens.concat().into_bytes()
}

fn meta_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.txt");
    let records: Vec<MetaRecord> = (0..4)
        .map(|i| MetaRecord {
            image_id: i + 1,
            class_id: i as u32 / 2,
            view_id: 0,
            path: format!("car_ims/{i:06}.jpg"),
        })
        .collect();
    write_meta_records(&path, &records).unwrap();
    std::fs::read(path).unwrap()
}

fn bbox_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.txt");
    let b = BoundingBox {
        x: 1,
        y: 2,
        width: 30,
        height: 40,
    };
    write_meta_boxes(&path, &[(1, b), (2, b), (3, b)]).unwrap();
    std::fs::read(path).unwrap()
}

fn sop_file() -> Vec<u8> {
    b"image_id class_id super_class_id path\n1 1 1 bicycle_final/a.JPG\n2 1 1 bicycle_final/b.JPG\n3 2 1 bicycle_final/c.JPG\n".to_vec()
}

fn csv_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    let set =
        FeatureSet::new(vec![0.5, -1.0, 2.0, 0.25, 3.0, 1e-3], 2, vec![1, 2, 1], "t").unwrap();
    write_features_csv(&path, &set).unwrap();
    std::fs::read(path).unwrap()
}

fn inshop_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list_eval_partition.txt");
    let rows = vec![
        ("img/a/1.jpg".to_string(), 1, "train"),
        ("img/a/2.jpg".to_string(), 1, "train"),
        ("img/b/1.jpg".to_string(), 2, "query"),
        ("img/b/2.jpg".to_string(), 2, "gallery"),
    ];
    write_inshop_partition(&path, &rows).unwrap();
    std::fs::read(path).unwrap()
}

const CUB_IMAGES: &[u8] = b"1 001.Albatross/a.jpg\n2 001.Albatross/b.jpg\n3 150.Sparrow/c.jpg\n";
const CUB_LABELS: &[u8] = b"1 1\n2 1\n3 150\n";
const CUB_BOXES: &[u8] = b"1 10.0 20.5 100.0 80.0\n2 0 0 5 5\n3 1.5 2.5 3.5 4.5\n";

/// Reads `bytes` with every single-file text reader.
fn check_text_readers(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let budget = text_budget(bytes.len());
    let file = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let meta = file("train.txt");
    check(&meta, bytes, budget, || read_meta_records(&meta))?;
    let boxes = file("bbox.txt");
    check(&boxes, bytes, budget, || read_meta_boxes(&boxes))?;
    let sop = file("Ebay_train.txt");
    check(&sop, bytes, budget, || read_sop_split(&sop, dir.path()))?;
    let csv = file("features.csv");
    check(&csv, bytes, budget, || read_features_csv(&csv))?;
    // In-Shop reads its partition file from the folder.
    let inshop = file("list_eval_partition.txt");
    check(&inshop, bytes, budget, || read_inshop(dir.path()))?;
    Ok(())
}

/// Reads a CUB folder whose file `which` (0..3) is `bytes`.
fn check_cub(which: usize, bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let names = ["images.txt", "image_class_labels.txt", "bounding_boxes.txt"];
    for (k, (name, valid)) in names
        .iter()
        .zip([CUB_IMAGES, CUB_LABELS, CUB_BOXES])
        .enumerate()
    {
        std::fs::write(
            dir.path().join(name),
            if k == which { bytes } else { valid },
        )
        .unwrap();
    }
    let paths: Vec<_> = names.iter().map(|n| dir.path().join(n)).collect();
    let paths: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    // An error may name another of the three files (the split is named after images.txt).
    check_in(&paths, bytes, text_budget(bytes.len()), || {
        read_cub(dir.path(), 100, true)
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn random_text_is_an_error_or_records(
        tokens in proptest::collection::vec(prop::sample::select(TEXT_TOKENS), 0..40),
    ) {
        if let Err(e) = check_text_readers(&text_from(tokens)) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn random_bytes_are_an_error_or_records(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Err(e) = check_text_readers(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_text_files_are_an_error_or_records(
        kind in 0u8..5,
        ms in mutations(TEXT_TOKENS),
    ) {
        let valid = match kind {
            0 => meta_file(),
            1 => bbox_file(),
            2 => sop_file(),
            3 => csv_file(),
            _ => inshop_file(),
        };
        if let Err(e) = check_text_readers(&mutated(valid, &ms)) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_cub_files_are_an_error_or_a_dataset(
        which in 0usize..3,
        ms in mutations(TEXT_TOKENS),
    ) {
        let valid = [CUB_IMAGES, CUB_LABELS, CUB_BOXES][which].to_vec();
        if let Err(e) = check_cub(which, &mutated(valid, &ms)) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn mutated_npy_features_are_an_error_or_a_set(
        rows in 1usize..4,
        cols in 1usize..4,
        labels_too in any::<bool>(),
        ms in mutations(&["(", ")", ",", "'", "0", "9", "\u{ff}"]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (f, l) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let features = ee_core::npy::matrix_bytes(&values, rows, cols);
        let labels = ee_core::npy::labels_bytes(&(0..rows as i64).collect::<Vec<_>>());
        let (features, labels) = if labels_too {
            (features, mutated(labels, &ms))
        } else {
            (mutated(features, &ms), labels)
        };
        std::fs::write(&f, &features).unwrap();
        std::fs::write(&l, &labels).unwrap();
        let bytes = if labels_too { &labels } else { &features };
        let budget = text_budget(features.len() + labels.len());
        let result = check_in(&[&f, &l], bytes, budget, || read_features_npy(&f, &l));
        if let Err(e) = result {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn a_class_shared_by_train_and_gallery_names_the_partition_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list_eval_partition.txt");
    let rows = vec![
        ("img/a/1.jpg".to_string(), 1, "train"),
        ("img/b/1.jpg".to_string(), 2, "query"),
        ("img/a/2.jpg".to_string(), 1, "gallery"),
    ];
    write_inshop_partition(&path, &rows).unwrap();
    let err = read_inshop(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("list_eval_partition.txt") && err.contains("class 1"),
        "{err}"
    );
}

#[test]
fn a_class_shared_by_the_ebay_files_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = "image_id class_id super_class_id path\n1 1 1 a/1.JPG\n";
    std::fs::write(dir.path().join("Ebay_train.txt"), text).unwrap();
    std::fs::write(dir.path().join("Ebay_test.txt"), text).unwrap();
    let err = ee_data::formats::read_sop(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Ebay_test.txt") && err.contains("Ebay_train.txt") && err.contains("class 1"),
        "{err}"
    );
}
