//! Dataset items and splits: what every reader produces and every consumer takes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{DataError, Result};

/// An axis-aligned box in pixels, origin at the top-left corner.
///
/// The reference crops `image[y : min(y + height, H), x : min(x + width, W)]`; so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BoundingBox {
    /// Left edge (column of the first pixel inside).
    pub x: u32,
    /// Top edge (row of the first pixel inside).
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl BoundingBox {
    /// Builds a box from inclusive corner coordinates `(x1, y1)`-`(x2, y2)`, as CARS196 stores them.
    pub fn from_corners(x1: u32, y1: u32, x2: u32, y2: u32) -> Self {
        BoundingBox {
            x: x1,
            y: y1,
            width: x2.saturating_sub(x1),
            height: y2.saturating_sub(y1),
        }
    }

    /// The part of the box inside a `width` x `height` image, as `(x, y, width, height)`;
    /// `None` when nothing of it is inside.
    pub fn clamp_to(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        if self.x >= width || self.y >= height {
            return None;
        }
        let w = self.width.min(width - self.x);
        let h = self.height.min(height - self.y);
        (w > 0 && h > 0).then_some((self.x, self.y, w, h))
    }
}

/// One image of a dataset: where it is, which class it shows, and optionally a box around the
/// object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// Path of the image file (already joined with the dataset's root).
    pub path: PathBuf,
    /// Class label as the dataset's files give it (1-based for CARS196 and CUB, the reference
    /// meta files' own 0-based ids, ...). Only equality between labels matters.
    pub class_id: u32,
    /// Object box, where the format has one and the reader was asked for it.
    pub bbox: Option<BoundingBox>,
}

/// The images of one side of a class-disjoint split (train or test), in file order.
///
/// A `Split` is never empty: every constructor checks it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    items: Vec<Item>,
}

impl Split {
    /// Wraps `items`; `what` names the split in the error when it is empty (e.g. the file read).
    pub fn new(items: Vec<Item>, what: impl std::fmt::Display) -> Result<Self> {
        if items.is_empty() {
            return Err(DataError::EmptySplit(format!(
                "{what}: the split has no images"
            )));
        }
        Ok(Split { items })
    }

    /// The items, in file order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Consumes the split, returning its items.
    pub fn into_items(self) -> Vec<Item> {
        self.items
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false: a split is never empty. Present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The class label of every item, in item order (what the sampler and the evaluation take).
    pub fn labels(&self) -> Vec<u32> {
        self.items.iter().map(|item| item.class_id).collect()
    }

    /// The distinct class labels, sorted.
    pub fn classes(&self) -> Vec<u32> {
        self.indices_by_class().into_keys().collect()
    }

    /// Number of distinct classes.
    pub fn num_classes(&self) -> usize {
        self.indices_by_class().len()
    }

    /// Splits off the `n` highest class labels as a class-disjoint validation split, for
    /// selecting checkpoints without looking at the test split ("A Metric Learning Reality
    /// Check", Musgrave et al. 2020). Returns `(train, validation)`, both in item order.
    ///
    /// Errors unless `1 <= n < num_classes()`.
    ///
    /// ```
    /// # use ee_data::{Item, Split};
    /// let items = (0..6).map(|i| Item { path: format!("{i}.jpg").into(), class_id: i / 2, bbox: None });
    /// let (train, validation) = Split::new(items.collect(), "t").unwrap().hold_out_classes(1).unwrap();
    /// assert_eq!((train.classes(), validation.classes()), (vec![0, 1], vec![2]));
    /// ```
    pub fn hold_out_classes(self, count: usize) -> Result<(Split, Split)> {
        let classes = self.classes();
        if count == 0 || count >= classes.len() {
            return Err(DataError::config(
                "validation_classes",
                count,
                format!(
                    "must be between 1 and {} (the training split has {} classes)",
                    classes.len().saturating_sub(1),
                    classes.len()
                ),
            ));
        }
        let first_held = classes[classes.len() - count];
        let (validation, train): (Vec<Item>, Vec<Item>) = self
            .items
            .into_iter()
            .partition(|item| item.class_id >= first_held);
        Ok((Split { items: train }, Split { items: validation }))
    }

    /// Item indices of each class, in item order.
    pub fn indices_by_class(&self) -> BTreeMap<u32, Vec<usize>> {
        let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (index, item) in self.items.iter().enumerate() {
            by_class.entry(item.class_id).or_default().push(index);
        }
        by_class
    }

    /// The same split with every bounding box removed (the reference trains without boxes).
    pub fn without_boxes(mut self) -> Self {
        for item in &mut self.items {
            item.bbox = None;
        }
        self
    }

    /// Checks that every image file exists, returning the first missing one as an error.
    pub fn check_files_exist(&self) -> Result<()> {
        for item in &self.items {
            if !item.path.is_file() {
                return Err(DataError::image(&item.path, "file not found"));
            }
        }
        Ok(())
    }
}

/// A class-disjoint pair of splits, as the metric-learning benchmarks define them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    /// Training images.
    pub train: Split,
    /// Test (retrieval) images, of classes never seen in training.
    pub test: Split,
}

impl Dataset {
    /// Pairs two splits after checking that they share no class label.
    ///
    /// Use it for formats whose labels are global (CARS196, CUB, SOP, folder trees); the
    /// reference meta files number each split's classes from 0, so theirs overlap by design
    /// and are paired directly.
    pub fn class_disjoint(train: Split, test: Split) -> Result<Self> {
        let train_classes = train.indices_by_class();
        if let Some(shared) = test
            .items()
            .iter()
            .map(|item| item.class_id)
            .find(|class| train_classes.contains_key(class))
        {
            return Err(DataError::EmptySplit(format!(
                "class {shared} is in both the train and the test split: the splits must be class-disjoint"
            )));
        }
        Ok(Dataset { train, test })
    }

    /// The same dataset with every bounding box removed.
    pub fn without_boxes(self) -> Self {
        Dataset {
            train: self.train.without_boxes(),
            test: self.test.without_boxes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(class_id: u32) -> Item {
        Item {
            path: PathBuf::from(format!("{class_id}.jpg")),
            class_id,
            bbox: None,
        }
    }

    #[test]
    fn empty_split_is_an_error_naming_it() {
        let err = Split::new(vec![], "train.txt").unwrap_err();
        assert!(err.to_string().contains("train.txt"), "{err}");
    }

    #[test]
    fn indices_by_class_groups_in_order() {
        let split = Split::new(vec![item(3), item(1), item(3), item(2)], "t").unwrap();
        let by_class = split.indices_by_class();
        assert_eq!(by_class[&3], vec![0, 2]);
        assert_eq!(split.classes(), vec![1, 2, 3]);
        assert_eq!(split.labels(), vec![3, 1, 3, 2]);
    }

    #[test]
    fn overlapping_classes_are_refused() {
        let train = Split::new(vec![item(1), item(2)], "a").unwrap();
        let test = Split::new(vec![item(2), item(3)], "b").unwrap();
        let err = Dataset::class_disjoint(train, test).unwrap_err();
        assert!(err.to_string().contains("class 2"), "{err}");
    }

    #[test]
    fn bbox_clamps_to_the_image() {
        let bbox = BoundingBox::from_corners(10, 5, 50, 40);
        assert_eq!((bbox.width, bbox.height), (40, 35));
        assert_eq!(bbox.clamp_to(30, 100), Some((10, 5, 20, 35)));
        assert_eq!(bbox.clamp_to(10, 100), None);
    }
}
