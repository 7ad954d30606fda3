//! The image pipeline: shapes, normalisation, the train transform's behaviour, order,
//! determinism, the cache, and errors for missing or corrupt images.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use ee_data::transform::{apply_train, enlarged_side, normalize_into, test_transform, TrainDraw};
use ee_data::{
    Augmentation, BatchPlan, BoundingBox, Item, LoaderConfig, SamplerConfig, SamplerState, Split,
    IMAGENET_MEAN, IMAGENET_STD,
};
use image::{Rgb, RgbImage};

type B = Flex;

fn save(image: &RgbImage, path: &Path) {
    image.save(path).unwrap();
}

fn item(path: PathBuf, class_id: u32) -> Item {
    Item {
        path,
        class_id,
        bbox: None,
    }
}

fn to_vec(t: burn::tensor::Tensor<B, 4>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn normalised(rgb: [u8; 3], c: usize) -> f32 {
    (f32::from(rgb[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
}

#[test]
fn test_batches_have_shape_labels_and_imagenet_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let colours = [[255u8, 0, 128], [10, 200, 30], [0, 0, 0]];
    let mut items = Vec::new();
    for (i, c) in colours.iter().enumerate() {
        let path = dir.path().join(format!("{i}.png"));
        save(&RgbImage::from_pixel(40 + i as u32 * 7, 30, Rgb(*c)), &path);
        items.push(item(path, 10 + i as u32));
    }
    let split = Split::new(items, "t").unwrap();
    let loader = LoaderConfig::new()
        .with_image_size(16)
        .with_workers(2)
        .init(&split)
        .unwrap();
    let batches: Vec<_> = loader
        .iter::<B>(BatchPlan::test(3, 2), &Default::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].images.dims(), [2, 3, 16, 16]);
    assert_eq!(batches[1].images.dims(), [1, 3, 16, 16]);
    assert_eq!(batches[0].class_ids, vec![10, 11]);
    assert_eq!(
        batches[1]
            .labels
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap(),
        vec![12]
    );
    let pixels = to_vec(batches[0].images.clone());
    let plane = 16 * 16;
    for (row, colour) in colours[..2].iter().enumerate() {
        for c in 0..3 {
            let start = row * 3 * plane + c * plane;
            for v in &pixels[start..start + plane] {
                assert!(
                    (v - normalised(*colour, c)).abs() < 1e-5,
                    "row {row} channel {c}: {v}"
                );
            }
        }
    }
}

/// A 36 x 36 image (the enlarged side for S = 32) with a unique colour per pixel position.
fn coded_image() -> RgbImage {
    RgbImage::from_fn(36, 36, |x, y| {
        Rgb([(x * 7) as u8, (y * 7) as u8, ((x + y) % 5 * 50) as u8])
    })
}

#[test]
fn train_outputs_are_resizes_or_crops_optionally_flipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coded.png");
    let src = coded_image();
    save(&src, &path);
    let size = 32u32;
    assert_eq!(enlarged_side(size), 36);
    // every possible train output, normalised
    let mut candidates: Vec<(TrainDraw, Vec<f32>)> = Vec::new();
    let mut draws = vec![];
    for flip in [false, true] {
        draws.push(TrainDraw { crop: None, flip });
        for x in 0..=4 {
            for y in 0..=4 {
                draws.push(TrainDraw {
                    crop: Some((x, y)),
                    flip,
                });
            }
        }
    }
    for d in draws {
        let mut v = vec![0.0; 3 * 32 * 32];
        normalize_into(&apply_train(&src, size, d), &mut v);
        candidates.push((d, v));
    }
    let split = Split::new(vec![item(path, 0)], "t").unwrap();
    let loader = LoaderConfig::new()
        .with_image_size(size)
        .with_workers(1)
        .init(&split)
        .unwrap();
    let (mut resized, mut cropped, mut flipped, mut n) = (0, 0, 0, 0);
    let mut offsets = std::collections::BTreeSet::new();
    for epoch in 0..8 {
        let plan = BatchPlan {
            batches: vec![vec![0; 16]],
            first_batch: 0,
            augmentation: Augmentation::Train { seed: 5, epoch },
            group_size: 2,
        };
        for batch in loader.iter::<B>(plan, &Default::default()) {
            let pixels = to_vec(batch.unwrap().images);
            for row in pixels.chunks(3 * 32 * 32) {
                let (draw, _) = candidates
                    .iter()
                    .find(|(_, c)| c.iter().zip(row).all(|(a, b)| (a - b).abs() < 1e-6))
                    .expect("every output is one of the transform's possible results");
                n += 1;
                flipped += draw.flip as usize;
                match draw.crop {
                    None => resized += 1,
                    Some(o) => {
                        cropped += 1;
                        offsets.insert(o);
                    }
                }
            }
        }
    }
    assert_eq!(n, 128);
    // p = 0.5 each: 128 trials, far outside 40..88 has probability < 1e-4
    assert!(
        (40..=88).contains(&resized) && (40..=88).contains(&flipped),
        "{resized} {flipped}"
    );
    assert_eq!(resized + cropped, n);
    assert!(offsets.len() >= 8, "crop offsets vary: {offsets:?}");
}

#[test]
fn train_batches_follow_the_plan_and_are_deterministic_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..12u32 {
        let path = dir.path().join(format!("{i}.png"));
        save(
            &RgbImage::from_fn(20, 20, |x, y| {
                Rgb([(i * 20) as u8, (x * 12) as u8, (y * 12) as u8])
            }),
            &path,
        );
        items.push(item(path, i / 3));
    }
    let split = Split::new(items, "t").unwrap();
    let sampler = SamplerConfig::new()
        .with_batch_size(4)
        .with_instances_per_class(2)
        .with_epoch_size(Some(24))
        .init(&split.labels(), 9)
        .unwrap();
    let state = SamplerState {
        seed: 9,
        epoch: 2,
        next_batch: 0,
    };
    let expected = sampler.epoch(2);
    let run = |workers: usize, prefetch: usize, state: SamplerState| {
        let loader = LoaderConfig::new()
            .with_image_size(8)
            .with_workers(workers)
            .with_prefetch_batches(prefetch)
            .init(&split)
            .unwrap();
        loader
            .iter::<B>(
                BatchPlan::train(&sampler, state).unwrap(),
                &Default::default(),
            )
            .map(|b| {
                let b = b.unwrap();
                (b.batch_index, b.item_indices.clone(), to_vec(b.images))
            })
            .collect::<Vec<_>>()
    };
    let a = run(3, 2, state);
    assert_eq!(a.len(), expected.len());
    for (i, (index, items, _)) in a.iter().enumerate() {
        assert_eq!(*index, i);
        assert_eq!(items, &expected[i]);
    }
    let b = run(1, 1, state);
    assert_eq!(
        a, b,
        "the same seed gives the same pixels whatever the thread count"
    );
    let resumed = run(
        2,
        3,
        SamplerState {
            next_batch: 3,
            ..state
        },
    );
    assert_eq!(resumed[..], a[3..]);
}

