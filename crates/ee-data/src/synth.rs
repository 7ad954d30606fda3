//! Small synthetic datasets in every supported layout, for tests and the CPU demo.
//!
//! Each class has its own shape (8 kinds), foreground colour, background colours and stripe
//! texture; each image draws the shape at a random position, scale and rotation, with random
//! brightness and pixel noise. Classes therefore differ in several visible ways and a small
//! CNN separates them, while instances of a class still vary.
//!
//! [`SynthOptions::difficulty`] above 0 switches to a fine-grained design instead, where even
//! an untrained network retrieves poorly and training has something to learn: a class is one
//! combination of shape (8), colour (6 hues) and mark on the shape (6: solid, rings, checks,
//! stripes, inset, dots), so many classes share a shape or a colour and some differ only in the
//! mark; the background is drawn per image (not per class), and the difficulty (up to 1) scales
//! the per-image nuisance: position, scale, rotation, colour jitter, smaller distractor shapes
//! behind the object, and pixel noise. Difficulty 0 (the default) is the design above, bit for
//! bit.
//!
//! [`write_synthetic_dataset`] writes real JPEG or PNG files in the layouts the readers take:
//!
//! | layout | folder | read with |
//! |---|---|---|
//! | CARS196 | `cars196/`: `car_ims/000001.jpg`..., `cars_annos.mat`, and the reference's `train.txt`, `test.txt`, `bbox.txt` | [`crate::formats::read_cars196`], [`crate::formats::read_meta_dataset`] |
//! | CUB-200-2011 | `cub/`: `images/`, `images.txt`, `image_class_labels.txt`, `bounding_boxes.txt` | [`crate::formats::read_cub`] |
//! | SOP | `sop/`: `Ebay_train.txt`, `Ebay_test.txt`, class folders | [`crate::formats::read_sop`] |
//! | folder tree | `folder/`: one folder per class, `split.txt` | [`crate::formats::read_folder_tree`] |
//!
//! The first `num_classes / 2` classes are the training classes (`train_classes` in the
//! readers), the others the test classes.
//!
//! ```no_run
//! use ee_data::synth::{write_synthetic_dataset, SynthOptions};
//! let synth = write_synthetic_dataset("data/synth".as_ref(), &SynthOptions::new()).unwrap();
//! let dataset = ee_data::formats::read_cars196(&synth.cars196_dir, synth.train_classes, false).unwrap();
//! assert_eq!(dataset.train.num_classes(), 4);
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::config::Config;
use image::{Rgb, RgbImage};
use rand::Rng;

use crate::error::{DataError, Result as DataResult};
use crate::formats::{
    write_cars196_meta, write_cars_annotations, CarsAnnotation, CARS196_ANNOTATIONS,
};
use crate::item::BoundingBox;
use crate::seeding::{keyed_rng, Purpose};

/// Image file format of the synthetic images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SynthImageFormat {
    /// JPEG, quality 90 (`.jpg`).
    Jpeg,
    /// PNG (`.png`).
    Png,
}

impl SynthImageFormat {
    fn extension(self) -> &'static str {
        match self {
            SynthImageFormat::Jpeg => "jpg",
            SynthImageFormat::Png => "png",
        }
    }
}

/// One on-disk layout of [`write_synthetic_dataset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SynthLayout {
    /// `cars196/`: `car_ims/`, `cars_annos.mat`, and the reference's meta files.
    Cars196,
    /// `cub/`: CUB-200-2011's files.
    Cub,
    /// `sop/`: Stanford Online Products' files.
    Sop,
    /// `folder/`: one folder per class plus `split.txt`.
    Folder,
}

impl SynthLayout {
    /// Every layout.
    pub const ALL: [SynthLayout; 4] = [
        SynthLayout::Cars196,
        SynthLayout::Cub,
        SynthLayout::Sop,
        SynthLayout::Folder,
    ];
}

