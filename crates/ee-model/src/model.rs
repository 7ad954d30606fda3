//! The full embedding network (backbone + head) and its config.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backbone::{Backbone, BackboneKind};
use crate::error::ModelError;
use crate::googlenet::GoogLeNetConfig;
use crate::head::{global_avg_pool, EmbeddingHead, EmbeddingHeadConfig};
use crate::init::BackboneInit;
use crate::resnet::ResNet50Config;
use crate::small_cnn::SmallCnn;
use crate::weights::ImportReport;

/// Settings of the [`EmbeddingModel`]; the `[model]` section of a run config.
///
/// ```toml
/// backbone = "googlenet"
/// embed_dim = 512
/// pretrained = "/data/weights/googlenet-1378be20.pth"
/// ```
#[derive(Config, Debug)]
pub struct EmbeddingModelConfig {
    /// The feature extractor; `None` means GoogLeNet, the paper's (an `Option` so that
    /// configs stored before this field existed still load).
    #[config(default = "None")]
    pub backbone: Option<BackboneKind>,
    /// Embedding size (the reference: 512).
    #[config(default = 512)]
    pub embed_dim: usize,
    /// A torchvision-keyed state dict of the backbone to initialise it from: torchvision's
    /// ImageNet `googlenet-1378be20.pth` for GoogLeNet, `resnet50-0676ba61.pth` (or
    /// `resnet50-11ad3fa6.pth`) for ResNet-50, or the same keys as safetensors.
    /// `None`: random initialisation. The small CNN has no pretrained weights.
    #[config(default = "None")]
    pub pretrained: Option<String>,
    /// Apply torchvision's `transform_input` re-normalisation in the backbone
    /// ([`TRANSFORM_INPUT`](crate::TRANSFORM_INPUT)). `None` means "on exactly when
    /// `pretrained` is set", as torchvision does for its ImageNet weights, which were trained
    /// on inputs normalised to `[-1, 1]`; set `Some(false)` for weights that expect plain
    /// ImageNet mean/std normalisation.
    #[config(default = "None")]
    pub transform_input: Option<bool>,
    /// Key prefix of the embedding head in `pretrained`: `{head_key}.weight` (torch's
    /// `[embed_dim, features]`, transposed on import) and `{head_key}.bias`. `None` means
    /// [`DEFAULT_HEAD_KEY`](crate::DEFAULT_HEAD_KEY) (`embedding`), loaded when the file has it
    /// (a backbone-only file leaves the head at its initialisation); when set, the file must
    /// have it.
    #[config(default = "None")]
    pub head_key: Option<String>,
    /// Optional hidden layer in the head (`None` in the reference).
    #[config(default = "None")]
    pub hidden_dim: Option<usize>,
    /// BatchNorm epsilon of GoogLeNet (torchvision: 1e-3; the small CNN uses burn's 1e-5).
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum of GoogLeNet (PyTorch convention: 0.1).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// How the backbone's convolutions are initialised when `pretrained` is not set; `None`
    /// means torchvision's truncated normal ([`BackboneInit::Torchvision`]). An `Option` so
    /// that configs stored before this field existed still load.
    #[config(default = "None")]
    pub init: Option<BackboneInit>,
    /// Seed of the head's and the backbone's initialisation.
    #[config(default = 0)]
    pub seed: u64,
}

impl EmbeddingModelConfig {
    /// The backbone this config builds ([`BackboneKind::Googlenet`] unless set).
    pub fn backbone_kind(&self) -> BackboneKind {
        self.backbone.unwrap_or_default()
    }

    /// Whether the backbone re-normalises its input (see
    /// [`EmbeddingModelConfig::transform_input`]).
    pub fn resolved_transform_input(&self) -> bool {
        self.transform_input.unwrap_or(self.pretrained.is_some())
    }

    /// GoogLeNet's settings (when [`EmbeddingModelConfig::backbone_kind`] is GoogLeNet).
    pub fn backbone_config(&self) -> GoogLeNetConfig {
        GoogLeNetConfig::new()
            .with_bn_epsilon(self.bn_epsilon)
            .with_bn_momentum(self.bn_momentum)
            .with_transform_input(self.resolved_transform_input())
            .with_init(self.init.unwrap_or_default())
            .with_seed(self.seed)
    }

    /// The head's settings.
    pub fn head_config(&self) -> EmbeddingHeadConfig {
        EmbeddingHeadConfig::new()
            .with_in_features(self.backbone_kind().features())
            .with_embed_dim(self.embed_dim)
            .with_hidden_dim(self.hidden_dim)
            .with_seed(self.seed)
    }

