//! The GoogLeNet backbone: torchvision's `googlenet` (Inception v1 with BatchNorm), conv1 to
//! inception5b, with torchvision's parameter names.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

use crate::conv::conv_bn_relu;
use crate::error::ModelError;
use crate::init::BackboneInit;
use crate::pool::MaxPool2dCeil;

/// Channels of the backbone's output feature map.
pub const GOOGLENET_FEATURES: usize = 1024;

/// Per-channel `(scale, shift)` of torchvision's `transform_input`: it maps an image normalised
/// with the ImageNet mean/std to the `(x - 0.5) / 0.5` normalisation that torchvision's
/// GoogLeNet weights (ported from TensorFlow) expect:
///
/// ```text
/// x_c' = x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5
/// mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225)
/// ```
pub const TRANSFORM_INPUT: [(f32, f32); 3] = [
    (0.229 / 0.5, (0.485 - 0.5) / 0.5),
    (0.224 / 0.5, (0.456 - 0.5) / 0.5),
    (0.225 / 0.5, (0.406 - 0.5) / 0.5),
];

/// Channel counts of one inception block, in torchvision's argument order:
/// `(in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection)`.
/// torchvision's "5x5" branch uses a 3x3 kernel; so do we.
type InceptionChannels = (usize, usize, usize, usize, usize, usize, usize);

const INCEPTION_3A: InceptionChannels = (192, 64, 96, 128, 16, 32, 32);
const INCEPTION_3B: InceptionChannels = (256, 128, 128, 192, 32, 96, 64);
const INCEPTION_4A: InceptionChannels = (480, 192, 96, 208, 16, 48, 64);
const INCEPTION_4B: InceptionChannels = (512, 160, 112, 224, 24, 64, 64);
const INCEPTION_4C: InceptionChannels = (512, 128, 128, 256, 24, 64, 64);
const INCEPTION_4D: InceptionChannels = (512, 112, 144, 288, 32, 64, 64);
const INCEPTION_4E: InceptionChannels = (528, 256, 160, 320, 32, 128, 128);
const INCEPTION_5A: InceptionChannels = (832, 256, 160, 320, 32, 128, 128);
const INCEPTION_5B: InceptionChannels = (832, 384, 192, 384, 48, 128, 128);

/// Settings of a [`BasicConv2d`].
#[derive(Config, Debug)]
pub struct BasicConv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel_size: usize,
    /// Stride in both directions.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding on every side.
    #[config(default = 0)]
    pub padding: usize,
    /// BatchNorm epsilon (torchvision's GoogLeNet: 1e-3).
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum (PyTorch convention: weight of the new batch).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl BasicConv2dConfig {
    /// Builds the layer (burn's default Kaiming-uniform conv init, BatchNorm gamma 1, beta 0,
    /// running mean 0, running variance 1).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BasicConv2d<B> {
        // Kaiming draws from the backend's RNG: this one is never used.
        self.init_with(
            BackboneInit::Kaiming,
            &mut ChaCha8Rng::seed_from_u64(0),
            device,
        )
    }

    /// Builds the layer with the given conv init (`rng` feeds [`BackboneInit::Torchvision`]);
    /// BatchNorm as in [`BasicConv2dConfig::init`].
    pub fn init_with<B: Backend>(
        &self,
        init: BackboneInit,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> BasicConv2d<B> {
        let padding = self.padding;
        let conv_config = Conv2dConfig::new(
            [self.in_channels, self.out_channels],
            [self.kernel_size, self.kernel_size],
        )
        .with_stride([self.stride, self.stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false);
        let conv = init.conv2d(&conv_config, rng, device);
        let bn = BatchNormConfig::new(self.out_channels)
            .with_epsilon(self.bn_epsilon)
            .with_momentum(self.bn_momentum)
            .init(device);
        BasicConv2d { conv, bn }
    }
}

/// torchvision's `BasicConv2d`: convolution without bias, BatchNorm, ReLU.
///
/// ```text
/// y = relu(gamma * (conv(x) - mean) / sqrt(var + eps) + beta)
/// ```
/// `mean`/`var` are the batch statistics on an autodiff backend (training) and the running
/// statistics otherwise (after `.valid()`).
#[derive(Module, Debug)]
pub struct BasicConv2d<B: Backend> {
    /// The convolution (`*.conv.weight`).
    pub conv: Conv2d<B>,
    /// The BatchNorm (`*.bn.{weight,bias,running_mean,running_var}` in torchvision).
    pub bn: BatchNorm<B>,
}

impl<B: Backend> BasicConv2d<B> {
    /// `[batch, in, h, w]` -> `[batch, out, h', w']`.
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        conv_bn_relu(&self.conv, &self.bn, input)
    }
}

