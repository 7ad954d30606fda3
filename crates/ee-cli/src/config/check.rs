//! [`RawConfig::check`]: every value validated, with the config's dotted names.

use super::schema::*;
use super::{file_in_root, invalid, ConfigError, RawConfig, RunConfig};

impl RawConfig {
    /// Validates every value; relative paths are resolved against the current directory
    /// later, by the commands that open them.
    pub fn check(self) -> Result<RunConfig, ConfigError> {
        check_dataset(&self.data)?;
        check_loader(&self.data)?;
        let synthetic = check_synthetic(&self.data)?;
        check_model(&self)?;
        let loss = check_loss(&self.loss)?;
        check_trainer(&self)?;
        check_run(&self.run)?;
        check_devices(&self.run.devices)?;
        let mut raw = self;
        raw.data.synthetic = synthetic;
        raw.loss = raw.loss.resolved(&loss);
        Ok(RunConfig { raw, loss })
    }
}

/// `[data]`'s augmentation, root folder, format files and query/gallery meta files.
fn check_dataset(data: &DataSection) -> Result<(), ConfigError> {
    // ee-data checks its own settings; the config adds the section's name.
    data.augment.check().map_err(|error| match error {
        ee_data::DataError::InvalidConfig { field, value, rule } => {
            invalid(&format!("data.{field}"), value, rule)
        }
        other => invalid("data.augment", "(table)", other.to_string()),
    })?;
    if data.format != DataFormat::Synthetic && !data.root.is_dir() {
        return Err(invalid(
            "data.root",
            format!("\"{}\"", data.root.display()),
            "no such directory (see data/README.md for where datasets go)",
        ));
    }
    check_format_files(data)?;
    check_query_gallery(data)
}

/// The files (or class counts) that `data.format` needs in `data.root`.
fn check_format_files(data: &DataSection) -> Result<(), ConfigError> {
    match data.format {
        DataFormat::ReferenceMeta => {
            file_in_root(&data.root, "data.train_split", &data.train_split)?;
            file_in_root(&data.root, "data.test_split", &data.test_split)?;
        }
        DataFormat::Inshop if !ee_data::formats::inshop_partition_path(&data.root).is_file() => {
            return Err(invalid(
                "data.root",
                format!("\"{}\"", data.root.display()),
                "the inshop format needs Eval/list_eval_partition.txt (or list_eval_partition.txt) in data.root",
            ));
        }
        DataFormat::Folder if !data.root.join(&data.train_split).is_file() => {
            return Err(invalid(
                "data.train_split",
                format!("\"{}\"", data.train_split.display()),
                "the folder format needs a split file of `<class> <train|test>` lines in data.root",
            ));
        }
        DataFormat::Cars196 | DataFormat::Cub if data.train_classes == Some(0) => {
            return Err(invalid("data.train_classes", 0, "must be at least 1"));
        }
        _ => {}
    }
    Ok(())
}

/// `data.query_split` and `data.gallery_split`: both or neither, meta files in data.root.
fn check_query_gallery(data: &DataSection) -> Result<(), ConfigError> {
    match (&data.query_split, &data.gallery_split) {
        (None, None) => Ok(()),
        (Some(query), Some(_)) if data.format != DataFormat::ReferenceMeta => Err(invalid(
            "data.query_split",
            format!("\"{}\"", query.display()),
            "query/gallery meta files go with format = \"reference_meta\" (inshop defines its own)",
        )),
        (Some(query), Some(gallery)) => {
            file_in_root(&data.root, "data.query_split", query)?;
            file_in_root(&data.root, "data.gallery_split", gallery)
        }
        (Some(one), None) | (None, Some(one)) => {
            let field = if data.query_split.is_some() {
                "data.query_split"
            } else {
                "data.gallery_split"
            };
            Err(invalid(
                field,
                format!("\"{}\"", one.display()),
                "data.query_split and data.gallery_split go together: give both or neither",
            ))
        }
    }
}

/// The loader's settings in `[data]`: image size and prefetching.
fn check_loader(data: &DataSection) -> Result<(), ConfigError> {
    if !(16..=1024).contains(&data.image_size) {
        return Err(invalid(
            "data.image_size",
            data.image_size,
            "must be in 16..=1024",
        ));
    }
    if data.prefetch_batches == 0 {
        return Err(invalid("data.prefetch_batches", 0, "must be at least 1"));
    }
    Ok(())
}

