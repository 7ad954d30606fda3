//! The trainer end to end on generated data: a few steps of tiny models, exact resume, a NaN
//! stop, a user-defined model and loss, validation-class selection and bad settings.
//!
//! The cases are in `trainer/cases.rs`, compiled once per backend that the build enables:
//! `flex::` always, `wgpu::` with the `test-wgpu` feature (Vulkan; lavapipe in CI) and
//! `libtorch::` with `test-tch` (torch 2.9.0). One test build covers all three, and
//! `cargo xtask test --backend flex,tch,wgpu` runs each backend's cases (a test-name filter).

mod common;

mod flex {
    type Inner = burn::backend::Flex;
    include!("trainer/cases.rs");
}

#[cfg(feature = "test-wgpu")]
mod wgpu {
    type Inner = burn::backend::Wgpu;
    include!("trainer/cases.rs");
}

#[cfg(feature = "test-tch")]
mod libtorch {
    type Inner = burn::backend::LibTorch;
    include!("trainer/cases.rs");
}

// CUDA (the primary backend): compiled by CI's test build, run where an NVIDIA GPU is.
#[cfg(feature = "test-cuda")]
mod cuda {
    type Inner = burn::backend::Cuda;
    include!("trainer/cases.rs");
}
