//! The ResNet-50 backbone: torchvision's `resnet50` (v1.5: the stride of a downsampling block
//! sits on its 3x3 convolution), conv1 to layer4, with torchvision's parameter names.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::batch_norm::batch_norm;
use crate::conv::{conv2d, conv_bn_relu};
use crate::error::ModelError;
use crate::init::BackboneInit;
use crate::pool::MaxPool2dCeil;

/// Channels of the backbone's output feature map (`512 * 4`).
pub const RESNET50_FEATURES: usize = 2048;

/// Output channels of a bottleneck block per 3x3 channel (torchvision's `expansion`).
const EXPANSION: usize = 4;

/// `(width, blocks, stride)` of layer1 .. layer4: the block's 1x1 and 3x3 convolutions have
/// `width` channels, its output `width * 4`; the first block of a layer carries the stride.
const LAYERS: [(usize, usize, usize); 4] = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)];

/// ChaCha8 stream of the backbone's weight draws (as GoogLeNet's; a head draws from stream 0).
const BACKBONE_STREAM: u64 = 1;

/// Settings of the [`ResNet50`] backbone.
#[derive(Config, Debug)]
pub struct ResNet50Config {
    /// BatchNorm epsilon (torchvision: 1e-5).
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum (PyTorch convention, torchvision: 0.1).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// How the convolution weights are drawn: [`BackboneInit::Torchvision`] (the default) is
    /// torchvision's ResNet init, `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, i.e.
    /// `N(0, 2 / (out_channels * kh * kw))`; [`BackboneInit::Kaiming`] is burn's
    /// Kaiming-uniform default. BatchNorm starts at weight 1, bias 0, running mean 0, running
    /// variance 1 either way. Loaded pretrained weights replace all of it.
    #[config(default = "BackboneInit::Torchvision")]
    pub init: BackboneInit,
    /// Seed of the [`BackboneInit::Torchvision`] draws (ChaCha8, stream 1, in layer order).
    #[config(default = 0)]
    pub seed: u64,
}

impl ResNet50Config {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), ModelError> {
        crate::batch_norm::check_settings(self.bn_epsilon, self.bn_momentum)
    }

    /// Builds a randomly initialised backbone (load weights with
    /// [`ResNet50::load_torchvision`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ResNet50<B>, ModelError> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(BACKBONE_STREAM);
        let mut layers = Layers {
            config: self,
            rng,
            device,
        };
        let conv1 = layers.conv(3, 64, 7, 2);
        let bn1 = layers.bn(64);
        let mut in_channels = 64;
        let [layer1, layer2, layer3, layer4] = LAYERS.map(|(width, blocks, stride)| {
            (0..blocks)
                .map(|i| {
                    let stride = if i == 0 { stride } else { 1 };
                    let block = layers.bottleneck(in_channels, width, stride);
                    in_channels = width * EXPANSION;
                    block
                })
                .collect::<Vec<Bottleneck<B>>>()
        });
        Ok(ResNet50 {
            conv1,
            bn1,
            maxpool: MaxPool2dCeil {
                kernel_size: 3,
                stride: 2,
                padding: 1,
                ceil_mode: false,
            },
            layer1,
            layer2,
            layer3,
            layer4,
        })
    }
}

/// Builds the layers in torchvision's module order, drawing their weights from one stream.
struct Layers<'a, D> {
    config: &'a ResNet50Config,
    rng: ChaCha8Rng,
    device: &'a D,
}

impl<D> Layers<'_, D> {
    /// A bias-free `k x k` convolution with padding `k / 2` (torchvision's conv1x1, conv3x3
    /// and the 7x7 stem).
    fn conv<B: Backend<Device = D>>(
        &mut self,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
    ) -> Conv2d<B> {
        let padding = kernel / 2;
        let config = Conv2dConfig::new([input, output], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(false);
        self.config
            .init
            .resnet_conv2d(&config, &mut self.rng, self.device)
    }

    fn bn<B: Backend<Device = D>>(&mut self, channels: usize) -> BatchNorm<B> {
        BatchNormConfig::new(channels)
            .with_epsilon(self.config.bn_epsilon)
            .with_momentum(self.config.bn_momentum)
            .init(self.device)
    }

    fn bottleneck<B: Backend<Device = D>>(
        &mut self,
        input: usize,
        width: usize,
        stride: usize,
    ) -> Bottleneck<B> {
        let output = width * EXPANSION;
        let conv1 = self.conv(input, width, 1, 1);
        let bn1 = self.bn(width);
        let conv2 = self.conv(width, width, 3, stride);
        let bn2 = self.bn(width);
        let conv3 = self.conv(width, output, 1, 1);
        let bn3 = self.bn(output);
        let downsample = (stride != 1 || input != output)
            .then(|| (self.conv(input, output, 1, stride), self.bn(output)));
        Bottleneck {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample,
        }
    }
}

