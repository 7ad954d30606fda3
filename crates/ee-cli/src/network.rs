//! The trained network: a backbone (GoogLeNet, or a small CNN for CPU demos) followed by
//! ee-model's [`EmbeddingHead`] (Linear with MXNet's Xavier init, then L2 normalisation).
//!
//! ```text
//! images [N, 3, S, S] --backbone--> [N, C, h, w] --global average pool--> [N, C]
//!   --Linear(C, embed_dim)--> --L2 normalise--> [N, embed_dim]
//! ```
//!
//! `backbone` and `head` are separate fields so the trainer can split gradients per part
//! and give the backbone its own learning rate.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use ee_model::{
    conv2d, global_avg_pool, BackboneInit, EmbeddingHead, EmbeddingHeadConfig,
    EmbeddingModelConfig, GoogLeNet, MaxPool2dCeil, GOOGLENET_FEATURES,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{BackboneKind, RawConfig};

/// Channels of the [`SmallCnn`]'s four blocks.
pub const SMALL_CNN_CHANNELS: [usize; 4] = [32, 64, 128, 256];

/// conv3x3 -> BatchNorm -> ReLU -> max-pool 2x2.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
    pool: MaxPool2dCeil,
}

impl<B: Backend> ConvBlock<B> {
    fn new(
        input: usize,
        output: usize,
        init: BackboneInit,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let conv = Conv2dConfig::new([input, output], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false);
        ConvBlock {
            conv: init.conv2d(&conv, rng, device),
            bn: BatchNormConfig::new(output).init(device),
            // 2x2/2, floor mode: burn's `MaxPool2d` sizes, on ee-model's host kernel on the CPU.
            pool: MaxPool2dCeil {
                kernel_size: 2,
                stride: 2,
                padding: 0,
                ceil_mode: false,
            },
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.pool
            .forward(relu(ee_model::batch_norm(&self.bn, conv2d(&self.conv, x))))
    }
}

/// Four [`ConvBlock`]s (32-64-128-256 channels): 16x cheaper than GoogLeNet at 32-64 px, for
/// training on a CPU in minutes.
#[derive(Module, Debug)]
pub struct SmallCnn<B: Backend> {
    blocks: Vec<ConvBlock<B>>,
}

impl<B: Backend> SmallCnn<B> {
    /// A randomly initialised small CNN (`seed` feeds [`BackboneInit::Torchvision`]; Kaiming
    /// draws from the backend's RNG).
    pub fn new(init: BackboneInit, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let mut input = 3;
        let blocks = SMALL_CNN_CHANNELS
            .iter()
            .map(|&output| {
                let block = ConvBlock::new(input, output, init, &mut rng, device);
                input = output;
                block
            })
            .collect();
        SmallCnn { blocks }
    }

    /// `[N, 3, S, S]` -> `[N, 256, S/16, S/16]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// The feature extractor before the head.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone<B: Backend> {
    /// torchvision's GoogLeNet (conv1 .. inception5b).
    GoogLeNet(GoogLeNet<B>),
    /// [`SmallCnn`].
    SmallCnn(SmallCnn<B>),
}

impl<B: Backend> Backbone<B> {
    /// Feature maps `[N, C, h, w]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Backbone::GoogLeNet(net) => net.forward(images),
            Backbone::SmallCnn(net) => net.forward(images),
        }
    }
}

/// Backbone -> global average pool -> embedding head.
#[derive(Module, Debug)]
pub struct Network<B: Backend> {
    /// The feature extractor (trained at `lr * base_lr_mult`).
    pub backbone: Backbone<B>,
    /// Linear + L2 normalisation (trained at `lr`).
    pub head: EmbeddingHead<B>,
}

/// Builds the network a config describes; `load_pretrained` reads `model.pretrained` (off when
/// the weights come from a checkpoint anyway).
pub fn build_network<B: Backend>(
    config: &RawConfig,
    load_pretrained: bool,
    device: &B::Device,
) -> Result<Network<B>, ee_model::ModelError> {
    B::seed(device, config.run.seed);
    let model = &config.model;
    match model.backbone {
        BackboneKind::Googlenet => {
            let pretrained = model.pretrained.as_ref().map(|p| p.display().to_string());
            let model_config = EmbeddingModelConfig::new()
                .with_embed_dim(model.embed_dim)
                .with_seed(config.run.seed)
                .with_transform_input(Some(pretrained.is_some()))
                .with_init(Some(model.resolved_init()))
                .with_pretrained(if load_pretrained { pretrained } else { None });
            let built = model_config.init::<B>(device)?;
            Ok(Network {
                backbone: Backbone::GoogLeNet(built.backbone),
                head: built.head,
            })
        }
        BackboneKind::SmallCnn => {
            let head = EmbeddingHeadConfig::new()
                .with_in_features(SMALL_CNN_CHANNELS[3])
                .with_embed_dim(model.embed_dim)
                .with_seed(config.run.seed)
                .init(device)?;
            Ok(Network {
                backbone: Backbone::SmallCnn(SmallCnn::new(
                    model.resolved_init(),
                    config.run.seed,
                    device,
                )),
                head,
            })
        }
    }
}

/// Features the backbone kind hands to the head.
pub fn backbone_features(kind: BackboneKind) -> usize {
    match kind {
        BackboneKind::Googlenet => GOOGLENET_FEATURES,
        BackboneKind::SmallCnn => SMALL_CNN_CHANNELS[3],
    }
}

impl<B: Backend> Network<B> {
    /// `[N, 3, S, S]` (ImageNet-normalised) -> unit-norm embeddings `[N, embed_dim]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let features = self.backbone.forward(images); // [N, C, h, w]
        self.head.forward(global_avg_pool(features)) // [N, embed_dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    #[test]
    fn small_cnn_embeds_to_unit_norm() {
        let device = Default::default();
        let raw = crate::config::RawConfig::parse_str(
            "[data]\nformat = \"synthetic\"\nroot = \"x\"\n[model]\nbackbone = \"small_cnn\"\nembed_dim = 16\n[run]\noutput_dir = \"r\"",
            &[],
            "t",
        )
        .unwrap();
        let net = build_network::<Flex>(&raw, true, &device).unwrap();
        let x = Tensor::<Flex, 4>::random([2, 3, 32, 32], Distribution::Default, &device);
        let y = net.forward(x);
        assert_eq!(y.dims(), [2, 16]);
        let norms: Vec<f32> = y.powf_scalar(2.0).sum_dim(1).into_data().to_vec().unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-4, "{n}");
        }
    }
}
