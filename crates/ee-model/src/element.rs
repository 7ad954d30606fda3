//! The element types every host kernel runs on ([`conv`](crate::conv),
//! [`batch_norm`](crate::batch_norm()), [`pool`](crate::pool)): a leaf module, so that the
//! kernels of one layer need nothing of another's.

/// Element types the kernels run on (the ones `gemm` dispatches on).
pub trait ConvElement:
    Copy + Send + Sync + Default + core::ops::AddAssign + core::fmt::Debug + 'static
{
    /// 1.
    const ONE: Self;
    /// Widened for accumulations.
    fn to_f64(self) -> f64;
    /// Narrowed back.
    fn from_f64(value: f64) -> Self;
}

impl ConvElement for f32 {
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl ConvElement for f64 {
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}
