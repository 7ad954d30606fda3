//! Training curves from runs' `metrics.jsonl`: the mean logged loss of each epoch (left) and
//! Recall@K of each evaluation (right) against epochs, one colour per run, drawn with
//! plotters into a PNG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use plotters::prelude::*;

use crate::{Result, VizError};

/// One colour per run, in order (cycled past eight runs).
pub const RUN_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// What a run logged, per epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunCurves {
    /// Name shown in the legend (the run directory's name).
    pub name: String,
    /// `(epoch, mean logged loss of the epoch)`, by epoch.
    pub loss: Vec<(f64, f64)>,
    /// Recall@K by K: `(epoch, recall)` of each evaluation (epoch 0: before training).
    pub recall: BTreeMap<usize, Vec<(f64, f64)>>,
}

fn bad_line(path: &Path, line: usize, message: impl std::fmt::Display) -> VizError {
    VizError::BadLine {
        path: path.to_path_buf(),
        line,
        message: message.to_string(),
    }
}

impl RunCurves {
    /// Reads `run_dir/metrics.jsonl` (written by ee-train, e.g. `ee train`).
    pub fn read(run_dir: &Path) -> Result<RunCurves> {
        let path = run_dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|source| VizError::Io {
            path: path.clone(),
            source,
        })?;
        let name = run_dir
            .canonicalize()
            .unwrap_or_else(|_| run_dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| run_dir.display().to_string());
        Self::parse(&text, name, &path)
    }

    /// Parses the text of a metrics.jsonl (`path` names it in errors).
    pub fn parse(text: &str, name: String, path: &Path) -> Result<RunCurves> {
        let mut loss_sums: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
        let mut recall: BTreeMap<usize, BTreeMap<u64, f64>> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad_line(path, number, e))?;
            let epoch = value["epoch"]
                .as_u64()
                .ok_or_else(|| bad_line(path, number, "no integer \"epoch\""))?;
            match value["kind"].as_str() {
                Some("train") => {
                    let loss = value["loss"]
                        .as_f64()
                        .ok_or_else(|| bad_line(path, number, "no number \"loss\""))?;
                    let entry = loss_sums.entry(epoch).or_default();
                    entry.0 += loss;
                    entry.1 += 1;
                }
                Some("eval") => {
                    let map = value["recall"]
                        .as_object()
                        .ok_or_else(|| bad_line(path, number, "no object \"recall\""))?;
                    for (k, r) in map {
                        let k: usize = k
                            .parse()
                            .map_err(|_| bad_line(path, number, format!("recall key {k:?}")))?;
                        let r = r.as_f64().ok_or_else(|| {
                            bad_line(path, number, format!("recall@{k} is not a number"))
                        })?;
                        // A resumed run may evaluate an epoch twice: the last one counts.
                        recall.entry(k).or_default().insert(epoch, r);
                    }
                }
                other => {
                    return Err(bad_line(
                        path,
                        number,
                        format!("unknown kind {other:?} (expected \"train\" or \"eval\")"),
                    ))
                }
            }
        }
        let curves = RunCurves {
            name,
            loss: loss_sums
                .into_iter()
                .map(|(e, (sum, n))| (e as f64, sum / n as f64))
                .collect(),
            recall: recall
                .into_iter()
                .map(|(k, by_epoch)| {
                    (
                        k,
                        by_epoch.into_iter().map(|(e, r)| (e as f64, r)).collect(),
                    )
                })
                .collect(),
        };
        if curves.loss.is_empty() && curves.recall.is_empty() {
            return Err(VizError::Plot {
                path: path.to_path_buf(),
                message: "no training or evaluation lines to plot".into(),
            });
        }
        Ok(curves)
    }
}

fn range(values: impl Iterator<Item = f64>, pad_low: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        if v.is_finite() {
            (lo.min(v), hi.max(v))
        } else {
            (lo, hi)
        }
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-6);
    let low = if pad_low { lo - 0.05 * span } else { lo };
    (low, hi + 0.05 * span)
}

fn plot_error(e: &dyn std::fmt::Display) -> VizError {
    VizError::Plot {
        path: PathBuf::from("curves"),
        message: e.to_string(),
    }
}

type Panel<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One plot with its caption and axes: epochs `0..=max_epoch` across, `y` up.
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    max_epoch: f64,
    y: std::ops::Range<f64>,
) -> Result<Panel<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_epoch, y)
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| plot_error(&e))?;
    Ok(chart)
}

