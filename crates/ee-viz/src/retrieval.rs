//! The retrieval grid: one row per query, the query in the first column (blue frame), then
//! its top-k results nearest first, each framed green when its label equals the query's, red
//! when not, grey when either label is unknown. Under each cell a caption gives the query's
//! label, or the result's rank and distance.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::{Result, VizError};

/// One retrieved gallery item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// Row in the gallery file.
    pub index: usize,
    /// The gallery item's path.
    pub path: String,
    /// The gallery item's label, if known.
    pub label: Option<String>,
    /// Euclidean distance to the query.
    pub distance: f64,
}

/// A query and its top-k (one row of the grid; `ee search --json` prints a list of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryHits {
    /// The query's path (or name).
    pub query: String,
    /// The query's label, if known.
    pub label: Option<String>,
    /// Nearest first.
    pub hits: Vec<Hit>,
}

impl QueryHits {
    /// Whether the hit's label equals the query's (`None` when either is unknown).
    pub fn is_match(&self, hit: &Hit) -> Option<bool> {
        Some(self.label.as_ref()? == hit.label.as_ref()?)
    }
}

/// Space around the grid, in pixels.
pub const MARGIN: u32 = 8;
/// Frame width around each thumbnail.
pub const BORDER: u32 = 4;
/// Space between two result cells and between rows.
pub const GAP: u32 = 6;
/// Space between the query column and the first result.
pub const QUERY_GAP: u32 = 18;
/// Height of the caption strip under each cell.
pub const CAPTION: u32 = 15;
/// Font size of the captions, in pixels.
const CAPTION_FONT: f32 = 11.0;
/// Colour of the captions.
pub const TEXT: Rgb<u8> = Rgb([20, 20, 20]);

/// Frame of a result of the query's class.
pub const MATCH: Rgb<u8> = Rgb([0, 170, 0]);
/// Frame of a result of another class.
pub const MISMATCH: Rgb<u8> = Rgb([210, 0, 0]);
/// Frame of a result whose match is unknown (a label is missing).
pub const UNKNOWN: Rgb<u8> = Rgb([150, 150, 150]);
/// Frame of the query.
pub const QUERY: Rgb<u8> = Rgb([30, 90, 220]);
/// Background.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// Behind a thumbnail whose aspect ratio leaves space in its square.
pub const LETTERBOX: Rgb<u8> = Rgb([235, 235, 235]);
/// A thumbnail whose image could not be read.
pub const UNREADABLE: Rgb<u8> = Rgb([60, 60, 60]);

/// Which queries the grid shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridOptions {
    /// Number of query rows.
    pub queries: usize,
    /// Side of the square thumbnails in pixels.
    pub thumb: u32,
    /// Show the worst queries first (fewest correct results, then latest first correct
    /// result) instead of the first ones.
    pub worst_first: bool,
}

/// Side of one cell (thumbnail and frame).
pub fn cell(thumb: u32) -> u32 {
    thumb + 2 * BORDER
}

/// Width and height of a grid of `rows` queries with `k` results each.
pub fn grid_size(rows: u32, k: u32, thumb: u32) -> (u32, u32) {
    let cell_side = cell(thumb);
    let width = 2 * MARGIN + (k + 1) * cell_side + QUERY_GAP + k.saturating_sub(1) * GAP;
    let height = 2 * MARGIN + rows * (cell_side + CAPTION) + rows.saturating_sub(1) * GAP;
    (width, height)
}

/// Top-left corner of the cell in `row`, `column` (column 0 is the query).
pub fn cell_origin(row: u32, column: u32, thumb: u32) -> (u32, u32) {
    let cell_side = cell(thumb);
    let x = if column == 0 {
        MARGIN
    } else {
        MARGIN + cell_side + QUERY_GAP + (column - 1) * (cell_side + GAP)
    };
    (x, MARGIN + row * (cell_side + CAPTION + GAP))
}