    /// Checks every setting (without touching the `pretrained` file beyond its existence).
    pub fn check(&self) -> Result<(), ModelError> {
        let kind = self.backbone_kind();
        if kind == BackboneKind::Googlenet {
            self.backbone_config().check()?;
        }
        if self.pretrained.is_some() && !kind.has_pretrained_weights() {
            return Err(ModelError::InvalidConfig {
                field: "pretrained",
                value: format!("{:?}", self.pretrained.as_deref().unwrap_or_default()),
                rule: "pretrained weights exist for backbone = \"googlenet\" and \"resnet50\" \
                       only (the small CNN has none): leave `pretrained` unset",
            });
        }
        if self.transform_input == Some(true) && kind != BackboneKind::Googlenet {
            return Err(ModelError::InvalidConfig {
                field: "transform_input",
                value: "true".into(),
                rule: "only GoogLeNet re-normalises its input",
            });
        }
        if let Some(key) = &self.head_key {
            if self.pretrained.is_none() || key.trim().is_empty() || key.ends_with('.') {
                return Err(ModelError::InvalidConfig {
                    field: "head_key",
                    value: format!("{key:?}"),
                    rule: "the head's key prefix in the `pretrained` state dict (set both), e.g. \
                           \"embedding\" for embedding.weight / embedding.bias",
                });
            }
        }
        self.head_config().check()?;
        if let Some(path) = &self.pretrained {
            if !Path::new(path).is_file() {
                return Err(ModelError::FileNotFound { path: path.into() });
            }
        }
        Ok(())
    }

    /// Builds the model, loading `pretrained` into the backbone when set.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<EmbeddingModel<B>, ModelError> {
        Ok(self.init_with_report(device)?.0)
    }

    /// As [`EmbeddingModelConfig::init`], also returning what the weight import did.
    pub fn init_with_report<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<(EmbeddingModel<B>, Option<ImportReport>), ModelError> {
        self.check()?;
        let head_key = Some(
            self.head_key
                .as_deref()
                .unwrap_or(crate::weights::DEFAULT_HEAD_KEY),
        );
        let (backbone, report) = match self.backbone_kind() {
            BackboneKind::Googlenet => {
                let backbone = self.backbone_config().init(device)?;
                match &self.pretrained {
                    Some(path) => {
                        let (backbone, report) =
                            backbone.load_torchvision_beside_head(path.as_ref(), head_key)?;
                        (Backbone::GoogLeNet(backbone), Some(report))
                    }
                    None => (Backbone::GoogLeNet(backbone), None),
                }
            }
            BackboneKind::Resnet50 => {
                let backbone = ResNet50Config::new()
                    .with_init(self.init.unwrap_or_default())
                    .with_seed(self.seed)
                    .init(device)?;
                match &self.pretrained {
                    Some(path) => {
                        let (backbone, report) =
                            backbone.load_torchvision_beside_head(path.as_ref(), head_key)?;
                        (Backbone::ResNet50(backbone), Some(report))
                    }
                    None => (Backbone::ResNet50(backbone), None),
                }
            }
            BackboneKind::SmallCnn => {
                // The small CNN's Kaiming init draws from the backend's RNG.
                B::seed(device, self.seed);
                let init = self.init.unwrap_or(BackboneInit::Kaiming);
                (
                    Backbone::SmallCnn(SmallCnn::new(init, self.seed, device)),
                    None,
                )
            }
        };
        let mut head = self.head_config().init(device)?;
        if let (Some(path), Some(report)) = (&self.pretrained, &report) {
            match (&report.head, &self.head_key) {
                (Some(prefix), _) => head = head.load_torch(path, prefix)?,
                // Asked for by name, so it must be there.
                (None, Some(prefix)) => {
                    return Err(ModelError::HeadMismatch {
                        path: Path::new(path).into(),
                        prefix: prefix.clone(),
                        missing: vec![format!("{prefix}.weight"), format!("{prefix}.bias")],
                        wrong_shape: Vec::new(),
                        other: Vec::new(),
                    })
                }
                (None, None) => {}
            }
        }
        Ok((EmbeddingModel { backbone, head }, report))
    }
}

/// A [`Backbone`] (GoogLeNet or the small CNN) -> global average pool -> [`EmbeddingHead`]:
/// images `[batch, 3, H, W]` to unit-norm embeddings `[batch, embed_dim]`.
///
/// The two parts are public fields so that a trainer can give the backbone its own learning
/// rate (split gradients with `GradientsParams::from_module(&mut grads, &model.backbone)` and
/// `GradientsParams::from_module(&mut grads, &model.head)`).
#[derive(Module, Debug)]
pub struct EmbeddingModel<B: Backend> {
    /// The feature extractor.
    pub backbone: Backbone<B>,
    /// The embedding head on the pooled backbone features.
    pub head: EmbeddingHead<B>,
}

impl<B: Backend> EmbeddingModel<B> {
    /// `[batch, 3, H, W]` (ImageNet mean/std normalised) -> `[batch, embed_dim]`.
    ///
    /// # Panics
    /// On a malformed input; call [`EmbeddingModel::check_input`] on untrusted shapes.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let features = self.backbone.forward(images); // [batch, C, h, w]
        self.head.forward(global_avg_pool(features)) // [batch, embed_dim]
    }

    /// The pooled backbone features `[batch, C]` (for exporting frozen features).
    pub fn pooled_features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        global_avg_pool(self.backbone.forward(images))
    }

    /// Checks that `dims` is a batch of 3-channel images large enough for the backbone.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        self.backbone.check_input(dims)
    }

    /// Embedding size.
    pub fn embed_dim(&self) -> usize {
        self.head.embed_dim()
    }
}

/// Images to embeddings: all that a trainer, an evaluator or an embedding export needs of a
/// model. Implement it for your own burn module to use it with `ee-train`.
pub trait Embed<B: Backend> {
    /// `[batch, 3, H, W]` (ImageNet mean/std normalised) -> `[batch, D]`.
    fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;
}

impl<B: Backend> Embed<B> for EmbeddingModel<B> {
    fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(images)
    }
}
