//! The head, BatchNorm modes, checkpoints and the gradient split a trainer uses.
//!
//! The cases are in `model/cases.rs`, compiled once per backend that the build enables:
//! `flex::` always, `wgpu::` with the `test-wgpu` feature (Vulkan; lavapipe in CI) and
//! `libtorch::` with `test-tch` (torch 2.9.0). One test build covers all three, and
//! `cargo xtask test --backend flex,tch,wgpu` runs each backend's cases (a test-name filter).

mod support;

mod flex {
    type B = burn::backend::Flex;
    include!("model/cases.rs");
}

#[cfg(feature = "test-wgpu")]
mod wgpu {
    type B = burn::backend::Wgpu;
    include!("model/cases.rs");
}

#[cfg(feature = "test-tch")]
mod libtorch {
    type B = burn::backend::LibTorch;
    include!("model/cases.rs");
}

// CUDA (the primary backend): compiled by CI's test build, run where an NVIDIA GPU is.
#[cfg(feature = "test-cuda")]
mod cuda {
    type B = burn::backend::Cuda;
    include!("model/cases.rs");
}