/// One inception block: four branches concatenated on channels, in torchvision's order.
///
/// Parameter paths: `branch1.*`, `branch2.{0,1}.*`, `branch3.{0,1}.*` as torchvision's;
/// torchvision's `branch4.1.*` (index 0 is its max pool) is `branch4.0.*` here, which the
/// weight import remaps.
#[derive(Module, Debug)]
pub struct Inception<B: Backend> {
    /// 1x1 convolution.
    pub branch1: BasicConv2d<B>,
    /// 1x1 reduction, then 3x3 (pad 1).
    pub branch2: Vec<BasicConv2d<B>>,
    /// 1x1 reduction, then 3x3 (pad 1); the paper's 5x5 branch.
    pub branch3: Vec<BasicConv2d<B>>,
    /// The 1x1 projection after [`Inception::pool`].
    pub branch4: Vec<BasicConv2d<B>>,
    /// 3x3 max pool, stride 1, pad 1, ceil mode (first step of branch 4).
    pub pool: MaxPool2dCeil,
}

impl<B: Backend> Inception<B> {
    fn new(channels: InceptionChannels, layers: &LayerSettings, device: &B::Device) -> Self {
        let (input, c1x1, c3x3_reduce, c3x3, c5x5_reduce, c5x5, pool_proj) = channels;
        let conv = |i: usize, o: usize, k: usize, p: usize| layers.conv(i, o, k, 1, p, device);
        Self {
            branch1: conv(input, c1x1, 1, 0),
            branch2: vec![
                conv(input, c3x3_reduce, 1, 0),
                conv(c3x3_reduce, c3x3, 3, 1),
            ],
            branch3: vec![
                conv(input, c5x5_reduce, 1, 0),
                conv(c5x5_reduce, c5x5, 3, 1),
            ],
            branch4: vec![conv(input, pool_proj, 1, 0)],
            pool: MaxPool2dCeil {
                kernel_size: 3,
                stride: 1,
                padding: 1,
                ceil_mode: true,
            },
        }
    }

    /// `[batch, in, h, w]` -> `[batch, 1x1 + 3x3 + 5x5 + pool_proj, h, w]`.
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let sequence = |layers: &[BasicConv2d<B>], x: Tensor<B, 4>| {
            layers.iter().fold(x, |x, layer| layer.forward(x))
        };
        let b1 = self.branch1.forward(input.clone());
        let b2 = sequence(&self.branch2, input.clone());
        let b3 = sequence(&self.branch3, input.clone());
        let b4 = sequence(&self.branch4, self.pool.forward(input));
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        let out = |c: &BasicConv2d<B>| c.conv.weight.dims()[0];
        out(&self.branch1) + out(&self.branch2[1]) + out(&self.branch3[1]) + out(&self.branch4[0])
    }
}

/// What every [`BasicConv2d`] of one backbone shares: BatchNorm settings and the weight init
/// with its random stream (drawn in layer order).
struct LayerSettings {
    epsilon: f64,
    momentum: f64,
    init: BackboneInit,
    rng: RefCell<ChaCha8Rng>,
}

impl LayerSettings {
    fn conv<B: Backend>(
        &self,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        device: &B::Device,
    ) -> BasicConv2d<B> {
        BasicConv2dConfig::new(input, output, kernel)
            .with_stride(stride)
            .with_padding(padding)
            .with_bn_epsilon(self.epsilon)
            .with_bn_momentum(self.momentum)
            .init_with(self.init, &mut self.rng.borrow_mut(), device)
    }
}

/// ChaCha8 stream of the backbone's weight draws (the head draws from stream 0).
const BACKBONE_STREAM: u64 = 1;

