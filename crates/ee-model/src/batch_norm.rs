//! BatchNorm over `[batch, channels, h, w]` that is fast on the CPU backend and unchanged
//! everywhere else.
//!
//! [`batch_norm`] runs a burn [`BatchNorm`] layer with burn's semantics: batch statistics and
//! a running-statistics update (biased variance, `running = (1 - momentum) * running +
//! momentum * batch`) on an autodiff backend, running statistics otherwise. On
//! `Autodiff<Flex>` (feature `flex`; any checkpointing strategy) the training forward and its
//! backward are one host kernel each, parallel over channels, and on `Flex` (evaluation) the
//! normalisation with the running statistics is one pass:
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

#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "tch")]
use burn::backend::LibTorch;
#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::{autodiff::checkpoint::strategy::CheckpointStrategy, Autodiff};
use burn::nn::BatchNorm;
use burn::tensor::backend::Backend;
#[cfg(feature = "flex")]
use burn::tensor::DType;
use burn::tensor::Tensor;

#[cfg(any(feature = "flex", feature = "tch"))]
use crate::dispatch::Ran;
use crate::dispatch::{self, KernelCalls, OwnKernel};

/// `layer.forward(input)` for `[batch, channels, h, w]`, on the host kernels where they apply
/// (see the module docs).
pub fn batch_norm<B: Backend>(layer: &BatchNorm<B>, input: Tensor<B, 4>) -> Tensor<B, 4> {
    let epsilon = layer.epsilon;
    let input = if B::ad_enabled(&input.device()) {
        let params = (layer.gamma.val(), layer.beta.val());
        match dispatch::run(TrainKernel { epsilon }, (input, params)) {
            Ok((output, [mean, var])) => {
                update_running(layer, mean, var);
                return output;
            }
            Err((input, _)) => input,
        }
    } else {
        let params = [
            layer.gamma.val(),
            layer.beta.val(),
            layer.running_mean.value(),
            layer.running_var.value(),
        ];
        match dispatch::run(EvalKernel { epsilon }, (input, params)) {
            Ok(output) => return output,
            Err((input, _)) => input,
        }
    };
    layer.forward(input)
}

/// burn's running-statistics update from a batch's mean and biased variance:
/// `running = (1 - momentum) * running + momentum * batch`, with burn's own ops, outside any
/// graph.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
pub(crate) fn update_running<B: Backend>(
    layer: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
) {
    let momentum = layer.momentum;
    let update = |running: Tensor<B, 1>, batch: Tensor<B, 1>| {
        running
            .to_device(&batch.device())
            .mul_scalar(1.0 - momentum)
            .add(batch.mul_scalar(momentum))
            .detach()
    };
    layer
        .running_mean
        .update(update(layer.running_mean.value_sync(), mean));
    layer
        .running_var
        .update(update(layer.running_var.value_sync(), var));
}

/// The training forward (batch statistics) on the own kernels: the host kernels on
/// `Autodiff<Flex>` (f32 / f64), one node with torch's backward on `Autodiff<LibTorch>`.
struct TrainKernel {
    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
    epsilon: f64,
}

impl OwnKernel for TrainKernel {
    /// The input, gamma and beta.
    type Input<B: Backend> = (Tensor<B, 4>, (Tensor<B, 1>, Tensor<B, 1>));
    /// The output, and the batch mean and biased variance per channel.
    type Output<B: Backend> = (Tensor<B, 4>, [Tensor<B, 1>; 2]);

    fn count(calls: &mut KernelCalls) {
        calls.batch_norm_train += 1;
    }

    #[cfg(feature = "flex")]
    fn flex_autodiff<C: CheckpointStrategy>(
        self,
        (input, (gamma, beta)): Self::Input<Autodiff<Flex, C>>,
    ) -> Ran<Self, Autodiff<Flex, C>> {
        let dtype = input.dtype();
        if !matches!(dtype, DType::F32 | DType::F64)
            || gamma.dtype() != dtype
            || beta.dtype() != dtype
        {
            return Err((input, (gamma, beta)));
        }
        Ok(flex::train(input, gamma, beta, self.epsilon))
    }

    #[cfg(feature = "tch")]
    fn torch_autodiff<C: CheckpointStrategy>(
        self,
        (input, (gamma, beta)): Self::Input<Autodiff<LibTorch, C>>,
    ) -> Ran<Self, Autodiff<LibTorch, C>> {
        Ok(crate::torch::batch_norm_train(
            input,
            [gamma, beta],
            self.epsilon,
        ))
    }
}