/// What [`write_synthetic_dataset`] writes.
#[derive(Config, Debug, PartialEq)]
pub struct SynthOptions {
    /// Number of classes (at least 2: half train, half test).
    #[config(default = 8)]
    pub num_classes: usize,
    /// Images per class.
    #[config(default = 10)]
    pub images_per_class: usize,
    /// Image width in pixels (at least 16).
    #[config(default = 64)]
    pub width: u32,
    /// Image height in pixels (at least 16).
    #[config(default = 48)]
    pub height: u32,
    /// Seed of everything drawn.
    #[config(default = 0)]
    pub seed: u64,
    /// File format.
    #[config(default = "SynthImageFormat::Jpeg")]
    pub format: SynthImageFormat,
    /// Layouts to write.
    #[config(default = "SynthLayout::ALL.to_vec()")]
    pub layouts: Vec<SynthLayout>,
    /// `0` (the default): one look per class (shape, colours and background texture of its
    /// own). In `(0, 1]`: the fine-grained design (see the module docs) with per-image
    /// nuisance growing with the value; at most [`FINE_GRAINED_CLASSES`] classes.
    #[config(default = 0.0)]
    pub difficulty: f32,
}

impl SynthOptions {
    /// Checks the options.
    pub fn check(&self) -> DataResult<()> {
        if self.num_classes < 2 || self.num_classes > 9999 {
            return Err(DataError::config(
                "num_classes",
                self.num_classes,
                "must be in 2..=9999",
            ));
        }
        if self.images_per_class == 0 || self.images_per_class > 9999 {
            return Err(DataError::config(
                "images_per_class",
                self.images_per_class,
                "must be in 1..=9999",
            ));
        }
        if self.width < 16 || self.height < 16 || self.width > 4096 || self.height > 4096 {
            return Err(DataError::config(
                "width x height",
                format!("{}x{}", self.width, self.height),
                "each side must be in 16..=4096",
            ));
        }
        if self.num_classes > 255 && self.layouts.contains(&SynthLayout::Cars196) {
            return Err(DataError::config(
                "num_classes",
                self.num_classes,
                "must be at most 255 for the CARS196 layout",
            ));
        }
        if !(0.0..=1.0).contains(&self.difficulty) {
            return Err(DataError::config(
                "difficulty",
                self.difficulty,
                "must be in 0..=1",
            ));
        }
        if self.difficulty > 0.0 && self.num_classes > FINE_GRAINED_CLASSES {
            return Err(DataError::config(
                "num_classes",
                self.num_classes,
                format!(
                    "must be at most {FINE_GRAINED_CLASSES} with difficulty > 0 \
                     (8 shapes x 6 colours x 6 marks)"
                ),
            ));
        }
        Ok(())
    }
}

/// Where [`write_synthetic_dataset`] put things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthDataset {
    /// The root folder given.
    pub root: PathBuf,
    /// Number of classes.
    pub num_classes: usize,
    /// Images per class.
    pub images_per_class: usize,
    /// Classes `1..=train_classes` (CARS196, CUB, SOP numbering) or folder positions
    /// `0..train_classes` are the train classes.
    pub train_classes: u32,
    /// `root/cars196`.
    pub cars196_dir: PathBuf,
    /// `root/cub`.
    pub cub_dir: PathBuf,
    /// `root/sop`.
    pub sop_dir: PathBuf,
    /// `root/folder`.
    pub folder_dir: PathBuf,
    /// `root/folder/split.txt`.
    pub folder_split_file: PathBuf,
}

/// The fixed look of one class.
#[derive(Debug, Clone, Copy)]
struct ClassStyle {
    shape: u8,
    foreground: [f32; 3],
    background: [[f32; 3]; 2],
    stripe_angle: f32,
    stripe_period: f32,
}

