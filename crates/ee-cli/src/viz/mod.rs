//! Pictures: `ee viz retrieval` (a grid of queries and their top-k, framed green or red by
//! label) and `ee viz curves` (loss and Recall@K per epoch of one or more runs).

pub mod curves;
pub mod retrieval;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::RgbImage;

use crate::error::{CliError, Result};
use ee_core::fs::write_atomic;

/// Encodes `image` as PNG and writes it to `path` atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| CliError::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(write_atomic(path, &bytes)?)
}

/// The font pictures are written in (DejaVu Sans, see assets/DejaVu-LICENSE.txt), bundled
/// so text renders the same on every machine, fonts installed or not.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the bundled font with plotters as "sans-serif" (once per process).
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font is invalid".to_string())
        })
        .clone()
        .map_err(|message| CliError::Plot {
            path: PathBuf::from("assets/DejaVuSans.ttf"),
            message,
        })
}

/// The bundled font, parsed once.
pub fn font() -> Result<&'static ab_glyph::FontRef<'static>> {
    static FONT_REF: OnceLock<Option<ab_glyph::FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| ab_glyph::FontRef::try_from_slice(FONT).ok())
        .as_ref()
        .ok_or_else(|| CliError::Plot {
            path: PathBuf::from("assets/DejaVuSans.ttf"),
            message: "the bundled font is invalid".into(),
        })
}

/// Width in pixels of `text` at `size` pixels (advances and kerning).
pub fn text_width(font: &ab_glyph::FontRef<'static>, size: f32, text: &str) -> f32 {
    use ab_glyph::{Font, ScaleFont};
    let scaled = font.as_scaled(size);
    let mut width = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        previous = Some(id);
    }
    width
}

/// Writes `text` into `image` with its top-left corner at `(x, y)`, glyphs on a common
/// baseline, blending `colour` by coverage; pixels outside the image are skipped.
pub fn draw_text(
    image: &mut RgbImage,
    font: &ab_glyph::FontRef<'static>,
    size: f32,
    (x, y): (u32, u32),
    text: &str,
    colour: image::Rgb<u8>,
) {
    use ab_glyph::{point, Font, ScaleFont};
    let scaled = font.as_scaled(size);
    let baseline = y as f32 + scaled.ascent();
    let mut caret = x as f32;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(size, point(caret, baseline));
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px < 0
                    || py < 0
                    || px >= i64::from(image.width())
                    || py >= i64::from(image.height())
                {
                    return;
                }
                let pixel = image.get_pixel_mut(px as u32, py as u32);
                let a = coverage.clamp(0.0, 1.0);
                for (channel, target) in pixel.0.iter_mut().zip(colour.0) {
                    *channel =
                        (f32::from(*channel) * (1.0 - a) + f32::from(target) * a).round() as u8;
                }
            });
        }
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
}
