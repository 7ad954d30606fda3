//! `ee data check`: reads every image of both splits once and reports what is wrong.

use std::collections::BTreeMap;

use ee_data::{load_rgb, Split};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::RunConfig;
use crate::dataset::open_dataset;
use crate::error::{CliError, Result};

/// What `ee data check` found in one split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitReport {
    /// Images.
    pub images: usize,
    /// Classes.
    pub classes: usize,
    /// Fewest images of a class.
    pub min_per_class: usize,
    /// Most images of a class.
    pub max_per_class: usize,
    /// Smallest width x height seen.
    pub min_size: (u32, u32),
    /// Largest width x height seen.
    pub max_size: (u32, u32),
    /// Images that could not be read, with why.
    pub problems: Vec<String>,
    /// Classes with fewer than two images (no positive pair), with their counts.
    pub small_classes: Vec<(u32, usize)>,
}

fn check_split(name: &str, split: &Split, use_bbox: bool, quiet: bool) -> SplitReport {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(split.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{name} [{{bar:30}}] {{pos}}/{{len}} images ({{elapsed}}<{{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
    let mut report = SplitReport {
        images: split.len(),
        min_size: (u32::MAX, u32::MAX),
        ..Default::default()
    };
    for item in split.items() {
        *per_class.entry(item.class_id).or_default() += 1;
        match load_rgb(&item.path, if use_bbox { item.bbox } else { None }) {
            Ok(image) => {
                let (width, height) = image.dimensions();
                report.min_size = (report.min_size.0.min(width), report.min_size.1.min(height));
                report.max_size = (report.max_size.0.max(width), report.max_size.1.max(height));
            }
            Err(e) => report.problems.push(e.to_string()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.classes = per_class.len();
    report.small_classes = per_class
        .iter()
        .filter(|(_, &n)| n < 2)
        .map(|(&c, &n)| (c, n))
        .collect();
    report.min_per_class = per_class.values().copied().min().unwrap_or(0);
    report.max_per_class = per_class.values().copied().max().unwrap_or(0);
    if report.min_size.0 == u32::MAX {
        report.min_size = (0, 0);
    }
    report
}

/// Runs the check and prints a summary; an error when any image is unreadable or a class has
/// fewer than two images (no positive pair to train or retrieve).
pub fn data_check(config: &RunConfig, quiet: bool) -> Result<()> {
    // Every check `ee train` runs before decoding anything, with its messages.
    crate::backend::check_compiled(config)?;
    let dataset = open_dataset(config)?;
    crate::train::prepare_dataset(
        config,
        &crate::train::TrainOptions::default(),
        dataset.clone(),
    )?;
    let use_bbox = config.get().data.use_bbox;
    let mut failed = 0;
    for (name, split) in [("train", &dataset.train), ("test", &dataset.test)] {
        let split_report = check_split(name, split, use_bbox, quiet);
        println!(
            "{name}: {} images, {} classes ({}..={} images per class), sizes {}x{} ..= {}x{}, {} unreadable",
            split_report.images,
            split_report.classes,
            split_report.min_per_class,
            split_report.max_per_class,
            split_report.min_size.0,
            split_report.min_size.1,
            split_report.max_size.0,
            split_report.max_size.1,
            split_report.problems.len()
        );
        for p in split_report.problems.iter().take(20) {
            println!("  {p}");
        }
        if split_report.problems.len() > 20 {
            println!("  ... and {} more", split_report.problems.len() - 20);
        }
        if config.get().data.skip_unreadable {
            if !split_report.problems.is_empty() {
                println!(
                    "  warning: {} unreadable {name} image(s) will be skipped (data.skip_unreadable)",
                    split_report.problems.len()
                );
            }
        } else {
            failed += split_report.problems.len();
        }
        if !split_report.small_classes.is_empty() {
            let listed: Vec<String> = split_report
                .small_classes
                .iter()
                .take(20)
                .map(|(c, n)| format!("class {c} ({n} image{})", if *n == 1 { "" } else { "s" }))
                .collect();
            let more = split_report.small_classes.len().saturating_sub(20);
            println!(
                "  {} {name} class(es) with fewer than 2 images give no positive pair: {}{}",
                split_report.small_classes.len(),
                listed.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
            failed += split_report.small_classes.len();
        }
    }
    let instances = config.get().schedule.instances_per_class;
    println!(
        "sampler: {instances} instances per class; classes with fewer images are drawn with replacement"
    );
    if failed > 0 {
        return Err(CliError::DataCheck(format!(
            "data check found {failed} problem(s), listed above"
        )));
    }
    println!("data check passed");
    Ok(())
}