fn hsv(hue: f32, saturation: f32, value: f32) -> [f32; 3] {
    let h6 = (hue.rem_euclid(1.0)) * 6.0;
    let c = value * saturation;
    let x = c * (1.0 - ((h6 % 2.0) - 1.0).abs());
    let (r, g, b) = match h6 as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

fn class_style(class: usize, seed: u64) -> ClassStyle {
    let mut rng = keyed_rng(seed, Purpose::Synth, class as u64, u64::MAX);
    // spread hues and shapes deterministically so neighbouring classes differ in both
    let hue = (class as f32 * 0.618_034).fract();
    let bg_hue = hue + 0.35 + rng.random::<f32>() * 0.3;
    ClassStyle {
        shape: (class % 8) as u8,
        foreground: hsv(
            hue,
            0.75 + 0.25 * rng.random::<f32>(),
            0.8 + 0.2 * rng.random::<f32>(),
        ),
        background: [
            hsv(bg_hue, 0.3, 0.35 + 0.3 * ((class / 8) % 2) as f32),
            hsv(bg_hue + 0.1, 0.3, 0.55 + 0.3 * ((class / 16) % 2) as f32),
        ],
        stripe_angle: ((class / 8) as f32 * 0.7 + rng.random::<f32>() * 0.3) * std::f32::consts::PI,
        stripe_period: 4.0 + 6.0 * rng.random::<f32>(),
    }
}

fn inside(shape: u8, horizontal: f32, vertical: f32) -> bool {
    let r2 = horizontal * horizontal + vertical * vertical;
    match shape {
        0 => r2 <= 1.0,                                   // disc
        1 => horizontal.abs().max(vertical.abs()) <= 0.8, // square
        2 => (-0.8..=0.8).contains(&vertical) && horizontal.abs() <= 0.55 * (vertical + 0.8), // triangle
        3 => (0.3..=1.0).contains(&r2), // ring
        4 => {
            (horizontal.abs() <= 0.3 && vertical.abs() <= 0.95)
                || (vertical.abs() <= 0.3 && horizontal.abs() <= 0.95)
        } // cross
        5 => horizontal.abs() + vertical.abs() <= 1.0, // diamond
        6 => horizontal * horizontal + 4.0 * vertical * vertical <= 1.0, // bar (ellipse)
        _ => r2 <= 1.0 && vertical >= 0.0, // half disc
    }
}

/// Draws one image of class `class` (`0`-based) with per-image randomness from `rng`;
/// returns it with the box around the drawn shape.
pub fn render_class_image<R: Rng + ?Sized>(
    class: usize,
    seed: u64,
    width: u32,
    height: u32,
    rng: &mut R,
) -> (RgbImage, BoundingBox) {
    let style = class_style(class, seed);
    let min_side = width.min(height) as f32;
    let radius = min_side * (0.25 + 0.15 * rng.random::<f32>());
    let cx = width as f32 * (0.35 + 0.3 * rng.random::<f32>());
    let cy = height as f32 * (0.35 + 0.3 * rng.random::<f32>());
    let theta = (rng.random::<f32>() - 0.5) * 1.2;
    let (sin, cos) = theta.sin_cos();
    let brightness = 0.85 + 0.3 * rng.random::<f32>();
    let phase = rng.random::<f32>() * style.stripe_period;
    let (ssin, scos) = style.stripe_angle.sin_cos();
    let mut image = RgbImage::new(width, height);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let (dx, dy) = ((fx - cx) / radius, (fy - cy) / radius);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        let base = if inside(style.shape, u, v) {
            // fine checks on the shape give it a texture of its own
            let check = ((u * 3.0).floor() + (v * 3.0).floor()) as i32 & 1;
            let k = if check == 0 { 1.0 } else { 0.8 };
            style.foreground.map(|c| c * k)
        } else {
            let t = (fx * scos + fy * ssin + phase) / style.stripe_period;
            style.background[(t.floor() as i64).rem_euclid(2) as usize]
        };
        *pixel = Rgb(base.map(|c| {
            let noisy = c * brightness + (rng.random::<f32>() - 0.5) * 24.0;
            noisy.clamp(0.0, 255.0) as u8
        }));
    }
    let x0 = (cx - radius).max(0.0) as u32;
    let y0 = (cy - radius).max(0.0) as u32;
    let x1 = ((cx + radius) as u32).min(width - 1);
    let y1 = ((cy + radius) as u32).min(height - 1);
    (image, BoundingBox::from_corners(x0, y0, x1, y1))
}

/// Distinct classes of the fine-grained design ([`SynthOptions::difficulty`] > 0):
/// 8 shapes x 6 hues x 6 marks.
pub const FINE_GRAINED_CLASSES: usize = 8 * FINE_HUES * FINE_MARKS;

const FINE_HUES: usize = 6;
const FINE_MARKS: usize = 6;

/// The fixed attributes of one class of the fine-grained design.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FineStyle {
    shape: u8,
    hue: f32,
    mark: u8,
}