#[test]
fn bounding_box_crop_is_applied_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boxed.png");
    // grey image with a green 10 x 8 block at (5, 4)
    let img = RgbImage::from_fn(30, 20, |x, y| {
        if (5..15).contains(&x) && (4..12).contains(&y) {
            Rgb([0, 255, 0])
        } else {
            Rgb([128; 3])
        }
    });
    save(&img, &path);
    let bbox = BoundingBox {
        x: 5,
        y: 4,
        width: 10,
        height: 8,
    };
    let split = Split::new(
        vec![Item {
            path,
            class_id: 0,
            bbox: Some(bbox),
        }],
        "t",
    )
    .unwrap();
    let with = LoaderConfig::new()
        .with_image_size(8)
        .with_use_bbox(true)
        .init(&split)
        .unwrap();
    let batch = with
        .load::<B>(&[0], 0, Augmentation::Test, 1, &Default::default())
        .unwrap();
    let pixels = to_vec(batch.images);
    let green = normalised([0, 255, 0], 1);
    assert!(pixels[64..128].iter().all(|v| (v - green).abs() < 1e-5));
    let without = LoaderConfig::new().with_image_size(8).init(&split).unwrap();
    let pixels = to_vec(
        without
            .load::<B>(&[0], 0, Augmentation::Test, 1, &Default::default())
            .unwrap()
            .images,
    );
    assert!(pixels[64..128].iter().any(|v| (v - green).abs() > 0.5));
}

