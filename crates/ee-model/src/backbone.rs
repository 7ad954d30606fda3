//! The backbone choice: which feature extractor sits before the embedding head.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::ModelError;
use crate::googlenet::{GoogLeNet, GOOGLENET_FEATURES};
use crate::resnet::{ResNet50, RESNET50_FEATURES};
use crate::small_cnn::{SmallCnn, SMALL_CNN_FEATURES};

pub use crate::network::BackboneKind;

impl BackboneKind {
    /// Channels of the feature map the backbone hands to the head.
    pub fn features(self) -> usize {
        match self {
            BackboneKind::Googlenet => GOOGLENET_FEATURES,
            BackboneKind::SmallCnn => SMALL_CNN_FEATURES,
            BackboneKind::Resnet50 => RESNET50_FEATURES,
        }
    }
}

/// The feature extractor before the head: images `[N, 3, H, W]` to feature maps
/// `[N, C, h, w]` (`C` = [`BackboneKind::features`]).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone<B: Backend> {
    /// torchvision's GoogLeNet (conv1 .. inception5b).
    GoogLeNet(GoogLeNet<B>),
    /// [`SmallCnn`].
    SmallCnn(SmallCnn<B>),
    /// torchvision's ResNet-50 (conv1 .. layer4).
    ResNet50(ResNet50<B>),
}

impl<B: Backend> Backbone<B> {
    /// Feature maps `[N, C, h, w]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Backbone::GoogLeNet(net) => net.forward(images),
            Backbone::SmallCnn(net) => net.forward(images),
            Backbone::ResNet50(net) => net.forward(images),
        }
    }

    /// Which backbone this is.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Backbone::GoogLeNet(_) => BackboneKind::Googlenet,
            Backbone::SmallCnn(_) => BackboneKind::SmallCnn,
            Backbone::ResNet50(_) => BackboneKind::Resnet50,
        }
    }

    /// Checks that `dims` is a batch of images the backbone can take.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        match self {
            Backbone::GoogLeNet(net) => net.check_input(dims),
            Backbone::SmallCnn(net) => net.check_input(dims),
            Backbone::ResNet50(net) => net.check_input(dims),
        }
    }

    /// Spatial size of the feature map for an `h` x `w` input, or `None` if the input is too
    /// small.
    pub fn feature_map_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        match self {
            Backbone::GoogLeNet(net) => net.feature_map_size(height, width),
            // Four floor-mode 2x2 pools.
            Backbone::SmallCnn(_) => {
                (height >= 16 && width >= 16).then_some([height / 16, width / 16])
            }
            Backbone::ResNet50(net) => net.feature_map_size(height, width),
        }
    }

    /// Whether the backbone re-normalises its input as torchvision's `transform_input` (only
    /// GoogLeNet can).
    pub fn transform_input(&self) -> bool {
        matches!(self, Backbone::GoogLeNet(net) if net.transform_input)
    }
}
