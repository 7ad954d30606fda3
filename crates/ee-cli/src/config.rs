//! The run configuration: a TOML file with the sections `data`, `model`, `loss`, `optimizer`,
//! `schedule` and `run`, plus `--set section.key=value` overrides.
//!
//! Reading happens in two layers, as ripgrep parses its flags:
//!
//! 1. [`RawConfig`]: a faithful record of what the file (and the overrides) say. Unknown keys
//!    are rejected with their full name (`optimizer.lrr`); missing keys take the reference
//!    run's values.
//! 2. [`RawConfig::check`] validates every value and returns a [`RunConfig`], the only type the
//!    trainer accepts: once it exists, every value in it is usable.
//!
//! ```
//! use ee_cli::config::RawConfig;
//! let raw = RawConfig::parse_str(
//!     "[data]\nformat = \"synthetic\"\nroot = \"data/synth\"\n[run]\noutput_dir = \"runs/x\"",
//!     &["schedule.epochs=3".to_string()],
//!     "inline.toml",
//! )
//! .unwrap();
//! assert_eq!(raw.schedule.epochs, 3);
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A value of the configuration that breaks a rule, or a file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{origin}: {key}{message}")]
    Parse {
        /// The file (or `--set`) at fault.
        origin: String,
        /// The dotted key at fault followed by ": ", or empty when unknown.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// A value breaks a rule.
    #[error("invalid {field} = {value}: {rule}")]
    Invalid {
        /// Dotted key, e.g. `schedule.batch_size`.
        field: String,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
}

fn invalid(field: &str, value: impl std::fmt::Display, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        rule: rule.into(),
    }
}

/// Errors naming `field` unless `root/file` is a file.
fn file_in_root(root: &Path, field: &str, file: &Path) -> Result<(), ConfigError> {
    if root.join(file).is_file() {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("\"{}\"", file.display()),
        format!("no such file in data.root ({})", root.join(file).display()),
    ))
}

/// On-disk layout of a dataset (`data.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// The reference's meta files (`data.train_split`, `data.test_split`: `image_id class_id path`
    /// lines), paths relative to `data.root`.
    ReferenceMeta,
    /// Stanford Cars: `car_ims/` and `cars_annos.mat`, classes `1..=data.train_classes` train.
    Cars196,
    /// CUB-200-2011's archive, classes `1..=data.train_classes` train.
    Cub,
    /// Stanford Online Products (`Ebay_train.txt`, `Ebay_test.txt`).
    Sop,
    /// One folder per class and a split file (`data.train_split`: `<class> <train|test>` lines).
    Folder,
    /// `ee data synth`'s synthetic dataset, written to `data.root` first if absent
    /// (options in `[data.synthetic]`), read in the reference's meta format.
    Synthetic,
    /// DeepFashion In-shop (`list_eval_partition.txt`): train, query and gallery images;
    /// evaluated in query/gallery mode.
    Inshop,
}

/// Options of the synthetic dataset (`[data.synthetic]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticSection {
    /// Number of classes (half train, half test).
    pub num_classes: usize,
    /// Images per class.
    pub images_per_class: usize,
    /// Side of the square images in pixels.
    pub image_side: u32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SyntheticSection {
    fn default() -> Self {
        SyntheticSection {
            num_classes: 16,
            images_per_class: 24,
            image_side: 48,
            seed: 0,
        }
    }
}

/// `[data]`: where the images are and how they are loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Layout on disk.
    pub format: DataFormat,
    /// Dataset folder.
    pub root: PathBuf,
    /// Train meta file (reference_meta) or split file (folder), relative to `root`.
    #[serde(default = "default_train_split")]
    pub train_split: PathBuf,
    /// Test meta file (reference_meta), relative to `root`.
    #[serde(default = "default_test_split")]
    pub test_split: PathBuf,
    /// Query meta file (reference_meta, relative to `root`): with `gallery_split`, the test
    /// scores become queries against a separate gallery instead of the test split against
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_split: Option<PathBuf>,
    /// Gallery meta file (reference_meta, relative to `root`); see `query_split`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gallery_split: Option<PathBuf>,
    /// Number of training classes (cars196: 98, cub: 100).
    #[serde(default)]
    pub train_classes: Option<u32>,
    /// Side of the square network input (the reference: 227).
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Crop images to their bounding boxes (cars196, cub; off in the reference).
    #[serde(default)]
    pub use_bbox: bool,
    /// Keep decoded images in memory (resized to round(1.125 S)).
    #[serde(default)]
    pub cache_images: bool,
    /// Decoding threads; 0 = one per CPU.
    #[serde(default)]
    pub workers: usize,
    /// Batches decoded ahead of training.
    #[serde(default = "default_prefetch")]
    pub prefetch_batches: usize,
    /// Options of the synthetic dataset (format = "synthetic"; ignored, and left out of the
    /// resolved config, with other formats).
    #[serde(default)]
    pub synthetic: Option<SyntheticSection>,
}

