//! The sections of a run config and their defaults: what a TOML file may say.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

pub use ee_model::BackboneKind;

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
    /// `0` (the default): one look per class, which even an untrained network tells apart.
    /// In `(0, 1]`: fine-grained classes (shape x colour x mark, sharing each) on per-image
    /// backgrounds with distractors, the per-image nuisance growing with the value; at most
    /// 255 classes. See ee-data's `SynthOptions::difficulty`. Left out of the resolved config
    /// when 0.
    #[serde(
        deserialize_with = "difficulty_in_range",
        skip_serializing_if = "is_zero"
    )]
    pub difficulty: f32,
}

impl Default for SyntheticSection {
    fn default() -> Self {
        SyntheticSection {
            num_classes: 16,
            images_per_class: 24,
            image_side: 48,
            seed: 0,
            difficulty: 0.0,
        }
    }
}

fn is_zero(value: &f32) -> bool {
    *value == 0.0
}

/// `data.synthetic.difficulty`: a number (integer or float) in `0..=1`; the error names the
/// key (`data.synthetic.difficulty: ...`, through `serde_path_to_error`).
fn difficulty_in_range<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    struct Number;
    impl serde::de::Visitor<'_> for Number {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number in 0..=1")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
    }
    let value = deserializer.deserialize_any(Number)?;
    if !(0.0..=1.0).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "must be in 0..=1, got {value}"
        )));
    }
    Ok(value as f32)
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
    /// Skip images that cannot be read (each drops its class group from its batch), with a
    /// warning naming them, instead of stopping the run (`ee train --skip-unreadable`).
    #[serde(default)]
    pub skip_unreadable: bool,
    /// Hold out this many training classes (the highest labels) as a validation split that
    /// selects `best.mpk`, so that the test split is scored for the report only ("A Metric
    /// Learning Reality Check", Musgrave et al. 2020). Absent: the reference's behaviour,
    /// selecting on the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_classes: Option<usize>,
    /// `[data.augment]`: the train split's augmentation (ee-data's [`AugmentConfig`](ee_data::AugmentConfig)); any
    /// key left out keeps the reference's transform (resize-or-crop at x1.125, random
    /// horizontal flip). Set `flip = false` where a mirror image is another class (text,
    /// digits, logos).
    ///
    /// ```toml
    /// [data.augment]
    /// flip = false
    /// policy = "reference"   # or random_crop, random_resized_crop, center_crop, resize
    /// enlarge = 1.125
    /// ```
    #[serde(
        default,
        deserialize_with = "ee_data::AugmentConfig::deserialize_with_defaults"
    )]
    pub augment: ee_data::AugmentConfig,
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
    /// A PyTorch-trained embedding model (torchvision backbone + `nn.Linear` head in one state
    /// dict) loads whole: see `head_key`.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Key prefix of the embedding head in `pretrained` (`{head_key}.weight`, torch's
    /// `[embed_dim, features]`, and `{head_key}.bias`). Absent: `embedding`, loaded when the
    /// file has it; a backbone-only file leaves the head at its initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_key: Option<String>,
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
            BackboneKind::Googlenet | BackboneKind::Resnet50 => ee_model::BackboneInit::Torchvision,
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
    pub(super) fn resolved(&self, config: &ee_loss::LossConfig) -> LossSection {
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

/// The optimiser (`optimizer.name`): ee-train's [`OptimizerKind`](ee_train::OptimizerKind)
/// (`"adam"`, `"adamw"`).
pub use ee_train::OptimizerKind as OptimizerName;

/// `[optimizer]`: the keys of ee-train's [`OptimizerConfig`](ee_train::OptimizerConfig)
/// (`name` for its `kind`), whose defaults and rules ([`OptimizerConfig::check`]) these
/// are: `resolve::optimizer_config` turns the section into one.
///
/// [`OptimizerConfig::check`]: ee_train::OptimizerConfig::check
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

// The defaults are ee-train's.
fn default_optimizer() -> OptimizerName {
    ee_train::OptimizerConfig::new().kind
}
fn default_lr() -> f64 {
    ee_train::OptimizerConfig::new().lr
}
fn default_beta1() -> f32 {
    ee_train::OptimizerConfig::new().beta1
}
fn default_beta2() -> f32 {
    ee_train::OptimizerConfig::new().beta2
}
fn default_epsilon() -> f32 {
    ee_train::OptimizerConfig::new().epsilon
}
fn default_wd() -> f32 {
    ee_train::OptimizerConfig::new().weight_decay
}
fn default_one() -> f64 {
    ee_train::OptimizerConfig::new().base_lr_mult
}
fn default_decay_factor() -> f64 {
    ee_train::OptimizerConfig::new().lr_decay_factor
}
fn default_decay_epochs() -> Vec<u64> {
    ee_train::OptimizerConfig::new().lr_decay_epochs
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
    /// LibTorch (PyTorch's own CPU and CUDA kernels) through burn-tch.
    Tch,
}

impl BackendName {
    /// The backend this binary was built with.
    pub fn compiled() -> BackendName {
        if cfg!(feature = "cuda") {
            BackendName::Cuda
        } else if cfg!(feature = "tch") {
            BackendName::Tch
        } else {
            BackendName::Flex
        }
    }

    /// Lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Flex => "flex",
            BackendName::Cuda => "cuda",
            BackendName::Tch => "tch",
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
    /// Devices to train on, data-parallel: a count (the first N) or a list of device
    /// indices (CUDA devices of this machine). On the CPU backend every device is a thread of
    /// the same CPU.
    #[serde(default, skip_serializing_if = "Devices::is_one")]
    pub devices: Devices,
    /// Where the `tch` backend computes: `"auto"` (CUDA when the libtorch has it and a GPU is
    /// present, else the CPU), `"cpu"` or `"cuda"`. Other backends ignore it.
    #[serde(default, skip_serializing_if = "TchDevice::is_auto")]
    pub tch_device: TchDevice,
}

/// `run.tch_device`: the `tch` backend's device kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TchDevice {
    /// CUDA when the libtorch was built with it and a GPU is present, else the CPU.
    #[default]
    Auto,
    /// LibTorch's CPU kernels (MKL / oneDNN).
    Cpu,
    /// LibTorch's CUDA kernels (cuDNN); an error when none is present.
    Cuda,
}

