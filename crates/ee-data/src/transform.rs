//! The reference's image transforms (METHOD.md section 8) on 8-bit RGB images.
//!
//! ```text
//! train: with p = 0.5 resize to S x S; otherwise resize to R x R, R = round(1.125 S), and crop
//!        S x S at (round(U(0, R - S)), round(U(0, R - S)));
//!        then flip left-right with p = 0.5
//! test:  resize to S x S
//! both:  x = (pixel / 255 - mean[c]) / std[c], laid out [3, S, S]
//! ```
//!
//! This train transform is fixed; [`AugmentConfig`](crate::AugmentConfig) makes it
//! configurable (flip, crop policy, enlarge factor), and its default reproduces
//! [`train_transform`] exactly, draw for draw. The loader uses `AugmentConfig`.
//!
//! Resizes are bilinear without keeping the aspect ratio. They use `fast_image_resize`'s
//! fixed-support bilinear interpolation, which is what the reference's MXNet/OpenCV
//! `INTER_LINEAR` computes (no anti-aliasing when shrinking).

use std::cell::RefCell;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rand::Rng;

/// ImageNet channel means (R, G, B) of pixels scaled to [0, 1].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (R, G, B).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Side of the enlarged image that the train transform crops from, relative to `S`.
pub const TRAIN_ENLARGE: f64 = 1.125;

/// `round(1.125 * size)`: the side the train transform resizes to before cropping.
pub fn enlarged_side(size: u32) -> u32 {
    (f64::from(size) * TRAIN_ENLARGE).round() as u32
}

/// The random choices of one train transform, drawn before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainDraw {
    /// `None`: resize straight to S x S; `Some((x, y))`: resize to the enlarged side and crop
    /// S x S with its top-left corner at `(x, y)`.
    pub crop: Option<(u32, u32)>,
    /// Flip left-right.
    pub flip: bool,
}

impl TrainDraw {
    /// Draws the choices for an output side `size`, in the reference's order: the
    /// resize-or-crop coin, the crop's x then y, the flip coin.
    pub fn sample<R: Rng + ?Sized>(size: u32, rng: &mut R) -> Self {
        let crop = if rng.random::<f64>() < 0.5 {
            None
        } else {
            let range = f64::from(enlarged_side(size) - size);
            let x = (rng.random::<f64>() * range).round() as u32;
            let y = (rng.random::<f64>() * range).round() as u32;
            Some((x, y))
        };
        TrainDraw {
            crop,
            flip: rng.random::<f64>() < 0.5,
        }
    }
}

/// Resizes to `width` x `height` (bilinear, aspect ratio not kept).
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.width() == width && image.height() == height {
        return image.clone();
    }
    thread_local! {
        static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
    }
    let src = fast_image_resize::images::ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage buffer holds width * height * 3 bytes");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
    RESIZER.with(|r| {
        r.borrow_mut()
            .resize(&src, &mut dst, &options)
            .expect("same pixel type on both sides and non-empty images")
    });
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer size matches")
}

