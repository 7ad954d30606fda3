//! Checks of loss hyper-parameters, each failing with [`LossError::InvalidParameter`] naming
//! the parameter, its value and the rule it broke.

use crate::LossError;

fn invalid(name: &'static str, value: f64, rule: &'static str) -> LossError {
    LossError::InvalidParameter {
        name,
        value: value.to_string(),
        rule,
    }
}

/// `value` must be finite and `>= 0` (a margin, a weight).
pub fn non_negative(name: &'static str, value: f64) -> Result<f64, LossError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(invalid(name, value, "must be finite and >= 0"))
    }
}

/// `value` must be finite and `> 0` (a scale).
pub fn positive(name: &'static str, value: f64) -> Result<f64, LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(invalid(name, value, "must be finite and > 0"))
    }
}

/// `value` must be finite (a threshold).
pub fn finite(name: &'static str, value: f64) -> Result<f64, LossError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(invalid(name, value, "must be finite"))
    }
}
