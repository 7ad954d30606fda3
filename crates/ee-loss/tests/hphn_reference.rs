//! The HPHN loss on the f32 CPU backend against an independent f64 implementation of the
//! reference (tests/common): per-anchor losses to 1e-5, gradients of the summed loss to 1e-4,
//! including batches where the hardest negatives are tied synthetic points.
//!
//! The cases are in `hphn_reference/cases.rs`, compiled once per backend that the build enables:
//! `flex::` always, `wgpu::` with the `test-wgpu` feature (Vulkan; lavapipe in CI) and
//! `libtorch::` with `test-tch` (torch 2.9.0). One test build covers all three, and
//! `cargo xtask test --backend flex,tch,wgpu` runs each backend's cases (a test-name filter).

mod common;

mod flex {
    type Inner = burn::backend::Flex;
    include!("hphn_reference/cases.rs");
}

#[cfg(feature = "test-wgpu")]
mod wgpu {
    type Inner = burn::backend::Wgpu;
    include!("hphn_reference/cases.rs");
}

#[cfg(feature = "test-tch")]
mod libtorch {
    type Inner = burn::backend::LibTorch;
    include!("hphn_reference/cases.rs");
}

// CUDA (the primary backend): compiled by CI's test build, run where an NVIDIA GPU is.
#[cfg(feature = "test-cuda")]
mod cuda {
    type Inner = burn::backend::Cuda;
    include!("hphn_reference/cases.rs");
}