/// The queries to show, in order: the first `n`, or the `n` worst (needs every label).
pub fn select_queries(results: &[QueryHits], n: usize, worst_first: bool) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..results.len()).collect();
    if worst_first {
        let mut keys = Vec::with_capacity(results.len());
        for (i, q) in results.iter().enumerate() {
            let matches: Vec<bool> = q
                .hits
                .iter()
                .map(|h| {
                    q.is_match(h).ok_or_else(|| VizError::Unlabelled {
                        query: q.query.clone(),
                        result: h.path.clone(),
                    })
                })
                .collect::<Result<_>>()?;
            let correct = matches.iter().filter(|&&m| m).count();
            let first = matches.iter().position(|&m| m).unwrap_or(matches.len());
            keys.push((correct, std::cmp::Reverse(first), i));
        }
        keys.sort();
        order = keys.into_iter().map(|(_, _, i)| i).collect();
    }
    order.truncate(n);
    Ok(order)
}

fn fill(image: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Rgb<u8>) {
    for yy in y..y + h {
        for xx in x..x + w {
            image.put_pixel(xx, yy, colour);
        }
    }
}

/// The image at `path` fitted into a `thumb` square (aspect kept, letterboxed); `None` if
/// it cannot be read.
fn thumbnail(path: &Path, thumb: u32) -> Option<RgbImage> {
    let image = ee_data::load_rgb(path, None).ok()?;
    let scale = thumb as f64 / image.width().max(image.height()) as f64;
    let width = ((image.width() as f64 * scale).round() as u32).clamp(1, thumb);
    let height = ((image.height() as f64 * scale).round() as u32).clamp(1, thumb);
    let resized =
        image::imageops::resize(&image, width, height, image::imageops::FilterType::Triangle);
    let mut out = RgbImage::from_pixel(thumb, thumb, LETTERBOX);
    image::imageops::overlay(
        &mut out,
        &resized,
        i64::from((thumb - width) / 2),
        i64::from((thumb - height) / 2),
    );
    Some(out)
}

fn draw_cell(
    grid: &mut RgbImage,
    origin: (u32, u32),
    thumb: u32,
    path: &str,
    frame: Rgb<u8>,
    unreadable: &mut Vec<String>,
) {
    let cell_side = cell(thumb);
    fill(grid, origin.0, origin.1, cell_side, cell_side, frame);
    let (x, y) = (origin.0 + BORDER, origin.1 + BORDER);
    match thumbnail(Path::new(path), thumb) {
        Some(t) => image::imageops::replace(grid, &t, i64::from(x), i64::from(y)),
        None => {
            fill(grid, x, y, thumb, thumb, UNREADABLE);
            unreadable.push(path.to_string());
        }
    }
}

/// `text` cut to fit `width` pixels at the caption size (an ellipsis marks a cut).
fn fit(font: &ab_glyph::FontRef<'static>, text: &str, width: u32) -> String {
    let fits = |t: &str| crate::text_width(font, CAPTION_FONT, t) <= width as f32;
    if fits(text) {
        return text.to_string();
    }
    let mut kept: Vec<char> = text.chars().collect();
    while !kept.is_empty() {
        kept.pop();
        let candidate: String = kept.iter().collect::<String>() + "…";
        if fits(&candidate) {
            return candidate;
        }
    }
    String::new()
}