/// torchvision's `Bottleneck` (ResNet v1.5): 1x1 reduce, 3x3 with the block's stride, 1x1
/// expand (x4), each followed by BatchNorm; the shortcut is the identity or, in the first
/// block of a layer, `downsample` (a 1x1 convolution with the stride and a BatchNorm).
///
/// ```text
/// y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))
/// ```
/// Parameter paths: `conv1.weight`, `bn1.{gamma,beta,running_mean,running_var}` (torchvision's
/// `bn1.weight`/`bn1.bias`), ..., `downsample.0.weight` (conv), `downsample.1.*` (BatchNorm),
/// exactly torchvision's keys.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    /// 1x1, in -> width.
    pub conv1: Conv2d<B>,
    /// BatchNorm of [`Bottleneck::conv1`].
    pub bn1: BatchNorm<B>,
    /// 3x3 pad 1, width -> width, the block's stride.
    pub conv2: Conv2d<B>,
    /// BatchNorm of [`Bottleneck::conv2`].
    pub bn2: BatchNorm<B>,
    /// 1x1, width -> 4 width.
    pub conv3: Conv2d<B>,
    /// BatchNorm of [`Bottleneck::conv3`] (torchvision's default: weight 1, not
    /// `zero_init_residual`).
    pub bn3: BatchNorm<B>,
    /// The projection shortcut `(1x1 conv with the stride, BatchNorm)`, torchvision's
    /// `downsample = Sequential(conv1x1, BatchNorm2d)`; `None` for the identity.
    pub downsample: Option<(Conv2d<B>, BatchNorm<B>)>,
}

impl<B: Backend> Bottleneck<B> {
    /// `[batch, in, h, w]` -> `[batch, 4 width, h / stride, w / stride]` (rounded up).
    pub fn forward(&self, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some((conv, bn)) => batch_norm(bn, conv2d(conv, input.clone())),
            None => input.clone(),
        };
        let features = conv_bn_relu(&self.conv1, &self.bn1, input);
        let features = conv_bn_relu(&self.conv2, &self.bn2, features);
        let features = batch_norm(&self.bn3, conv2d(&self.conv3, features));
        relu(features + shortcut)
    }
}

/// torchvision's ResNet-50 feature extractor, conv1 .. layer4 (no average pool, no fc):
/// `[batch, 3, H, W]` -> `[batch, 2048, ceil(H / 32), ceil(W / 32)]`, 7x7 for 224 px.
///
/// ```text
/// conv1 7x7/2 p3 -> bn1 -> relu -> maxpool 3x3/2 p1 (floor mode)
/// -> layer1 (3 blocks, 256) -> layer2 (4, 512, /2) -> layer3 (6, 1024, /2) -> layer4 (3, 2048, /2)
/// ```
/// Parameter paths equal torchvision's state-dict keys (`conv1.weight`,
/// `layer3.0.downsample.1.running_var`, ...), with burn's `gamma`/`beta` for BatchNorm's
/// `weight`/`bias`. Images are expected normalised with the ImageNet mean/std, as torchvision's
/// weights expect (there is no `transform_input`).
#[derive(Module, Debug)]
pub struct ResNet50<B: Backend> {
    /// 7x7/2 stem convolution, 3 -> 64 channels, pad 3.
    pub conv1: Conv2d<B>,
    /// BatchNorm of the stem.
    pub bn1: BatchNorm<B>,
    /// 3x3/2 max pool, pad 1, floor mode.
    pub maxpool: MaxPool2dCeil,
    /// 3 blocks, 64 -> 256 channels, stride 1.
    pub layer1: Vec<Bottleneck<B>>,
    /// 4 blocks, 256 -> 512, stride 2.
    pub layer2: Vec<Bottleneck<B>>,
    /// 6 blocks, 512 -> 1024, stride 2.
    pub layer3: Vec<Bottleneck<B>>,
    /// 3 blocks, 1024 -> 2048, stride 2.
    pub layer4: Vec<Bottleneck<B>>,
}

impl<B: Backend> ResNet50<B> {
    /// Feature map of a batch of images: `[batch, 3, h, w]` -> `[batch, 2048, h', w']`
    /// ([`ResNet50::feature_map_size`]).
    ///
    /// # Panics
    /// When the input does not have 3 channels (see [`ResNet50::check_input`]).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let features = conv_bn_relu(&self.conv1, &self.bn1, images);
        let features = self.maxpool.forward(features);
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(features, |x, block| block.forward(x))
    }

    /// Checks that `dims` is `[batch >= 1, 3, h, w]` with `h, w >= 1`.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), ModelError> {
        let [batch, channels, h, w] = dims;
        if batch == 0 || channels != 3 || self.feature_map_size(h, w).is_none() {
            return Err(ModelError::BadInput {
                what: "ResNet-50 input",
                expected: "[batch >= 1, 3, height, width] with height, width >= 1".into(),
                got: dims.to_vec(),
            });
        }
        Ok(())
    }

    /// Spatial size of the output feature map for an `h` x `w` input (224 -> 7, 64 -> 2,
    /// 65 -> 3: five halvings rounded up), or `None` for an empty input.
    pub fn feature_map_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        // conv1 7x7/2 pad 3, then the pool, then one 3x3/2 pad 1 conv in each of layer2..4.
        let conv =
            |n: usize, k: usize, s: usize| (n + 2 * (k / 2)).checked_sub(k).map(|d| d / s + 1);
        let size = |n: usize| -> Option<usize> {
            let n = conv(n, 7, 2)?;
            let mut n = self.maxpool.output_size(n, n)?[0];
            for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
                for block in layer {
                    n = conv(n, 3, block.conv2.stride[0])?;
                }
            }
            Some(n)
        };
        Some([size(height)?, size(width)?])
    }
}
