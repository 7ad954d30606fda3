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

/// Whether `path` names an image by its extension ([`IMAGE_EXTENSIONS`], any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            IMAGE_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str())
        })
}

/// The images under a folder, found by [`find_images`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundImages {
    /// Every image file (by [`has_image_extension`]), sorted by path.
    pub images: Vec<PathBuf>,
    /// Folders not entered because they are links to a folder already visited: (the link,
    /// the folder it leads to).
    pub repeated_folders: Vec<(PathBuf, PathBuf)>,
}

/// Every image under `dir`, recursively, sorted by path. Folders are told apart by their
/// real path, so a link back up the tree is entered at most once (the others are listed in
/// [`FoundImages::repeated_folders`]).
pub fn find_images(dir: &Path) -> Result<FoundImages> {
    let mut found = FoundImages::default();
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = std::collections::HashSet::new();
    while let Some(folder) = stack.pop() {
        let real = std::fs::canonicalize(&folder).map_err(|e| DataError::io(&folder, e))?;
        if !visited.insert(real.clone()) {
            found.repeated_folders.push((folder, real));
            continue;
        }
        for path in read_dir_sorted(&folder)? {
            if path.is_dir() {
                stack.push(path);
            } else if has_image_extension(&path) {
                found.images.push(path);
            }
        }
    }
    found.images.sort();
    Ok(found)
}

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
                // A link that cannot be followed (to itself, to nothing) stays in the list, so
                // that loading it fails with its path (or skips it, with skip_unreadable),
                // and `ee data check` reports it; it is never dropped silently.
                has_image_extension(p) && (p.is_file() || broken_link(p))
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
    let class_count = classes.len();
    // side of each class position: Some(true) train, Some(false) test, None left out
    let mut side: Vec<Option<bool>> = vec![None; class_count];
    match split {
        FolderSplit::ClassRanges { train, test } => {
            for (range, name, is_train) in [(train, "train", true), (test, "test", false)] {
                if range.is_empty() || range.end > class_count {
                    return Err(DataError::config(
                        if is_train {
                            "train class range"
                        } else {
                            "test class range"
                        },
                        format!("{range:?}"),
                        format!(
                            "must be a non-empty range within the {class_count} class folders of {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_images_walks_subfolders_once_and_keeps_only_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/deeper")).unwrap();
        for file in ["top.PNG", "a/one.jpg", "a/deeper/two.jpeg", "a/notes.txt"] {
            std::fs::write(root.join(file), b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("a/back_up")).unwrap();
        let found = find_images(root).unwrap();
        let names: Vec<_> = found
            .images
            .iter()
            .map(|path| path.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> = ["a/deeper/two.jpeg", "a/one.jpg", "top.PNG"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, expected);
        #[cfg(unix)]
        assert_eq!(found.repeated_folders.len(), 1, "{found:?}");
        assert!(has_image_extension(Path::new("x.JpG")) && !has_image_extension(Path::new("x")));
    }
}