/// Settings of the [`GoogLeNet`] backbone.
#[derive(Config, Debug)]
pub struct GoogLeNetConfig {
    /// BatchNorm epsilon (torchvision: 1e-3).
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum (PyTorch convention, torchvision: 0.1).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// Apply torchvision's `transform_input` re-normalisation ([`TRANSFORM_INPUT`]) before
    /// conv1. torchvision's ImageNet weights need it; see
    /// [`EmbeddingModelConfig::transform_input`](crate::EmbeddingModelConfig::transform_input).
    #[config(default = false)]
    pub transform_input: bool,
    /// How the convolution weights are drawn (torchvision's truncated normal by default;
    /// see [`BackboneInit`]). Loaded pretrained weights replace them.
    #[config(default = "BackboneInit::Torchvision")]
    pub init: BackboneInit,
    /// Seed of the [`BackboneInit::Torchvision`] draws (ChaCha8, stream 1; the head uses
    /// stream 0 of the same seed).
    #[config(default = 0)]
    pub seed: u64,
}

impl GoogLeNetConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), ModelError> {
        crate::batch_norm::check_settings(self.bn_epsilon, self.bn_momentum)
    }

    /// Builds a randomly initialised backbone (load weights with
    /// [`GoogLeNet::load_torchvision`](crate::GoogLeNet::load_torchvision)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<GoogLeNet<B>, ModelError> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(BACKBONE_STREAM);
        let bn = LayerSettings {
            epsilon: self.bn_epsilon,
            momentum: self.bn_momentum,
            init: self.init,
            rng: RefCell::new(rng),
        };
        let conv =
            |i: usize, o: usize, k: usize, s: usize, p: usize| bn.conv(i, o, k, s, p, device);
        let pool = |k: usize| MaxPool2dCeil {
            kernel_size: k,
            stride: 2,
            padding: 0,
            ceil_mode: true,
        };
        Ok(GoogLeNet {
            conv1: conv(3, 64, 7, 2, 3),
            maxpool1: pool(3),
            conv2: conv(64, 64, 1, 1, 0),
            conv3: conv(64, 192, 3, 1, 1),
            maxpool2: pool(3),
            inception3a: Inception::new(INCEPTION_3A, &bn, device),
            inception3b: Inception::new(INCEPTION_3B, &bn, device),
            maxpool3: pool(3),
            inception4a: Inception::new(INCEPTION_4A, &bn, device),
            inception4b: Inception::new(INCEPTION_4B, &bn, device),
            inception4c: Inception::new(INCEPTION_4C, &bn, device),
            inception4d: Inception::new(INCEPTION_4D, &bn, device),
            inception4e: Inception::new(INCEPTION_4E, &bn, device),
            maxpool4: pool(2),
            inception5a: Inception::new(INCEPTION_5A, &bn, device),
            inception5b: Inception::new(INCEPTION_5B, &bn, device),
            transform_input: self.transform_input,
        })
    }
}

