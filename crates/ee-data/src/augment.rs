//! The configurable train augmentation: [`AugmentConfig`] (a `[data.augment]` section).
//!
//! The default is the reference's train transform (METHOD.md section 8), bit for bit and
//! draw for draw: [`AugmentConfig::new`]`().transform(image, s, rng)` gives the same image
//! as [`train_transform`](crate::transform::train_transform)`(image, s, rng)` and leaves `rng`
//! in the same state, so runs (and resumed runs) with the default settings are unchanged.
//!
//! Every train transform is "choose a region, resize it to `S` x `S`, maybe flip". What
//! [`ResizePolicy`] changes is the region; `R = round(enlarge * S)` is the enlarged side:
//!
//! | policy | geometry | random draws (in order) |
//! |---|---|---|
//! | `reference` (default) | p = 0.5: resize to S x S; else resize to R x R and crop S x S at a random offset | coin, then x, y if cropping |
//! | `random_crop` | always resize to R x R and crop S x S at a random offset | x, y |
//! | `random_resized_crop` | torchvision `RandomResizedCrop`: crop a random region of `scale` x the area and `ratio` width/height, resize to S x S | per attempt (at most 10): area, log-ratio, then y, x of the accepted one |
//! | `center_crop` | resize to R x R and crop the centre S x S | none |
//! | `resize` | resize to S x S | none |
//!
//! After the geometry a flip coin is **always** drawn, also with `flip = false` (the coin is
//! then ignored). So a `flip = false` run makes the same geometric choices as the
//! `flip = true` run with the same seed, and a generator shared by a sequence of images
//! (as [`AugmentConfig::transform`] allows) stays aligned between the two. In the loader each
//! image has its own stream anyway, keyed by `(seed, epoch, batch, row)` whatever the policy.
//!
//! The test transform (resize to S x S) does not depend on these settings.

use burn::config::Config;
use image::RgbImage;
use rand::Rng;

use crate::error::{DataError, Result as DataResult};
use crate::transform::resize;

/// Largest accepted [`AugmentConfig::enlarge`]: beyond it the crop keeps a tiny part of the
/// image, and the cache (`round(enlarge * S)` square per image) grows quadratically; the cap
/// mostly catches typos such as `enlarge = 1125`.
pub const MAX_ENLARGE: f64 = 4.0;

/// How the train transform chooses the region of the image that becomes the `S` x `S`
/// output. Serialised in snake_case (`"reference"`, `"random_crop"`,
/// `"random_resized_crop"`, `"center_crop"`, `"resize"`).
///
/// `R = round(enlarge * S)` below is [`AugmentConfig::enlarged_side`]. Resizes are bilinear
/// and ignore the aspect ratio, as everywhere in this crate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ResizePolicy {
    /// The reference's transform (the default): with p = 0.5 resize to S x S, otherwise
    /// resize to R x R and crop S x S at `(round(U(0, R - S)), round(U(0, R - S)))`.
    #[default]
    Reference,
    /// Always resize to R x R and crop S x S at a random offset drawn as in `reference`
    /// (the classic "resize 256, random crop 224" of metric-learning code when
    /// `enlarge = 256 / 224`).
    RandomCrop,
    /// torchvision's `RandomResizedCrop(S, scale, ratio)`: up to 10 attempts draw an area
    /// fraction `U(scale)` of the source and a width/height ratio `exp(U(ln ratio))`; the
    /// first crop that fits is taken at a uniformly random position, otherwise the whole
    /// image clamped to `ratio`, centred. The crop is resized to S x S. The strongest
    /// geometric augmentation here, and the usual one of recent metric-learning recipes;
    /// `enlarge` only sets the cache's side for it.
    RandomResizedCrop,
    /// Resize to R x R and crop the centre S x S (offset `floor((R - S) / 2)`): no random
    /// geometry, only the flip; for ablations, or data where position matters.
    CenterCrop,
    /// Resize to S x S: no random geometry, only the flip; `enlarge` only sets the cache's
    /// side for it.
    Resize,
}

/// The train augmentation's settings, validated by [`AugmentConfig::check`] (which
/// [`LoaderConfig::init`](crate::LoaderConfig::init) calls). The defaults are the reference's
/// transform.
///
/// Serde: burn's derived `Deserialize` needs every field; for a partial table (missing keys
/// default, unknown keys refused) use [`AugmentConfig::deserialize_with_defaults`].
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Flip left-right with probability 0.5. Turn it off where a mirror image is another
    /// class or no natural image (text, digits, logos). The flip coin is drawn either way.
    #[config(default = true)]
    pub flip: bool,
    /// How the region that becomes the output is chosen.
    #[config(default = "ResizePolicy::Reference")]
    pub policy: ResizePolicy,
    /// The enlarged side `R = round(enlarge * S)` that `reference`, `random_crop` and
    /// `center_crop` resize to before cropping, and the side the loader's cache keeps
    /// (1.125 in the reference: 255 for S = 227). Finite, in `1.0..=MAX_ENLARGE`; 1.0 makes
    /// the crops plain resizes.
    #[config(default = 1.125)]
    pub enlarge: f64,
    /// `random_resized_crop`: `[min, max]` fraction of the source's area that the crop
    /// covers (torchvision's default `[0.08, 1.0]`), `0 < min <= max <= 1`. Checked, unused,
    /// with the other policies.
    #[config(default = "[0.08, 1.0]")]
    pub scale: [f64; 2],
    /// `random_resized_crop`: `[min, max]` width/height ratio of the crop, drawn
    /// log-uniformly (torchvision's default `[3/4, 4/3]`), `0 < min <= max`. Checked,
    /// unused, with the other policies.
    #[config(default = "[3.0 / 4.0, 4.0 / 3.0]")]
    pub ratio: [f64; 2],
}

