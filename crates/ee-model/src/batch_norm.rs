//! BatchNorm over `[batch, channels, h, w]` that is fast on the CPU backend and unchanged
//! everywhere else.
//!
//! [`batch_norm`] runs a burn [`BatchNorm`] layer with burn's semantics: batch statistics and
//! a running-statistics update (biased variance, `running = (1 - momentum) * running +
//! momentum * batch`) on an autodiff backend, running statistics otherwise. On
//! `Autodiff<Flex>` (feature `flex`) the training forward and its backward are one host
//! kernel each, parallel over channels, and on `Flex` (evaluation) the normalisation with
//! the running statistics is one pass:
//!
//! ```text
//! mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M,  M = batch * h * w
//! xhat = (x - mean_c) / sqrt(var_c + eps),  y = gamma_c * xhat + beta_c
//! dgamma_c = sum dy * xhat,  dbeta_c = sum dy
//! dx = gamma_c / sqrt(var_c + eps) * (dy - dbeta_c / M - xhat * dgamma_c / M)
//! ```
//! burn 0.21's training forward transposes the input twice and reduces on one thread (0.16 s
//! for a `[64, 192, 16, 16]` input here), which made BatchNorm the largest part of a
//! GoogLeNet step once the convolutions were fast.

use burn::nn::BatchNorm;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `layer.forward(input)` for `[batch, channels, h, w]`, on the host kernels where they apply
/// (see the module docs).
pub fn batch_norm<B: Backend>(layer: &BatchNorm<B>, input: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let input = if crate::dispatch::burn_kernels_forced() {
        input
    } else {
        let result = match B::ad_enabled(&input.device()) {
            true => flex::try_batch_norm_train(layer, input),
            false => flex::try_batch_norm_eval(layer, input),
        };
        match result {
            Ok(output) => return counted(output),
            Err(input) => input,
        }
    };
    #[cfg(feature = "tch")]
    let input = if crate::dispatch::burn_kernels_forced() {
        input
    } else {
        let result = match B::ad_enabled(&input.device()) {
            true => crate::torch::try_batch_norm_train(layer, input),
            false => crate::torch::try_batch_norm_eval(layer, input),
        };
        match result {
            Ok(output) => return counted(output),
            Err(input) => input,
        }
    };
    layer.forward(input)
}

/// Counts a BatchNorm that ran on ee-model's own kernel (training or evaluation).
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
fn counted<B: Backend>(output: Tensor<B, 4>) -> Tensor<B, 4> {
    let train = B::ad_enabled(&output.device());
    crate::dispatch::record(|calls| match train {
        true => calls.batch_norm_train += 1,
        false => calls.batch_norm_eval += 1,
    });
    output
}

/// Host kernels on contiguous NCHW buffers.
pub mod host {
    use rayon::prelude::*;

    use crate::conv::host::ConvElement;

    /// Per-channel batch mean and biased variance of `x` `[batch, channels, plane]`.
    pub fn statistics<T: ConvElement>(x: &[T], channels: usize, plane: usize) -> Vec<(f64, f64)> {
        let batch = x.len() / (channels * plane).max(1);
        let count = (batch * plane) as f64;
        (0..channels)
            .into_par_iter()
            .map(|c| {
                let planes = || (0..batch).map(|n| &x[(n * channels + c) * plane..][..plane]);
                let sum: f64 = planes().flatten().map(|v| v.to_f64()).sum();
                let mean = sum / count;
                let squares: f64 = planes()
                    .flatten()
                    .map(|v| (v.to_f64() - mean).powi(2))
                    .sum();
                (mean, squares / count)
            })
            .collect()
    }