fn default_train_split() -> PathBuf {
    "train.txt".into()
}
fn default_test_split() -> PathBuf {
    "test.txt".into()
}
fn default_image_size() -> u32 {
    227
}
fn default_prefetch() -> usize {
    4
}

/// The network before the embedding head (`model.backbone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// Inception v1 with BatchNorm (torchvision's GoogLeNet), as the reference.
    Googlenet,
    /// Four conv-BN-ReLU-pool blocks (32-64-128-256 channels): fast on a CPU, for demos and tests.
    SmallCnn,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Backbone network.
    #[serde(default = "default_backbone")]
    pub backbone: BackboneKind,
    /// Embedding size (the reference: 512).
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    /// torchvision GoogLeNet weights (`googlenet-1378be20.pth` or safetensors); absent = random.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Initialisation of the backbone's convolutions without `pretrained`: `"torchvision"`
    /// (truncated normal, std 0.01) or `"kaiming"` (burn's Kaiming-uniform). Absent: torchvision
    /// for GoogLeNet, kaiming for the small CNN (see [`ModelSection::resolved_init`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<ee_model::BackboneInit>,
}

impl ModelSection {
    /// `init`, or the backbone's default: torchvision's init for GoogLeNet (as torchvision
    /// trains it; learns ~4x faster from scratch than Kaiming-uniform), kaiming for the small
    /// CNN (the demo's recipe).
    pub fn resolved_init(&self) -> ee_model::BackboneInit {
        self.init.unwrap_or(match self.backbone {
            BackboneKind::Googlenet => ee_model::BackboneInit::Torchvision,
            BackboneKind::SmallCnn => ee_model::BackboneInit::Kaiming,
        })
    }
}

fn default_backbone() -> BackboneKind {
    BackboneKind::Googlenet
}
fn default_embed_dim() -> usize {
    512
}

/// `[loss]`: a loss of ee-loss by `name` with its parameters (any left out keep that loss's
/// defaults; unknown ones are rejected), plus the Embedding Expansion settings every loss
/// shares.
///
/// ```toml
/// [loss]
/// name = "hphn_triplet"    # or triplet, lifted, npair, multi_similarity
/// margin = 1e-5            # a parameter of hphn_triplet
/// n_inner_pts = 2          # synthetic points per pair; 0 turns Embedding Expansion off
/// ee_l2norm = true         # L2-normalise the synthetic points
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LossSection {
    /// Which loss (one of [`ee_loss::LOSS_NAMES`]).
    pub name: String,
    /// Synthetic points per pair; 0 turns Embedding Expansion off.
    pub n_inner_pts: usize,
    /// L2-normalise the synthetic points.
    pub ee_l2norm: bool,
    /// The loss's own parameters (checked by ee-loss).
    pub params: toml::Table,
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            name: "hphn_triplet".into(),
            n_inner_pts: 2,
            ee_l2norm: true,
            params: toml::Table::new(),
        }
    }
}

impl Serialize for LossSection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut table = toml::Table::new();
        table.insert("name".into(), toml::Value::String(self.name.clone()));
        table.insert(
            "n_inner_pts".into(),
            toml::Value::Integer(self.n_inner_pts as i64),
        );
        table.insert("ee_l2norm".into(), toml::Value::Boolean(self.ee_l2norm));
        for (k, v) in &self.params {
            table.insert(k.clone(), v.clone());
        }
        table.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LossSection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut section = LossSection::default();
        match table.remove("name") {
            Some(toml::Value::String(name)) => section.name = name,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`name` must be a string, found {other}"
                )))
            }
            None => {}
        }
        match table.remove("n_inner_pts") {
            Some(toml::Value::Integer(n)) if n >= 0 => section.n_inner_pts = n as usize,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`n_inner_pts` must be an integer >= 0, found {other}"
                )))
            }
            None => {}
        }
        match table.remove("ee_l2norm") {
            Some(toml::Value::Boolean(b)) => section.ee_l2norm = b,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`ee_l2norm` must be true or false, found {other}"
                )))
            }
            None => {}
        }
        if table.contains_key("expansion") {
            return Err(D::Error::custom(
                "set the expansion with loss.n_inner_pts and loss.ee_l2norm, not loss.expansion",
            ));
        }
        section.params = table;
        Ok(section)
    }
}