/// Class `class`'s combination of shape, hue and mark: a seeded permutation of all
/// [`FINE_GRAINED_CLASSES`] combinations, so the train and test halves both mix them.
fn fine_class_style(class: usize, seed: u64) -> FineStyle {
    use rand::seq::SliceRandom;
    let mut combos: Vec<u16> = (0..FINE_GRAINED_CLASSES as u16).collect();
    combos.shuffle(&mut keyed_rng(seed, Purpose::Synth, u64::MAX, u64::MAX));
    let c = combos[class % FINE_GRAINED_CLASSES] as usize;
    FineStyle {
        shape: (c % 8) as u8,
        hue: ((c / 8) % FINE_HUES) as f32 / FINE_HUES as f32,
        mark: (c / (8 * FINE_HUES)) as u8,
    }
}

/// Whether the mark darkens the shape at shape coordinates `(u, v)`.
fn marked(mark: u8, shape: u8, horizontal: f32, vertical: f32) -> bool {
    match mark {
        0 => false, // solid
        1 => ((horizontal * horizontal + vertical * vertical).sqrt() * 3.5).floor() as i32 & 1 == 1, // rings
        2 => ((horizontal * 2.0).floor() + (vertical * 2.0).floor()) as i32 & 1 == 1, // checks
        3 => (horizontal * 2.5).floor() as i32 & 1 == 1,                              // stripes
        4 => inside(shape, horizontal / 0.55, vertical / 0.55),                       // inset
        _ => {
            let (a, b) = (
                (horizontal * 2.5).rem_euclid(1.0) - 0.5,
                (vertical * 2.5).rem_euclid(1.0) - 0.5,
            );
            a * a + b * b <= 0.09 // dots
        }
    }
}

/// One shape drawn on a fine-grained image: the object or a distractor.
struct Placed {
    shape: u8,
    mark: u8,
    colour: [f32; 3],
    cx: f32,
    cy: f32,
    radius: f32,
    sin: f32,
    cos: f32,
}

impl Placed {
    /// The colour at pixel centre `(fx, fy)`, or `None` outside the shape.
    fn colour_at(&self, fx: f32, fy: f32) -> Option<[f32; 3]> {
        let (dx, dy) = ((fx - self.cx) / self.radius, (fy - self.cy) / self.radius);
        let (u, v) = (
            self.cos * dx + self.sin * dy,
            -self.sin * dx + self.cos * dy,
        );
        if !inside(self.shape, u, v) {
            return None;
        }
        let k = if marked(self.mark, self.shape, u, v) {
            0.5
        } else {
            1.0
        };
        Some(self.colour.map(|c| c * k))
    }
}

