//! The optimiser settings and the two-group optimiser step (backbone at `lr * base_lr_mult`,
//! head at `lr`).

use burn::config::Config;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::TrainModel;

/// Which optimiser (`optimizer.name` in a run config).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam with the weight decay added to the gradient (MXNet's and the reference's).
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw,
}

/// The optimiser and its learning-rate schedule (the reference's defaults).
#[derive(Config, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// Which optimiser.
    #[config(default = "OptimizerKind::Adam")]
    pub kind: OptimizerKind,
    /// Base learning rate (of the head).
    #[config(default = 1e-4)]
    pub lr: f64,
    /// Adam's beta1.
    #[config(default = 0.9)]
    pub beta1: f32,
    /// Adam's beta2.
    #[config(default = 0.999)]
    pub beta2: f32,
    /// Adam's epsilon (the reference's 1e-8; burn's default would be 1e-5).
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Weight decay (L2 added to the gradient for Adam, decoupled for AdamW).
    #[config(default = 5e-4)]
    pub weight_decay: f32,
    /// Learning-rate multiplier of the backbone ([`TrainModel::backbone_gradients`]).
    #[config(default = 1.0)]
    pub base_lr_mult: f64,
    /// Factor applied to the learning rate at each decay epoch.
    #[config(default = 0.5)]
    pub lr_decay_factor: f64,
    /// Epochs after which the learning rate is multiplied by `lr_decay_factor`.
    #[config(default = "vec![400, 800, 1200, 1600]")]
    pub lr_decay_epochs: Vec<u64>,
}

fn bad(field: &str, value: impl std::fmt::Display, rule: &str) -> TrainError {
    TrainError::Config {
        field: format!("optimizer.{field}"),
        value: value.to_string(),
        rule: rule.into(),
    }
}

impl OptimizerConfig {
    /// Checks every setting; errors name the field (`optimizer.lr`, ...), the value and the
    /// rule. The one place these rules live: `ee`'s config check calls it too.
    pub fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr, "must be a positive number"));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(bad(name, beta, "must be in [0, 1)"));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(bad("epsilon", self.epsilon, "must be a positive number"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", self.weight_decay, "must be >= 0"));
        }
        if !(self.base_lr_mult.is_finite() && self.base_lr_mult >= 0.0) {
            return Err(bad("base_lr_mult", self.base_lr_mult, "must be >= 0"));
        }
        if !(self.lr_decay_factor.is_finite()
            && self.lr_decay_factor > 0.0
            && self.lr_decay_factor <= 1.0)
        {
            return Err(bad(
                "lr_decay_factor",
                self.lr_decay_factor,
                "must be in (0, 1]",
            ));
        }
        let epochs = &self.lr_decay_epochs;
        if epochs.windows(2).any(|w| w[0] >= w[1]) || epochs.first() == Some(&0) {
            return Err(bad(
                "lr_decay_epochs",
                format!("{epochs:?}"),
                "must be positive and strictly increasing",
            ));
        }
        Ok(())
    }

    /// burn's Adam with these settings: MXNet's (and PyTorch's) Adam, L2 weight decay added
    /// to the gradient, epsilon set explicitly.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(
                (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay)),
            )
    }

    /// burn's AdamW with these settings.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
    }
}

/// The optimiser half of a training step: back-propagates `loss`, then steps the backbone's
/// parameters at `lr * base_lr_mult` and the rest at `lr`, each group with its own
/// optimiser (burn 0.21 has no parameter groups). [`optimizer_step_with`] without a
/// gradient hook.
pub fn optimizer_step<B, M, O>(
    model: M,
    loss: Tensor<B, 1>,
    lr: f64,
    base_lr_mult: f64,
    backbone_optimizer: &mut O,
    head_optimizer: &mut O,
) -> M
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    O: Optimizer<M, B>,
{
    let stepped = optimizer_step_with(
        model,
        loss,
        lr,
        base_lr_mult,
        backbone_optimizer,
        head_optimizer,
        Ok::<_, std::convert::Infallible>,
    );
    match stepped {
        Ok(model) => model,
        Err(never) => match never {},
    }
}

/// [`optimizer_step`] with a hook between backward and the optimisers: `reduce` receives the
/// backbone's gradients, then the head's, and returns those to apply (the data-parallel
/// trainer sums them over the devices there). The trainer's only step goes through here.
pub fn optimizer_step_with<B, M, O, E>(
    model: M,
    loss: Tensor<B, 1>,
    lr: f64,
    base_lr_mult: f64,
    backbone_optimizer: &mut O,
    head_optimizer: &mut O,
    mut reduce: impl FnMut(GradientsParams) -> std::result::Result<GradientsParams, E>,
) -> std::result::Result<M, E>
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    O: Optimizer<M, B>,
{
    let mut grads = loss.backward();
    let backbone_grads = reduce(model.backbone_gradients(&mut grads))?;
    let head_grads = reduce(GradientsParams::from_grads(grads, &model))?;
    Ok(apply_gradients(
        model,
        backbone_grads,
        head_grads,
        lr,
        base_lr_mult,
        backbone_optimizer,
        head_optimizer,
    ))
}

/// The two optimiser steps of [`optimizer_step`] from gradients already split into the
/// backbone's and the head's (for example summed over devices first).
pub fn apply_gradients<B, M, O>(
    model: M,
    backbone_grads: GradientsParams,
    head_grads: GradientsParams,
    lr: f64,
    base_lr_mult: f64,
    backbone_optimizer: &mut O,
    head_optimizer: &mut O,
) -> M
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    O: Optimizer<M, B>,
{
    let model = if backbone_grads.is_empty() {
        model
    } else {
        backbone_optimizer.step(lr * base_lr_mult, model, backbone_grads)
    };
    head_optimizer.step(lr, model, head_grads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_field_value_and_rule() {
        assert!(OptimizerConfig::new().check().is_ok());
        for (config, field, value) in [
            (OptimizerConfig::new().with_lr(0.0), "optimizer.lr", "0"),
            (
                OptimizerConfig::new().with_beta2(1.0),
                "optimizer.beta2",
                "1",
            ),
            (
                OptimizerConfig::new().with_lr_decay_factor(1.5),
                "optimizer.lr_decay_factor",
                "1.5",
            ),
            (
                OptimizerConfig::new().with_lr_decay_epochs(vec![5, 3]),
                "optimizer.lr_decay_epochs",
                "[5, 3]",
            ),
            (
                OptimizerConfig::new().with_lr_decay_epochs(vec![0, 3]),
                "optimizer.lr_decay_epochs",
                "[0, 3]",
            ),
        ] {
            let message = config.check().unwrap_err().to_string();
            assert!(
                message.contains(field) && message.contains(value),
                "{message}"
            );
        }
    }
}
