//! CARS196 as distributed: `car_ims/` and `cars_annos.mat`.
//!
//! `cars_annos.mat` is a MATLAB v5/v7 file holding `annotations`, a 1 x 16185 struct array with
//! fields `relative_im_path` (char), `bbox_x1`, `bbox_y1`, `bbox_x2`, `bbox_y2`, `class`
//! (1-based, 196 classes) and `test` (the classification split, unused by metric learning),
//! and `class_names`, a cell array of strings. The metric-learning split puts classes 1-98 in
//! train (8054 images) and 99-196 in test (8131 images). MAT files are written with the `matrw`
//! crate and read by `formats/mat5.rs`.

use std::path::Path;

use matrw::{MatFile, MatVariable, StructureArray};

use super::mat5::{read_struct_array, MatError, Scalar};
use super::reference_meta::{write_meta_boxes, write_meta_records, MetaRecord};
use super::text::join;
use crate::error::{DataError, Result};
use crate::item::{BoundingBox, Dataset, Item, Split};

/// Classes 1..=98 are the training classes of the metric-learning split.
pub const CARS196_TRAIN_CLASSES: u32 = 98;

/// The annotation file's name inside the dataset folder.
pub const CARS196_ANNOTATIONS: &str = "cars_annos.mat";

/// Fields of each element of the `annotations` struct array in `cars_annos.mat`.
const ANNOTATION_FIELDS: [&str; 7] = [
    "relative_im_path",
    "bbox_x1",
    "bbox_y1",
    "bbox_x2",
    "bbox_y2",
    "class",
    "test",
];

/// One element of the `annotations` struct array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarsAnnotation {
    /// Image path relative to the dataset folder, e.g. `car_ims/000001.jpg`.
    pub relative_im_path: String,
    /// Inclusive corners `bbox_x1`, `bbox_y1`, `bbox_x2`, `bbox_y2`.
    pub corners: [u32; 4],
    /// 1-based class number.
    pub class: u32,
    /// The classification split flag (`test` field): not used for metric learning.
    pub test: bool,
}

impl CarsAnnotation {
    /// The object box.
    pub fn bbox(&self) -> BoundingBox {
        let [x1, y1, x2, y2] = self.corners;
        BoundingBox::from_corners(x1, y1, x2, y2)
    }
}

/// Reads the `annotations` struct array of a `cars_annos.mat`, in file order.
///
/// The file is read by `formats/mat5.rs`, which checks every size the file claims against the
/// bytes it has (matrw, which writes these files, allocates what a corrupt length field says
/// and panics on many malformed files).
pub fn read_cars_annotations(mat_path: &Path) -> Result<Vec<CarsAnnotation>> {
    let bytes = std::fs::read(mat_path).map_err(|e| DataError::io(mat_path, e))?;
    let annotations = match read_struct_array(&bytes, "annotations") {
        Ok(array) => array,
        Err(MatError::Corrupt(reason)) => {
            return Err(DataError::format(
                mat_path,
                format!("not a readable MAT file: {reason}"),
            ))
        }
        Err(MatError::Missing) => {
            return Err(DataError::format(
                mat_path,
                "no variable named `annotations`",
            ))
        }
        Err(MatError::NotStruct) => {
            return Err(DataError::format(
                mat_path,
                "`annotations` is not a struct array",
            ))
        }
    };
    if annotations.count > 0 {
        if let Some(missing) = ANNOTATION_FIELDS
            .iter()
            .find(|f| !annotations.fields.iter().any(|name| name == *f))
        {
            return Err(DataError::format(
                mat_path,
                format!("annotations(1) has no field `{missing}`"),
            ));
        }
    }
    // Every field is there, so `count` elements of values were read.
    let mut out = Vec::with_capacity(annotations.count);
    for index in 0..annotations.count {
        let field = |name: &str| annotations.get(index, name).unwrap_or(&Scalar::Other);
        let number = |name: &str| -> Result<u32> {
            let Scalar::Number(value) = *field(name) else {
                return Err(DataError::format(
                    mat_path,
                    format!("annotations({}).{name} is not a number", index + 1),
                ));
            };
            if !(0.0..=u32::MAX as f64).contains(&value) || value.fract() != 0.0 {
                return Err(DataError::format(
                    mat_path,
                    format!(
                        "annotations({}).{name} = {value} is not a non-negative integer",
                        index + 1
                    ),
                ));
            }
            Ok(value as u32)
        };
        let Scalar::Text(relative_im_path) = field("relative_im_path") else {
            return Err(DataError::format(
                mat_path,
                format!(
                    "annotations({}).relative_im_path is not a string",
                    index + 1
                ),
            ));
        };
        out.push(CarsAnnotation {
            relative_im_path: relative_im_path.clone(),
            corners: [
                number("bbox_x1")?,
                number("bbox_y1")?,
                number("bbox_x2")?,
                number("bbox_y2")?,
            ],
            class: number("class")?,
            test: number("test")? != 0,
        });
    }
    Ok(out)
}