/// Draws the curves of `runs` (Recall@K for each K of `ks`; every K logged when empty) into
/// a `width` x `height` picture.
pub fn draw_curves(runs: &[RunCurves], ks: &[usize], width: u32, height: u32) -> Result<RgbImage> {
    crate::register_font()?;
    let mut buffer = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let panels = root.split_evenly((1, 2));
        let max_epoch = runs
            .iter()
            .flat_map(|r| {
                r.loss
                    .iter()
                    .chain(r.recall.values().flatten())
                    .map(|p| p.0)
            })
            .fold(1.0f64, f64::max);

        // Loss.
        let (lo, hi) = range(runs.iter().flat_map(|r| r.loss.iter().map(|p| p.1)), true);
        let mut chart = panel(&panels[0], "loss (mean per epoch)", max_epoch, lo..hi)?;
        for (i, run) in runs.iter().enumerate() {
            let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    run.loss.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| plot_error(&e))?
                .label(run.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if runs.iter().any(|r| !r.loss.is_empty()) {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_error(&e))?;
        }

        // Recall@K.
        let wanted = |k: &usize| ks.is_empty() || ks.contains(k);
        let (lo, hi) = range(
            runs.iter().flat_map(|r| {
                r.recall
                    .iter()
                    .filter(|(k, _)| wanted(k))
                    .flat_map(|(_, v)| v.iter().map(|p| p.1))
            }),
            true,
        );
        let y = lo.max(0.0)..hi.min(1.0).max(lo + 1e-3);
        let mut chart = panel(&panels[1], "Recall@K (test)", max_epoch, y)?;
        let mut drawn = false;
        for (i, run) in runs.iter().enumerate() {
            let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
            for (j, (k, points)) in run.recall.iter().filter(|(k, _)| wanted(k)).enumerate() {
                // Larger K: paler line, so one run's Ks stay apart in the same colour.
                let alpha = [1.0, 0.65, 0.42, 0.28][j.min(3)];
                let style = colour.mix(alpha).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), style))
                    .map_err(|e| plot_error(&e))?
                    .label(format!("{} R@{k}", run.name))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| Circle::new(p, 3, colour.mix(alpha).filled())),
                    )
                    .map_err(|e| plot_error(&e))?;
                drawn = true;
            }
        }
        if drawn {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_error(&e))?;
        }
        root.present().map_err(|e| plot_error(&e))?;
    }
    Ok(RgbImage::from_raw(width, height, buffer).expect("buffer of width x height x 3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"{"kind":"eval","epoch":0,"step":0,"recall":{"1":0.5,"2":0.6},"best_recall1":0.5,"best_epoch":0}
{"kind":"train","epoch":1,"step":1,"loss":0.8,"lr":0.001}
{"kind":"train","epoch":1,"step":2,"loss":0.6,"lr":0.001}
{"kind":"eval","epoch":1,"step":2,"recall":{"1":0.7,"2":0.8},"best_recall1":0.7,"best_epoch":1}
{"kind":"train","epoch":2,"step":3,"loss":0.4,"lr":0.001}
{"kind":"eval","epoch":2,"step":3,"recall":{"1":0.75,"2":0.85},"best_recall1":0.75,"best_epoch":2}
"#;

    #[test]
    fn parses_loss_per_epoch_and_recall_per_evaluation() {
        let c = RunCurves::parse(METRICS, "a".into(), Path::new("m.jsonl")).unwrap();
        assert_eq!(c.loss.len(), 2);
        assert!((c.loss[0].1 - 0.7).abs() < 1e-12 && c.loss[1] == (2.0, 0.4));
        assert_eq!(c.recall[&1], vec![(0.0, 0.5), (1.0, 0.7), (2.0, 0.75)]);
        assert_eq!(c.recall[&2].len(), 3);
    }

    #[test]
    fn bad_lines_are_named() {
        let text = "{\"kind\":\"train\",\"epoch\":1,\"loss\":0.5}\nnot json\n";
        let e = RunCurves::parse(text, "a".into(), Path::new("runs/x/metrics.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("runs/x/metrics.jsonl") && e.contains("line 2"),
            "{e}"
        );
        let e = RunCurves::parse("\n", "a".into(), Path::new("m.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no training or evaluation lines"), "{e}");
    }

    fn count(image: &RgbImage, colour: RGBColor) -> usize {
        image
            .pixels()
            .filter(|p| p.0 == [colour.0, colour.1, colour.2])
            .count()
    }

    #[test]
    fn draws_every_run_in_its_colour_at_the_asked_size() {
        let a = RunCurves::parse(METRICS, "inner0".into(), Path::new("a")).unwrap();
        let mut b = a.clone();
        b.name = "inner2".into();
        for p in b.loss.iter_mut() {
            p.1 *= 0.5;
        }
        let image = draw_curves(&[a.clone(), b], &[1], 640, 320).unwrap();
        assert_eq!(image.dimensions(), (640, 320));
        let first = count(&image, RUN_COLOURS[0]);
        let second = count(&image, RUN_COLOURS[1]);
        assert!(first > 100 && second > 100, "{first} {second}");
        // Text was rendered: dark pixels beyond the axes' lines.
        let alone = draw_curves(&[a], &[], 640, 320).unwrap();
        assert_eq!(count(&alone, RUN_COLOURS[1]), 0);
        let dark = alone
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 80))
            .count();
        assert!(dark > 500, "{dark}");
    }
}