/// Evaluation (running statistics) on the own kernels: one host pass on `Flex` (f32), torch's
/// one `batch_norm` op on `LibTorch`.
struct EvalKernel {
    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
    epsilon: f64,
}

impl OwnKernel for EvalKernel {
    /// The input, and gamma, beta, the running mean and the running variance.
    type Input<B: Backend> = (Tensor<B, 4>, [Tensor<B, 1>; 4]);
    type Output<B: Backend> = Tensor<B, 4>;

    fn count(calls: &mut KernelCalls) {
        calls.batch_norm_eval += 1;
    }

    #[cfg(feature = "flex")]
    fn flex(self, (input, params): Self::Input<Flex>) -> Ran<Self, Flex> {
        if input.dtype() != DType::F32 {
            return Err((input, params));
        }
        // Read only here, once the backend is known to be `Flex`: on any other one, reading the
        // four parameters would be four device-to-host copies per layer and forward.
        match flex::eval_affine(&params, self.epsilon, input.dims()[1]) {
            Some((scale, shift)) => Ok(flex::eval(input, &scale, &shift)),
            None => Err((input, params)),
        }
    }

    #[cfg(feature = "tch")]
    fn torch(self, (input, params): Self::Input<LibTorch>) -> Ran<Self, LibTorch> {
        Ok(crate::torch::batch_norm_eval(input, params, self.epsilon))
    }
}

/// Host kernels on contiguous NCHW buffers.
pub mod host {
    use rayon::prelude::*;

    use crate::element::ConvElement;

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
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

    use super::host;
    use crate::element::ConvElement;
    use crate::flex_interop::{primitive, to_flex, with_values, Pod};

    /// `Autodiff<Flex>` with checkpointing strategy `C`.
    type Ad<C> = Autodiff<Flex, C>;

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

    /// The training forward on the host (f32 / f64, checked by the caller): the output and the
    /// batch mean and biased variance, for every checkpointing strategy `C`.
    pub(super) fn train<C: CheckpointStrategy>(
        input: Tensor<Ad<C>, 4>,
        gamma: Tensor<Ad<C>, 1>,
        beta: Tensor<Ad<C>, 1>,
        epsilon: f64,
    ) -> (Tensor<Ad<C>, 4>, [Tensor<Ad<C>, 1>; 2]) {
        let dtype = input.dtype();
        let shape = input.dims();
        let device = input.device();
        let (output, mean, var) = train_forward(input, gamma, beta, epsilon, shape);
        let stats = |values: Vec<f64>| {
            Tensor::from_data(TensorData::new(values, [shape[1]]), (&device, dtype))
        };
        (output, [stats(mean), stats(var)])
    }

    /// Evaluation's per-channel `(scale, shift)` from gamma, beta, the running mean and the
    /// running variance (`channels` of each), or `None` when one cannot be read as f64:
    /// `scale = gamma / sqrt(running_var + eps)`, `shift = beta - running_mean * scale`.
    pub(super) fn eval_affine(
        [gamma, beta, mean, var]: &[Tensor<Flex, 1>; 4],
        epsilon: f64,
        channels: usize,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let values = |t: &Tensor<Flex, 1>| crate::readback::to_host_f64(t.clone());
        let (gamma, beta, mean, var) = (values(gamma)?, values(beta)?, values(mean)?, values(var)?);
        let scale: Vec<f64> = (0..channels)
            .map(|c| gamma[c] / (var[c] + epsilon).sqrt())
            .collect();
        let shift: Vec<f64> = (0..channels)
            .map(|c| beta[c] - mean[c] * scale[c])
            .collect();
        Some((scale, shift))
    }

    /// Evaluation (`Flex`, running statistics, f32) on the host: `y = x * scale + shift` per
    /// channel ([`eval_affine`]).
    pub(super) fn eval(input: Tensor<Flex, 4>, scale: &[f64], shift: &[f64]) -> Tensor<Flex, 4> {
        let shape = input.dims();
        let x = primitive(input);
        let y = with_values::<f32, _>(&[&x], |v| {
            host::affine(v[0], scale, shift, shape[2] * shape[3])
        });
        Tensor::from_primitive(TensorPrimitive::Float(to_flex(y, shape)))
    }

    /// `(y, batch mean, batch variance)`.
    fn train_forward<C: CheckpointStrategy>(
        input: Tensor<Ad<C>, 4>,
        gamma: Tensor<Ad<C>, 1>,
        beta: Tensor<Ad<C>, 1>,
        epsilon: f64,
        shape: [usize; 4],
    ) -> (Tensor<Ad<C>, 4>, Vec<f64>, Vec<f64>) {
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
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
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