/// Draws one image of class `class` (`0`-based) at the given difficulty (see
/// [`SynthOptions::difficulty`]); difficulty 0 is [`render_class_image`].
pub fn render_class_image_with_difficulty<R: Rng + ?Sized>(
    class: usize,
    seed: u64,
    width: u32,
    height: u32,
    difficulty: f32,
    rng: &mut R,
) -> (RgbImage, BoundingBox) {
    if difficulty <= 0.0 {
        return render_class_image(class, seed, width, height, rng);
    }
    let d = difficulty.min(1.0);
    let style = fine_class_style(class, seed);
    let (w, h) = (width as f32, height as f32);
    let min_side = w.min(h);
    let turn = 1.2 + d * (std::f32::consts::TAU - 1.2);
    let hue_jitter = 0.06 * d;
    let colour = |rng: &mut R, hue: f32| {
        hsv(
            hue + (rng.random::<f32>() - 0.5) * hue_jitter,
            0.85 - 0.3 * d * rng.random::<f32>(),
            0.95 - 0.3 * d * rng.random::<f32>(),
        )
    };
    // the object
    let radius = min_side * (0.25 - 0.07 * d + (0.15 + 0.05 * d) * rng.random::<f32>());
    let spread = 0.3 + 0.25 * d;
    let cx = w * (0.5 + (rng.random::<f32>() - 0.5) * spread);
    let cy = h * (0.5 + (rng.random::<f32>() - 0.5) * spread);
    let (sin, cos) = ((rng.random::<f32>() - 0.5) * turn).sin_cos();
    let object = Placed {
        shape: style.shape,
        mark: style.mark,
        colour: colour(rng, style.hue),
        cx,
        cy,
        radius,
        sin,
        cos,
    };
    // the background: two-tone stripes of a colour drawn per image, not per class
    let bg_hue = rng.random::<f32>();
    let bg_sat = 0.1 + 0.4 * rng.random::<f32>();
    let bg_val = 0.3 + 0.4 * rng.random::<f32>();
    let background = [
        hsv(bg_hue, bg_sat, bg_val),
        hsv(bg_hue + 0.1, bg_sat, bg_val + 0.15),
    ];
    let stripe_angle = rng.random::<f32>() * std::f32::consts::PI;
    let stripe_period = 4.0 + 6.0 * rng.random::<f32>();
    let phase = rng.random::<f32>() * stripe_period;
    let (ssin, scos) = stripe_angle.sin_cos();
    // distractors behind the object: smaller shapes of any shape, colour and mark
    let clutter = (rng.random::<f32>() * (1.0 + 3.0 * d)) as usize;
    let mut distractors = Vec::with_capacity(clutter);
    for _ in 0..clutter {
        let shape = rng.random_range(0..8u8);
        let mark = rng.random_range(0..FINE_MARKS as u8);
        let hue = rng.random_range(0..FINE_HUES) as f32 / FINE_HUES as f32;
        let colour = colour(rng, hue);
        let r = radius * (0.3 + 0.25 * rng.random::<f32>());
        let (x, y) = (w * rng.random::<f32>(), h * rng.random::<f32>());
        let (sin, cos) = (rng.random::<f32>() * std::f32::consts::TAU).sin_cos();
        distractors.push(Placed {
            shape,
            mark,
            colour,
            cx: x,
            cy: y,
            radius: r,
            sin,
            cos,
        });
    }
    let brightness = 1.0 + (rng.random::<f32>() - 0.5) * (0.3 + 0.3 * d);
    let noise = 24.0 + 24.0 * d;
    let mut image = RgbImage::new(width, height);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let base = object
            .colour_at(fx, fy)
            .or_else(|| distractors.iter().rev().find_map(|p| p.colour_at(fx, fy)))
            .unwrap_or_else(|| {
                let t = (fx * scos + fy * ssin + phase) / stripe_period;
                background[(t.floor() as i64).rem_euclid(2) as usize]
            });
        *pixel = Rgb(base.map(|c| {
            let noisy = c * brightness + (rng.random::<f32>() - 0.5) * noise;
            noisy.clamp(0.0, 255.0) as u8
        }));
    }
    let x0 = (cx - radius).max(0.0) as u32;
    let y0 = (cy - radius).max(0.0) as u32;
    let x1 = ((cx + radius).max(0.0) as u32).min(width - 1);
    let y1 = ((cy + radius).max(0.0) as u32).min(height - 1);
    (
        image,
        BoundingBox::from_corners(x0.min(x1), y0.min(y1), x1, y1),
    )
}

fn save(image: &RgbImage, path: &Path, format: SynthImageFormat) -> DataResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut writer = std::io::BufWriter::new(file);
    let result = match format {
        SynthImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, 90).encode_image(image)
        }
        SynthImageFormat::Png => image.write_to(&mut writer, image::ImageFormat::Png),
    };
    result.map_err(|e| DataError::image(path, format!("cannot encode: {e}")))?;
    std::io::Write::flush(&mut writer).map_err(|e| DataError::io(path, e))
}

fn write_text(path: &Path, text: &str) -> DataResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}

