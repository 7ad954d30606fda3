//! `ee-model`: the embedding network of Embedding Expansion, generic over burn backends.
//!
//! ```text
//! images [N, 3, H, W] --backbone--> [N, C, h, w] --global average pool--> [N, C]
//!   --Linear(C, embed_dim)--> --L2 normalise--> [N, embed_dim]
//! ```
//!
//! The backbone is a choice ([`BackboneKind`], `EmbeddingModelConfig::backbone`):
//!
//! * [`GoogLeNet`] (the paper's; C = 1024): torchvision's `googlenet` (Inception v1 with
//!   BatchNorm, eps 1e-3), with its parameter names, so its ImageNet weights load
//!   ([`GoogLeNet::load_torchvision`]). Max pools use PyTorch's `ceil_mode`
//!   ([`MaxPool2dCeil`]): 227 px gives 114 -> 57 -> 28 -> 14 -> 7.
//! * [`ResNet50`] (C = 2048): torchvision's `resnet50` (v1.5), parameter paths equal to its
//!   state-dict keys, ImageNet weights importable the same way
//!   ([`ResNet50::load_torchvision`]).
//! * [`SmallCnn`] (C = 256): four conv-BN-ReLU-pool blocks, to train on a CPU in minutes.
//!
//! [`Embed`] is what a trainer or an evaluator needs of any model: images to embeddings.
//! * [`EmbeddingHead`]: optional hidden layer, `Linear(in, embed_dim)` with MXNet's
//!   `Xavier(magnitude=2)` init and zero bias, then `x / sqrt(sum x^2 + 1e-10)`. Used alone it
//!   is the head-only model for precomputed features.
//! * [`EmbeddingModel`]: both, as public fields `backbone` and `head`, so that a trainer can
//!   split gradients per part (`GradientsParams::from_module(&mut grads, &model.backbone)`)
//!   and give the backbone its own learning rate.
//!
//! * [`BackboneInit`]: from scratch, the backbone's convolutions start from torchvision's
//!   truncated normal (std 0.01), as torchvision's GoogLeNet does; burn's Kaiming-uniform
//!   default learned about 4x slower in the same recipe (see the README).
//! * [`conv2d`]: every convolution goes through it. On the `Flex` CPU backend
//!   (feature `flex`, on by default) it runs our own im2col + GEMM kernels with a custom
//!   backward; with feature `tch` on `Autodiff<LibTorch>` it is one autodiff node with torch's
//!   own backward; on other backends it is burn's convolution. [`batch_norm`](batch_norm())
//!   does the same for BatchNorm, and [`MaxPool2dCeil`] for max pooling on `Flex`. The
//!   `Autodiff` kernels serve every checkpointing strategy (`NoCheckpointing`, the default,
//!   and `BalancedCheckpointing`). Which kernel a call takes is decided in one place (the
//!   private `dispatch` module); [`CPU_KERNELS_ENV`] sends every layer to burn's ops and
//!   [`own_kernel_calls`] counts the calls that took ee-model's own.
//!
//! Training mode (an autodiff backend) normalises with batch statistics and updates the
//! BatchNorm running statistics; `model.valid()` (eval) uses the running statistics.
//!
//! # Pretrained weights
//!
//! Download torchvision's ImageNet GoogLeNet weights yourself (this crate never downloads):
//! `https://download.pytorch.org/models/googlenet-1378be20.pth` (the file behind
//! `torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1`, 6.6 M parameters, 26 MB), and pass its
//! path as `pretrained = "path/to/googlenet-1378be20.pth"` in the model config. A safetensors
//! file with the same keys works too. `aux1.*`, `aux2.*`, `fc.*` and `*.num_batches_tracked`
//! are ignored; any other missing, unexpected or wrongly shaped key is an error that lists them.
//!
//! Those weights were ported from TensorFlow and expect inputs in `[-1, 1]`; torchvision
//! therefore re-normalises ImageNet-normalised images inside the model (`transform_input`). We
//! do the same ([`TRANSFORM_INPUT`]): with `pretrained` set, `transform_input` defaults to on,
//! and the flag is stored with the model and in checkpoints. Feed the model images normalised
//! with the ImageNet mean/std either way.
//!
//! # Example
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Distribution, Tensor};
//! use ee_model::EmbeddingModelConfig;
//!
//! let device = Default::default();
//! // `.with_pretrained(Some("googlenet-1378be20.pth".into()))` loads torchvision's weights.
//! let config = EmbeddingModelConfig::new().with_embed_dim(64);
//! let model = config.init::<Flex>(&device)?;
//! let images = Tensor::<Flex, 4>::random([1, 3, 32, 32], Distribution::Default, &device);
//! let embeddings = model.forward(images); // [1, 64], unit L2 norm
//! assert_eq!(embeddings.dims(), [1, 64]);
//! # Ok::<(), ee_model::ModelError>(())
//! ```
//!
//! Checkpoints of training runs (weights, optimiser state, sampler position) are ee-train's
//! (`ee_train::checkpoint`); this crate reads weights from PyTorch/torchvision files only.

mod backbone;
pub mod batch_norm;
pub mod conv;
mod dispatch;
mod element;
mod error;
#[cfg(feature = "flex")]
mod flex_interop;
mod googlenet;
mod head;
mod init;
mod model;
mod network;
pub mod pool;
mod readback;
mod resnet;
mod small_cnn;
#[cfg(feature = "tch")]
mod torch;
mod weights;

pub use backbone::{Backbone, BackboneKind};
pub use batch_norm::batch_norm;
pub use conv::{conv2d, conv_bn_relu};
pub use dispatch::{own_kernel_calls, KernelCalls, CPU_KERNELS_ENV};
pub use error::ModelError;
pub use googlenet::{
    apply_transform_input, BasicConv2d, BasicConv2dConfig, GoogLeNet, GoogLeNetConfig, Inception,
    GOOGLENET_FEATURES, TRANSFORM_INPUT,
};
pub use head::{
    global_avg_pool, l2_normalize, xavier_bound, EmbeddingHead, EmbeddingHeadConfig,
    L2_NORM_EPSILON,
};
pub use init::{truncated_normal, BackboneInit, TORCHVISION_INIT_BOUNDS, TORCHVISION_INIT_STD};
pub use model::{Embed, EmbeddingModel, EmbeddingModelConfig};
pub use pool::{pool_output_size, MaxPool2dCeil};
pub use readback::host_reads;
pub use resnet::{ResNet50, ResNet50Config, RESNET50_FEATURES};
pub use small_cnn::{ConvBlock, SmallCnn, SMALL_CNN_CHANNELS, SMALL_CNN_FEATURES};
pub use weights::{detect_format, ImportReport, WeightFormat, DEFAULT_HEAD_KEY};
