//! The configurable train augmentation: the default is the reference's transform bit for bit
//! and draw for draw, `flip = false` never mirrors, `enlarge` sets the enlarged side, every
//! policy gives S x S, bad values are refused by name, and the serde forms.

use burn::backend::Flex;
use ee_data::augment::{AugmentDraw, Geometry, MAX_ENLARGE};
use ee_data::transform::{enlarged_side, resize, train_transform, TrainDraw, TRAIN_ENLARGE};
use ee_data::{AugmentConfig, Augmentation, BatchPlan, Item, LoaderConfig, ResizePolicy, Split};
use image::{Rgb, RgbImage};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const POLICIES: [ResizePolicy; 5] = [
    ResizePolicy::Reference,
    ResizePolicy::RandomCrop,
    ResizePolicy::RandomResizedCrop,
    ResizePolicy::CenterCrop,
    ResizePolicy::Resize,
];

/// Non-square, with a different colour per position, so any crop, offset, resize or flip
/// changes the result.
fn generated(width: u32, height: u32, salt: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(2)) as u8,
            (y * 255 / height.max(2)) as u8,
            ((x * 31 + y * 17 + salt * 7) % 256) as u8,
        ])
    })
}

/// Dark on the left, bright on the right: a mirror image has its bright side on the left.
fn left_dark_right_bright(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 255 / (width - 1)) as u8;
        Rgb([v, v, (y % 3) as u8 * 40])
    })
}

/// Mean of the red channel over the left and the right third of the columns.
fn left_right_means(image: &RgbImage) -> (f64, f64) {
    let (w, h) = image.dimensions();
    let third = (w / 3).max(1);
    let mean = |xs: std::ops::Range<u32>| {
        let n = f64::from(xs.len() as u32 * h);
        xs.flat_map(|x| (0..h).map(move |y| (x, y)))
            .map(|(x, y)| f64::from(image.get_pixel(x, y).0[0]))
            .sum::<f64>()
            / n
    };
    (mean(0..third), mean(w - third..w))
}

#[test]
fn default_config_reproduces_the_reference_transform_exactly() {
    let config = AugmentConfig::new();
    assert_eq!(config, AugmentConfig::default());
    assert_eq!(LoaderConfig::new().augment, config);
    assert_eq!(config.enlarge, TRAIN_ENLARGE);
    let mut branches = [0usize; 2];
    let mut flips = 0;
    for (i, (w, h)) in [(36, 36), (50, 37), (120, 200), (255, 255), (9, 14)]
        .into_iter()
        .enumerate()
    {
        let image = generated(w, h, i as u32);
        for size in [8u32, 32, 227] {
            for seed in 0..40u64 {
                let mut a = ChaCha8Rng::seed_from_u64(seed);
                let mut b = ChaCha8Rng::seed_from_u64(seed);
                let ours = config.transform(&image, size, &mut a);
                let reference = train_transform(&image, size, &mut b);
                assert_eq!(ours, reference, "{w}x{h} -> {size}, seed {seed}");
                assert_eq!(a.next_u64(), b.next_u64(), "same number of draws");

                let mut a = ChaCha8Rng::seed_from_u64(seed);
                let mut b = ChaCha8Rng::seed_from_u64(seed);
                let draw = config.sample(w, h, size, &mut a);
                let old = TrainDraw::sample(size, &mut b);
                let want = match old.crop {
                    None => Geometry::Resize,
                    Some((x, y)) => Geometry::EnlargeCrop {
                        side: enlarged_side(size),
                        x,
                        y,
                    },
                };
                assert_eq!(
                    draw,
                    AugmentDraw {
                        geometry: want,
                        flip: old.flip
                    }
                );
                branches[old.crop.is_some() as usize] += 1;
                flips += old.flip as usize;
            }
        }
    }
    assert!(branches[0] > 200 && branches[1] > 200, "{branches:?}");
    assert!(flips > 200 && flips < 400, "{flips}");
}

