//! Stanford Online Products: `Ebay_train.txt` and `Ebay_test.txt` (11318 / 11316 classes,
//! 59551 / 60502 images), each with the header `image_id class_id super_class_id path` and
//! paths relative to the dataset folder.

use std::path::Path;

use super::text::{join, lines, read_text};
use crate::error::{DataError, Result};
use crate::item::{Dataset, Item, Split};

/// The header line of the Ebay files.
pub const SOP_HEADER: &str = "image_id class_id super_class_id path";

/// Reads one Ebay file into a split; labels are its `class_id`s.
pub fn read_sop_split(list_path: &Path, root: &Path) -> Result<Split> {
    let text = read_text(list_path)?;
    let mut items = Vec::new();
    let mut header_seen = false;
    for line in lines(list_path, &text) {
        if !header_seen {
            if line.fields.join(" ") != SOP_HEADER {
                return Err(line.error(format!(
                    "expected the header {SOP_HEADER:?}, found {:?}",
                    line.fields.join(" ")
                )));
            }
            header_seen = true;
            continue;
        }
        line.expect_fields(&["image_id", "class_id", "super_class_id", "path"])?;
        let _: u64 = line.parse(0, "image_id")?;
        let class_id = line.parse(1, "class_id")?;
        let _: u32 = line.parse(2, "super_class_id")?;
        items.push(Item {
            path: join(root, line.fields[3]),
            class_id,
            bbox: None,
        });
    }
    Split::new(items, list_path.display())
}

/// Reads Stanford Online Products from its folder (`Ebay_train.txt`, `Ebay_test.txt`).
pub fn read_sop(root: &Path) -> Result<Dataset> {
    let (train, test) = (root.join("Ebay_train.txt"), root.join("Ebay_test.txt"));
    Dataset::class_disjoint(read_sop_split(&train, root)?, read_sop_split(&test, root)?).map_err(
        |e| {
            DataError::format(
                &test,
                format!("{e} (the train split is {})", train.display()),
            )
        },
    )
}
