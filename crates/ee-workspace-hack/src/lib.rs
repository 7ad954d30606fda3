//! `ee-workspace-hack` holds no code. Its dependencies switch on, in every
//! `cargo test --workspace`, the few features of shared crates that burn-tch's dependencies
//! switch on, so that the default test build and the LibTorch one
//! (`cargo xtask test --backend tch`) reuse one set of compiled dependencies. See its
//! Cargo.toml for which and why.
//!
//! ```
//! // Nothing to call: the crate only takes part in cargo's feature unification.
//! ```
