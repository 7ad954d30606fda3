//! Which kernel each convolution, BatchNorm and max pool takes: ee-model's own (the host
//! kernels on `Flex`, torch's ops on `LibTorch`) or burn's op. The switch that sends every
//! layer to burn's ops ([`CPU_KERNELS_ENV`]) lives here, and [`own_kernel_calls`] counts the
//! calls that took ee-model's own, so that a test can check the switch in training and in
//! evaluation.

use std::cell::Cell;

/// Set to `burn` to send every convolution, BatchNorm and max pool to burn's own ops (for
/// profiling and for cross-checking a run); read once per process.
pub const CPU_KERNELS_ENV: &str = "EE_CPU_KERNELS";

/// Whether [`CPU_KERNELS_ENV`] asks for burn's kernels.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
pub(crate) fn burn_kernels_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var(CPU_KERNELS_ENV).is_ok_and(|v| v == "burn"))
}

/// How many calls on this thread ran ee-model's own kernel instead of burn's op, per layer
/// kind (forward calls; a call's backward is part of the same kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCalls {
    /// Convolutions ([`conv2d`](crate::conv2d()), and the fused
    /// [`conv_bn_relu`](crate::conv_bn_relu()) of `Autodiff<LibTorch>`).
    pub conv: usize,
    /// BatchNorm with batch statistics (training, on an autodiff backend).
    pub batch_norm_train: usize,
    /// BatchNorm with running statistics (evaluation).
    pub batch_norm_eval: usize,
    /// Max pools ([`MaxPool2dCeil`](crate::MaxPool2dCeil)).
    pub max_pool: usize,
}

impl KernelCalls {
    /// All four counts.
    pub fn total(&self) -> usize {
        self.conv + self.batch_norm_train + self.batch_norm_eval + self.max_pool
    }
}

thread_local! {
    static CALLS: Cell<KernelCalls> = const {
        Cell::new(KernelCalls { conv: 0, batch_norm_train: 0, batch_norm_eval: 0, max_pool: 0 })
    };
}

/// The calls so far on this thread that took ee-model's own kernels (see [`KernelCalls`]).
pub fn own_kernel_calls() -> KernelCalls {
    CALLS.with(Cell::get)
}

/// Counts one call of an own kernel.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
pub(crate) fn record(count: impl FnOnce(&mut KernelCalls)) {
    CALLS.with(|calls| {
        let mut now = calls.get();
        count(&mut now);
        calls.set(now);
    });
}
