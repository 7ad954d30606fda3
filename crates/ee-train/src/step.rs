//! The training step, the only one: [`Stepper::step`] runs Embedding Expansion, the loss,
//! backward and both optimisers on a batch, on one device or data-parallel over several.
//! [`crate::Trainer`] calls it for every batch; the PyTorch parity test
//! (`cargo xtask parity-train`) drives it for its steps, so that test checks the code a run
//! executes.
//!
//! ```text
//! images -> replica d embeds its rows -> (several devices: gather the whole batch)
//!   -> EE + loss on the whole batch -> backward -> backbone / head gradients
//!   -> (several devices: all-reduce each group) -> backbone at lr * base_lr_mult, head at lr
//! ```

use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};
use ee_loss::batch::check_batch;
use ee_loss::{LossStats, PairLoss};
use ee_model::Embed;

use crate::error::Result;
use crate::model::TrainModel;
use crate::optimizer::optimizer_step_with;
use crate::parallel::{
    all_reduce_gradients, gather_embeddings, slice_batch, split_rows, DataParallel,
};

/// How one step runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    /// The head's learning rate (the backbone's is `lr * base_lr_mult`).
    pub lr: f64,
    /// The backbone's share of `lr`.
    pub base_lr_mult: f64,
    /// Read the loss statistics ([`LossStats`]) back, for a log line.
    pub stats: bool,
    /// Poison the loss with NaN: the test hook of `Trainer::with_nan_at_step`.
    #[doc(hidden)]
    pub poison: bool,
}

impl StepSettings {
    /// A step at `lr`, the backbone at `lr * base_lr_mult`, without statistics.
    pub fn new(lr: f64, base_lr_mult: f64) -> Self {
        Self {
            lr,
            base_lr_mult,
            stats: false,
            poison: false,
        }
    }
}

/// What one step reports.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The reduced loss that was back-propagated (non-finite: nothing was stepped).
    pub loss_sum: f64,
    /// The mean of the per-anchor terms (NaN when the loss was not finite).
    pub mean_loss: f64,
    /// The loss statistics, when [`StepSettings::stats`] asked for them.
    pub stats: Option<LossStats>,
}

/// A model with its two optimisers (the backbone's and the head's).
struct Replica<M, O> {
    model: M,
    backbone_optimizer: O,
    head_optimizer: O,
}

/// The models and optimisers a run steps: one replica per device. Replica 0 is the one a
/// run checkpoints and evaluates; the others start as its copies, with the same parameter
/// ids, so that their gradients pair up in the all-reduce. After a step that returned an
/// error the stepper holds no model and must be dropped.
pub struct Stepper<B: AutodiffBackend, M, O> {
    replicas: Vec<Replica<M, O>>,
    parallel: Option<DataParallel<B>>,
}

impl<B: AutodiffBackend, M, O> Stepper<B, M, O> {
    /// The model of replica 0.
    pub fn model(&self) -> &M {
        &self.replicas[0].model
    }

    /// The optimisers of replica 0: the backbone's, then the head's.
    pub fn optimizers(&self) -> (&O, &O) {
        let first = &self.replicas[0];
        (&first.backbone_optimizer, &first.head_optimizer)
    }

    /// The model of replica 0, the others dropped.
    pub fn into_model(mut self) -> M {
        self.replicas.swap_remove(0).model
    }
}