/// Reads CARS196 from its folder (`cars_annos.mat` and `car_ims/`): classes
/// `1..=train_classes` form the train split, the others the test split
/// ([`CARS196_TRAIN_CLASSES`] for the standard split). Labels are the 1-based class numbers.
pub fn read_cars196(root: &Path, train_classes: u32, with_boxes: bool) -> Result<Dataset> {
    let mat_path = root.join(CARS196_ANNOTATIONS);
    let annotations = read_cars_annotations(&mat_path)?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for a in &annotations {
        let item = Item {
            path: join(root, &a.relative_im_path),
            class_id: a.class,
            bbox: with_boxes.then(|| a.bbox()),
        };
        if a.class <= train_classes {
            train.push(item)
        } else {
            test.push(item)
        }
    }
    Dataset::class_disjoint(
        Split::new(
            train,
            format!("{} (train classes 1..={train_classes})", mat_path.display()),
        )?,
        Split::new(
            test,
            format!("{} (test classes > {train_classes})", mat_path.display()),
        )?,
    )
}

/// Writes the reference's meta files from CARS196 annotations into `out_dir`: `train.txt`
/// (classes `1..=train_classes`), `test.txt` (the others) and `bbox.txt`.
///
/// As in the reference's files, `image_id` is the 1-based position in `annotations`, each
/// split numbers its classes from 0 in order of appearance of the class number, `view_id` is
/// 0 in train and the image's rank within its class in test.
pub fn write_cars196_meta(
    annotations: &[CarsAnnotation],
    train_classes: u32,
    out_dir: &Path,
) -> Result<()> {
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut boxes = Vec::with_capacity(annotations.len());
    let mut test_views: std::collections::HashMap<u32, u32> = Default::default();
    for (index, a) in annotations.iter().enumerate() {
        let image_id = index as u64 + 1;
        boxes.push((image_id, a.bbox()));
        if a.class == 0 {
            return Err(DataError::format(
                out_dir,
                format!("annotation {image_id} has class 0 (classes are 1-based)"),
            ));
        }
        if a.class <= train_classes {
            train.push(MetaRecord {
                image_id,
                class_id: a.class - 1,
                view_id: 0,
                path: a.relative_im_path.clone(),
            });
        } else {
            let view = test_views.entry(a.class).or_insert(0);
            test.push(MetaRecord {
                image_id,
                class_id: a.class - 1 - train_classes,
                view_id: *view,
                path: a.relative_im_path.clone(),
            });
            *view += 1;
        }
    }
    write_meta_records(&out_dir.join("train.txt"), &train)?;
    write_meta_records(&out_dir.join("test.txt"), &test)?;
    write_meta_boxes(&out_dir.join("bbox.txt"), &boxes)
}