/// `[data.synthetic]` when `data.format = "synthetic"` (its defaults where the table is
/// missing): the section as the run will use it, `None` for other formats.
fn check_synthetic(data: &DataSection) -> Result<Option<SyntheticSection>, ConfigError> {
    if data.format != DataFormat::Synthetic {
        return Ok(None);
    }
    let synthetic = data.synthetic.clone().unwrap_or_default();
    if synthetic.num_classes < 2 || synthetic.num_classes > 255 {
        return Err(invalid(
            "data.synthetic.num_classes",
            synthetic.num_classes,
            "must be in 2..=255",
        ));
    }
    if synthetic.images_per_class == 0 {
        return Err(invalid(
            "data.synthetic.images_per_class",
            0,
            "must be at least 1",
        ));
    }
    if !(16..=1024).contains(&synthetic.image_side) {
        return Err(invalid(
            "data.synthetic.image_side",
            synthetic.image_side,
            "must be in 16..=1024",
        ));
    }
    Ok(Some(synthetic))
}

/// `[model]`: ee-model's rules (`EmbeddingModelConfig::check`: pretrained weights only for
/// GoogLeNet and ResNet-50, the file present, `head_key`, sizes), the binary's cap on
/// `embed_dim`, and the image size the backbone needs.
fn check_model(raw: &RawConfig) -> Result<(), ConfigError> {
    let model = &raw.model;
    if model.embed_dim > 65536 {
        return Err(invalid(
            "model.embed_dim",
            model.embed_dim,
            "must be in 1..=65536",
        ));
    }
    super::resolve::model_config(raw, true)
        .check()
        .map_err(|error| model_error(model.backbone, error))?;
    let min = model.backbone.min_image_size();
    if (raw.data.image_size as usize) < min {
        return Err(invalid(
            "data.image_size",
            raw.data.image_size,
            format!("{} needs at least {min} px", model.backbone.title()),
        ));
    }
    Ok(())
}

/// An error of ee-model's config check, with the config's key.
fn model_error(backbone: BackboneKind, error: ee_model::ModelError) -> ConfigError {
    match error {
        ee_model::ModelError::InvalidConfig { field, value, rule } => {
            invalid(&format!("model.{field}"), value, rule)
        }
        ee_model::ModelError::FileNotFound { path } => invalid(
            "model.pretrained",
            format!("\"{}\"", path.display()),
            format!(
                "no such file (download torchvision's {}, see data/README.md, or remove the key \
                 to start from random weights)",
                backbone.torchvision_weights_file().unwrap_or("weights")
            ),
        ),
        other => invalid("model", "(section)", other.to_string()),
    }
}

/// `[loss]`: the loss ee-loss builds from it.
fn check_loss(loss: &LossSection) -> Result<ee_loss::LossConfig, ConfigError> {
    let config = loss.loss_config()?;
    if loss.n_inner_pts > 64 {
        return Err(invalid(
            "loss.n_inner_pts",
            loss.n_inner_pts,
            "must be at most 64",
        ));
    }
    Ok(config)
}

/// `[optimizer]`, `[schedule]` and `run.log_every_steps`: ee-train's rules for the trainer
/// (optimiser, epochs, evaluation, logging, at least two classes per batch) and ee-data's for
/// the sampler (`batch_size` a multiple of `instances_per_class`, even with Embedding
/// Expansion), each written once, in the crate that owns it; the errors name the config's key.
fn check_trainer(raw: &RawConfig) -> Result<(), ConfigError> {
    let trainer = super::resolve::raw_trainer_config(raw, false, true);
    // The sampler first, with the even rule of Embedding Expansion: an odd K is reported
    // before a batch size it does not divide.
    let n_inner_pts = raw.loss.n_inner_pts;
    trainer
        .sampler
        .clone()
        .with_require_even_instances(n_inner_pts > 0)
        .check()
        .map_err(|error| match trainer_error(error.into()) {
            ConfigError::Invalid { field, value, rule } if rule.contains("even") => {
                ConfigError::Invalid {
                    field,
                    value,
                    rule: format!("{rule} (loss.n_inner_pts = {n_inner_pts})"),
                }
            }
            other => other,
        })?;
    trainer.check().map_err(trainer_error)
}

