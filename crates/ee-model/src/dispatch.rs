//! Which kernel each convolution, BatchNorm and max pool takes: ee-model's own (the host
//! kernels on `Flex`, torch's ops on `LibTorch`) or burn's op. This module is the only place
//! that looks at the concrete backend: a layer describes its own kernels as an [`OwnKernel`]
//! (one method per backend it has a kernel for) and calls [`run`], which finds the backend
//! that `B` is, moves the inputs to that backend's types, runs the method and moves the result
//! back. Every checkpointing strategy of burn 0.21's `Autodiff` (`NoCheckpointing`,
//! `BalancedCheckpointing`) takes the autodiff kernels; any other backend gets its inputs
//! back and runs burn's op.
//!
//! The switch that sends every layer to burn's ops ([`CPU_KERNELS_ENV`]) lives here, and
//! [`own_kernel_calls`] counts the calls that took ee-model's own, so that a test can check
//! the switch in training and in evaluation.

use std::any::{Any, TypeId};
use std::cell::Cell;

#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::Autodiff;
#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "tch")]
use burn::backend::LibTorch;
use burn::tensor::backend::Backend;

/// Set to `burn` to send every convolution, BatchNorm and max pool to burn's own ops (for
/// profiling and for cross-checking a run); read once per process.
pub const CPU_KERNELS_ENV: &str = "EE_CPU_KERNELS";

/// Whether [`CPU_KERNELS_ENV`] asks for burn's kernels.
fn burn_kernels_forced() -> bool {
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
fn record(count: impl FnOnce(&mut KernelCalls)) {
    CALLS.with(|calls| {
        let mut now = calls.get();
        count(&mut now);
        calls.set(now);
    });
}

/// What an [`OwnKernel`] method gives: the output, or the input back when its kernel does not
/// cover the call (a dtype, a layer setting).
pub(crate) type Ran<K, B> = Result<<K as OwnKernel>::Output<B>, <K as OwnKernel>::Input<B>>;

/// One layer's own kernels, per backend. `Input<B>` and `Output<B>` are the tensors the layer
/// hands in and gets back on backend `B`; the settings that do not depend on the backend live
/// in `Self`. A method left out means no own kernel on that backend.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
pub(crate) trait OwnKernel: Sized {
    /// The tensors the kernel takes.
    type Input<B: Backend>: 'static;
    /// The tensors it gives.
    type Output<B: Backend>: 'static;

    /// Counts one call in [`own_kernel_calls`].
    fn count(calls: &mut KernelCalls);

    /// On `Flex`.
    #[cfg(feature = "flex")]
    fn flex(self, input: Self::Input<Flex>) -> Ran<Self, Flex> {
        Err(input)
    }

    /// On `Autodiff<Flex, C>`, for every checkpointing strategy `C`.
    #[cfg(feature = "flex")]
    fn flex_autodiff<C: CheckpointStrategy>(
        self,
        input: Self::Input<Autodiff<Flex, C>>,
    ) -> Ran<Self, Autodiff<Flex, C>> {
        Err(input)
    }

    /// On `LibTorch`.
    #[cfg(feature = "tch")]
    fn torch(self, input: Self::Input<LibTorch>) -> Ran<Self, LibTorch> {
        Err(input)
    }

    /// On `Autodiff<LibTorch, C>`, for every checkpointing strategy `C`.
    #[cfg(feature = "tch")]
    fn torch_autodiff<C: CheckpointStrategy>(
        self,
        input: Self::Input<Autodiff<LibTorch, C>>,
    ) -> Ran<Self, Autodiff<LibTorch, C>> {
        Err(input)
    }
}

/// Runs `kernel`'s method for the backend `B` is, counted in [`own_kernel_calls`]; the input
/// comes back when `B` has no own kernel, the kernel does not cover the call, or
/// [`CPU_KERNELS_ENV`] asks for burn's ops.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused_variables))]
pub(crate) fn run<B: Backend, K: OwnKernel>(kernel: K, input: K::Input<B>) -> Ran<K, B> {
    if burn_kernels_forced() {
        return Err(input);
    }
    #[cfg(feature = "flex")]
    {
        if is::<B, Flex>() {
            return counted::<K, B>(on(input, |x| kernel.flex(x)));
        }
        if is::<B, Autodiff<Flex, NoCheckpointing>>() {
            let run = |x| kernel.flex_autodiff::<NoCheckpointing>(x);
            return counted::<K, B>(on(input, run));
        }
        if is::<B, Autodiff<Flex, BalancedCheckpointing>>() {
            let run = |x| kernel.flex_autodiff::<BalancedCheckpointing>(x);
            return counted::<K, B>(on(input, run));
        }
    }
    #[cfg(feature = "tch")]
    {
        if is::<B, LibTorch>() {
            return counted::<K, B>(on(input, |x| kernel.torch(x)));
        }
        if is::<B, Autodiff<LibTorch, NoCheckpointing>>() {
            let run = |x| kernel.torch_autodiff::<NoCheckpointing>(x);
            return counted::<K, B>(on(input, run));
        }
        if is::<B, Autodiff<LibTorch, BalancedCheckpointing>>() {
            let run = |x| kernel.torch_autodiff::<BalancedCheckpointing>(x);
            return counted::<K, B>(on(input, run));
        }
    }
    Err(input)
}

/// Whether `B` is the backend `T`.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
fn is<B: 'static, T: 'static>() -> bool {
    TypeId::of::<B>() == TypeId::of::<T>()
}

/// `f(input)` with the input and the result moved between two spellings of one type
/// (`K::Input<B>` and `K::Input<Flex>` when `B` is `Flex`, say).
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
fn on<A: 'static, T: 'static, R: 'static, S: 'static>(input: A, f: impl FnOnce(T) -> R) -> S {
    let same = "the caller checked that the backends are the same type";
    let input = cast::<A, T>(input).unwrap_or_else(|_| panic!("{same}"));
    cast::<R, S>(f(input)).unwrap_or_else(|_| panic!("{same}"))
}

/// Counts a call that ran the own kernel.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
fn counted<K: OwnKernel, B: Backend>(ran: Ran<K, B>) -> Ran<K, B> {
    if ran.is_ok() {
        record(K::count);
    }
    ran
}

/// Moves `value` into a `T` when `A` and `T` are the same type, else hands it back.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
fn cast<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(same) => Ok(same.take().expect("slot holds the value")),
        None => Err(slot.expect("slot holds the value")),
    }
}
