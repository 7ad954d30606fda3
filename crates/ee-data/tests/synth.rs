//! The synthetic generator: deterministic, valid files, and classes that are separable.

use ee_data::formats::read_folder_tree;
use ee_data::formats::FolderSplit;
use ee_data::synth::{write_synthetic_dataset, SynthImageFormat, SynthLayout, SynthOptions};
use ee_data::{load_rgb, Split};

fn histogram_features(split: &Split) -> Vec<(u32, Vec<f32>)> {
    split
        .items()
        .iter()
        .map(|item| {
            let img = load_rgb(&item.path, None).unwrap();
            let mut h = vec![0.0f32; 64];
            for p in img.pixels() {
                let bin = (p.0[0] / 64) as usize * 16
                    + (p.0[1] / 64) as usize * 4
                    + (p.0[2] / 64) as usize;
                h[bin] += 1.0;
            }
            let n = (img.width() * img.height()) as f32;
            (item.class_id, h.into_iter().map(|v| v / n).collect())
        })
        .collect()
}

#[test]
fn classes_are_separable_by_a_simple_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let options = SynthOptions::new()
        .with_num_classes(20)
        .with_images_per_class(10)
        .with_width(32)
        .with_height(32)
        .with_layouts(vec![SynthLayout::Folder]);
    let s = write_synthetic_dataset(dir.path(), &options).unwrap();
    let data = read_folder_tree(
        &s.folder_dir,
        &FolderSplit::ClassRanges {
            train: 0..10,
            test: 10..20,
        },
    )
    .unwrap();
    // nearest class mean on colour histograms, fitted on half of each class's images
    for split in [&data.train, &data.test] {
        let feats = histogram_features(split);
        let mut means: std::collections::BTreeMap<u32, (Vec<f32>, f32)> = Default::default();
        for (i, (class, f)) in feats.iter().enumerate() {
            if i % 2 == 0 {
                let e = means.entry(*class).or_insert((vec![0.0; 64], 0.0));
                e.0.iter_mut().zip(f).for_each(|(m, v)| *m += v);
                e.1 += 1.0;
            }
        }
        let (mut right, mut total) = (0, 0);
        for (i, (class, f)) in feats.iter().enumerate() {
            if i % 2 == 1 {
                let best = means
                    .iter()
                    .map(|(c, (m, n))| {
                        (
                            c,
                            m.iter()
                                .zip(f)
                                .map(|(a, b)| (a / n - b).powi(2))
                                .sum::<f32>(),
                        )
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap()
                    .0;
                right += (best == class) as usize;
                total += 1;
            }
        }
        assert!(
            right as f32 / total as f32 >= 0.9,
            "{right}/{total} held-out images classified right"
        );
    }
}

#[test]
fn same_seed_same_files_and_instances_differ() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let options = SynthOptions::new()
        .with_num_classes(2)
        .with_images_per_class(3)
        .with_format(SynthImageFormat::Png)
        .with_layouts(vec![SynthLayout::Folder]);
    write_synthetic_dataset(a.path(), &options).unwrap();
    write_synthetic_dataset(b.path(), &options).unwrap();
    let file = |d: &std::path::Path, i: usize| {
        std::fs::read(d.join("folder/class_000").join(format!("{i:04}.png"))).unwrap()
    };
    assert_eq!(file(a.path(), 0), file(b.path(), 0));
    assert_ne!(file(a.path(), 0), file(a.path(), 1));
    let other = tempfile::tempdir().unwrap();
    write_synthetic_dataset(other.path(), &options.clone().with_seed(1)).unwrap();
    assert_ne!(file(a.path(), 0), file(other.path(), 0));
}

#[test]
fn jpeg_files_decode_at_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = SynthOptions::new()
        .with_num_classes(2)
        .with_images_per_class(1)
        .with_width(40)
        .with_height(24);
    let s = write_synthetic_dataset(dir.path(), &options).unwrap();
    let img = load_rgb(&s.cars196_dir.join("car_ims/000001.jpg"), None).unwrap();
    assert_eq!(img.dimensions(), (40, 24));
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        write_synthetic_dataset(dir.path(), &SynthOptions::new().with_num_classes(1)).unwrap_err();
    assert!(err.to_string().contains("num_classes = 1"), "{err}");
    let err = write_synthetic_dataset(dir.path(), &SynthOptions::new().with_width(4)).unwrap_err();
    assert!(err.to_string().contains("4x48"), "{err}");
}