impl LossSection {
    /// ee-loss's config for this section: the loss's defaults, overridden by `params`, with
    /// the expansion settings.
    pub fn loss_config(&self) -> Result<ee_loss::LossConfig, ConfigError> {
        let mut object = serde_json::to_value(&self.params)
            .map_err(|e| invalid("loss", &self.name, e.to_string()))?;
        let map = object
            .as_object_mut()
            .expect("a table serialises to an object");
        // ee-loss spells its reduction `Sum` / `Mean`; configs may write them in lower case.
        if let Some(serde_json::Value::String(r)) = map.get_mut("reduction") {
            match r.as_str() {
                "sum" => *r = "Sum".into(),
                "mean" => *r = "Mean".into(),
                _ => {}
            }
        }
        map.insert("name".into(), self.name.clone().into());
        map.insert(
            "expansion".into(),
            serde_json::json!({ "n_inner_pts": self.n_inner_pts, "l2_norm": self.ee_l2norm }),
        );
        let config: ee_loss::LossConfig =
            serde_json::from_value(object).map_err(|e| ConfigError::Invalid {
                field: "loss".into(),
                value: format!("\"{}\"", self.name),
                rule: e.to_string(),
            })?;
        config.init().map_err(|e| match e {
            // The parameter's own key and value: `invalid loss.margin = -0.1: ...`.
            ee_loss::LossError::InvalidParameter { name, value, rule } => ConfigError::Invalid {
                field: format!("loss.{name}"),
                value,
                rule: format!("{rule} (loss \"{}\")", self.name),
            },
            other => ConfigError::Invalid {
                field: "loss".into(),
                value: format!("\"{}\"", self.name),
                rule: other.to_string(),
            },
        })?;
        Ok(config)
    }

    /// The section with every parameter of the loss written out (for the resolved config).
    fn resolved(&self, config: &ee_loss::LossConfig) -> LossSection {
        let mut params = toml::Table::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(config) {
            for (k, v) in map {
                if k == "name" || k == "expansion" {
                    continue;
                }
                let v = match (k.as_str(), v) {
                    ("reduction", serde_json::Value::String(r)) => {
                        serde_json::Value::String(r.to_lowercase())
                    }
                    (_, v) => v,
                };
                if let Ok(v) = toml::Value::try_from(v) {
                    params.insert(k, v);
                }
            }
        }
        LossSection {
            params,
            ..self.clone()
        }
    }
}

/// The optimiser (`optimizer.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    /// Adam with the weight decay added to the gradient (MXNet's and the reference's).
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw,
}

/// `[optimizer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Which optimiser.
    #[serde(default = "default_optimizer")]
    pub name: OptimizerName,
    /// Base learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Adam's beta1.
    #[serde(default = "default_beta1")]
    pub beta1: f32,
    /// Adam's beta2.
    #[serde(default = "default_beta2")]
    pub beta2: f32,
    /// Adam's epsilon (the reference: 1e-8; burn's default would be 1e-5).
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Weight decay (L2 added to the gradient for adam, decoupled for adamw).
    #[serde(default = "default_wd")]
    pub weight_decay: f32,
    /// Learning-rate multiplier of the backbone.
    #[serde(default = "default_one")]
    pub base_lr_mult: f64,
    /// Factor applied to the learning rate at each decay epoch.
    #[serde(default = "default_decay_factor")]
    pub lr_decay_factor: f64,
    /// Epochs after which the learning rate is multiplied by `lr_decay_factor`.
    #[serde(default = "default_decay_epochs")]
    pub lr_decay_epochs: Vec<u64>,
}