impl<B, M, O> Stepper<B, M, O>
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    M::InnerModule: Embed<B::InnerBackend>,
    O: Optimizer<M, B>,
{
    /// Steps `model` with the two optimisers on `devices` (several: data-parallel over burn's
    /// collective, see [`crate::parallel`]; the model is copied to devices 1..).
    pub fn new(
        model: M,
        backbone_optimizer: O,
        head_optimizer: O,
        devices: &[B::Device],
    ) -> Result<Self> {
        let parallel = match devices.len() {
            0 | 1 => None,
            _ => Some(DataParallel::<B>::start(devices)?),
        };
        let copies: Vec<Replica<M, O>> = devices
            .iter()
            .skip(1)
            .map(|device| Replica {
                model: model.clone().fork(device),
                backbone_optimizer: backbone_optimizer.clone(),
                head_optimizer: head_optimizer.clone(),
            })
            .collect();
        let mut replicas = vec![Replica {
            model,
            backbone_optimizer,
            head_optimizer,
        }];
        replicas.extend(copies);
        Ok(Self { replicas, parallel })
    }

    /// One step on a batch: `images` `[N, 3, S, S]` on device 0, `labels` `[N]`, and the
    /// same labels on the host as `class_ids` (each class's rows consecutive, as the sampler
    /// draws them). Checks the batch layout on the host labels first (`check_batch`), then
    /// embeds, expands, computes the loss, back-propagates and steps both optimisers. A
    /// non-finite loss steps nothing and is reported in [`StepOutcome::loss_sum`].
    pub fn step<L: PairLoss + Sync>(
        &mut self,
        images: Tensor<B, 4>,
        labels: Tensor<B, 1, Int>,
        class_ids: &[u32],
        loss: &L,
        settings: &StepSettings,
    ) -> Result<StepOutcome> {
        let rows = class_ids.len();
        let host_labels: Vec<i64> = class_ids.iter().map(|&id| i64::from(id)).collect();
        check_batch(&host_labels, rows, loss.expansion().n_inner_pts() > 0)?;
        match &self.parallel {
            None => {
                let replica = self.replicas.pop().expect("a stepper holds replica 0");
                let embeddings = replica.model.embed(images);
                let (replica, outcome) =
                    replica_step(replica, embeddings, labels, loss, settings, None)?;
                self.replicas.push(replica);
                Ok(outcome)
            }
            Some(parallel) => {
                let ranges = split_rows(class_ids, parallel.devices().len())?;
                let replicas = std::mem::take(&mut self.replicas);
                let results = std::thread::scope(|scope| {
                    let handles: Vec<_> = replicas
                        .into_iter()
                        .zip(ranges)
                        .zip(parallel.devices())
                        .enumerate()
                        .map(|(peer, ((replica, range), device))| {
                            let (images, labels) =
                                slice_batch(&images, &labels, range.clone(), device);
                            scope.spawn(move || {
                                let own = replica.model.embed(images);
                                let whole = gather_embeddings(peer, own, range, rows)?;
                                replica_step(replica, whole, labels, loss, settings, Some(peer))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|handle| handle.join().expect("a device's training step panicked"))
                        .collect::<Result<Vec<_>>>()
                })?;
                let mut outcome = None;
                for (replica, replica_outcome) in results {
                    outcome.get_or_insert(replica_outcome);
                    self.replicas.push(replica);
                }
                Ok(outcome.expect("at least one device"))
            }
        }
    }
}

/// A `[1]` tensor's value as f64 (through `TensorData`, without rounding).
fn scalar<B: burn::tensor::backend::Backend>(tensor: Tensor<B, 1>) -> f64 {
    tensor
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_or(f64::NAN, |values| values[0])
}

/// One replica's step from the whole batch's `embeddings` (its own rows attached to its
/// graph): Embedding Expansion, the loss, then [`optimizer_step_with`] with the gradients
/// summed over the peers (when `peer` is set). A non-finite loss returns the replica
/// unstepped: every peer sees the same loss, so all stop before any collective call.
fn replica_step<B, M, L, O>(
    replica: Replica<M, O>,
    embeddings: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    loss: &L,
    settings: &StepSettings,
    peer: Option<usize>,
) -> Result<(Replica<M, O>, StepOutcome)>
where
    B: AutodiffBackend,
    M: TrainModel<B>,
    L: PairLoss,
    O: Optimizer<M, B>,
{
    let Replica {
        model,
        mut backbone_optimizer,
        mut head_optimizer,
    } = replica;
    // Embedding Expansion, then the loss on real and synthetic points.
    let expanded = loss.expansion().expand_unchecked(embeddings, labels);
    let output = loss.forward_expanded(&expanded);
    let mut trained = output.loss.clone();
    if settings.poison {
        trained = trained.add_scalar(f32::NAN);
    }
    let loss_sum = scalar(trained.clone());
    if !loss_sum.is_finite() {
        let outcome = StepOutcome {
            loss_sum,
            mean_loss: f64::NAN,
            stats: None,
        };
        let replica = Replica {
            model,
            backbone_optimizer,
            head_optimizer,
        };
        return Ok((replica, outcome));
    }
    let stats = settings.stats.then(|| output.stats());
    let mean_loss = match &stats {
        Some(stats) => stats.mean_per_anchor,
        None => scalar(output.per_anchor.clone().detach().mean()),
    };
    let model = optimizer_step_with(
        model,
        trained,
        settings.lr,
        settings.base_lr_mult,
        &mut backbone_optimizer,
        &mut head_optimizer,
        |grads| match peer {
            Some(peer) => all_reduce_gradients::<B>(peer, grads),
            None => Ok(grads),
        },
    )?;
    let replica = Replica {
        model,
        backbone_optimizer,
        head_optimizer,
    };
    let outcome = StepOutcome {
        loss_sum,
        mean_loss,
        stats,
    };
    Ok((replica, outcome))
}