impl TchDevice {
    /// Whether this is the default, [`TchDevice::Auto`].
    pub fn is_auto(&self) -> bool {
        *self == TchDevice::Auto
    }

    /// Lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            TchDevice::Auto => "auto",
            TchDevice::Cpu => "cpu",
            TchDevice::Cuda => "cuda",
        }
    }
}

/// `run.devices`: how many devices, or which, train data-parallel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Devices {
    /// The first N devices (`devices = 2`).
    Count(usize),
    /// These device indices (`devices = [0, 1]`).
    List(Vec<usize>),
}

impl Default for Devices {
    fn default() -> Self {
        Devices::Count(1)
    }
}

impl Devices {
    /// The device indices.
    pub fn indices(&self) -> Vec<usize> {
        match self {
            Devices::Count(n) => (0..*n).collect(),
            Devices::List(list) => list.clone(),
        }
    }

    fn is_one(&self) -> bool {
        *self == Devices::Count(1)
    }
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

#[cfg(test)]
mod synthetic_difficulty_tests {
    use super::*;

    fn parse(synthetic: &str, set: &[&str]) -> Result<RawConfig, ConfigError> {
        let text = format!(
            "[data]\nformat = \"synthetic\"\nroot = \"nowhere/synth\"\n\
             [data.synthetic]\n{synthetic}\n[run]\noutput_dir = \"runs/t\"\n"
        );
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        RawConfig::parse_str(&text, &set, "t.toml")
    }

    fn difficulty(raw: &RawConfig) -> f32 {
        raw.data.synthetic.as_ref().unwrap().difficulty
    }

    #[test]
    fn difficulty_defaults_to_zero_and_takes_floats_and_integers() {
        assert_eq!(difficulty(&parse("seed = 1", &[]).unwrap()), 0.0);
        assert_eq!(difficulty(&parse("difficulty = 0.25", &[]).unwrap()), 0.25);
        assert_eq!(difficulty(&parse("difficulty = 1", &[]).unwrap()), 1.0);
        let set = ["data.synthetic.difficulty=0.5"];
        assert_eq!(difficulty(&parse("", &set).unwrap()), 0.5);
    }

    #[test]
    fn difficulty_out_of_range_names_the_field() {
        for bad in [
            "difficulty = 1.5",
            "difficulty = -1",
            "difficulty = \"hard\"",
        ] {
            let err = parse(bad, &[]).unwrap_err().to_string();
            assert!(err.contains("data.synthetic.difficulty"), "{bad}: {err}");
        }
        let err = parse("", &["data.synthetic.difficulty=2"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.synthetic.difficulty: must be in 0..=1, got 2"),
            "{err}"
        );
    }

    #[test]
    fn zero_difficulty_is_left_out_of_the_resolved_config() {
        let raw = parse("seed = 1", &[]).unwrap();
        assert!(!raw.to_toml().contains("difficulty"), "{}", raw.to_toml());
        let raw = parse("difficulty = 0.5", &[]).unwrap();
        assert!(
            raw.to_toml().contains("difficulty = 0.5"),
            "{}",
            raw.to_toml()
        );
    }
}
