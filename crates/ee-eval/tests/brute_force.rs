//! Both k-NN engines (host GEMM and chunked backend matmul) and the retrieval metrics against
//! a plain-Rust brute force with f64 distances, `sum_i (q_i - g_i)^2`.
//!
//! Two kinds of random data: continuous values (near-ties are where an f32-only k-NN would
//! disagree with the f64 brute force), and points on a small integer grid, where many
//! distances are exactly equal and the lower-index tie rule decides the order.
//!
//! The cases are in `brute_force/cases.rs`, compiled once per backend that the build enables:
//! `flex::` always, `wgpu::` with the `test-wgpu` feature (Vulkan; lavapipe in CI) and
//! `libtorch::` with `test-tch` (torch 2.9.0). One test build covers all three, and
//! `cargo xtask test --backend flex,tch,wgpu` runs each backend's cases (a test-name filter).

mod flex {
    type B = burn::backend::Flex;
    include!("brute_force/cases.rs");
}

#[cfg(feature = "test-wgpu")]
mod wgpu {
    type B = burn::backend::Wgpu;
    include!("brute_force/cases.rs");
}

#[cfg(feature = "test-tch")]
mod libtorch {
    type B = burn::backend::LibTorch;
    include!("brute_force/cases.rs");
}

// CUDA (the primary backend): compiled by CI's test build, run where an NVIDIA GPU is.
#[cfg(feature = "test-cuda")]
mod cuda {
    type B = burn::backend::Cuda;
    include!("brute_force/cases.rs");
}
