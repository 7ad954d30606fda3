//! `ee-viz`: pictures of Embedding Expansion runs, the ones `ee viz` draws.
//!
//! - [`curves`]: learning curves from runs' `metrics.jsonl` (ee-train's log): the mean loss
//!   of each epoch and Recall@K of each evaluation against epochs, one colour per run.
//! - [`retrieval`]: a grid of queries and their top-k results ([`QueryHits`], what
//!   `ee search --json` prints), each result framed green or red by whether its label is the
//!   query's.
//! - [`save_png`], and text in the bundled DejaVu Sans ([`font`], [`draw_text`]), so that
//!   pictures look the same on every machine, fonts installed or not.
//!
//! Every failure is a [`VizError`] naming the file, line or value at fault.
//!
//! ```
//! use std::path::Path;
//! use ee_viz::curves::{draw_curves, RunCurves};
//!
//! let metrics = r#"{"kind":"eval","epoch":0,"step":0,"recall":{"1":0.5}}
//! {"kind":"train","epoch":1,"step":1,"loss":0.8,"lr":0.001}
//! {"kind":"eval","epoch":1,"step":1,"recall":{"1":0.7}}
//! "#;
//! let run = RunCurves::parse(metrics, "inner2".into(), Path::new("runs/inner2/metrics.jsonl"))?;
//! assert_eq!(run.loss, vec![(1.0, 0.8)]);
//! let picture = draw_curves(&[run], &[1], 640, 300)?;
//! assert_eq!(picture.dimensions(), (640, 300));
//! // ee_viz::save_png(&picture, Path::new("curves.png"))?;
//! # Ok::<(), ee_viz::VizError>(())
//! ```

pub mod curves;
pub mod retrieval;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::RgbImage;

use ee_core::fs::write_atomic;

pub use retrieval::{Hit, QueryHits};

/// Everything drawing a picture can fail with, each as one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A picture could not be drawn or encoded, or its input holds nothing to draw.
    #[error("{}: {message}", path.display())]
    Plot {
        /// The file (the PNG, the metrics file, the font).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A line of a metrics file is not what ee-train writes.
    #[error("{}: line {line}: {message}", path.display())]
    BadLine {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Worst-first ordering (`ee viz retrieval --worst-first`) needs every label.
    #[error("--worst-first needs labels, but query {query} or its result {result} has none")]
    Unlabelled {
        /// The query's path.
        query: String,
        /// The result's path.
        result: String,
    },
}

impl From<ee_core::fs::FileError> for VizError {
    fn from(e: ee_core::fs::FileError) -> Self {
        VizError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = VizError> = std::result::Result<T, E>;

/// Encodes `image` as PNG and writes it to `path` atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| VizError::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(write_atomic(path, &bytes)?)
}

/// The font pictures are written in (DejaVu Sans, see assets/DejaVu-LICENSE.txt), bundled
/// so text renders the same on every machine, fonts installed or not.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font with plotters as "sans-serif" (once per process).
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font is invalid".to_string())
        })
        .clone()
        .map_err(|message| VizError::Plot {
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
        .ok_or_else(|| VizError::Plot {
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
