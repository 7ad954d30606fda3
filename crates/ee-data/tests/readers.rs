//! Every reader on a generated dataset, and their errors on malformed input.

use std::path::Path;

use ee_data::formats::{
    self, read_cars196, read_cars_annotations, read_cub, read_folder_tree, read_meta_boxes,
    read_meta_dataset, read_sop, FolderSplit,
};
use ee_data::synth::{write_synthetic_dataset, SynthDataset, SynthImageFormat, SynthOptions};

fn synth(dir: &Path, classes: usize, per: usize) -> SynthDataset {
    let options = SynthOptions::new()
        .with_num_classes(classes)
        .with_images_per_class(per)
        .with_width(24)
        .with_height(20)
        .with_format(SynthImageFormat::Png);
    write_synthetic_dataset(dir, &options).unwrap()
}

fn assert_split(split: &ee_data::Split, classes: usize, per: usize) {
    assert_eq!(split.num_classes(), classes);
    assert_eq!(split.len(), classes * per);
    for (_, members) in split.indices_by_class() {
        assert_eq!(members.len(), per);
    }
    split.check_files_exist().unwrap();
}

#[test]
fn every_layout_reads_back_the_same_classes() {
    let dir = tempfile::tempdir().unwrap();
    let s = synth(dir.path(), 6, 4);
    assert_eq!(s.train_classes, 3);

    let cars = read_cars196(&s.cars196_dir, s.train_classes, true).unwrap();
    assert_split(&cars.train, 3, 4);
    assert_split(&cars.test, 3, 4);
    assert_eq!(cars.train.classes(), vec![1, 2, 3]);
    assert_eq!(cars.test.classes(), vec![4, 5, 6]);
    assert!(cars.train.items().iter().all(|i| i.bbox.is_some()));

    let meta = read_meta_dataset(
        &s.cars196_dir,
        &s.cars196_dir.join("train.txt"),
        &s.cars196_dir.join("test.txt"),
    )
    .unwrap();
    assert_split(&meta.train, 3, 4);
    assert_split(&meta.test, 3, 4);
    // the reference numbers each split's classes from 0
    assert_eq!(meta.test.classes(), vec![0, 1, 2]);
    // same images in the same order as the MAT file
    let paths = |d: &ee_data::Dataset| {
        d.test
            .items()
            .iter()
            .map(|i| i.path.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&meta), paths(&cars));
    // bbox.txt agrees with the MAT file's corners
    let boxes = read_meta_boxes(&s.cars196_dir.join("bbox.txt")).unwrap();
    let annos = read_cars_annotations(&s.cars196_dir.join("cars_annos.mat")).unwrap();
    assert_eq!(boxes.len(), annos.len());
    assert_eq!(boxes[&1], annos[0].bbox());

    let cub = read_cub(&s.cub_dir, s.train_classes, true).unwrap();
    assert_split(&cub.train, 3, 4);
    assert_split(&cub.test, 3, 4);
    assert!(cub.test.items().iter().all(|i| i.bbox.is_some()));
    let cub_plain = read_cub(&s.cub_dir, s.train_classes, false).unwrap();
    assert!(cub_plain.train.items().iter().all(|i| i.bbox.is_none()));

    let sop = read_sop(&s.sop_dir).unwrap();
    assert_split(&sop.train, 3, 4);
    assert_split(&sop.test, 3, 4);

    let by_file = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::File(s.folder_split_file.clone()),
    )
    .unwrap();
    assert_split(&by_file.train, 3, 4);
    assert_split(&by_file.test, 3, 4);
    let by_range = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::ClassRanges {
            train: 0..3,
            test: 3..6,
        },
    )
    .unwrap();
    assert_eq!(by_range, by_file);
}

