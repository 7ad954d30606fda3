//! The reference implementation's meta files (`meta/CARS196/train.txt`, `test.txt`, `bbox.txt`).
//!
//! ```text
//! image_id class_id view_id path
//! 1 0 0 car_ims/000001.jpg
//! ```
//!
//! Paths are relative to a data directory. Each split numbers its classes from 0, so the train
//! and test files both use ids 0..97 for CARS196 although their classes differ; `view_id` is 0
//! for every training image and the image's rank within its class in the test file.
//! The optional `bbox.txt` has no header and holds `image_id x y width height` per line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::text::{join, lines, read_text, write_text};
use crate::error::{DataError, Result};
use crate::item::{BoundingBox, Dataset, Item, Split};

/// The header line every meta file starts with.
pub const META_HEADER: &str = "image_id class_id view_id path";

/// One line of a meta file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRecord {
    /// Dataset-wide image number (1-based in the reference's CARS196 files).
    pub image_id: u64,
    /// Class label within the split.
    pub class_id: u32,
    /// View number (the image's rank within its class in the reference's test file, else 0).
    pub view_id: u32,
    /// Image path relative to the data directory.
    pub path: String,
}

/// Reads the records of a meta file; the first non-blank line must be [`META_HEADER`].
pub fn read_meta_records(meta_path: &Path) -> Result<Vec<MetaRecord>> {
    let text = read_text(meta_path)?;
    let mut records = Vec::new();
    let mut header_seen = false;
    for line in lines(meta_path, &text) {
        if !header_seen {
            if line.fields.join(" ") != META_HEADER {
                return Err(line.error(format!(
                    "expected the header {META_HEADER:?}, found {:?}",
                    line.fields.join(" ")
                )));
            }
            header_seen = true;
            continue;
        }
        line.expect_fields(&["image_id", "class_id", "view_id", "path"])?;
        records.push(MetaRecord {
            image_id: line.parse(0, "image_id")?,
            class_id: line.parse(1, "class_id")?,
            view_id: line.parse(2, "view_id")?,
            path: line.fields[3].to_string(),
        });
    }
    Ok(records)
}

/// Reads a meta file into a split, joining its paths onto `data_dir`.
///
/// `boxes` (from [`read_meta_boxes`]) attaches a box to every image whose id it holds.
pub fn read_meta_split(
    meta_path: &Path,
    data_dir: &Path,
    boxes: Option<&HashMap<u64, BoundingBox>>,
) -> Result<Split> {
    let items = read_meta_records(meta_path)?
        .into_iter()
        .map(|record| Item {
            path: join(data_dir, &record.path),
            class_id: record.class_id,
            bbox: boxes.and_then(|b| b.get(&record.image_id).copied()),
        })
        .collect();
    Split::new(items, meta_path.display())
}

/// Reads the train and test meta files, as the reference's `--train_meta` / `--test_meta`.
pub fn read_meta_dataset(data_dir: &Path, train_meta: &Path, test_meta: &Path) -> Result<Dataset> {
    Ok(Dataset {
        train: read_meta_split(train_meta, data_dir, None)?,
        test: read_meta_split(test_meta, data_dir, None)?,
    })
}

/// Reads a `bbox.txt` (`image_id x y width height` per line, no header).
pub fn read_meta_boxes(bbox_path: &Path) -> Result<HashMap<u64, BoundingBox>> {
    let text = read_text(bbox_path)?;
    let mut boxes = HashMap::new();
    for line in lines(bbox_path, &text) {
        line.expect_fields(&["image_id", "x", "y", "width", "height"])?;
        let image_id: u64 = line.parse(0, "image_id")?;
        let bbox = BoundingBox {
            x: line.parse(1, "x")?,
            y: line.parse(2, "y")?,
            width: line.parse(3, "width")?,
            height: line.parse(4, "height")?,
        };
        if boxes.insert(image_id, bbox).is_some() {
            return Err(line.error(format!("image_id {image_id} appears twice")));
        }
    }
    Ok(boxes)
}