/// torchvision's GoogLeNet feature extractor, conv1 .. inception5b (no aux classifiers, no
/// pooling, no fc): `[batch, 3, H, W]` -> `[batch, 1024, H', W']`, 7x7 for 224 and 227 px
/// ([`GoogLeNet::feature_map_size`] gives it for any size).
///
/// ```text
/// conv1 7x7/2 p3 -> maxpool 3x3/2 ceil -> conv2 1x1 -> conv3 3x3 p1 -> maxpool 3x3/2 ceil
/// -> 3a -> 3b -> maxpool 3x3/2 ceil -> 4a .. 4e -> maxpool 2x2/2 ceil -> 5a -> 5b
/// ```
/// Parameter paths equal torchvision's state-dict keys (`conv1.conv.weight`,
/// `inception4c.branch2.1.bn.running_var`, ...), except `inceptionX.branch4.1.*`, which is
/// `inceptionX.branch4.0.*` here.
#[derive(Module, Debug)]
pub struct GoogLeNet<B: Backend> {
    /// 7x7/2 stem convolution, 3 -> 64 channels.
    pub conv1: BasicConv2d<B>,
    /// 3x3/2 ceil-mode max pool.
    pub maxpool1: MaxPool2dCeil,
    /// 1x1, 64 -> 64.
    pub conv2: BasicConv2d<B>,
    /// 3x3 pad 1, 64 -> 192.
    pub conv3: BasicConv2d<B>,
    /// 3x3/2 ceil-mode max pool.
    pub maxpool2: MaxPool2dCeil,
    /// 192 -> 256.
    pub inception3a: Inception<B>,
    /// 256 -> 480.
    pub inception3b: Inception<B>,
    /// 3x3/2 ceil-mode max pool.
    pub maxpool3: MaxPool2dCeil,
    /// 480 -> 512.
    pub inception4a: Inception<B>,
    /// 512 -> 512.
    pub inception4b: Inception<B>,
    /// 512 -> 512.
    pub inception4c: Inception<B>,
    /// 512 -> 528.
    pub inception4d: Inception<B>,
    /// 528 -> 832.
    pub inception4e: Inception<B>,
    /// 2x2/2 ceil-mode max pool.
    pub maxpool4: MaxPool2dCeil,
    /// 832 -> 832.
    pub inception5a: Inception<B>,
    /// 832 -> 1024.
    pub inception5b: Inception<B>,
    /// Whether [`TRANSFORM_INPUT`] is applied to the input first (on for torchvision's
    /// ImageNet weights).
    pub transform_input: bool,
}

impl<B: Backend> GoogLeNet<B> {
    /// Feature map of a batch of images: `[batch, 3, h, w]` -> `[batch, 1024, h', w']`.
    ///
    /// Images are expected normalised with the ImageNet mean/std (as the reference and
    /// torchvision do); with [`GoogLeNet::transform_input`] on they are re-normalised first.
    ///
    /// # Panics
    /// When the input does not have 3 channels (see [`GoogLeNet::check_input`]).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let features = if self.transform_input {
            apply_transform_input(images)
        } else {
            images
        };
        let features = self.conv1.forward(features);
        let features = self.maxpool1.forward(features);
        let features = self.conv2.forward(features);
        let features = self.conv3.forward(features);
        let features = self.maxpool2.forward(features);
        let features = self.inception3a.forward(features);
        let features = self.inception3b.forward(features);
        let features = self.maxpool3.forward(features);
        let features = self.inception4a.forward(features);
        let features = self.inception4b.forward(features);
        let features = self.inception4c.forward(features);
        let features = self.inception4d.forward(features);
        let features = self.inception4e.forward(features);
        let features = self.maxpool4.forward(features);
        let features = self.inception5a.forward(features);
        self.inception5b.forward(features)
    }

    /// Checks that `dims` is `[batch >= 1, 3, h, w]` with `h, w` large enough for every layer.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        let [batch, channels, h, w] = dims;
        if batch == 0 || channels != 3 || self.feature_map_size(h, w).is_none() {
            return Err(ModelError::BadInput {
                what: "GoogLeNet input",
                expected: "[batch >= 1, 3, height, width] with height, width >= 1".into(),
                got: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// Spatial size of the output feature map for an `h` x `w` input (e.g. 227 -> 7), or
    /// `None` if the input is too small.
    pub fn feature_map_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        // conv1: 7x7, stride 2, pad 3.
        let conv1 = |n: usize| (n + 6).checked_sub(7).map(|s| s / 2 + 1);
        let [mut height, mut width] = [conv1(height)?, conv1(width)?];
        for pool in [
            &self.maxpool1,
            &self.maxpool2,
            &self.maxpool3,
            &self.maxpool4,
        ] {
            [height, width] = pool.output_size(height, width)?;
        }
        Some([height, width])
    }
}

/// torchvision's `transform_input` ([`TRANSFORM_INPUT`]) on `[batch, 3, h, w]`.
pub fn apply_transform_input<B: Backend>(images: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = images.device();
    let scale = Tensor::<B, 1>::from_floats(TRANSFORM_INPUT.map(|(s, _)| s), &device);
    let shift = Tensor::<B, 1>::from_floats(TRANSFORM_INPUT.map(|(_, t)| t), &device);
    images * scale.reshape([1, 3, 1, 1]) + shift.reshape([1, 3, 1, 1])
}