    /// `y = x * scale_c + shift_c` for `[batch, channels, plane]`.
    pub fn affine<T: ConvElement>(x: &[T], scale: &[f64], shift: &[f64], plane: usize) -> Vec<T> {
        let channels = scale.len();
        let mut y = vec![T::default(); x.len()];
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(index, (out, input))| {
                let c = index % channels;
                let (a, b) = (scale[c], shift[c]);
                for (o, i) in out.iter_mut().zip(input) {
                    *o = T::from_f64(i.to_f64() * a + b);
                }
            });
        y
    }

    /// Gradients `(dx, dgamma, dbeta)` of the training forward, given the batch statistics
    /// `mean` and `inv_std = 1 / sqrt(var + eps)`.
    pub fn backward<T: ConvElement>(
        x: &[T],
        dy: &[T],
        gamma: &[T],
        mean: &[f64],
        inv_std: &[f64],
        plane: usize,
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let channels = gamma.len();
        let batch = x.len() / (channels * plane).max(1);
        let count = (batch * plane) as f64;
        let sums: Vec<(f64, f64)> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let (mut dgamma, mut dbeta) = (0.0, 0.0);
                for n in 0..batch {
                    let offset = (n * channels + c) * plane;
                    for (xv, g) in x[offset..][..plane].iter().zip(&dy[offset..][..plane]) {
                        let g = g.to_f64();
                        dgamma += g * (xv.to_f64() - mean[c]) * inv_std[c];
                        dbeta += g;
                    }
                }
                (dgamma, dbeta)
            })
            .collect();
        let mut dx = vec![T::default(); x.len()];
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, out)| {
                let c = index % channels;
                let (dgamma, dbeta) = sums[c];
                let scale = gamma[c].to_f64() * inv_std[c];
                let offset = index * plane;
                for ((o, xv), g) in out
                    .iter_mut()
                    .zip(&x[offset..][..plane])
                    .zip(&dy[offset..][..plane])
                {
                    let xhat = (xv.to_f64() - mean[c]) * inv_std[c];
                    *o = T::from_f64(scale * (g.to_f64() - dbeta / count - xhat * dgamma / count));
                }
            });
        let dgamma = sums.iter().map(|s| T::from_f64(s.0)).collect();
        let dbeta = sums.iter().map(|s| T::from_f64(s.1)).collect();
        (dx, dgamma, dbeta)
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::BatchNorm;
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

    use super::host;
    use crate::conv::host::ConvElement;
    use crate::flex_interop::{cast, primitive, to_flex, with_values, Pod};

    type AD = Autodiff<Flex>;

    /// What the backward needs: the input, gamma, and the batch statistics.
    #[derive(Clone, Debug)]
    struct State {
        x: FlexTensor,
        gamma: FlexTensor,
        mean: Vec<f64>,
        inv_std: Vec<f64>,
        shape: [usize; 4],
    }

    #[derive(Debug)]
    struct HostBatchNormBackward;

    impl Backward<Flex, 3> for HostBatchNormBackward {
        type State = State;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let dy = grads.consume::<Flex>(&ops.node);
            let s = ops.state;
            let plane = s.shape[2] * s.shape[3];
            fn run<T: ConvElement + Pod>(
                s: &State,
                dy: &FlexTensor,
                plane: usize,
            ) -> (FlexTensor, FlexTensor, FlexTensor) {
                let (dx, dgamma, dbeta) = with_values::<T, _>(&[&s.x, dy, &s.gamma], |v| {
                    host::backward(v[0], v[1], v[2], &s.mean, &s.inv_std, plane)
                });
                let c = s.shape[1];
                (
                    to_flex(dx, s.shape),
                    to_flex(dgamma, [c]),
                    to_flex(dbeta, [c]),
                )
            }
            let (dx, dgamma, dbeta) = match s.x.dtype() {
                DType::F64 => run::<f64>(&s, &dy, plane),
                _ => run::<f32>(&s, &dy, plane),
            };
            for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    /// The training forward on the host when `B` is `Autodiff<Flex>` and the dtype is f32 or
    /// f64; otherwise the input comes back.
    pub(super) fn try_batch_norm_train<B: Backend>(
        layer: &BatchNorm<B>,
        input: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
        let gamma = layer.gamma.val();
        let beta = layer.beta.val();
        let dtype = input.dtype();
        if !matches!(dtype, DType::F32 | DType::F64)
            || gamma.dtype() != dtype
            || beta.dtype() != dtype
        {
            return Err(input);
        }
        let shape = input.dims();
        let device = input.device();
        let (input, gamma, beta) =
            cast::<_, (Tensor<AD, 4>, Tensor<AD, 1>, Tensor<AD, 1>)>((input, gamma, beta))
                .map_err(|(input, _, _)| input)?;
        let (output, mean, var) = train_forward(input, gamma, beta, layer.epsilon, shape);
        // The running statistics, with burn's own update formula and ops.
        let momentum = layer.momentum;
        let stats = |values: Vec<f64>| {
            Tensor::<B, 1>::from_data(TensorData::new(values, [shape[1]]), (&device, dtype))
        };
        let update = |running: Tensor<B, 1>, batch: Tensor<B, 1>| {
            running
                .mul_scalar(1.0 - momentum)
                .add(batch.mul_scalar(momentum))
                .detach()
        };
        let running_mean = layer.running_mean.value_sync().to_device(&device);
        let running_var = layer.running_var.value_sync().to_device(&device);
        layer.running_mean.update(update(running_mean, stats(mean)));
        layer.running_var.update(update(running_var, stats(var)));
        Ok(cast(output).expect("B is Autodiff<Flex>"))
    }

    /// Evaluation (`Flex`, running statistics) on the host:
    /// `y = x * gamma / sqrt(running_var + eps) + (beta - running_mean * that scale)`.
    pub(super) fn try_batch_norm_eval<B: Backend>(
        layer: &BatchNorm<B>,
        input: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
        if input.dtype() != DType::F32 {
            return Err(input);
        }
        let shape = input.dims();
        // The backend first: on any other one, reading the four parameters would be four
        // device-to-host copies per layer and forward, for nothing.
        let input = cast::<_, Tensor<Flex, 4>>(input)?;
        let values = crate::readback::to_host_f64::<B, 1>;
        let (Some(gamma), Some(beta), Some(mean), Some(var)) = (
            values(layer.gamma.val()),
            values(layer.beta.val()),
            values(layer.running_mean.value()),
            values(layer.running_var.value()),
        ) else {
            return Err(cast(input).expect("B is Flex"));
        };
        let scale: Vec<f64> = (0..shape[1])
            .map(|c| gamma[c] / (var[c] + layer.epsilon).sqrt())
            .collect();
        let shift: Vec<f64> = (0..shape[1])
            .map(|c| beta[c] - mean[c] * scale[c])
            .collect();
        let x = primitive(input);
        let y = with_values::<f32, _>(&[&x], |v| {
            host::affine(v[0], &scale, &shift, shape[2] * shape[3])
        });
        let output = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(to_flex(y, shape)));
        Ok(cast(output).expect("B is Flex"))
    }

    /// `(y, batch mean, batch variance)`.
    fn train_forward(
        input: Tensor<AD, 4>,
        gamma: Tensor<AD, 1>,
        beta: Tensor<AD, 1>,
        epsilon: f64,
        shape: [usize; 4],
    ) -> (Tensor<AD, 4>, Vec<f64>, Vec<f64>) {
        let (x, gamma, beta) = (primitive(input), primitive(gamma), primitive(beta));
        fn forward<T: ConvElement + Pod>(
            x: &FlexTensor,
            gamma: &FlexTensor,
            beta: &FlexTensor,
            epsilon: f64,
            shape: [usize; 4],
        ) -> (FlexTensor, Vec<f64>, Vec<f64>, Vec<f64>) {
            let plane = shape[2] * shape[3];
            with_values::<T, _>(&[x, gamma, beta], |v| {
                let stats = host::statistics(v[0], shape[1], plane);
                let mean: Vec<f64> = stats.iter().map(|s| s.0).collect();
                let var: Vec<f64> = stats.iter().map(|s| s.1).collect();
                let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
                let scale: Vec<f64> = (0..shape[1])
                    .map(|c| v[1][c].to_f64() * inv_std[c])
                    .collect();
                let shift: Vec<f64> = (0..shape[1])
                    .map(|c| v[2][c].to_f64() - mean[c] * scale[c])
                    .collect();
                let y = host::affine(v[0], &scale, &shift, plane);
                (to_flex(y, shape), mean, var, inv_std)
            })
        }
        let (y, mean, var, inv_std) = match x.primitive.dtype() {
            DType::F64 => forward::<f64>(
                &x.primitive,
                &gamma.primitive,
                &beta.primitive,
                epsilon,
                shape,
            ),
            _ => forward::<f32>(
                &x.primitive,
                &gamma.primitive,
                &beta.primitive,
                epsilon,
                shape,
            ),
        };
        let output = match HostBatchNormBackward
            .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                State {
                    x: x.primitive,
                    gamma: gamma.primitive,
                    mean: mean.clone(),
                    inv_std,
                    shape,
                },
                y,
            ),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (
            Tensor::from_primitive(TensorPrimitive::Float(output)),
            mean,
            var,
        )
    }
}

/// Checks a backbone's BatchNorm settings (`bn_epsilon`, `bn_momentum`), shared by every
/// backbone config.
pub(crate) fn check_settings(epsilon: f64, momentum: f64) -> Result<(), crate::ModelError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(crate::ModelError::InvalidConfig {
            field: "bn_epsilon",
            value: epsilon.to_string(),
            rule: "must be a positive number",
        });
    }
    if !(0.0..=1.0).contains(&momentum) {
        return Err(crate::ModelError::InvalidConfig {
            field: "bn_momentum",
            value: momentum.to_string(),
            rule: "must lie in [0, 1]",
        });
    }
    Ok(())
}