/// Applies the train transform with the choices `draw` to an image, giving `size` x `size`.
///
/// When `image` is already `enlarged_side(size)` square (as the loader's cache keeps it),
/// the crop branch only crops.
pub fn apply_train(image: &RgbImage, size: u32, draw: TrainDraw) -> RgbImage {
    let mut out = match draw.crop {
        None => resize(image, size, size),
        Some((x, y)) => {
            let side = enlarged_side(size);
            let enlarged = resize(image, side, side);
            image::imageops::crop_imm(&enlarged, x, y, size, size).to_image()
        }
    };
    if draw.flip {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// The train transform with fresh random choices.
pub fn train_transform<R: Rng + ?Sized>(image: &RgbImage, size: u32, rng: &mut R) -> RgbImage {
    apply_train(image, size, TrainDraw::sample(size, rng))
}

/// The test transform: resize to `size` x `size`.
pub fn test_transform(image: &RgbImage, size: u32) -> RgbImage {
    resize(image, size, size)
}

/// Writes `image` as normalised floats in `[3, H, W]` (channel-major) order into `out`.
///
/// # Panics
/// When `out.len() != 3 * width * height`.
pub fn normalize_into(image: &RgbImage, out: &mut [f32]) {
    let plane = (image.width() * image.height()) as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "output buffer must hold 3 x H x W floats"
    );
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * IMAGENET_STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| IMAGENET_MEAN[c] / IMAGENET_STD[c]);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) * scale[0] - shift[0];
        g[i] = f32::from(px[1]) * scale[1] - shift[1];
        b[i] = f32::from(px[2]) * scale[2] - shift[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// 40 x 40 image whose red channel encodes the column and green the row.
    fn gradient(side: u32) -> RgbImage {
        RgbImage::from_fn(side, side, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 5) as u8, 77])
        })
    }

    #[test]
    fn enlarged_side_rounds() {
        assert_eq!(enlarged_side(227), 255);
        assert_eq!(enlarged_side(224), 252);
        assert_eq!(enlarged_side(32), 36);
    }

    #[test]
    fn crop_takes_the_window_at_the_offset() {
        let size = 32;
        let side = enlarged_side(size); // 36
        let src = gradient(side);
        let out = apply_train(
            &src,
            size,
            TrainDraw {
                crop: Some((3, 1)),
                flip: false,
            },
        );
        assert_eq!(out.dimensions(), (32, 32));
        assert_eq!(out.get_pixel(0, 0).0, [15, 5, 77]);
        assert_eq!(
            out.get_pixel(31, 31).0,
            [(34 * 5) as u8, (32 * 5) as u8, 77]
        );
    }

    #[test]
    fn flip_mirrors_columns() {
        let src = gradient(32);
        let plain = apply_train(
            &src,
            32,
            TrainDraw {
                crop: None,
                flip: false,
            },
        );
        let flipped = apply_train(
            &src,
            32,
            TrainDraw {
                crop: None,
                flip: true,
            },
        );
        assert_eq!(plain, src);
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(flipped.get_pixel(x, y), src.get_pixel(31 - x, y));
            }
        }
    }

    #[test]
    fn resize_ignores_aspect_ratio_and_is_bilinear() {
        // 2 columns: black | white, stretched to 4 wide: interpolated middle values
        let src = RgbImage::from_fn(2, 3, |x, _| image::Rgb([if x == 0 { 0 } else { 200 }; 3]));
        let out = resize(&src, 4, 5);
        assert_eq!(out.dimensions(), (4, 5));
        let row: Vec<u8> = (0..4).map(|x| out.get_pixel(x, 2).0[0]).collect();
        assert_eq!(row[0], 0);
        assert_eq!(row[3], 200);
        assert!(row[1] > 0 && row[1] < row[2] && row[2] < 200, "{row:?}");
    }

    #[test]
    fn draws_cover_both_branches_and_stay_in_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut crops, mut flips, n) = (0, 0, 2000);
        let mut max_offset = 0;
        for _ in 0..n {
            let d = TrainDraw::sample(227, &mut rng);
            if let Some((x, y)) = d.crop {
                crops += 1;
                max_offset = max_offset.max(x).max(y);
                assert!(x <= 28 && y <= 28);
            }
            flips += d.flip as usize;
        }
        assert!((900..1100).contains(&crops), "{crops}");
        assert!((900..1100).contains(&flips), "{flips}");
        assert_eq!(max_offset, 28);
    }

    #[test]
    fn normalisation_matches_imagenet_statistics() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            image::Rgb(if x == 0 { [0, 128, 255] } else { [255, 0, 0] })
        });
        let mut out = vec![0.0; 6];
        normalize_into(&img, &mut out);
        let expect = |v: f32, c: usize| (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        let want = [
            expect(0.0, 0),
            expect(255.0, 0),
            expect(128.0, 1),
            expect(0.0, 1),
            expect(255.0, 2),
            expect(0.0, 2),
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{out:?} vs {want:?}");
        }
    }
}