impl Default for AugmentConfig {
    /// The reference's transform, as [`AugmentConfig::new`].
    fn default() -> Self {
        AugmentConfig::new()
    }
}

/// Where the pixels of one train output come from, drawn by [`AugmentConfig::sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// Resize the whole image to S x S.
    Resize,
    /// Resize the image to `side` x `side`, then crop S x S with its top-left corner at
    /// `(x, y)`.
    EnlargeCrop {
        /// The enlarged side `R`.
        side: u32,
        /// Left edge of the crop in the enlarged image.
        x: u32,
        /// Top edge of the crop in the enlarged image.
        y: u32,
    },
    /// Crop `width` x `height` at `(x, y)` of the image, then resize the crop to S x S.
    CropResize {
        /// Left edge of the crop in the image.
        x: u32,
        /// Top edge of the crop in the image.
        y: u32,
        /// Width of the crop.
        width: u32,
        /// Height of the crop.
        height: u32,
    },
}

/// The random choices of one train transform under an [`AugmentConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AugmentDraw {
    /// The region and resizes.
    pub geometry: Geometry,
    /// Flip the output left-right (always false with `flip = false`).
    pub flip: bool,
}

impl AugmentDraw {
    /// Applies the choices to `image`, giving `size` x `size`.
    ///
    /// [`Geometry::EnlargeCrop`] only crops when `image` is already `side` square (as the
    /// loader's cache keeps it).
    pub fn apply(&self, image: &RgbImage, size: u32) -> RgbImage {
        let mut out = match self.geometry {
            Geometry::Resize => resize(image, size, size),
            Geometry::EnlargeCrop { side, x, y } => {
                let enlarged = resize(image, side, side);
                image::imageops::crop_imm(&enlarged, x, y, size, size).to_image()
            }
            Geometry::CropResize {
                x,
                y,
                width,
                height,
            } => {
                if (x, y, width, height) == (0, 0, image.width(), image.height()) {
                    resize(image, size, size)
                } else {
                    let region = image::imageops::crop_imm(image, x, y, width, height).to_image();
                    resize(&region, size, size)
                }
            }
        };
        if self.flip {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }
}

impl AugmentConfig {
    /// Checks the settings; the error names the field (`augment.enlarge`, `augment.scale`,
    /// `augment.ratio`) and the value.
    pub fn check(&self) -> DataResult<()> {
        let e = self.enlarge;
        if !(e.is_finite() && (1.0..=MAX_ENLARGE).contains(&e)) {
            return Err(DataError::config(
                "augment.enlarge",
                e,
                format!("must be a finite number in 1.0..={MAX_ENLARGE:.1}"),
            ));
        }
        let [lo, hi] = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(DataError::config(
                "augment.scale",
                format!("{:?}", self.scale),
                "must be [min, max] fractions of the image area with 0 < min <= max <= 1",
            ));
        }
        let [lo, hi] = self.ratio;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return Err(DataError::config(
                "augment.ratio",
                format!("{:?}", self.ratio),
                "must be [min, max] width/height ratios with 0 < min <= max",
            ));
        }
        Ok(())
    }

    /// `round(enlarge * size)`, at least `size`: the side that the crop policies resize to
    /// and that the loader's cache keeps. With the default `enlarge` this is
    /// [`enlarged_side`](crate::transform::enlarged_side)`(size)`.
    pub fn enlarged_side(&self, size: u32) -> u32 {
        ((f64::from(size) * self.enlarge).round() as u32).max(size)
    }

    /// Draws the choices for an output side `size` from an image of `width` x `height`
    /// (only `random_resized_crop` looks at the image's size), in the order of the module
    /// docs' table, the flip coin last.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        width: u32,
        height: u32,
        size: u32,
        rng: &mut R,
    ) -> AugmentDraw {
        let geometry = match self.policy {
            ResizePolicy::Reference => {
                if rng.random::<f64>() < 0.5 {
                    Geometry::Resize
                } else {
                    self.random_enlarge_crop(size, rng)
                }
            }
            ResizePolicy::RandomCrop => self.random_enlarge_crop(size, rng),
            ResizePolicy::RandomResizedCrop => self.random_resized_crop(width, height, rng),
            ResizePolicy::CenterCrop => {
                let side = self.enlarged_side(size);
                let offset = (side - size) / 2;
                Geometry::EnlargeCrop {
                    side,
                    x: offset,
                    y: offset,
                }
            }
            ResizePolicy::Resize => Geometry::Resize,
        };
        // drawn whatever `flip` says: see the module docs
        let coin = rng.random::<f64>() < 0.5;
        AugmentDraw {
            geometry,
            flip: self.flip && coin,
        }
    }

    /// The train transform with fresh random choices: `sample`, then
    /// [`AugmentDraw::apply`].
    pub fn transform<R: Rng + ?Sized>(&self, image: &RgbImage, size: u32, rng: &mut R) -> RgbImage {
        self.sample(image.width(), image.height(), size, rng)
            .apply(image, size)
    }

    /// Deserialises a possibly partial table: missing keys take their defaults, unknown keys
    /// are an error (burn's derived `Deserialize` wants every key). For a field of a serde
    /// struct: `#[serde(default, deserialize_with = "AugmentConfig::deserialize_with_defaults")]`.
    /// It does not [`check`](AugmentConfig::check) the values.
    pub fn deserialize_with_defaults<'de, D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        #[derive(serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Partial {
            flip: bool,
            policy: ResizePolicy,
            enlarge: f64,
            scale: [f64; 2],
            ratio: [f64; 2],
        }
        impl Default for Partial {
            fn default() -> Self {
                let d = AugmentConfig::new();
                Partial {
                    flip: d.flip,
                    policy: d.policy,
                    enlarge: d.enlarge,
                    scale: d.scale,
                    ratio: d.ratio,
                }
            }
        }
        let p = <Partial as serde::Deserialize>::deserialize(deserializer)?;
        Ok(AugmentConfig {
            flip: p.flip,
            policy: p.policy,
            enlarge: p.enlarge,
            scale: p.scale,
            ratio: p.ratio,
        })
    }

    /// Resize to `R` square and crop `size` at `(round(U(0, R - S)), round(U(0, R - S)))`,
    /// x first: the reference's crop, draw for draw.
    fn random_enlarge_crop<R: Rng + ?Sized>(&self, size: u32, rng: &mut R) -> Geometry {
        let side = self.enlarged_side(size);
        let range = f64::from(side - size);
        let x = (rng.random::<f64>() * range).round() as u32;
        let y = (rng.random::<f64>() * range).round() as u32;
        Geometry::EnlargeCrop { side, x, y }
    }

    /// torchvision's `RandomResizedCrop.get_params` (rounding half to even as Python does).
    fn random_resized_crop<R: Rng + ?Sized>(
        &self,
        width: u32,
        height: u32,
        rng: &mut R,
    ) -> Geometry {
        let (w_src, h_src) = (f64::from(width), f64::from(height));
        let area = w_src * h_src;
        let [s_lo, s_hi] = self.scale;
        let (l_lo, l_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * (s_lo + (s_hi - s_lo) * rng.random::<f64>());
            let aspect = (l_lo + (l_hi - l_lo) * rng.random::<f64>()).exp();
            let w = (target * aspect).sqrt().round_ties_even();
            let h = (target / aspect).sqrt().round_ties_even();
            if w > 0.0 && w <= w_src && h > 0.0 && h <= h_src {
                let (w, h) = (w as u32, h as u32);
                let y = uniform_up_to(height - h, rng);
                let x = uniform_up_to(width - w, rng);
                return Geometry::CropResize {
                    x,
                    y,
                    width: w,
                    height: h,
                };
            }
        }
        // no attempt fitted: the whole image, clamped to the ratio range, centred
        let in_ratio = w_src / h_src;
        let (w, h) = if in_ratio < self.ratio[0] {
            (
                width,
                ((w_src / self.ratio[0]).round_ties_even() as u32).min(height),
            )
        } else if in_ratio > self.ratio[1] {
            (
                ((h_src * self.ratio[1]).round_ties_even() as u32).min(width),
                height,
            )
        } else {
            (width, height)
        };
        Geometry::CropResize {
            x: (width - w) / 2,
            y: (height - h) / 2,
            width: w,
            height: h,
        }
    }
}

/// A uniform integer in `0..=n` from one `f64` draw.
fn uniform_up_to<R: Rng + ?Sized>(bound: u32, rng: &mut R) -> u32 {
    ((rng.random::<f64>() * (f64::from(bound) + 1.0)) as u32).min(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{enlarged_side, TRAIN_ENLARGE};

    #[test]
    fn defaults_are_the_reference() {
        let c = AugmentConfig::new();
        assert!(c.flip);
        assert_eq!(c.policy, ResizePolicy::Reference);
        assert_eq!(c.enlarge, TRAIN_ENLARGE);
        assert_eq!(c.scale, [0.08, 1.0]);
        assert_eq!(c.ratio, [0.75, 4.0 / 3.0]);
        assert_eq!(AugmentConfig::default(), c);
        c.check().unwrap();
        for size in 1..=1024 {
            assert_eq!(c.enlarged_side(size), enlarged_side(size), "size {size}");
        }
    }

    #[test]
    fn uniform_up_to_covers_its_range() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[uniform_up_to(3, &mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(uniform_up_to(0, &mut rng), 0);
    }
}
