//! [`SmallCnn`]: four conv-BN-ReLU-pool blocks, a backbone cheap enough to train on a CPU in
//! minutes (32-64 px images), for demos, tests and debugging.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::conv_bn_relu;
use crate::error::ModelError;
use crate::init::BackboneInit;
use crate::pool::MaxPool2dCeil;

/// Channels of the [`SmallCnn`]'s four blocks; the last is its feature size.
pub const SMALL_CNN_CHANNELS: [usize; 4] = [32, 64, 128, 256];

/// Features a [`SmallCnn`] hands to the head.
pub const SMALL_CNN_FEATURES: usize = SMALL_CNN_CHANNELS[3];

/// conv3x3 (no bias) -> BatchNorm -> ReLU -> max-pool 2x2.
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
            // 2x2/2, floor mode: burn's `MaxPool2d` sizes, on our host kernel on the CPU.
            pool: MaxPool2dCeil {
                kernel_size: 2,
                stride: 2,
                padding: 0,
                ceil_mode: false,
            },
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.pool.forward(conv_bn_relu(&self.conv, &self.bn, x))
    }
}

/// Four [`ConvBlock`]s (32-64-128-256 channels): 16x cheaper than GoogLeNet at 32-64 px.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Distribution, Tensor};
/// use ee_model::{BackboneInit, SmallCnn};
///
/// let device = Default::default();
/// let net = SmallCnn::<Flex>::new(BackboneInit::Kaiming, 7, &device);
/// let x = Tensor::<Flex, 4>::random([2, 3, 32, 32], Distribution::Default, &device);
/// assert_eq!(net.forward(x).dims(), [2, 256, 2, 2]);
/// ```
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

    /// Checks that `dims` is a batch of 3-channel images of at least 16 x 16 pixels.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        let [batch, channels, h, w] = dims;
        if batch == 0 || channels != 3 || h < 16 || w < 16 {
            return Err(ModelError::BadInput {
                what: "small CNN input",
                expected: "[batch >= 1, 3, height >= 16, width >= 16]".into(),
                got: dims.to_vec(),
            });
        }
        Ok(())
    }
}