#[test]
fn cub_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = synth(dir.path(), 4, 2);
    let labels = s.cub_dir.join("image_class_labels.txt");
    let text = std::fs::read_to_string(&labels).unwrap();
    let broken = text.replacen("3 2", "3 two", 1);
    std::fs::write(&labels, broken).unwrap();
    let err = read_cub(&s.cub_dir, 2, false).unwrap_err().to_string();
    assert!(
        err.contains("image_class_labels.txt:3:") && err.contains("\"two\""),
        "{err}"
    );

    std::fs::write(&labels, text.lines().take(7).collect::<Vec<_>>().join("\n")).unwrap();
    let err = read_cub(&s.cub_dir, 2, false).unwrap_err().to_string();
    assert!(err.contains("no class for image_id 8"), "{err}");

    std::fs::write(&labels, &text).unwrap();
    let boxes = s.cub_dir.join("bounding_boxes.txt");
    std::fs::write(&boxes, "1 2.0 3.0 4.0\n").unwrap();
    let err = read_cub(&s.cub_dir, 2, true).unwrap_err().to_string();
    assert!(
        err.contains("bounding_boxes.txt:1:") && err.contains("expected 5 fields"),
        "{err}"
    );
    // boxes are not read unless asked for
    read_cub(&s.cub_dir, 2, false).unwrap();
}

#[test]
fn sop_and_split_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = synth(dir.path(), 4, 2);
    let train = s.sop_dir.join("Ebay_train.txt");
    let mut text = std::fs::read_to_string(&train).unwrap();
    text.push_str("99 1 1\n");
    std::fs::write(&train, text).unwrap();
    let err = read_sop(&s.sop_dir).unwrap_err().to_string();
    assert!(
        err.contains("Ebay_train.txt:6:") && err.contains("expected 4 fields"),
        "{err}"
    );

    std::fs::write(
        &s.folder_split_file,
        "class_000 train\nclass_001 validation\n",
    )
    .unwrap();
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::File(s.folder_split_file.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("split.txt:2:") && err.contains("validation"),
        "{err}"
    );
    std::fs::write(&s.folder_split_file, "class_000 train\nclass_077 test\n").unwrap();
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::File(s.folder_split_file.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("split.txt:2:") && err.contains("class_077"),
        "{err}"
    );
    // only train classes listed: the test split is empty
    std::fs::write(&s.folder_split_file, "class_000 train\n").unwrap();
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::File(s.folder_split_file.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no images"), "{err}");
}

#[test]
fn folder_tree_refuses_empty_classes_and_bad_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let s = synth(dir.path(), 4, 2);
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::ClassRanges {
            train: 0..3,
            test: 2..4,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("overlaps"), "{err}");
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::ClassRanges {
            train: 0..2,
            test: 2..9,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("2..9") && err.contains("4 class folders"),
        "{err}"
    );
    std::fs::create_dir(s.folder_dir.join("class_zzz")).unwrap();
    let err = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::ClassRanges {
            train: 0..2,
            test: 2..4,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("class_zzz") && err.contains("no images"),
        "{err}"
    );
}

#[test]
fn cars196_checks_the_mat_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_cars196(dir.path(), 98, false).unwrap_err().to_string();
    assert!(err.contains("cars_annos.mat"), "{err}");
    std::fs::write(dir.path().join("cars_annos.mat"), vec![0u8; 300]).unwrap();
    let err = read_cars196(dir.path(), 98, false).unwrap_err().to_string();
    assert!(err.contains("cars_annos.mat"), "{err}");

    // a MAT file without `annotations`
    let annos = vec![formats::CarsAnnotation {
        relative_im_path: "car_ims/000001.jpg".into(),
        corners: [0, 0, 5, 5],
        class: 1,
        test: false,
    }];
    let path = dir.path().join("cars_annos.mat");
    formats::write_cars_annotations(&path, &annos, &[]).unwrap();
    // all classes in train: the test split is empty, which is an error naming the file
    let err = read_cars196(dir.path(), 98, false).unwrap_err().to_string();
    assert!(
        err.contains("cars_annos.mat") && err.contains("no images"),
        "{err}"
    );
}