#[test]
fn the_default_draws_are_pinned() {
    // The reference's draws for one seed at S = 227 (R = 255), as `TrainDraw` gave them
    // before `AugmentConfig` existed: a change here breaks resumed runs.
    let config = AugmentConfig::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let draws: Vec<(Option<(u32, u32)>, bool)> = (0..8)
        .map(|_| {
            let d = config.sample(300, 200, 227, &mut rng);
            let crop = match d.geometry {
                Geometry::Resize => None,
                Geometry::EnlargeCrop { side, x, y } => {
                    assert_eq!(side, 255);
                    Some((x, y))
                }
                other => panic!("{other:?}"),
            };
            (crop, d.flip)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let old: Vec<(Option<(u32, u32)>, bool)> = (0..8)
        .map(|_| {
            let d = TrainDraw::sample(227, &mut rng);
            (d.crop, d.flip)
        })
        .collect();
    assert_eq!(draws, old);
    assert_eq!(draws, PINNED_DRAWS, "{draws:?}");
}
const PINNED_DRAWS: [(Option<(u32, u32)>, bool); 8] = [
    (None, false),
    (Some((25, 19)), true),
    (None, true),
    (None, false),
    (Some((18, 22)), true),
    (Some((13, 20)), true),
    (Some((27, 8)), false),
    (Some((23, 24)), true),
];

#[test]
fn flip_false_never_mirrors_and_keeps_the_geometry() {
    let image = left_dark_right_bright(60, 40);
    let size = 24;
    for policy in POLICIES {
        let on = AugmentConfig::new().with_policy(policy);
        let off = on.clone().with_flip(false);
        let mut mirrored_with_flip = 0;
        for seed in 0..300u64 {
            let mut a = ChaCha8Rng::seed_from_u64(seed);
            let mut b = ChaCha8Rng::seed_from_u64(seed);
            let d_on = on.sample(60, 40, size, &mut a);
            let d_off = off.sample(60, 40, size, &mut b);
            assert!(!d_off.flip, "{policy:?} seed {seed}");
            assert_eq!(d_on.geometry, d_off.geometry, "the same crops");
            assert_eq!(a.next_u64(), b.next_u64(), "the flip coin is still drawn");

            let out = off.transform(&image, size, &mut ChaCha8Rng::seed_from_u64(seed));
            let (left, right) = left_right_means(&out);
            assert!(
                left < right,
                "{policy:?} seed {seed}: mirrored ({left} >= {right})"
            );
            let out_on = on.transform(&image, size, &mut ChaCha8Rng::seed_from_u64(seed));
            let (left, right) = left_right_means(&out_on);
            mirrored_with_flip += (left > right) as usize;
            assert_eq!(left > right, d_on.flip, "{policy:?} seed {seed}");
        }
        // p = 0.5 over 300 seeds: the test image does detect a mirror
        assert!(
            (100..200).contains(&mirrored_with_flip),
            "{policy:?}: {mirrored_with_flip}"
        );
    }
}

#[test]
fn enlarge_sets_the_resize_side_and_the_crop_range() {
    let size = 32;
    for (enlarge, side) in [(1.0, 32), (1.125, 36), (1.25, 40), (1.5, 48), (2.0, 64)] {
        let config = AugmentConfig::new().with_enlarge(enlarge);
        assert_eq!(config.enlarged_side(size), side, "enlarge {enlarge}");
        for policy in [ResizePolicy::Reference, ResizePolicy::RandomCrop] {
            let config = config.clone().with_policy(policy);
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut max_offset = 0;
            for _ in 0..400 {
                match config.sample(100, 80, size, &mut rng).geometry {
                    Geometry::EnlargeCrop { side: s, x, y } => {
                        assert_eq!(s, side);
                        assert!(x <= side - size && y <= side - size);
                        max_offset = max_offset.max(x).max(y);
                    }
                    Geometry::Resize => assert_eq!(policy, ResizePolicy::Reference),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(max_offset, side - size, "{policy:?} enlarge {enlarge}");
        }
        // center crop: the middle S x S of the R x R resize
        let image = generated(70, 50, 1);
        let center = config
            .clone()
            .with_policy(ResizePolicy::CenterCrop)
            .with_flip(false);
        let out = center.transform(&image, size, &mut ChaCha8Rng::seed_from_u64(0));
        let offset = (side - size) / 2;
        let enlarged = resize(&image, side, side);
        let want = image::imageops::crop_imm(&enlarged, offset, offset, size, size).to_image();
        assert_eq!(out, want, "enlarge {enlarge}");
    }
    // the default factor leaves `enlarged_side` as it was
    assert_eq!(AugmentConfig::new().enlarged_side(227), 255);
    assert_eq!(enlarged_side(227), 255);
}

#[test]
fn every_policy_gives_the_requested_size() {
    for policy in POLICIES {
        let config = AugmentConfig::new().with_policy(policy).with_enlarge(1.3);
        for (w, h) in [(300, 120), (40, 400), (5, 5), (227, 227), (1, 9)] {
            let image = generated(w, h, 3);
            for size in [1u32, 7, 32, 227] {
                for seed in 0..6u64 {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    let out = config.transform(&image, size, &mut rng);
                    assert_eq!(
                        out.dimensions(),
                        (size, size),
                        "{policy:?} {w}x{h} -> {size}"
                    );
                }
            }
        }
    }
}

#[test]
fn random_resized_crop_follows_scale_and_ratio() {
    let config = AugmentConfig::new()
        .with_policy(ResizePolicy::RandomResizedCrop)
        .with_scale([0.16, 1.0]);
    let (w_src, h_src) = (200u32, 150u32);
    let area = f64::from(w_src * h_src);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut xs, mut small, mut large) = (std::collections::BTreeSet::new(), 0, 0);
    for _ in 0..500 {
        let Geometry::CropResize {
            x,
            y,
            width,
            height,
        } = config.sample(w_src, h_src, 64, &mut rng).geometry
        else {
            panic!("random_resized_crop crops the source")
        };
        assert!(width >= 1 && height >= 1);
        assert!(
            x + width <= w_src && y + height <= h_src,
            "inside the image"
        );
        let fraction = f64::from(width * height) / area;
        let ratio = f64::from(width) / f64::from(height);
        // rounding each side to whole pixels moves area and ratio a little
        assert!((0.15..=1.0).contains(&fraction), "area fraction {fraction}");
        assert!((0.73..=1.37).contains(&ratio), "ratio {ratio}");
        xs.insert(x);
        small += (fraction < 0.4) as usize;
        large += (fraction > 0.7) as usize;
    }
    assert!(xs.len() > 20, "positions vary");
    assert!(small > 50 && large > 50, "{small} {large}");

    // scale [1, 1], ratio [1, 1] on a square image: the whole image, resized
    let whole = AugmentConfig::new()
        .with_policy(ResizePolicy::RandomResizedCrop)
        .with_scale([1.0, 1.0])
        .with_ratio([1.0, 1.0])
        .with_flip(false);
    let image = generated(50, 50, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(
        whole.sample(50, 50, 20, &mut rng).geometry,
        Geometry::CropResize {
            x: 0,
            y: 0,
            width: 50,
            height: 50
        }
    );
    let out = whole.transform(&image, 20, &mut ChaCha8Rng::seed_from_u64(1));
    assert_eq!(out, resize(&image, 20, 20));

    // no attempt can fit a square of half the area into 100 x 10: the centred fallback,
    // clamped to the ratio range (10 x 10 in the middle)
    let fallback = whole.clone().with_scale([0.5, 1.0]);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    assert_eq!(
        fallback.sample(100, 10, 8, &mut rng).geometry,
        Geometry::CropResize {
            x: 45,
            y: 0,
            width: 10,
            height: 10
        }
    );
}

#[test]
fn policies_without_random_geometry_are_deterministic_up_to_the_flip() {
    let image = generated(64, 48, 4);
    for policy in [ResizePolicy::CenterCrop, ResizePolicy::Resize] {
        let config = AugmentConfig::new().with_policy(policy).with_flip(false);
        let first = config.transform(&image, 20, &mut ChaCha8Rng::seed_from_u64(0));
        for seed in 1..30 {
            let out = config.transform(&image, 20, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(out, first, "{policy:?}");
        }
        if policy == ResizePolicy::Resize {
            assert_eq!(first, resize(&image, 20, 20));
        }
    }
}

#[test]
fn invalid_values_are_refused_naming_the_field() {
    let bad: Vec<(AugmentConfig, &str)> = vec![
        (
            AugmentConfig::new().with_enlarge(0.99),
            "augment.enlarge = 0.99",
        ),
        (
            AugmentConfig::new().with_enlarge(0.0),
            "augment.enlarge = 0",
        ),
        (
            AugmentConfig::new().with_enlarge(-1.5),
            "augment.enlarge = -1.5",
        ),
        (
            AugmentConfig::new().with_enlarge(f64::NAN),
            "augment.enlarge = NaN",
        ),
        (
            AugmentConfig::new().with_enlarge(f64::INFINITY),
            "augment.enlarge = inf",
        ),
        (
            AugmentConfig::new().with_enlarge(MAX_ENLARGE + 0.5),
            "augment.enlarge = 4.5",
        ),
        (
            AugmentConfig::new().with_scale([0.0, 1.0]),
            "augment.scale = [0.0, 1.0]",
        ),
        (
            AugmentConfig::new().with_scale([0.5, 0.2]),
            "augment.scale = [0.5, 0.2]",
        ),
        (
            AugmentConfig::new().with_scale([0.1, 1.5]),
            "augment.scale = [0.1, 1.5]",
        ),
        (
            AugmentConfig::new().with_scale([f64::NAN, 1.0]),
            "augment.scale = [NaN, 1.0]",
        ),
        (
            AugmentConfig::new().with_ratio([0.0, 1.0]),
            "augment.ratio = [0.0, 1.0]",
        ),
        (
            AugmentConfig::new().with_ratio([2.0, 1.0]),
            "augment.ratio = [2.0, 1.0]",
        ),
        (
            AugmentConfig::new().with_ratio([0.5, f64::INFINITY]),
            "augment.ratio = [0.5, inf]",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let split = Split::new(
        vec![Item {
            path: dir.path().join("x.png"),
            class_id: 0,
            bbox: None,
        }],
        "t",
    )
    .unwrap();
    for (config, want) in bad {
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("invalid {want}:")),
            "{err} (want {want})"
        );
        let err = LoaderConfig::new()
            .with_augment(config)
            .init(&split)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    for ok in [
        AugmentConfig::new().with_enlarge(1.0),
        AugmentConfig::new().with_enlarge(MAX_ENLARGE),
        AugmentConfig::new()
            .with_scale([1.0, 1.0])
            .with_ratio([1.0, 1.0]),
        AugmentConfig::new()
            .with_flip(false)
            .with_policy(ResizePolicy::Resize),
    ] {
        ok.check().unwrap();
    }
}

#[test]
fn serde_names_and_partial_tables() {
    let names: Vec<String> = POLICIES
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "\"reference\"",
            "\"random_crop\"",
            "\"random_resized_crop\"",
            "\"center_crop\"",
            "\"resize\""
        ]
    );
    assert!(serde_json::from_str::<ResizePolicy>("\"RandomCrop\"").is_err());

    // the full form round-trips, alone and inside a LoaderConfig
    let config = AugmentConfig::new()
        .with_flip(false)
        .with_policy(ResizePolicy::RandomResizedCrop)
        .with_scale([0.16, 1.0]);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<AugmentConfig>(&json).unwrap(),
        config
    );
    let loader = LoaderConfig::new().with_augment(config.clone());
    let json = serde_json::to_string(&loader).unwrap();
    assert!(
        json.contains("\"policy\":\"random_resized_crop\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<LoaderConfig>(&json).unwrap(), loader);

    // a partial table, as a `[data.augment]` section with only some keys
    #[derive(serde::Deserialize)]
    struct Section {
        #[serde(default, deserialize_with = "AugmentConfig::deserialize_with_defaults")]
        augment: AugmentConfig,
    }
    let s: Section = serde_json::from_str(r#"{"augment": {"flip": false}}"#).unwrap();
    assert_eq!(s.augment, AugmentConfig::new().with_flip(false));
    let s: Section = serde_json::from_str("{}").unwrap();
    assert_eq!(s.augment, AugmentConfig::new());
    let s: Section = serde_json::from_str(
        r#"{"augment": {"policy": "random_resized_crop", "scale": [0.16, 1.0]}}"#,
    )
    .unwrap();
    assert_eq!(
        s.augment,
        AugmentConfig::new()
            .with_policy(ResizePolicy::RandomResizedCrop)
            .with_scale([0.16, 1.0])
    );
    let err = serde_json::from_str::<Section>(r#"{"augment": {"flipp": false}}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("flipp"), "{err}");
    let err = serde_json::from_str::<Section>(r#"{"augment": {"policy": "crop"}}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("crop") && err.contains("random_resized_crop"),
        "{err}"
    );
}

#[test]
fn the_loader_uses_the_augment_config() {
    // center_crop without flip is deterministic: every train row is the same known image,
    // cached (R x R kept in memory) or not
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    let image = left_dark_right_bright(90, 60);
    image.save(&path).unwrap();
    let split = Split::new(
        vec![Item {
            path,
            class_id: 0,
            bbox: None,
        }],
        "t",
    )
    .unwrap();
    let size = 16u32;
    let augment = AugmentConfig::new()
        .with_policy(ResizePolicy::CenterCrop)
        .with_enlarge(1.5)
        .with_flip(false);
    let enlarged = resize(&image, 24, 24);
    let want = image::imageops::crop_imm(&enlarged, 4, 4, size, size).to_image();
    let mut want_px = vec![0.0; 3 * 16 * 16];
    ee_data::transform::normalize_into(&want, &mut want_px);
    for cache in [false, true] {
        let loader = LoaderConfig::new()
            .with_image_size(size)
            .with_cache_images(cache)
            .with_workers(1)
            .with_augment(augment.clone())
            .init(&split)
            .unwrap();
        for epoch in 0..3 {
            let plan = BatchPlan {
                batches: vec![vec![0; 4], vec![0; 4]],
                first_batch: 0,
                augmentation: Augmentation::Train { seed: 1, epoch },
                group_size: 2,
            };
            for batch in loader.iter::<Flex>(plan, &Default::default()) {
                let pixels = batch.unwrap().images.into_data().to_vec::<f32>().unwrap();
                for row in pixels.chunks(want_px.len()) {
                    assert_eq!(row, &want_px[..], "cache {cache}");
                }
            }
        }
    }
}