/// An error of ee-train's (or, through it, ee-data's or ee-eval's) config checks, with the
/// config's key.
fn trainer_error(error: ee_train::TrainError) -> ConfigError {
    use super::resolve::trainer_key;
    match error {
        ee_train::TrainError::Config { field, value, rule } => ConfigError::Invalid {
            field: trainer_key(&field),
            value,
            rule,
        },
        ee_train::TrainError::Data(ee_data::DataError::InvalidConfig { field, value, rule }) => {
            ConfigError::Invalid {
                field: trainer_key(field),
                value,
                // "a multiple of instances_per_class = 4": the key as the config spells it.
                rule: rule.replace("instances_per_class =", "schedule.instances_per_class ="),
            }
        }
        ee_train::TrainError::Eval(ee_eval::EvalError::InvalidConfig { field, value, rule }) => {
            invalid(&trainer_key(field), value, rule)
        }
        other => invalid("schedule", "(section)", other.to_string()),
    }
}

/// `[run]`'s output directory.
fn check_run(run: &RunSection) -> Result<(), ConfigError> {
    if run.output_dir.as_os_str().is_empty() {
        return Err(invalid("run.output_dir", "\"\"", "must name a directory"));
    }
    if run.output_dir.is_file() {
        return Err(invalid(
            "run.output_dir",
            format!("\"{}\"", run.output_dir.display()),
            "is a file, not a directory",
        ));
    }
    Ok(())
}

/// `run.devices`: at least one, none twice.
fn check_devices(devices: &Devices) -> Result<(), ConfigError> {
    let indices = devices.indices();
    let mut distinct = indices.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if indices.is_empty() || distinct.len() != indices.len() {
        let value = match devices {
            Devices::Count(count) => count.to_string(),
            Devices::List(list) => format!("{list:?}"),
        };
        return Err(invalid(
            "run.devices",
            value,
            "must be a count of at least 1 or a list of distinct device indices",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(sets: &[&str]) -> Result<RunConfig, String> {
        let text = "[data]\nformat = \"synthetic\"\nroot = \"nowhere/synth\"\n\
                    [run]\noutput_dir = \"runs/t\"\n";
        let sets: Vec<String> = sets.iter().map(|set| set.to_string()).collect();
        RawConfig::parse_str(text, &sets, "t.toml")
            .and_then(RawConfig::check)
            .map_err(|error| error.to_string())
    }

    /// The owning crates' rules, reported with the config's own keys.
    #[test]
    fn owner_checks_name_the_config_key_value_and_rule() {
        assert!(checked(&[]).is_ok());
        for (sets, shown) in [
            (
                &["schedule.batch_size=6", "schedule.instances_per_class=4"][..],
                "invalid schedule.batch_size = 6: must be a positive multiple of \
                 schedule.instances_per_class = 4",
            ),
            (
                &["schedule.batch_size=8", "schedule.instances_per_class=3"],
                "invalid schedule.instances_per_class = 3: must be even",
            ),
            (
                &["schedule.batch_size=8", "schedule.instances_per_class=8"],
                "invalid schedule.batch_size = 8: needs at least 2 classes per batch",
            ),
            (
                &["schedule.samples_per_epoch=4"],
                "invalid schedule.samples_per_epoch = 4",
            ),
            (&["schedule.epochs=0"], "invalid schedule.epochs = 0"),
            (
                &["schedule.recall_k=[1, 0]"],
                "invalid schedule.recall_k = [1, 0]",
            ),
            (
                &["run.log_every_steps=0"],
                "invalid run.log_every_steps = 0",
            ),
            (&["optimizer.lr=0.0"], "invalid optimizer.lr = 0"),
            (
                &["model.backbone=\"small_cnn\"", "model.pretrained=\"w.pth\""],
                "invalid model.pretrained = \"w.pth\": pretrained weights exist for backbone",
            ),
            (
                &["model.pretrained=\"nowhere/googlenet.pth\""],
                "no such file (download torchvision's googlenet-1378be20.pth",
            ),
            (&["model.embed_dim=0"], "invalid model.embed_dim = 0"),
            (&["data.image_size=16"], "GoogLeNet needs at least 32 px"),
        ] {
            let error = checked(sets).expect_err(shown);
            assert!(error.contains(shown), "{sets:?}: {error}");
        }
        // Without Embedding Expansion an odd K is fine.
        assert!(checked(&[
            "loss.n_inner_pts=0",
            "schedule.batch_size=9",
            "schedule.instances_per_class=3"
        ])
        .is_ok());
    }
}