/// Writes a synthetic dataset under `root` in the layouts `options.layouts` names.
pub fn write_synthetic_dataset(root: &Path, options: &SynthOptions) -> DataResult<SynthDataset> {
    options.check()?;
    let class_count = options.num_classes;
    let per = options.images_per_class;
    let train_classes = (class_count / 2) as u32;
    let ext = options.format.extension();
    let out = SynthDataset {
        root: root.to_path_buf(),
        num_classes: class_count,
        images_per_class: per,
        train_classes,
        cars196_dir: root.join("cars196"),
        cub_dir: root.join("cub"),
        sop_dir: root.join("sop"),
        folder_dir: root.join("folder"),
        folder_split_file: root.join("folder").join("split.txt"),
    };
    // (class, instance) in class order: image number k = class * per + instance
    let mut images = Vec::with_capacity(class_count * per);
    for class in 0..class_count {
        for instance in 0..per {
            let mut rng = keyed_rng(options.seed, Purpose::Synth, class as u64, instance as u64);
            images.push(render_class_image_with_difficulty(
                class,
                options.seed,
                options.width,
                options.height,
                options.difficulty,
                &mut rng,
            ));
        }
    }
    let class_name = |c: usize| format!("class_{c:03}");

    for layout in &options.layouts {
        match layout {
            SynthLayout::Cars196 => {
                let dir = &out.cars196_dir;
                let mut annotations = Vec::with_capacity(images.len());
                for (k, (image, bbox)) in images.iter().enumerate() {
                    let rel = format!("car_ims/{:06}.{ext}", k + 1);
                    save(image, &dir.join(&rel), options.format)?;
                    annotations.push(CarsAnnotation {
                        relative_im_path: rel,
                        corners: [bbox.x, bbox.y, bbox.x + bbox.width, bbox.y + bbox.height],
                        class: (k / per + 1) as u32,
                        test: k % 2 == 1,
                    });
                }
                let names: Vec<String> = (0..class_count).map(class_name).collect();
                write_cars_annotations(&dir.join(CARS196_ANNOTATIONS), &annotations, &names)?;
                write_cars196_meta(&annotations, train_classes, dir)?;
            }
            SynthLayout::Cub => {
                let dir = &out.cub_dir;
                let (mut list, mut labels, mut boxes) =
                    (String::new(), String::new(), String::new());
                for (k, (image, bbox)) in images.iter().enumerate() {
                    let class = k / per + 1;
                    let rel = format!(
                        "{class:03}.{}/{}_{:04}.{ext}",
                        class_name(class - 1),
                        class_name(class - 1),
                        k % per
                    );
                    save(image, &dir.join("images").join(&rel), options.format)?;
                    let id = k + 1;
                    let _ = writeln!(list, "{id} {rel}");
                    let _ = writeln!(labels, "{id} {class}");
                    let _ = writeln!(
                        boxes,
                        "{id} {}.0 {}.0 {}.0 {}.0",
                        bbox.x, bbox.y, bbox.width, bbox.height
                    );
                }
                write_text(&dir.join("images.txt"), &list)?;
                write_text(&dir.join("image_class_labels.txt"), &labels)?;
                write_text(&dir.join("bounding_boxes.txt"), &boxes)?;
            }
            SynthLayout::Sop => {
                let dir = &out.sop_dir;
                let header = "image_id class_id super_class_id path\n".to_string();
                let (mut train, mut test) = (header.clone(), header);
                for (k, (image, _)) in images.iter().enumerate() {
                    let class = k / per + 1;
                    let rel = format!(
                        "{}_final/{}_{}.{ext}",
                        class_name(class - 1),
                        1000 + class,
                        k % per
                    );
                    save(image, &dir.join(&rel), options.format)?;
                    let target = if class as u32 <= train_classes {
                        &mut train
                    } else {
                        &mut test
                    };
                    let _ = writeln!(target, "{} {class} {} {rel}", k + 1, class % 3 + 1);
                }
                write_text(&dir.join("Ebay_train.txt"), &train)?;
                write_text(&dir.join("Ebay_test.txt"), &test)?;
            }
            SynthLayout::Folder => {
                let dir = &out.folder_dir;
                let mut split = String::from("# class folder, train or test\n");
                for (k, (image, _)) in images.iter().enumerate() {
                    let class = k / per;
                    save(
                        image,
                        &dir.join(class_name(class))
                            .join(format!("{:04}.{ext}", k % per)),
                        options.format,
                    )?;
                    if k % per == 0 {
                        let side = if (class as u32) < train_classes {
                            "train"
                        } else {
                            "test"
                        };
                        let _ = writeln!(split, "{} {side}", class_name(class));
                    }
                }
                write_text(&out.folder_split_file, &split)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_grained_classes_are_all_distinct_and_share_attributes() {
        let styles: Vec<FineStyle> = (0..FINE_GRAINED_CLASSES)
            .map(|c| fine_class_style(c, 0))
            .collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[i + 1..] {
                assert_ne!(a, b, "two classes look the same");
            }
        }
        // the first 64 classes (the demo's train half) already repeat shapes and colours
        let shapes = styles[..64]
            .iter()
            .filter(|s| s.shape == styles[0].shape)
            .count();
        let hues = styles[..64]
            .iter()
            .filter(|s| s.hue == styles[0].hue)
            .count();
        assert!(shapes > 1 && hues > 1, "{shapes} {hues}");
        assert_ne!(
            fine_class_style(0, 0),
            fine_class_style(0, 1),
            "the seed is unused"
        );
    }
}