/// Writes a `cars_annos.mat` in the layout of the original (struct array `annotations` and
/// cell array `class_names`), compressed as MATLAB's v7 files are. Used by [`crate::synth`].
pub fn write_cars_annotations(
    mat_path: &Path,
    annotations: &[CarsAnnotation],
    class_names: &[String],
) -> Result<()> {
    let fields: Vec<String> = ANNOTATION_FIELDS.iter().map(|s| s.to_string()).collect();
    let mut values = Vec::with_capacity(annotations.len() * fields.len());
    for a in annotations {
        values.push(MatVariable::from(a.relative_im_path.as_str()));
        for c in a.corners {
            values.push(MatVariable::from(f64::from(c)));
        }
        values.push(MatVariable::from(a.class as u8));
        values.push(MatVariable::from(a.test as u8));
    }
    let array = StructureArray::new(vec![1, annotations.len()], fields, values)
        .map_err(|e| DataError::format(mat_path, format!("cannot build annotations: {e}")))?;
    let names: Vec<MatVariable> = class_names
        .iter()
        .map(|n| MatVariable::from(n.as_str()))
        .collect();
    let mut mat = MatFile::new();
    mat.insert("annotations", MatVariable::StructureArray(array));
    mat.insert("class_names", MatVariable::from(names));
    let path_str = mat_path
        .to_str()
        .ok_or_else(|| DataError::format(mat_path, "path is not valid UTF-8"))?;
    if let Some(parent) = mat_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    matrw::save_matfile_v7(path_str, mat, true)
        .map_err(|e| DataError::format(mat_path, format!("cannot write MAT file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotation(i: u32, class: u32) -> CarsAnnotation {
        CarsAnnotation {
            relative_im_path: format!("car_ims/{i:06}.jpg"),
            corners: [i, 2 * i, 300 + i, 400],
            class,
            test: i.is_multiple_of(2),
        }
    }

    #[test]
    fn mat_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CARS196_ANNOTATIONS);
        let annos: Vec<_> = (1..=6).map(|i| annotation(i, i.div_ceil(2))).collect();
        write_cars_annotations(&path, &annos, &["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!(read_cars_annotations(&path).unwrap(), annos);
    }

    #[test]
    fn reads_mixed_integer_classes_as_in_the_original_file() {
        // The original stores each number in the smallest integer class that holds it
        // (uint8 or uint16, varying per element), the path as a char array.
        let fields: Vec<String> = ANNOTATION_FIELDS.iter().map(|s| s.to_string()).collect();
        let values = vec![
            MatVariable::from("car_ims/000001.jpg"),
            MatVariable::from(112u8),
            MatVariable::from(7u8),
            MatVariable::from(853u16),
            MatVariable::from(717u16),
            MatVariable::from(1u8),
            MatVariable::from(0u8),
            MatVariable::from("car_ims/000002.jpg"),
            MatVariable::from(48u8),
            MatVariable::from(24u8),
            MatVariable::from(441u16),
            MatVariable::from(202u8),
            MatVariable::from(196u8),
            MatVariable::from(1u8),
        ];
        let mut mat = MatFile::new();
        mat.insert(
            "annotations",
            MatVariable::StructureArray(StructureArray::new(vec![1, 2], fields, values).unwrap()),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CARS196_ANNOTATIONS);
        matrw::save_matfile_v7(path.to_str().unwrap(), mat, true).unwrap();
        let annos = read_cars_annotations(&path).unwrap();
        assert_eq!(annos[0].corners, [112, 7, 853, 717]);
        assert_eq!(
            annos[0].bbox(),
            BoundingBox {
                x: 112,
                y: 7,
                width: 741,
                height: 710
            }
        );
        assert_eq!((annos[1].class, annos[1].test), (196, true));
        assert_eq!(annos[1].relative_im_path, "car_ims/000002.jpg");
    }

    #[test]
    fn corrupt_mat_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CARS196_ANNOTATIONS);
        let annos: Vec<_> = (1..=4).map(|i| annotation(i, i)).collect();
        write_cars_annotations(&path, &annos, &[]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [10, 130, bytes.len() / 2, bytes.len() - 3] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = read_cars_annotations(&path).unwrap_err().to_string();
            assert!(err.contains("cars_annos.mat"), "cut {cut}: {err}");
        }
        std::fs::write(&path, b"this is not a mat file at all, just some text padding it to length.....................................................................................................................").unwrap();
        assert!(read_cars_annotations(&path).is_err());
    }

    #[test]
    fn meta_files_follow_the_reference_numbering() {
        let dir = tempfile::tempdir().unwrap();
        // classes 1, 1, 2 train; 3, 3, 4 test
        let annos: Vec<_> = [1, 1, 2, 3, 3, 4]
            .iter()
            .enumerate()
            .map(|(i, &c)| annotation(i as u32 + 1, c))
            .collect();
        write_cars196_meta(&annos, 2, dir.path()).unwrap();
        let train = std::fs::read_to_string(dir.path().join("train.txt")).unwrap();
        let test = std::fs::read_to_string(dir.path().join("test.txt")).unwrap();
        assert_eq!(
            train,
            "image_id class_id view_id path\n1 0 0 car_ims/000001.jpg\n2 0 0 car_ims/000002.jpg\n3 1 0 car_ims/000003.jpg\n"
        );
        assert_eq!(
            test,
            "image_id class_id view_id path\n4 0 0 car_ims/000004.jpg\n5 0 1 car_ims/000005.jpg\n6 1 0 car_ims/000006.jpg\n"
        );
        let bbox = std::fs::read_to_string(dir.path().join("bbox.txt")).unwrap();
        assert_eq!(bbox.lines().next().unwrap(), "1 1 2 300 398");
    }
}