#[test]
fn grayscale_and_rgba_images_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let gray = dir.path().join("gray.jpg");
    image::GrayImage::from_pixel(16, 16, image::Luma([100]))
        .save(&gray)
        .unwrap();
    let rgba = dir.path().join("rgba.png");
    image::RgbaImage::from_pixel(16, 16, image::Rgba([10, 20, 30, 40]))
        .save(&rgba)
        .unwrap();
    let g = ee_data::load_rgb(&gray, None).unwrap();
    assert_eq!(g.dimensions(), (16, 16));
    let p = g.get_pixel(8, 8).0;
    assert!(
        p[0] == p[1] && p[1] == p[2] && (p[0] as i32 - 100).abs() <= 2,
        "{p:?}"
    );
    assert_eq!(
        ee_data::load_rgb(&rgba, None).unwrap().get_pixel(3, 3).0,
        [10, 20, 30]
    );
}

#[test]
fn missing_and_corrupt_images_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    save(&RgbImage::from_pixel(12, 12, Rgb([1, 2, 3])), &good);
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let missing = dir.path().join("missing.jpg");
    let truncated = dir.path().join("truncated.png");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for bad in [&corrupt, &missing, &truncated] {
        let split = Split::new(vec![item(good.clone(), 0), item(bad.clone(), 1)], "t").unwrap();
        let loader = LoaderConfig::new().with_image_size(8).init(&split).unwrap();
        let mut iter = loader.iter::<B>(BatchPlan::test(2, 1), &Default::default());
        assert!(iter.next().unwrap().is_ok());
        let err = iter.next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains(bad.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        assert!(iter.next().is_none(), "the iterator stops after an error");
    }
}

#[test]
fn skip_unreadable_drops_the_whole_group_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..6u32 {
        let path = dir.path().join(format!("{i}.png"));
        if i != 3 {
            save(
                &RgbImage::from_pixel(10, 10, Rgb([i as u8 * 40, 0, 0])),
                &path,
            );
        }
        items.push(item(path, i / 2));
    }
    let split = Split::new(items, "t").unwrap();
    let loader = LoaderConfig::new()
        .with_image_size(8)
        .with_skip_unreadable(true)
        .init(&split)
        .unwrap();
    let plan = BatchPlan {
        batches: vec![vec![0, 1, 2, 3, 4, 5]],
        first_batch: 0,
        augmentation: Augmentation::Train { seed: 0, epoch: 0 },
        group_size: 2,
    };
    let batch = loader
        .iter::<B>(plan, &Default::default())
        .next()
        .unwrap()
        .unwrap();
    // item 3 is missing: rows 2 and 3 (its class pair) are dropped, the layout stays paired
    assert_eq!(batch.item_indices, vec![0, 1, 4, 5]);
    assert_eq!(batch.class_ids, vec![0, 0, 2, 2]);
    assert_eq!(batch.skipped, vec![3]);
    assert_eq!(batch.images.dims(), [4, 3, 8, 8]);
    assert_eq!(loader.skipped_count(), 1);
}

