//! [`RawConfig::check`]: every value validated, with the config's dotted names.

use super::schema::*;
use super::{file_in_root, invalid, ConfigError, RawConfig, RunConfig};

impl RawConfig {
    /// Validates every value; relative paths are resolved against the current directory
    /// later, by the commands that open them.
    pub fn check(self) -> Result<RunConfig, ConfigError> {
        let d = &self.data;
        // ee-data checks its own settings; the config adds the section's name.
        d.augment.check().map_err(|e| match e {
            ee_data::DataError::InvalidConfig { field, value, rule } => {
                invalid(&format!("data.{field}"), value, rule)
            }
            other => invalid("data.augment", "(table)", other.to_string()),
        })?;
        let synthetic = d.format == DataFormat::Synthetic;
        if !synthetic && !d.root.is_dir() {
            return Err(invalid(
                "data.root",
                format!("\"{}\"", d.root.display()),
                "no such directory (see data/README.md for where datasets go)",
            ));
        }
        match d.format {
            DataFormat::ReferenceMeta => {
                file_in_root(&d.root, "data.train_split", &d.train_split)?;
                file_in_root(&d.root, "data.test_split", &d.test_split)?;
            }
            DataFormat::Inshop if !ee_data::formats::inshop_partition_path(&d.root).is_file() => {
                return Err(invalid(
                    "data.root",
                    format!("\"{}\"", d.root.display()),
                    "the inshop format needs Eval/list_eval_partition.txt (or list_eval_partition.txt) in data.root",
                ));
            }
            DataFormat::Folder if !d.root.join(&d.train_split).is_file() => {
                return Err(invalid(
                    "data.train_split",
                    format!("\"{}\"", d.train_split.display()),
                    "the folder format needs a split file of `<class> <train|test>` lines in data.root",
                ));
            }
            DataFormat::Cars196 | DataFormat::Cub if d.train_classes == Some(0) => {
                return Err(invalid("data.train_classes", 0, "must be at least 1"));
            }
            _ => {}
        }
        match (&d.query_split, &d.gallery_split) {
            (None, None) => {}
            (Some(_), Some(_)) if d.format != DataFormat::ReferenceMeta => {
                return Err(invalid(
                    "data.query_split",
                    format!("\"{}\"", d.query_split.as_ref().unwrap().display()),
                    "query/gallery meta files go with format = \"reference_meta\" (inshop defines its own)",
                ));
            }
            (Some(query), Some(gallery)) => {
                file_in_root(&d.root, "data.query_split", query)?;
                file_in_root(&d.root, "data.gallery_split", gallery)?;
            }
            (Some(one), None) | (None, Some(one)) => {
                let field = if d.query_split.is_some() {
                    "data.query_split"
                } else {
                    "data.gallery_split"
                };
                return Err(invalid(
                    field,
                    format!("\"{}\"", one.display()),
                    "data.query_split and data.gallery_split go together: give both or neither",
                ));
            }
        }
        if !(16..=1024).contains(&d.image_size) {
            return Err(invalid(
                "data.image_size",
                d.image_size,
                "must be in 16..=1024",
            ));
        }
        if d.prefetch_batches == 0 {
            return Err(invalid("data.prefetch_batches", 0, "must be at least 1"));
        }
        let synth = if synthetic {
            Some(d.synthetic.clone().unwrap_or_default())
        } else {
            None
        };
        if let Some(s) = &synth {
            if s.num_classes < 2 || s.num_classes > 255 {
                return Err(invalid(
                    "data.synthetic.num_classes",
                    s.num_classes,
                    "must be in 2..=255",
                ));
            }
            if s.images_per_class == 0 {
                return Err(invalid(
                    "data.synthetic.images_per_class",
                    0,
                    "must be at least 1",
                ));
            }
            if !(16..=1024).contains(&s.image_side) {
                return Err(invalid(
                    "data.synthetic.image_side",
                    s.image_side,
                    "must be in 16..=1024",
                ));
            }
        }

        let m = &self.model;
        if m.embed_dim == 0 || m.embed_dim > 65536 {
            return Err(invalid(
                "model.embed_dim",
                m.embed_dim,
                "must be in 1..=65536",
            ));
        }
        if let Some(key) = &m.head_key {
            if key.trim().is_empty() || key.ends_with('.') {
                return Err(invalid(
                    "model.head_key",
                    format!("{key:?}"),
                    "the head's key prefix in the state dict, e.g. \"embedding\" for \
                     embedding.weight / embedding.bias",
                ));
            }
        }
        if let Some(p) = &m.pretrained {
            if !m.backbone.has_pretrained_weights() {
                return Err(invalid(
                    "model.pretrained",
                    format!("\"{}\"", p.display()),
                    "pretrained weights exist for backbone = \"googlenet\" and \"resnet50\" only",
                ));
            }
            if !p.is_file() {
                let file = match m.backbone {
                    BackboneKind::Resnet50 => "resnet50-0676ba61.pth",
                    _ => "googlenet-1378be20.pth",
                };
                return Err(invalid(
                    "model.pretrained",
                    format!("\"{}\"", p.display()),
                    format!("no such file (download torchvision's {file}, see data/README.md, or remove the key to start from random weights)"),
                ));
            }
        }
        if m.backbone != BackboneKind::SmallCnn && d.image_size < 32 {
            return Err(invalid(
                "data.image_size",
                d.image_size,
                match m.backbone {
                    BackboneKind::Resnet50 => "ResNet-50 needs at least 32 px",
                    _ => "GoogLeNet needs at least 32 px",
                },
            ));
        }

        let l = &self.loss;
        let loss = l.loss_config()?;
        if l.n_inner_pts > 64 {
            return Err(invalid(
                "loss.n_inner_pts",
                l.n_inner_pts,
                "must be at most 64",
            ));
        }

        // The optimiser's rules are ee-train's: one copy, the library's and the binary's.
        super::resolve::optimizer_config(&self.optimizer)
            .check()
            .map_err(|e| match e {
                ee_train::TrainError::Config { field, value, rule } => {
                    ConfigError::Invalid { field, value, rule }
                }
                other => invalid("optimizer", "(section)", other.to_string()),
            })?;

        let s = &self.schedule;
        if s.epochs == 0 {
            return Err(invalid("schedule.epochs", 0, "must be at least 1"));
        }
        let k = s.instances_per_class;
        if k == 0 {
            return Err(invalid(
                "schedule.instances_per_class",
                0,
                "must be at least 1",
            ));
        }
        if l.n_inner_pts > 0 && !k.is_multiple_of(2) {
            return Err(invalid(
                "schedule.instances_per_class",
                k,
                format!(
                    "must be even with Embedding Expansion (loss.n_inner_pts = {}): rows (0,1), (2,3), ... of a class are paired",
                    l.n_inner_pts
                ),
            ));
        }
        if s.batch_size == 0 || !s.batch_size.is_multiple_of(k) {
            return Err(invalid(
                "schedule.batch_size",
                s.batch_size,
                format!("must be a positive multiple of schedule.instances_per_class = {k}"),
            ));
        }
        if s.batch_size / k < 2 {
            return Err(invalid(
                "schedule.batch_size",
                s.batch_size,
                format!("needs at least 2 classes per batch (batch_size / instances_per_class = {}), or no anchor has a negative", s.batch_size / k),
            ));
        }
        if let Some(n) = s.samples_per_epoch {
            if n < s.batch_size {
                return Err(invalid(
                    "schedule.samples_per_epoch",
                    n,
                    format!("must be at least schedule.batch_size = {}", s.batch_size),
                ));
            }
        }
        if s.eval_every_epochs == 0 {
            return Err(invalid(
                "schedule.eval_every_epochs",
                0,
                "must be at least 1",
            ));
        }
        if s.recall_k.is_empty() || s.recall_k.contains(&0) {
            return Err(invalid(
                "schedule.recall_k",
                format!("{:?}", s.recall_k),
                "must list at least one K, each >= 1",
            ));
        }
        if s.eval_batch_size == 0 {
            return Err(invalid("schedule.eval_batch_size", 0, "must be at least 1"));
        }

        let r = &self.run;
        if r.output_dir.as_os_str().is_empty() {
            return Err(invalid("run.output_dir", "\"\"", "must name a directory"));
        }
        if r.output_dir.is_file() {
            return Err(invalid(
                "run.output_dir",
                format!("\"{}\"", r.output_dir.display()),
                "is a file, not a directory",
            ));
        }
        if r.log_every_steps == 0 {
            return Err(invalid("run.log_every_steps", 0, "must be at least 1"));
        }
        let devices = r.devices.indices();
        let mut distinct = devices.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if devices.is_empty() || distinct.len() != devices.len() {
            let value = match &r.devices {
                Devices::Count(n) => n.to_string(),
                Devices::List(list) => format!("{list:?}"),
            };
            return Err(invalid(
                "run.devices",
                value,
                "must be a count of at least 1 or a list of distinct device indices",
            ));
        }
        let mut raw = self;
        raw.data.synthetic = synth;
        raw.loss = raw.loss.resolved(&loss);
        Ok(RunConfig { raw, loss })
    }
}