/// The grid of the queries `rows` (indices into `results`) and their results.
///
/// Returns the picture and the paths of images that could not be read (drawn dark grey).
pub fn draw_grid(
    results: &[QueryHits],
    rows: &[usize],
    thumb: u32,
) -> Result<(RgbImage, Vec<String>)> {
    let k = rows
        .iter()
        .map(|&q| results[q].hits.len())
        .max()
        .unwrap_or(0) as u32;
    let (width, height) = grid_size(rows.len() as u32, k, thumb);
    let mut grid = RgbImage::from_pixel(width, height, BACKGROUND);
    let mut unreadable = Vec::new();
    let font = crate::font()?;
    let cell_side = cell(thumb);
    let caption = |grid: &mut RgbImage, (x, y): (u32, u32), text: &str| {
        let text = fit(font, text, cell_side);
        crate::draw_text(
            grid,
            font,
            CAPTION_FONT,
            (x + 1, y + cell_side + 1),
            &text,
            TEXT,
        );
    };
    for (row, &q) in rows.iter().enumerate() {
        let row = row as u32;
        let query = &results[q];
        let origin = cell_origin(row, 0, thumb);
        draw_cell(
            &mut grid,
            origin,
            thumb,
            &query.query,
            QUERY,
            &mut unreadable,
        );
        caption(&mut grid, origin, query.label.as_deref().unwrap_or("query"));
        for (column, hit) in query.hits.iter().enumerate() {
            let frame = match query.is_match(hit) {
                Some(true) => MATCH,
                Some(false) => MISMATCH,
                None => UNKNOWN,
            };
            let origin = cell_origin(row, column as u32 + 1, thumb);
            draw_cell(&mut grid, origin, thumb, &hit.path, frame, &mut unreadable);
            caption(
                &mut grid,
                origin,
                &format!("{}. {:.3}", hit.rank, hit.distance),
            );
        }
    }
    unreadable.sort();
    unreadable.dedup();
    Ok((grid, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rank: usize, label: Option<&str>) -> Hit {
        Hit {
            rank,
            index: rank,
            path: "missing.png".into(),
            label: label.map(String::from),
            distance: rank as f64,
        }
    }

    fn query(name: &str, label: &str, hits: &[Option<&str>]) -> QueryHits {
        QueryHits {
            query: name.into(),
            label: Some(label.into()),
            hits: hits
                .iter()
                .enumerate()
                .map(|(i, l)| hit(i + 1, *l))
                .collect(),
        }
    }

    #[test]
    fn size_follows_the_layout() {
        // 3 result cells of 40 + 4 + 4 = 48 px, a query cell, margins and gaps; rows of a
        // cell and a 15 px caption.
        assert_eq!(
            grid_size(2, 3, 40),
            (
                8 + 48 + 18 + 48 + 6 + 48 + 6 + 48 + 8,
                8 + 48 + 15 + 6 + 48 + 15 + 8
            )
        );
        assert_eq!(
            cell_origin(1, 2, 40),
            (8 + 48 + 18 + 48 + 6, 8 + 48 + 15 + 6)
        );
    }

    #[test]
    fn frames_follow_the_labels_and_unreadable_images_are_listed() {
        let results = vec![query("q.png", "a", &[Some("a"), Some("b"), None])];
        let (grid, unreadable) = draw_grid(&results, &[0], 40).unwrap();
        assert_eq!(grid.dimensions(), grid_size(1, 3, 40));
        let at = |column: u32| {
            let (x, y) = cell_origin(0, column, 40);
            *grid.get_pixel(x + 1, y + 1)
        };
        assert_eq!(
            [at(0), at(1), at(2), at(3)],
            [QUERY, MATCH, MISMATCH, UNKNOWN]
        );
        let (x, y) = cell_origin(0, 1, 40);
        assert_eq!(*grid.get_pixel(x + BORDER + 5, y + BORDER + 5), UNREADABLE);
        assert_eq!(unreadable, vec!["missing.png", "q.png"]);
        // Each caption strip holds dark text pixels; the gap between rows stays white.
        for column in 0..4 {
            let (x, y) = cell_origin(0, column, 40);
            let strip = (x..x + cell(40))
                .flat_map(|xx| (y + cell(40)..y + cell(40) + CAPTION).map(move |yy| (xx, yy)));
            let dark = strip
                .filter(|&(xx, yy)| grid.get_pixel(xx, yy).0.iter().all(|&c| c < 110))
                .count();
            assert!(dark >= 5, "column {column}: {dark} dark caption pixels");
        }
    }

    #[test]
    fn long_captions_are_cut_to_the_cell() {
        let font = crate::font().unwrap();
        assert_eq!(fit(font, "short", 48), "short");
        let cut = fit(font, "a-very-long-class-folder-name", 48);
        assert!(cut.ends_with('…') && cut.chars().count() > 3, "{cut}");
        assert!(crate::text_width(font, CAPTION_FONT, &cut) <= 48.0, "{cut}");
    }

    #[test]
    fn worst_first_orders_by_correct_count_then_first_correct_rank() {
        let results = vec![
            query("good", "a", &[Some("a"), Some("a")]),
            query("late", "a", &[Some("b"), Some("a")]),
            query("none", "a", &[Some("b"), Some("b")]),
            query("early", "a", &[Some("a"), Some("b")]),
        ];
        assert_eq!(select_queries(&results, 3, false).unwrap(), vec![0, 1, 2]);
        assert_eq!(select_queries(&results, 4, true).unwrap(), vec![2, 1, 3, 0]);
        let unlabelled = vec![query("q", "a", &[None])];
        let e = select_queries(&unlabelled, 1, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--worst-first needs labels"), "{e}");
    }
}