fn default_optimizer() -> OptimizerName {
    OptimizerName::Adam
}
fn default_lr() -> f64 {
    1e-4
}
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_epsilon() -> f32 {
    1e-8
}
fn default_wd() -> f32 {
    5e-4
}
fn default_one() -> f64 {
    1.0
}
fn default_decay_factor() -> f64 {
    0.5
}
fn default_decay_epochs() -> Vec<u64> {
    vec![400, 800, 1200, 1600]
}

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Training epochs.
    #[serde(default = "default_epochs")]
    pub epochs: u64,
    /// Rows per batch, classes x instances.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Instances per class K (the reference's num_instances).
    #[serde(default = "default_instances")]
    pub instances_per_class: usize,
    /// Samples per epoch; absent = K x number of training classes (the reference's epoch).
    #[serde(default)]
    pub samples_per_epoch: Option<usize>,
    /// Evaluate on the test split every this many epochs.
    #[serde(default = "default_eval_every")]
    pub eval_every_epochs: u64,
    /// The Ks of Recall@K.
    #[serde(default = "default_recall_k")]
    pub recall_k: Vec<usize>,
    /// Batch size of the evaluation's forward passes.
    #[serde(default = "default_batch")]
    pub eval_batch_size: usize,
    /// Also compute NMI and F1 (k-means) at each evaluation.
    #[serde(default)]
    pub eval_clustering: bool,
    /// Also evaluate the untrained network once before the first step (logged as epoch 0,
    /// not counted for `best.mpk`), to see how far training moves Recall@K.
    #[serde(default)]
    pub eval_before_training: bool,
}

fn default_epochs() -> u64 {
    4000
}
fn default_batch() -> usize {
    128
}
fn default_instances() -> usize {
    32
}
fn default_eval_every() -> u64 {
    5
}
fn default_recall_k() -> Vec<usize> {
    vec![1, 2, 4, 8]
}

/// The compute backend (`run.backend`), one cargo feature of `ee-cli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendName {
    /// burn's pure-Rust CPU backend (`cpu` and `ndarray` are accepted as aliases).
    #[serde(alias = "cpu", alias = "ndarray")]
    Flex,
    /// NVIDIA GPUs through CubeCL.
    Cuda,
}

impl BackendName {
    /// The backend this binary was built with.
    pub fn compiled() -> BackendName {
        if cfg!(feature = "cuda") {
            BackendName::Cuda
        } else {
            BackendName::Flex
        }
    }

    /// Lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Flex => "flex",
            BackendName::Cuda => "cuda",
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Seed of the sampler, the augmentation and the initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Run directory: resolved config, metrics.jsonl, TensorBoard events, checkpoints.
    pub output_dir: PathBuf,
    /// Backend `cargo xtask train` builds `ee` with.
    #[serde(default = "default_backend")]
    pub backend: BackendName,
    /// Log loss, lr and loss diagnostics every this many steps (the reference: 10).
    #[serde(default = "default_log_every")]
    pub log_every_steps: u64,
    /// Also write `last.mpk` every this many steps within an epoch (0 = at epoch ends only).
    #[serde(default)]
    pub checkpoint_every_steps: u64,
}

fn default_backend() -> BackendName {
    BackendName::Flex
}
fn default_log_every() -> u64 {
    10
}

/// What the config file says, after `--set` overrides; not yet validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[data]`.
    pub data: DataSection,
    /// `[model]`.
    #[serde(default = "default_model")]
    pub model: ModelSection,
    /// `[loss]`.
    #[serde(default = "default_loss_section")]
    pub loss: LossSection,
    /// `[optimizer]`.
    #[serde(default = "default_optimizer_section")]
    pub optimizer: OptimizerSection,
    /// `[schedule]`.
    #[serde(default = "default_schedule")]
    pub schedule: ScheduleSection,
    /// `[run]`.
    pub run: RunSection,
}

fn empty<T: serde::de::DeserializeOwned>() -> T {
    T::deserialize(toml::Value::Table(toml::Table::new())).expect("every field has a default")
}
fn default_model() -> ModelSection {
    empty()
}
fn default_loss_section() -> LossSection {
    LossSection::default()
}
fn default_optimizer_section() -> OptimizerSection {
    empty()
}
fn default_schedule() -> ScheduleSection {
    empty()
}

