//! Choosing a backend-specific path at run time: a generic tensor is the concrete one exactly
//! when the types are equal (used by the flex host kernels and the LibTorch nodes).

use std::any::Any;

/// Moves `value` into a `T` when `A` and `T` are the same type, else hands it back.
pub(crate) fn cast<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(same) => Ok(same.take().expect("slot holds the value")),
        None => Err(slot.expect("slot holds the value")),
    }
}
