//! A folder per class: `root/<class name>/<image>.{jpg,jpeg,png}`.
//!
//! Class folders are sorted by name and numbered from 0; that number is the label. The
//! class-disjoint split is given either by ranges over that order or by a split file whose
//! lines read `<class folder name> <train|test>` (blank lines and lines starting with `#`
//! are ignored; classes the file does not name are left out).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::text::{lines, read_text};
use crate::error::{DataError, Result};
use crate::item::{Dataset, Item, Split};

/// How the classes of a folder tree are split into train and test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderSplit {
    /// Positions (0-based, in sorted folder-name order) of the train and the test classes.
    ClassRanges {
        /// Train class positions.
        train: Range<usize>,
        /// Test class positions; must not overlap `train`.
        test: Range<usize>,
    },
    /// A file of `<class folder name> <train|test>` lines.
    File(PathBuf),
}

/// File extensions (lower case) taken as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The class folders of `root` with their image files, both sorted by name.
pub fn list_class_folders(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut classes = Vec::new();
    for entry in read_dir_sorted(root)? {
        if !entry.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| DataError::format(&entry, "folder name is not valid UTF-8"))?
            .to_string();
        let images: Vec<PathBuf> = read_dir_sorted(&entry)?
            .into_iter()
            .filter(|p| {
                let image_name = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                // A link that cannot be followed (to itself, to nothing) stays in the list, so
                // that loading it fails with its path (or skips it, with skip_unreadable),
                // and `ee data check` reports it; it is never dropped silently.
                image_name && (p.is_file() || broken_link(p))
            })
            .collect();
        if images.is_empty() {
            return Err(DataError::EmptySplit(format!(
                "{}: class folder has no images (.jpg, .jpeg, .png)",
                entry.display()
            )));
        }
        classes.push((name, images));
    }
    if classes.is_empty() {
        return Err(DataError::EmptySplit(format!(
            "{}: no class folders",
            root.display()
        )));
    }
    Ok(classes)
}

/// Reads a folder-per-class tree and splits its classes as `split` says.
pub fn read_folder_tree(root: &Path, split: &FolderSplit) -> Result<Dataset> {
    let classes = list_class_folders(root)?;
    let n = classes.len();
    // side of each class position: Some(true) train, Some(false) test, None left out
    let mut side: Vec<Option<bool>> = vec![None; n];
    match split {
        FolderSplit::ClassRanges { train, test } => {
            for (range, name, is_train) in [(train, "train", true), (test, "test", false)] {
                if range.is_empty() || range.end > n {
                    return Err(DataError::config(
                        if is_train {
                            "train class range"
                        } else {
                            "test class range"
                        },
                        format!("{range:?}"),
                        format!(
                            "must be a non-empty range within the {n} class folders of {}",
                            root.display()
                        ),
                    ));
                }
                for pos in range.clone() {
                    if side[pos].is_some() {
                        return Err(DataError::config(
                            "test class range",
                            format!("{test:?}"),
                            format!("overlaps the train range {train:?}; the {name} classes must be disjoint"),
                        ));
                    }
                    side[pos] = Some(is_train);
                }
            }
        }
        FolderSplit::File(path) => {
            let positions: BTreeMap<&str, usize> = classes
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.as_str(), i))
                .collect();
            let text = read_text(path)?;
            for line in lines(path, &text) {
                if line.fields[0].starts_with('#') {
                    continue;
                }
                line.expect_fields(&["class_folder", "train|test"])?;
                let pos = *positions.get(line.fields[0]).ok_or_else(|| {
                    line.error(format!(
                        "no class folder {:?} in {}",
                        line.fields[0],
                        root.display()
                    ))
                })?;
                let is_train = match line.fields[1] {
                    "train" => true,
                    "test" => false,
                    other => {
                        return Err(line.error(format!("split {other:?} must be `train` or `test`")))
                    }
                };
                if side[pos].is_some() {
                    return Err(line.error(format!("class {:?} is listed twice", line.fields[0])));
                }
                side[pos] = Some(is_train);
            }
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (pos, (_, images)) in classes.into_iter().enumerate() {
        let Some(is_train) = side[pos] else { continue };
        let target = if is_train { &mut train } else { &mut test };
        target.extend(images.into_iter().map(|path| Item {
            path,
            class_id: pos as u32,
            bbox: None,
        }));
    }
    Dataset::class_disjoint(
        Split::new(train, format!("{} (train classes)", root.display()))?,
        Split::new(test, format!("{} (test classes)", root.display()))?,
    )
}

/// A symbolic link whose target cannot be read (a loop, a dangling link).
fn broken_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::metadata(path).is_err()
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        entries.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}
