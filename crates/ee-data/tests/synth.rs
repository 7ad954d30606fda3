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

/// FNV-1a over the decoded pixels of every image in the folder layout, in class/instance order.
fn folder_pixel_checksum(s: &ee_data::synth::SynthDataset) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for class in 0..s.num_classes {
        for i in 0..s.images_per_class {
            let path = s
                .folder_dir
                .join(format!("class_{class:03}"))
                .join(format!("{i:04}.png"));
            let img = load_rgb(&path, None).unwrap();
            for byte in img.as_raw() {
                hash ^= *byte as u64;
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    hash
}

/// 4 classes x 3 images, PNG (lossless, so the checksum sees the rendered pixels).
fn small_png_options() -> SynthOptions {
    SynthOptions::new()
        .with_num_classes(4)
        .with_images_per_class(3)
        .with_format(SynthImageFormat::Png)
        .with_layouts(vec![SynthLayout::Folder])
}

fn checksum_of(options: &SynthOptions) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    folder_pixel_checksum(&write_synthetic_dataset(dir.path(), options).unwrap())
}

/// Checksums of the generator's images computed before `difficulty` existed: the default
/// (difficulty 0) must keep drawing exactly these pixels.
const DEFAULT_64X48_SEED0: u64 = 0x3fd1_e181_0abf_50eb;
const DEFAULT_32X32_SEED7: u64 = 0x40a2_d97d_2cd6_ae8b;

#[test]
fn default_images_are_unchanged() {
    let options = small_png_options();
    assert_eq!(options.difficulty, 0.0);
    assert_eq!(checksum_of(&options), DEFAULT_64X48_SEED0);
    let options = options.with_width(32).with_height(32).with_seed(7);
    assert_eq!(checksum_of(&options), DEFAULT_32X32_SEED7);
    assert_eq!(
        checksum_of(&options.with_difficulty(0.0)),
        DEFAULT_32X32_SEED7
    );
}

#[test]
fn difficulty_draws_other_images_deterministically() {
    let hard = small_png_options().with_difficulty(1.0);
    let once = checksum_of(&hard);
    assert_ne!(
        once, DEFAULT_64X48_SEED0,
        "difficulty 1 draws the default images"
    );
    assert_eq!(checksum_of(&hard), once, "same options, other pixels");
    assert_ne!(
        checksum_of(&hard.clone().with_seed(1)),
        once,
        "the seed changes nothing"
    );
    assert_ne!(
        checksum_of(&hard.clone().with_difficulty(0.5)),
        once,
        "the difficulty's value changes nothing"
    );
    // instances of a class differ, and so do classes
    let dir = tempfile::tempdir().unwrap();
    let s = write_synthetic_dataset(dir.path(), &hard).unwrap();
    let file = |class: usize, i: usize| {
        std::fs::read(s.folder_dir.join(format!("class_{class:03}/{i:04}.png"))).unwrap()
    };
    assert_ne!(file(0, 0), file(0, 1));
    assert_ne!(file(0, 0), file(1, 0));
}

#[test]
fn invalid_difficulty_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [-0.1f32, 1.5, f32::NAN] {
        let err = write_synthetic_dataset(dir.path(), &small_png_options().with_difficulty(bad))
            .unwrap_err();
        assert!(err.to_string().contains("difficulty = "), "{err}");
    }
    let err = write_synthetic_dataset(
        dir.path(),
        &small_png_options()
            .with_num_classes(300)
            .with_layouts(vec![SynthLayout::Folder])
            .with_difficulty(0.5),
    )
    .unwrap_err();
    assert!(err.to_string().contains("num_classes = 300"), "{err}");
}