#[test]
fn cache_keeps_decoded_images_and_matches_uncached_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..4u32 {
        let path = dir.path().join(format!("{i}.png"));
        save(
            &RgbImage::from_fn(50, 40, |x, y| {
                Rgb([(x * 5) as u8, (y * 6) as u8, (i * 60) as u8])
            }),
            &path,
        );
        items.push(item(path, i));
    }
    let split = Split::new(items, "t").unwrap();
    let cached = LoaderConfig::new()
        .with_image_size(16)
        .with_cache_images(true)
        .init(&split)
        .unwrap();
    let plain = LoaderConfig::new()
        .with_image_size(16)
        .init(&split)
        .unwrap();
    let load = |l: &ee_data::ImageLoader| {
        l.iter::<B>(BatchPlan::test(4, 4), &Default::default())
            .next()
            .unwrap()
            .unwrap()
            .images
    };
    assert_eq!(cached.cached_count(), 0);
    let first = to_vec(load(&cached));
    assert_eq!(cached.cached_count(), 4);
    // files gone: the cache alone serves later passes
    for item in split.items() {
        std::fs::remove_file(&item.path).unwrap();
    }
    let second = to_vec(load(&cached));
    assert_eq!(first, second);
    assert!(plain
        .iter::<B>(BatchPlan::test(4, 4), &Default::default())
        .next()
        .unwrap()
        .is_err());
    // cached images go through one more resize: close to, not exactly, the direct result
    let direct: Vec<f32> = {
        let mut all = Vec::new();
        for i in 0..4u32 {
            let src = RgbImage::from_fn(50, 40, |x, y| {
                Rgb([(x * 5) as u8, (y * 6) as u8, (i * 60) as u8])
            });
            let mut v = vec![0.0; 3 * 16 * 16];
            normalize_into(&test_transform(&src, 16), &mut v);
            all.extend(v);
        }
        all
    };
    let mean_abs: f32 = first
        .iter()
        .zip(&direct)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / direct.len() as f32;
    assert!(mean_abs < 0.05, "mean |cached - direct| = {mean_abs}");
}

#[test]
fn invalid_loader_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let split = Split::new(vec![item(dir.path().join("x.png"), 0)], "t").unwrap();
    let err = LoaderConfig::new()
        .with_image_size(0)
        .init(&split)
        .unwrap_err()
        .to_string();
    assert!(err.contains("image_size = 0"), "{err}");
    let err = LoaderConfig::new()
        .with_prefetch_batches(0)
        .init(&split)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefetch_batches = 0"), "{err}");
}

#[test]
fn cmyk_jpegs_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cmyk.jpg");
    // 16 x 8: left half pure magenta + yellow (= red), right half full black
    let mut data = Vec::new();
    for _y in 0..8 {
        for x in 0..16 {
            data.extend_from_slice(if x < 8 {
                &[0, 255, 255, 0]
            } else {
                &[0, 0, 0, 255]
            });
        }
    }
    let encoder = jpeg_encoder::Encoder::new_file(&path, 100).unwrap();
    encoder
        .encode(&data, 16, 8, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let rgb = ee_data::load_rgb(&path, None).unwrap();
    assert_eq!(rgb.dimensions(), (16, 8));
    let red = rgb.get_pixel(2, 4).0;
    let black = rgb.get_pixel(13, 4).0;
    assert!(
        red[0] > 200 && red[1] < 50 && red[2] < 50,
        "CMYK red decoded as {red:?}"
    );
    assert!(
        black.iter().all(|&v| v < 50),
        "CMYK black decoded as {black:?}"
    );
}

#[test]
fn dropping_the_iterator_early_stops_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    save(&RgbImage::from_pixel(64, 64, Rgb([9, 9, 9])), &path);
    let split = Split::new(vec![item(path, 0)], "t").unwrap();
    let loader = LoaderConfig::new()
        .with_image_size(32)
        .with_workers(2)
        .with_prefetch_batches(2)
        .init(&split)
        .unwrap();
    let plan = BatchPlan {
        batches: vec![vec![0; 8]; 200],
        ..BatchPlan::test(1, 1)
    };
    let mut iter = loader.iter::<B>(plan, &Default::default());
    assert_eq!(iter.remaining(), 200);
    iter.next().unwrap().unwrap();
    drop(iter); // must return promptly (joins the threads) rather than decode all 200 batches
}
