//! CUB-200-2011 as distributed: `images.txt`, `image_class_labels.txt`, `bounding_boxes.txt`
//! and `images/`. The metric-learning split puts classes 1-100 in train (5864 images) and
//! 101-200 in test (5924 images).

use std::collections::HashMap;
use std::path::Path;

use super::text::{lines, read_text};
use crate::error::{DataError, Result};
use crate::item::{BoundingBox, Dataset, Item, Split};

/// Classes 1..=100 are the training classes of the metric-learning split.
pub const CUB_TRAIN_CLASSES: u32 = 100;

/// Reads CUB-200-2011 from its folder. Classes `1..=train_classes` form the train split
/// ([`CUB_TRAIN_CLASSES`] for the standard split); labels are the 1-based class numbers.
/// With `with_boxes`, `bounding_boxes.txt` (`image_id x y width height`, in pixels, possibly
/// fractional) gives each image a box (rounded down to whole pixels).
pub fn read_cub(root: &Path, train_classes: u32, with_boxes: bool) -> Result<Dataset> {
    let images_path = root.join("images.txt");
    let labels_path = root.join("image_class_labels.txt");

    let text = read_text(&images_path)?;
    let mut images: Vec<(u64, String)> = Vec::new();
    for line in lines(&images_path, &text) {
        line.expect_fields(&["image_id", "image_name"])?;
        images.push((line.parse(0, "image_id")?, line.fields[1].to_string()));
    }

    let text = read_text(&labels_path)?;
    let mut labels: HashMap<u64, u32> = HashMap::new();
    for line in lines(&labels_path, &text) {
        line.expect_fields(&["image_id", "class_id"])?;
        let id = line.parse(0, "image_id")?;
        if labels.insert(id, line.parse(1, "class_id")?).is_some() {
            return Err(line.error(format!("image_id {id} appears twice")));
        }
    }

    let boxes = if with_boxes {
        let boxes_path = root.join("bounding_boxes.txt");
        let text = read_text(&boxes_path)?;
        let mut boxes: HashMap<u64, BoundingBox> = HashMap::new();
        for line in lines(&boxes_path, &text) {
            line.expect_fields(&["image_id", "x", "y", "width", "height"])?;
            let id = line.parse(0, "image_id")?;
            let mut v = [0u32; 4];
            for (k, name) in ["x", "y", "width", "height"].iter().enumerate() {
                let value: f64 = line.parse(k + 1, name)?;
                if !(value >= 0.0 && value < u32::MAX as f64) {
                    return Err(line.error(format!("{name} {value} is not a pixel coordinate")));
                }
                v[k] = value as u32;
            }
            boxes.insert(
                id,
                BoundingBox {
                    x: v[0],
                    y: v[1],
                    width: v[2],
                    height: v[3],
                },
            );
        }
        Some(boxes)
    } else {
        None
    };

    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (id, name) in images {
        let class_id = *labels.get(&id).ok_or_else(|| {
            DataError::format(&labels_path, format!("no class for image_id {id} ({name})"))
        })?;
        let bbox = match &boxes {
            Some(b) => Some(*b.get(&id).ok_or_else(|| {
                DataError::format(
                    root.join("bounding_boxes.txt"),
                    format!("no box for image_id {id} ({name})"),
                )
            })?),
            None => None,
        };
        let item = Item {
            path: root.join("images").join(&name),
            class_id,
            bbox,
        };
        if class_id <= train_classes {
            train.push(item);
        } else {
            test.push(item);
        }
    }
    Dataset::class_disjoint(
        Split::new(
            train,
            format!(
                "{} (train classes 1..={train_classes})",
                images_path.display()
            ),
        )?,
        Split::new(
            test,
            format!("{} (test classes > {train_classes})", images_path.display()),
        )?,
    )
}
