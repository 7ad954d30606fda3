//! [`BackboneKind`], the backbone choice, in a leaf module: the error type
//! ([`ModelError`](crate::ModelError)) names one (the network a weight file was checked
//! against) without depending on the backbones or the importer.

use serde::{Deserialize, Serialize};

/// Which backbone an [`EmbeddingModel`](crate::EmbeddingModel) uses (`model.backbone` in a
/// run config: `"googlenet"`, `"resnet50"`, `"small_cnn"`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// torchvision's GoogLeNet (Inception v1 with BatchNorm), the paper's backbone.
    #[default]
    Googlenet,
    /// [`SmallCnn`](crate::SmallCnn): four conv blocks, for CPU demos and tests.
    SmallCnn,
    /// torchvision's ResNet-50 (v1.5), the backbone of most metric-learning work since 2020.
    Resnet50,
}

impl BackboneKind {
    /// The name used in config files.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Googlenet => "googlenet",
            BackboneKind::SmallCnn => "small_cnn",
            BackboneKind::Resnet50 => "resnet50",
        }
    }

    /// The name in messages: `"GoogLeNet"`, `"small CNN"`, `"ResNet-50"`.
    pub fn title(self) -> &'static str {
        match self {
            BackboneKind::Googlenet => "GoogLeNet",
            BackboneKind::SmallCnn => "small CNN",
            BackboneKind::Resnet50 => "ResNet-50",
        }
    }

    /// torchvision's ImageNet weight file for it, which
    /// [`EmbeddingModelConfig::pretrained`](crate::EmbeddingModelConfig::pretrained) can load
    /// (`None`: the small CNN has none).
    pub fn torchvision_weights_file(self) -> Option<&'static str> {
        match self {
            BackboneKind::Googlenet => Some("googlenet-1378be20.pth"),
            BackboneKind::SmallCnn => None,
            BackboneKind::Resnet50 => Some("resnet50-0676ba61.pth"),
        }
    }

    /// Whether torchvision publishes ImageNet weights for it that
    /// [`EmbeddingModelConfig::pretrained`](crate::EmbeddingModelConfig::pretrained) can load.
    pub fn has_pretrained_weights(self) -> bool {
        self.torchvision_weights_file().is_some()
    }

    /// The smallest image side it takes (GoogLeNet's and ResNet-50's strided stem and pools
    /// need 32 px; the small CNN's four 2x2 pools 16).
    pub fn min_image_size(self) -> usize {
        match self {
            BackboneKind::SmallCnn => 16,
            BackboneKind::Googlenet | BackboneKind::Resnet50 => 32,
        }
    }
}
