//! From the `[data]` section to an [`ee_data::Dataset`], writing the synthetic dataset first
//! when the config asks for one that is not there yet.

use std::path::{Path, PathBuf};

use ee_data::formats::{self, FolderSplit};
use ee_data::{Dataset, Split, SynthImageFormat, SynthLayout, SynthOptions};

use crate::config::{DataFormat, RunConfig, SyntheticSection};
use crate::error::{CliError, Result};

/// Where the synthetic dataset's reference-format files live under its root.
pub fn synthetic_meta_dir(root: &Path) -> PathBuf {
    root.join("cars196")
}

/// Writes `ee data synth`'s dataset (CARS196 layout with the reference's meta files) to `root`.
pub fn write_synthetic(root: &Path, options: &SyntheticSection) -> Result<ee_data::SynthDataset> {
    let synth = SynthOptions::new()
        .with_num_classes(options.num_classes)
        .with_images_per_class(options.images_per_class)
        .with_width(options.image_side)
        .with_height(options.image_side)
        .with_seed(options.seed)
        .with_difficulty(options.difficulty)
        .with_format(SynthImageFormat::Jpeg)
        .with_layouts(vec![SynthLayout::Cars196]);
    let written = ee_data::write_synthetic_dataset(root, &synth)?;
    let marker = root.join(SYNTH_MARKER);
    std::fs::write(&marker, synth_fingerprint(options)).map_err(|e| CliError::io(&marker, e))?;
    Ok(written)
}

/// File beside the synthetic dataset recording the options it was written with, so a config
/// asking for other options regenerates it instead of silently using the old one.
pub const SYNTH_MARKER: &str = "ee-synth-options.txt";

fn synth_fingerprint(o: &SyntheticSection) -> String {
    let mut text = format!(
        "num_classes = {}\nimages_per_class = {}\nimage_side = {}\nseed = {}\n",
        o.num_classes, o.images_per_class, o.image_side, o.seed
    );
    // only when set, so that datasets written before the option existed stay valid
    if o.difficulty != 0.0 {
        text.push_str(&format!("difficulty = {}\n", o.difficulty));
    }
    text
}

/// Reads the dataset the config names; for `format = "synthetic"` writes it first if
/// `root/cars196/train.txt` is missing (and says so on stderr).
pub fn open_dataset(config: &RunConfig) -> Result<Dataset> {
    let data = &config.get().data;
    let boxes = data.use_bbox;
    let dataset = match data.format {
        DataFormat::Synthetic => {
            let dir = synthetic_meta_dir(&data.root);
            let options = config.synthetic().cloned().unwrap_or_default();
            let marker = std::fs::read_to_string(data.root.join(SYNTH_MARKER)).unwrap_or_default();
            if !dir.join("train.txt").is_file() || marker != synth_fingerprint(&options) {
                if dir.is_dir() {
                    std::fs::remove_dir_all(&dir).map_err(|e| CliError::io(&dir, e))?;
                }
                eprintln!(
                    "writing a synthetic dataset to {} ({} classes x {} images, {} px, \
                     difficulty {})",
                    data.root.display(),
                    options.num_classes,
                    options.images_per_class,
                    options.image_side,
                    options.difficulty
                );
                write_synthetic(&data.root, &options)?;
            }
            formats::read_meta_dataset(&dir, &dir.join("train.txt"), &dir.join("test.txt"))?
        }
        DataFormat::ReferenceMeta => formats::read_meta_dataset(
            &data.root,
            &data.root.join(&data.train_split),
            &data.root.join(&data.test_split),
        )?,
        DataFormat::Cars196 => formats::read_cars196(
            &data.root,
            data.train_classes.unwrap_or(formats::CARS196_TRAIN_CLASSES),
            boxes,
        )?,
        DataFormat::Cub => formats::read_cub(
            &data.root,
            data.train_classes.unwrap_or(formats::CUB_TRAIN_CLASSES),
            boxes,
        )?,
        DataFormat::Sop => formats::read_sop(&data.root)?,
        DataFormat::Folder => formats::read_folder_tree(
            &data.root,
            &FolderSplit::File(data.root.join(&data.train_split)),
        )?,
        DataFormat::Inshop => formats::read_inshop(&data.root)?.dataset()?,
    };
    Ok(dataset)
}

/// The query and gallery splits of a dataset that defines them (In-Shop, or reference meta
/// files named by `data.query_split` and `data.gallery_split`); `None` for the others, which
/// are scored test split against itself.
pub fn open_query_gallery(config: &RunConfig) -> Result<Option<(Split, Split)>> {
    let data = &config.get().data;
    if data.format == DataFormat::Inshop {
        let inshop = formats::read_inshop(&data.root)?;
        return Ok(Some((inshop.query, inshop.gallery)));
    }
    match (&data.query_split, &data.gallery_split) {
        (Some(query), Some(gallery)) => Ok(Some((
            formats::read_meta_split(&data.root.join(query), &data.root, None)?,
            formats::read_meta_split(&data.root.join(gallery), &data.root, None)?,
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_the_difficulty_only_when_set() {
        let default = SyntheticSection::default();
        // unchanged from before the option existed: old datasets are not rewritten
        assert_eq!(
            synth_fingerprint(&default),
            "num_classes = 16\nimages_per_class = 24\nimage_side = 48\nseed = 0\n"
        );
        let hard = SyntheticSection {
            difficulty: 0.5,
            ..default.clone()
        };
        assert!(synth_fingerprint(&hard).ends_with("difficulty = 0.5\n"));
        assert_ne!(synth_fingerprint(&hard), synth_fingerprint(&default));
    }
}
