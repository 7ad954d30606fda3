//! DeepFashion In-shop Clothes Retrieval: `list_eval_partition.txt` (in `Eval/` or the
//! dataset folder) with the lines `image_name item_id evaluation_status` after an image count
//! and a header. `evaluation_status` is `train`, `query` or `gallery`: the benchmark scores
//! query images against a separate gallery (3,997 train items; 14,218 queries and 12,612
//! gallery images of 3,985 other items).
//!
//! Labels are the number in each `item_id` (`id_00000123` -> 123).

use std::path::{Path, PathBuf};

use super::text::{join, lines, read_text};
use crate::error::{DataError, Result};
use crate::item::{Dataset, Item, Split};

/// The header line of `list_eval_partition.txt`.
pub const INSHOP_HEADER: &str = "image_name item_id evaluation_status";

/// In-Shop's three splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryGalleryDataset {
    /// Training images.
    pub train: Split,
    /// Query images (classes disjoint from `train`).
    pub query: Split,
    /// Gallery images the queries are searched in (the query classes).
    pub gallery: Split,
}

impl QueryGalleryDataset {
    /// Train and test splits, the test split being the queries followed by the gallery (for
    /// checks and self-retrieval scores).
    pub fn dataset(&self) -> Result<Dataset> {
        let mut test = self.query.items().to_vec();
        test.extend_from_slice(self.gallery.items());
        Dataset::class_disjoint(self.train.clone(), Split::new(test, "query + gallery")?)
    }
}

/// Where `list_eval_partition.txt` is under `root` (`Eval/` first, then `root` itself).
pub fn inshop_partition_path(root: &Path) -> PathBuf {
    let eval = root.join("Eval").join("list_eval_partition.txt");
    if eval.is_file() {
        eval
    } else {
        root.join("list_eval_partition.txt")
    }
}

/// Reads In-Shop from its folder (images relative to it, usually under `img/`).
pub fn read_inshop(root: &Path) -> Result<QueryGalleryDataset> {
    let path = inshop_partition_path(root);
    let text = read_text(&path)?;
    let mut split_items: [Vec<Item>; 3] = Default::default();
    let mut declared: Option<(usize, usize)> = None;
    let mut header_seen = false;
    for line in lines(&path, &text) {
        if declared.is_none() {
            line.expect_fields(&["number_of_images"])?;
            declared = Some((line.parse(0, "number_of_images")?, line.number));
            continue;
        }
        if !header_seen {
            if line.fields.join(" ") != INSHOP_HEADER {
                return Err(line.error(format!(
                    "expected the header {INSHOP_HEADER:?}, found {:?}",
                    line.fields.join(" ")
                )));
            }
            header_seen = true;
            continue;
        }
        line.expect_fields(&["image_name", "item_id", "evaluation_status"])?;
        let class_id = line.fields[1]
            .strip_prefix("id_")
            .and_then(|digits| digits.parse::<u32>().ok())
            .ok_or_else(|| {
                line.error(format!(
                    "item_id {:?} is not of the form id_<number>",
                    line.fields[1]
                ))
            })?;
        let slot = match line.fields[2] {
            "train" => 0,
            "query" => 1,
            "gallery" => 2,
            other => {
                return Err(line.error(format!(
                    "evaluation_status {other:?} must be train, query or gallery"
                )))
            }
        };
        split_items[slot].push(Item {
            path: join(root, line.fields[0]),
            class_id,
            bbox: None,
        });
    }
    let listed: usize = split_items.iter().map(Vec::len).sum();
    if let Some((count, number)) = declared {
        if count != listed {
            return Err(DataError::parse(
                &path,
                number,
                format!("declares {count} images but {listed} are listed"),
            ));
        }
    }
    let [train, query, gallery] = split_items;
    let what = |name: &str| format!("{} ({name} images)", path.display());
    let out = QueryGalleryDataset {
        train: Split::new(train, what("train"))?,
        query: Split::new(query, what("query"))?,
        gallery: Split::new(gallery, what("gallery"))?,
    };
    // Train classes must not reappear in the query/gallery.
    out.dataset()
        .map_err(|e| DataError::format(&path, e.to_string()))?;
    Ok(out)
}

/// Writes an In-Shop partition file (for tests and synthetic data).
pub fn write_inshop_partition(path: &Path, rows: &[(String, u32, &str)]) -> Result<()> {
    let mut text = format!("{}\n{INSHOP_HEADER}\n", rows.len());
    for (image, item, status) in rows {
        text.push_str(&format!("{image} id_{item:08} {status}\n"));
    }
    super::text::write_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(String, u32, &'static str)> {
        vec![
            ("img/a/1.jpg".into(), 1, "train"),
            ("img/a/2.jpg".into(), 1, "train"),
            ("img/b/1.jpg".into(), 2, "query"),
            ("img/b/2.jpg".into(), 2, "gallery"),
            ("img/c/1.jpg".into(), 3, "gallery"),
        ]
    }

    #[test]
    fn reads_the_three_splits_from_eval_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_inshop_partition(&dir.path().join("Eval/list_eval_partition.txt"), &rows()).unwrap();
        let d = read_inshop(dir.path()).unwrap();
        assert_eq!(d.train.labels(), vec![1, 1]);
        assert_eq!(d.query.labels(), vec![2]);
        assert_eq!(d.gallery.labels(), vec![2, 3]);
        assert_eq!(d.gallery.items()[1].path, dir.path().join("img/c/1.jpg"));
        assert_eq!(d.dataset().unwrap().test.len(), 3);
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list_eval_partition.txt");
        let mut bad = rows();
        bad[3].2 = "test";
        write_inshop_partition(&path, &bad).unwrap();
        let e = read_inshop(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("list_eval_partition.txt:6") && e.contains("\"test\""),
            "{e}"
        );

        let mut shared = rows();
        shared[4].1 = 1; // a train item in the gallery
        write_inshop_partition(&path, &shared).unwrap();
        let e = read_inshop(dir.path()).unwrap_err().to_string();
        assert!(e.contains("class 1"), "{e}");

        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("5\n", "6\n", 1);
        std::fs::write(&path, text).unwrap();
        let e = read_inshop(dir.path()).unwrap_err().to_string();
        assert!(e.contains("declares 6 images but 5"), "{e}");
    }
}
