//! Reading an image file into 8-bit RGB, with an optional box crop.

use std::path::Path;

use image::RgbImage;

use crate::error::{DataError, Result};
use crate::item::BoundingBox;

/// Decodes a JPEG or PNG file (format from its content) into 8-bit RGB.
///
/// Grayscale, grayscale+alpha, RGBA, 16-bit and CMYK/YCCK JPEGs are converted to RGB (alpha is
/// dropped). With `bbox`, the image is cropped to the part of the box inside it, as the
/// reference does; a box entirely outside the image is an error.
pub fn load_rgb(path: &Path, bbox: Option<BoundingBox>) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::image(path, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| DataError::image(path, e.to_string()))?;
    let decoded = reader
        .decode()
        .map_err(|e| DataError::image(path, e.to_string()))?;
    let rgb = decoded.into_rgb8();
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(DataError::image(path, "image has no pixels"));
    }
    match bbox {
        None => Ok(rgb),
        Some(b) => {
            let (x, y, w, h) = b.clamp_to(rgb.width(), rgb.height()).ok_or_else(|| {
                DataError::image(
                    path,
                    format!(
                        "bounding box {b:?} lies outside the {}x{} image",
                        rgb.width(),
                        rgb.height()
                    ),
                )
            })?;
            Ok(image::imageops::crop_imm(&rgb, x, y, w, h).to_image())
        }
    }
}