/// Writes a meta file (header and one line per record).
pub fn write_meta_records(meta_path: &Path, records: &[MetaRecord]) -> Result<()> {
    let mut text = String::with_capacity(32 * (records.len() + 1));
    text.push_str(META_HEADER);
    text.push('\n');
    for r in records {
        if r.path.split_whitespace().count() != 1 {
            return Err(DataError::format(
                meta_path,
                format!("path {:?} is empty or contains whitespace", r.path),
            ));
        }
        let _ = writeln!(
            text,
            "{} {} {} {}",
            r.image_id, r.class_id, r.view_id, r.path
        );
    }
    write_text(meta_path, &text)
}

/// Writes a `bbox.txt` (`image_id x y width height` per line).
pub fn write_meta_boxes(bbox_path: &Path, boxes: &[(u64, BoundingBox)]) -> Result<()> {
    let mut text = String::with_capacity(24 * boxes.len());
    for (id, b) in boxes {
        let _ = writeln!(text, "{id} {} {} {} {}", b.x, b.y, b.width, b.height);
    }
    write_text(bbox_path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_the_reference_format() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write(
            dir.path(),
            "train.txt",
            "image_id class_id view_id path\n1 0 0 car_ims/000001.jpg\n2 1 0 car_ims/000002.jpg\n\n",
        );
        let split = read_meta_split(&meta, Path::new("/data"), None).unwrap();
        assert_eq!(split.len(), 2);
        assert_eq!(split.items()[1].class_id, 1);
        assert_eq!(split.items()[1].path, Path::new("/data/car_ims/000002.jpg"));
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write(
            dir.path(),
            "train.txt",
            "image_id class_id view_id path\n1 0 0 a.jpg\n2 x 0 b.jpg\n",
        );
        let err = read_meta_records(&meta).unwrap_err().to_string();
        assert!(err.contains("train.txt:3:"), "{err}");
        assert!(err.contains("class_id \"x\""), "{err}");

        let meta = write(
            dir.path(),
            "short.txt",
            "image_id class_id view_id path\n1 0 a.jpg\n",
        );
        let err = read_meta_records(&meta).unwrap_err().to_string();
        assert!(
            err.contains("short.txt:2:") && err.contains("expected 4 fields"),
            "{err}"
        );
    }

    #[test]
    fn missing_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write(dir.path(), "m.txt", "1 0 0 a.jpg\n");
        let err = read_meta_records(&meta).unwrap_err().to_string();
        assert!(err.contains("m.txt:1:") && err.contains("header"), "{err}");
    }

    #[test]
    fn header_only_file_is_an_empty_split() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write(dir.path(), "empty.txt", "image_id class_id view_id path\n");
        let err = read_meta_split(&meta, dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty.txt") && err.contains("no images"),
            "{err}"
        );
    }

    #[test]
    fn records_and_boxes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            MetaRecord {
                image_id: 7,
                class_id: 2,
                view_id: 0,
                path: "a/b.jpg".into(),
            },
            MetaRecord {
                image_id: 9,
                class_id: 3,
                view_id: 1,
                path: "a/c.png".into(),
            },
        ];
        let meta = dir.path().join("out/test.txt");
        write_meta_records(&meta, &records).unwrap();
        assert_eq!(read_meta_records(&meta).unwrap(), records);

        let b = BoundingBox {
            x: 1,
            y: 2,
            width: 3,
            height: 4,
        };
        let bbox_path = dir.path().join("bbox.txt");
        write_meta_boxes(&bbox_path, &[(9, b)]).unwrap();
        let boxes = read_meta_boxes(&bbox_path).unwrap();
        let split = read_meta_split(&meta, dir.path(), Some(&boxes)).unwrap();
        assert_eq!(split.items()[0].bbox, None);
        assert_eq!(split.items()[1].bbox, Some(b));
    }

    #[test]
    fn missing_file_names_it() {
        let err = read_meta_records(Path::new("/nonexistent/train.txt")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/train.txt"), "{err}");
    }
}
