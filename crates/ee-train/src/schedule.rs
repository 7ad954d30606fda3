//! The reference's multi-step learning-rate schedule, in iterations.
//!
//! The reference converts its decay epochs to iterations (`epoch * batches_per_epoch`) and
//! uses MXNet's `MultiFactorScheduler`, which multiplies the rate by the factor once the
//! 0-based iteration count is strictly greater than a step:
//!
//! ```text
//! lr(it) = lr * factor ^ #{ s in steps : it > s }
//! ```
//!
//! so the first decayed iteration is the second one of a decay epoch.
//!
//! ```
//! use ee_train::schedule::MultiStepLr;
//! let lr = MultiStepLr::from_epochs(1e-4, 0.5, &[400, 800], 24);
//! assert_eq!(lr.steps(), &[9600, 19200]);
//! assert_eq!(lr.at(9600), 1e-4);
//! assert_eq!(lr.at(9601), 0.5e-4);
//! ```

/// Piecewise-constant learning rate, decayed by a factor after given iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    base: f64,
    factor: f64,
    steps: Vec<u64>,
}

impl MultiStepLr {
    /// `decay_epochs` converted with `batches_per_epoch` iterations per epoch.
    pub fn from_epochs(
        base: f64,
        factor: f64,
        decay_epochs: &[u64],
        batches_per_epoch: usize,
    ) -> Self {
        let steps = decay_epochs
            .iter()
            .map(|e| e * batches_per_epoch as u64)
            .collect();
        MultiStepLr {
            base,
            factor,
            steps,
        }
    }

    /// The decay points, in iterations.
    pub fn steps(&self) -> &[u64] {
        &self.steps
    }

    /// The learning rate of 0-based iteration `iteration`.
    pub fn at(&self, iteration: u64) -> f64 {
        let decays = self.steps.iter().filter(|&&s| iteration > s).count();
        self.base * self.factor.powi(decays as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_mxnet_multifactor() {
        let lr = MultiStepLr::from_epochs(1.0, 0.5, &[1, 3], 10);
        let got: Vec<f64> = [0, 9, 10, 11, 29, 30, 31, 1000]
            .iter()
            .map(|&i| lr.at(i))
            .collect();
        assert_eq!(got, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn no_steps_is_constant() {
        let lr = MultiStepLr::from_epochs(3e-4, 0.1, &[], 24);
        assert_eq!(lr.at(0), 3e-4);
        assert_eq!(lr.at(u64::MAX), 3e-4);
    }
}