/// Applies one `section.key=value` override to a parsed TOML table. The value is read as a
/// TOML value (`3`, `1e-4`, `true`, `[1, 2]`, `"text"`); anything that is not one is taken
/// as a string, so `--set run.output_dir=runs/a` works without quotes.
pub fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        arg: arg.into(),
        message: message.into(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value"))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(err("the key must be section.key, e.g. optimizer.lr"));
    }
    let value = value.trim();
    let value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("the key was written"),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| err(&format!("`{part}` is a value, not a section")))?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

impl RawConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`) and deserialises.
    pub fn load(path: &Path, overrides: &[String]) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            message: e.to_string(),
        })?;
        Self::parse_str(&text, overrides, &path.display().to_string())
    }

    /// As [`RawConfig::load`] on TOML text; `origin` names it in errors.
    pub fn parse_str(
        text: &str,
        overrides: &[String],
        origin: &str,
    ) -> Result<RawConfig, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: origin.into(),
                    key: String::new(),
                    message: one_line(&e.to_string()),
                })?;
        for arg in overrides {
            apply_override(&mut table, arg)?;
        }
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            ConfigError::Parse {
                origin: origin.into(),
                key,
                message: one_line(&e.into_inner().to_string()),
            }
        })
    }

    /// The config as TOML text (what `config.toml` in the run directory holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }

    /// Validates every value; relative paths are resolved against the current directory
    /// later, by the commands that open them.
    pub fn check(self) -> Result<RunConfig, ConfigError> {
        let d = &self.data;
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
        if let Some(p) = &m.pretrained {
            if m.backbone != BackboneKind::Googlenet {
                return Err(invalid(
                    "model.pretrained",
                    format!("\"{}\"", p.display()),
                    "pretrained weights exist for backbone = \"googlenet\" only",
                ));
            }
            if !p.is_file() {
                return Err(invalid(
                    "model.pretrained",
                    format!("\"{}\"", p.display()),
                    "no such file (download torchvision's googlenet-1378be20.pth, see data/README.md, or remove the key to start from random weights)",
                ));
            }
        }
        if m.backbone == BackboneKind::Googlenet && d.image_size < 32 {
            return Err(invalid(
                "data.image_size",
                d.image_size,
                "GoogLeNet needs at least 32 px",
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

        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(invalid("optimizer.lr", o.lr, "must be finite and > 0"));
        }
        for (field, beta) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(invalid(field, beta, "must be in [0, 1)"));
            }
        }
        if !(o.epsilon.is_finite() && o.epsilon > 0.0) {
            return Err(invalid(
                "optimizer.epsilon",
                o.epsilon,
                "must be finite and > 0",
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                o.weight_decay,
                "must be finite and >= 0",
            ));
        }
        if !(o.base_lr_mult.is_finite() && o.base_lr_mult >= 0.0) {
            return Err(invalid(
                "optimizer.base_lr_mult",
                o.base_lr_mult,
                "must be finite and >= 0",
            ));
        }
        if !(o.lr_decay_factor.is_finite() && o.lr_decay_factor > 0.0 && o.lr_decay_factor <= 1.0) {
            return Err(invalid(
                "optimizer.lr_decay_factor",
                o.lr_decay_factor,
                "must be in (0, 1]",
            ));
        }
        if o.lr_decay_epochs.windows(2).any(|w| w[0] >= w[1])
            || o.lr_decay_epochs.first() == Some(&0)
        {
            return Err(invalid(
                "optimizer.lr_decay_epochs",
                format!("{:?}", o.lr_decay_epochs),
                "must be positive and strictly increasing",
            ));
        }

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
        let mut raw = self;
        raw.data.synthetic = synth;
        raw.loss = raw.loss.resolved(&loss);
        Ok(RunConfig { raw, loss })
    }
}

/// A validated configuration: only [`RawConfig::check`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    raw: RawConfig,
    loss: ee_loss::LossConfig,
}

impl RunConfig {
    /// The values (all valid).
    pub fn get(&self) -> &RawConfig {
        &self.raw
    }

    /// The loss, validated by ee-loss.
    pub fn loss(&self) -> &ee_loss::LossConfig {
        &self.loss
    }

    /// The synthetic dataset's options, with defaults filled in (format = "synthetic").
    pub fn synthetic(&self) -> Option<&SyntheticSection> {
        self.raw.data.synthetic.as_ref()
    }

    /// The resolved config as TOML (every value explicit).
    pub fn to_toml(&self) -> String {
        self.raw.to_toml()
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        format!(
            "[data]\nformat = \"synthetic\"\nroot = \"nowhere/synth\"\n[run]\noutput_dir = \"runs/t\"\n{extra}"
        )
    }

    fn parse(text: &str, sets: &[&str]) -> Result<RawConfig, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RawConfig::parse_str(text, &sets, "t.toml")
    }

    #[test]
    fn query_and_gallery_splits_go_together_with_reference_meta() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train.txt", "test.txt", "q.txt", "g.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let config = |format: &str, extra: &str| {
            let text = format!(
                "[data]\nformat = \"{format}\"\nroot = \"{}\"\n{extra}\n[run]\noutput_dir = \"r\"\n",
                dir.path().display()
            );
            parse(&text, &["data.train_split=train.txt"]).unwrap()
        };
        let both = "query_split = \"q.txt\"\ngallery_split = \"g.txt\"";
        let ok = config("reference_meta", both);
        assert_eq!(ok.data.query_split.as_deref(), Some(Path::new("q.txt")));
        ok.check().unwrap();

        let cases = [
            (
                "reference_meta",
                "query_split = \"q.txt\"",
                &["data.query_split", "give both"][..],
            ),
            (
                "reference_meta",
                "query_split = \"q.txt\"\ngallery_split = \"missing.txt\"",
                &["data.gallery_split", "missing.txt"],
            ),
            ("folder", both, &["reference_meta"]),
            ("inshop", "", &["list_eval_partition.txt"]),
        ];
        for (format, extra, needles) in cases {
            let e = config(format, extra).check().unwrap_err().to_string();
            for needle in needles {
                assert!(e.contains(needle), "{needle:?} not in {e}");
            }
        }
    }

    #[test]
    fn defaults_are_the_reference_run() {
        let c = parse(&base(""), &[]).unwrap().check().unwrap();
        let c = c.get();
        assert_eq!(c.optimizer.lr, 1e-4);
        assert_eq!(c.optimizer.epsilon, 1e-8);
        assert_eq!(c.optimizer.weight_decay, 5e-4);
        assert_eq!(c.optimizer.lr_decay_epochs, vec![400, 800, 1200, 1600]);
        assert_eq!(c.schedule.batch_size, 128);
        assert_eq!(c.schedule.instances_per_class, 32);
        assert_eq!(c.loss.n_inner_pts, 2);
        let ee_loss::LossConfig::HphnTriplet(h) = c.loss.loss_config().unwrap() else {
            panic!()
        };
        assert_eq!(h.margin, 1e-5);
        assert_eq!(h.reduction, ee_loss::Reduction::Sum);
        assert!(!h.soft_margin);
        assert_eq!(c.model.embed_dim, 512);
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let e = parse(&base("[optimizer]\nlrr = 0.1\n"), &[]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("optimizer.lrr") || text.contains("`lrr`"),
            "{text}"
        );
        assert!(text.starts_with("t.toml: optimizer"), "{text}");
        let e = parse(&base("[nonsense]\na = 1\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse(&base("[schedule]\nepochs = \"many\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.epochs"), "{e}");
    }

    #[test]
    fn overrides_apply_before_deserialising() {
        let c = parse(
            &base(""),
            &[
                "optimizer.lr=0.5",
                "run.output_dir=runs/b",
                "loss.ee_l2norm=false",
                "optimizer.lr_decay_epochs=[1, 2]",
            ],
        )
        .unwrap();
        assert_eq!(c.optimizer.lr, 0.5);
        assert_eq!(c.run.output_dir, PathBuf::from("runs/b"));
        assert!(!c.loss.ee_l2norm);
        assert_eq!(c.optimizer.lr_decay_epochs, vec![1, 2]);
        // an override can also introduce an unknown key, which is then rejected
        let e = parse(&base(""), &["optimizer.lrr=1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lrr"), "{e}");
        let e = parse(&base(""), &["lr=1"]).unwrap_err().to_string();
        assert!(e.contains("section.key"), "{e}");
        let e = parse(&base(""), &["optimizer.lr"]).unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
    }

    #[test]
    fn odd_k_with_expansion_is_rejected() {
        let e = parse(
            &base("[schedule]\ninstances_per_class = 3\nbatch_size = 12\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid schedule.instances_per_class = 3"),
            "{e}"
        );
        // without expansion an odd K is fine
        parse(
            &base(
                "[schedule]\ninstances_per_class = 3\nbatch_size = 12\n[loss]\nn_inner_pts = 0\n",
            ),
            &[],
        )
        .unwrap()
        .check()
        .unwrap();
    }

    #[test]
    fn batch_not_divisible_by_k_is_rejected() {
        let e = parse(
            &base("[schedule]\ninstances_per_class = 4\nbatch_size = 10\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid schedule.batch_size = 10"), "{e}");
    }

    #[test]
    fn missing_data_root_is_rejected() {
        let text = "[data]\nformat = \"reference_meta\"\nroot = \"/definitely/not/here\"\n[run]\noutput_dir = \"r\"\n";
        let e = parse(text, &[]).unwrap().check().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid data.root = \"/definitely/not/here\""),
            "{e}"
        );
    }

    #[test]
    fn value_rules() {
        let cases = [
            ("optimizer.lr=0", "optimizer.lr"),
            (
                "optimizer.lr_decay_epochs=[5, 3]",
                "optimizer.lr_decay_epochs",
            ),
            ("optimizer.lr_decay_factor=1.5", "optimizer.lr_decay_factor"),
            ("optimizer.beta2=1.0", "optimizer.beta2"),
            ("loss.margin=-1.0", "loss.margin"),
            ("loss.name=contrastive", "loss"),
            ("loss.marginn=1.0", "loss"),
            ("schedule.recall_k=[]", "schedule.recall_k"),
            ("schedule.epochs=0", "schedule.epochs"),
            ("data.image_size=8", "data.image_size"),
            ("model.embed_dim=0", "model.embed_dim"),
            ("model.pretrained=no/such.pth", "model.pretrained"),
            ("run.log_every_steps=0", "run.log_every_steps"),
        ];
        for (set, field) in cases {
            let e = parse(&base(""), &[set])
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("invalid {field} = ")), "{set}: {e}");
        }
    }

    #[test]
    fn a_bad_loss_parameter_names_its_key_and_value() {
        let error = parse(&base("[loss]\nmargin = -0.1\n"), &[])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid loss.margin = -0.1: "), "{error}");
        assert!(error.contains("hphn_triplet"), "{error}");
        assert!(!error.contains(" = :"), "no empty value slot: {error}");
    }

    #[test]
    fn other_losses_take_their_parameters() {
        let c = parse(
            &base("[loss]\nname = \"multi_similarity\"\nbeta = 40.0\nn_inner_pts = 0\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap();
        let ee_loss::LossConfig::MultiSimilarity(ms) = c.loss() else {
            panic!("{:?}", c.loss())
        };
        assert_eq!(ms.beta, 40.0);
        assert_eq!(ms.expansion.n_inner_pts, 0);
        // the resolved config writes every parameter out
        assert!(c.to_toml().contains("alpha"), "{}", c.to_toml());
        let c = parse(&base("[loss]\nreduction = \"mean\"\n"), &[])
            .unwrap()
            .check()
            .unwrap();
        let ee_loss::LossConfig::HphnTriplet(h) = c.loss() else {
            panic!()
        };
        assert_eq!(h.reduction, ee_loss::Reduction::Mean);
        assert!(
            c.to_toml().contains("reduction = \"mean\""),
            "{}",
            c.to_toml()
        );
        let e = parse(&base("[loss]\nname = \"npair\"\nmargin = 1.0\n"), &[])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("margin"), "{e}");
    }

    #[test]
    fn backend_aliases() {
        for alias in ["cpu", "ndarray", "flex"] {
            let c = parse(&base(""), &[&format!("run.backend={alias}")]).unwrap();
            assert_eq!(c.run.backend, BackendName::Flex);
        }
        assert!(parse(&base(""), &["run.backend=tpu"]).is_err());
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = parse(&base(""), &["schedule.epochs=7"])
            .unwrap()
            .check()
            .unwrap();
        let again = parse(&c.to_toml(), &[]).unwrap().check().unwrap();
        assert_eq!(again, c);
        assert!(c.to_toml().contains("[data.synthetic]"));
    }
}
