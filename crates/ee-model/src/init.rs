//! How a backbone's convolution weights are drawn when no pretrained weights are loaded.
//!
//! torchvision's GoogLeNet (`init_weights=True`) draws every conv and linear weight from
//! `trunc_normal_(mean 0, std 0.01, a -2, b 2)` and sets BatchNorm to 1 / 0. burn's
//! `Conv2dConfig` default is Kaiming-uniform, `U(+-1/sqrt(fan_in))` (PyTorch's default conv
//! init). From scratch on a 100-class zero-shot task at 64 px, the same recipe in PyTorch
//! reached test Recall@1 0.146 after 252 steps with torchvision's init and 0.036 with the
//! Kaiming-uniform one: the initialisation alone made learning about 4x slower.
//!
//! torchvision's ResNet draws every conv weight from `kaiming_normal_(mode="fan_out",
//! nonlinearity="relu")`, `N(0, 2 / fan_out)` with `fan_out = out_channels * kh * kw`, and
//! sets BatchNorm to 1 / 0 ([`BackboneInit::resnet_conv2d`]).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::Initializer;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Standard deviation of torchvision's GoogLeNet weight init.
pub const TORCHVISION_INIT_STD: f64 = 0.01;

/// Truncation bounds `(a, b)` of torchvision's GoogLeNet weight init (absolute values, as
/// `torch.nn.init.trunc_normal_` takes them: at std 0.01 they never cut in practice).
pub const TORCHVISION_INIT_BOUNDS: (f64, f64) = (-2.0, 2.0);

/// How the backbone's convolution weights are initialised (BatchNorm is always 1 / 0).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackboneInit {
    /// torchvision's own init of the network: for GoogLeNet a truncated normal, mean 0, std
    /// [`TORCHVISION_INIT_STD`], bounds [`TORCHVISION_INIT_BOUNDS`]
    /// ([`BackboneInit::conv2d`]); for ResNet-50 `kaiming_normal_(fan_out, relu)`
    /// ([`BackboneInit::resnet_conv2d`]). Drawn from a seeded ChaCha8 stream, so equal on every
    /// backend.
    #[default]
    Torchvision,
    /// burn's default conv init, Kaiming-uniform `U(+-1/sqrt(fan_in))`, from the backend's
    /// RNG (`B::seed`).
    Kaiming,
}

impl BackboneInit {
    /// The name used in configs (`"torchvision"`, `"kaiming"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Kaiming => "kaiming",
        }
    }

    /// Builds `config`'s convolution with this init; `rng` is used by
    /// [`BackboneInit::Torchvision`] only. A bias, if any, starts at zero (torchvision's
    /// convolutions have none; `Linear` biases are zero there too).
    pub fn conv2d<B: Backend>(
        self,
        config: &Conv2dConfig,
        rng: &mut impl Rng,
        device: &B::Device,
    ) -> Conv2d<B> {
        match self {
            Self::Kaiming => config.init(device),
            Self::Torchvision => conv_with_weights(config, device, |shape| {
                truncated_normal(
                    shape.iter().product(),
                    TORCHVISION_INIT_STD,
                    TORCHVISION_INIT_BOUNDS,
                    rng,
                )
            }),
        }
    }

    /// Builds `config`'s convolution as torchvision's ResNet does: [`BackboneInit::Torchvision`]
    /// draws the weight from `N(0, 2 / fan_out)`, `fan_out = out_channels * kh * kw` (PyTorch's
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, not truncated) from `rng`;
    /// [`BackboneInit::Kaiming`] is burn's default, as in [`BackboneInit::conv2d`]. A bias, if
    /// any, starts at zero.
    pub fn resnet_conv2d<B: Backend>(
        self,
        config: &Conv2dConfig,
        rng: &mut impl Rng,
        device: &B::Device,
    ) -> Conv2d<B> {
        match self {
            Self::Kaiming => config.init(device),
            Self::Torchvision => conv_with_weights(config, device, |shape| {
                let [out, _, kh, kw] = shape;
                let std = kaiming_normal_fan_out_std(out, [kh, kw]);
                let normal = Normal::new(0.0, std).expect("std is positive and finite");
                (0..shape.iter().product())
                    .map(|_| normal.sample(rng) as f32)
                    .collect()
            }),
        }
    }
}

/// `config`'s convolution with its weight set to `values(shape)` (row-major) and a zero bias.
fn conv_with_weights<B: Backend>(
    config: &Conv2dConfig,
    device: &B::Device,
    values: impl FnOnce([usize; 4]) -> Vec<f32>,
) -> Conv2d<B> {
    let mut conv = config
        .clone()
        .with_initializer(Initializer::Zeros)
        .init::<B>(device);
    let shape: [usize; 4] = conv.weight.dims();
    let values = values(shape);
    conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device));
    conv
}

/// Standard deviation of PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")` for
/// a convolution weight `[out_channels, in / groups, kh, kw]`:
///
/// ```text
/// std = gain / sqrt(fan_out) = sqrt(2) / sqrt(out_channels * kh * kw)
/// ```
pub(crate) fn kaiming_normal_fan_out_std(out_channels: usize, kernel: [usize; 2]) -> f64 {
    (2.0 / (out_channels * kernel[0] * kernel[1]) as f64).sqrt()
}

/// `count` draws of a normal distribution `N(0, std^2)` truncated to `[a, b]` (resampled
/// until inside, as `torch.nn.init.trunc_normal_` defines it).
///
/// # Panics
/// When `std` is not positive and finite or `[a, b]` does not contain 0.
pub fn truncated_normal(
    count: usize,
    std: f64,
    (a, b): (f64, f64),
    rng: &mut impl Rng,
) -> Vec<f32> {
    assert!(
        a <= 0.0 && 0.0 <= b,
        "truncation bounds must contain the mean"
    );
    let normal = Normal::new(0.0, std).expect("std is positive and finite");
    (0..count)
        .map(|_| loop {
            let value: f64 = normal.sample(rng);
            if (a..=b).contains(&value) {
                break value as f32;
            }
        })
        .collect()
}
