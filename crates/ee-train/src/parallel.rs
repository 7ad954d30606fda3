//! Data-parallel training over several devices of one backend, with burn's collective
//! (`burn::collective`, its all-reduce). The whole batch is mined as one.
//!
//! Embedding Expansion and HPHN mine over the whole batch (the hardest negative of every
//! anchor, the synthetic points of every pair). If each device only mined its own slice, the
//! method would change. So a step on N devices runs like this:
//!
//! ```text
//! P x K batch -> split by whole classes -> device d embeds its rows with its replica
//!   -> all-reduce (sum) of zero-padded [rows, dim] embeddings: every device has the batch
//!   -> each device: EE + loss on the full batch, its own rows attached to its graph
//!   -> backward: the gradient of the whole-batch loss through its own rows
//!   -> all-reduce (sum) of the gradients = the one-device gradient -> the same step everywhere
//! ```
//!
//! Every device computes the same loss on the same gathered batch. Adding zeros to
//! embeddings is exact, so the gathered batch holds the very values each device embedded.
//! Each device's backward reaches only its own rows. Summed over devices, these partial
//! gradients are the gradient of one device training on the whole batch, up to float
//! rounding.
//!
//! BatchNorm statistics are per device, as in PyTorch DDP without SyncBN: in train mode a
//! replica normalises with its own slice's statistics and updates its own running
//! statistics. Replica 0's are the ones checkpointed and evaluated (DDP broadcasts rank 0's
//! buffers). Weights and optimiser moments are identical on every replica after every step,
//! so checkpoints hold replica 0 and resume recreates the others from it.
//!
//! burn's collective keeps one server per backend type in each process. So data-parallel
//! runs of one backend take turns in a process: [`DataParallel::start`] waits for the
//! previous run to finish.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use burn::collective::{self, CollectiveConfig, PeerId, ReduceOperation};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorPrimitive};

use crate::error::{Result, TrainError};

/// The rows of each device for a batch whose rows are grouped by class (`class_ids`, one
/// per row, each class a contiguous run). Each device gets contiguous whole classes, split
/// as evenly as the class count allows.
///
/// Errors if the batch has fewer classes than there are devices.
pub fn split_rows(class_ids: &[u32], devices: usize) -> Result<Vec<Range<usize>>> {
    let mut starts: Vec<usize> = (0..class_ids.len())
        .filter(|&r| r == 0 || class_ids[r] != class_ids[r - 1])
        .collect();
    let classes = starts.len();
    if devices == 0 || classes < devices {
        return Err(TrainError::Config {
            field: "run.devices".into(),
            value: devices.to_string(),
            rule: format!(
                "each device needs whole classes, and the batch has {classes} class(es): use at \
                 most {classes} devices or more classes per batch"
            ),
        });
    }
    starts.push(class_ids.len());
    Ok((0..devices)
        .map(|d| starts[d * classes / devices]..starts[(d + 1) * classes / devices])
        .collect())
}

/// A running collective session over `devices`: the peers `0..n` are registered with burn's
/// collective for the inner backend of `B`. Dropping it unregisters them.
pub struct DataParallel<B: AutodiffBackend> {
    devices: Vec<B::Device>,
    _turn: MutexGuard<'static, ()>,
}

/// One data-parallel session per process at a time (burn's collective server is global).
static TURN: Mutex<()> = Mutex::new(());

fn collective_error(what: &str, e: collective::CollectiveError) -> TrainError {
    TrainError::Collective(format!("{what}: {e:?}"))
}

impl<B: AutodiffBackend> DataParallel<B> {
    /// Registers one peer per device (at least two), each from its own thread (burn's
    /// `register` returns once all have registered).
    pub fn start(devices: &[B::Device]) -> Result<Self> {
        if devices.len() < 2 {
            return Err(TrainError::Config {
                field: "run.devices".into(),
                value: devices.len().to_string(),
                rule: "data-parallel training needs at least 2 devices".into(),
            });
        }
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Made first, so that a failed registration unregisters (on drop) the peers that did
        // register and the next session starts clean.
        let session = Self {
            devices: devices.to_vec(),
            _turn: turn,
        };
        let config = CollectiveConfig::default().with_num_devices(devices.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = devices
                .iter()
                .enumerate()
                .map(|(d, device)| {
                    let config = config.clone();
                    s.spawn(move || {
                        collective::register::<B::InnerBackend>(
                            PeerId::from(d),
                            device.clone(),
                            config,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("collective registration panicked"))
                .collect::<Result<Vec<()>, _>>()
        })
        .map_err(|e| collective_error("registering the devices", e))?;
        Ok(session)
    }

    /// The devices, peer `d` on `devices()[d]`.
    pub fn devices(&self) -> &[B::Device] {
        &self.devices
    }
}

impl<B: AutodiffBackend> Drop for DataParallel<B> {
    fn drop(&mut self) {
        for d in 0..self.devices.len() {
            // Unregistering does not wait for the other peers; an error here (a peer already
            // gone after a failure) leaves nothing to clean up.
            let _ = collective::finish_collective::<B::InnerBackend>(PeerId::from(d));
        }
    }
}

/// The whole batch's embeddings on `peer`'s device, from its own rows `own` (embedded there,
/// attached to its graph): one all-reduce of the zero-padded rows gives every peer the
/// others' rows (as constants); its own stay differentiable.
pub fn gather_embeddings<B: AutodiffBackend>(
    peer: usize,
    own: Tensor<B, 2>,
    rows: Range<usize>,
    total_rows: usize,
) -> Result<Tensor<B, 2>> {
    let [_, dim] = own.dims();
    let device = own.device();
    let padded = Tensor::<B::InnerBackend, 2>::zeros([total_rows, dim], &device)
        .slice_assign([rows.clone(), 0..dim], own.clone().inner());
    let summed = collective::all_reduce::<B::InnerBackend>(
        PeerId::from(peer),
        padded.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| collective_error("gathering the embeddings", e))?;
    let all = Tensor::<B::InnerBackend, 2>::from_primitive(TensorPrimitive::Float(summed));
    let mut parts = Vec::with_capacity(3);
    if rows.start > 0 {
        parts.push(Tensor::from_inner(
            all.clone().slice([0..rows.start, 0..dim]),
        ));
    }
    parts.push(own);
    if rows.end < total_rows {
        parts.push(Tensor::from_inner(
            all.slice([rows.end..total_rows, 0..dim]),
        ));
    }
    Ok(Tensor::cat(parts, 0))
}

/// Sums `grads` over all peers (every peer must call it with the same parameters).
pub fn all_reduce_gradients<B: AutodiffBackend>(
    peer: usize,
    grads: GradientsParams,
) -> Result<GradientsParams> {
    if grads.is_empty() {
        return Ok(grads);
    }
    grads
        .all_reduce::<B::InnerBackend>(PeerId::from(peer), ReduceOperation::Sum)
        .map_err(|e| collective_error("summing the gradients", e))
}

/// The rows `rows` of a batch's images and labels, on `device`.
pub(crate) fn slice_batch<B: AutodiffBackend>(
    images: &Tensor<B, 4>,
    labels: &Tensor<B, 1, Int>,
    rows: Range<usize>,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let [_, c, h, w] = images.dims();
    (
        images
            .clone()
            .slice([rows.clone(), 0..c, 0..h, 0..w])
            .to_device(device),
        labels.clone().to_device(device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_by_whole_classes() {
        let ids = [3, 3, 1, 1, 7, 7, 2, 2, 5, 5];
        assert_eq!(split_rows(&ids, 1).unwrap(), vec![0..10]);
        assert_eq!(split_rows(&ids, 2).unwrap(), vec![0..4, 4..10]);
        assert_eq!(split_rows(&ids, 3).unwrap(), vec![0..2, 2..6, 6..10]);
        assert_eq!(split_rows(&ids, 5).unwrap().len(), 5);
        let err = split_rows(&ids, 6).unwrap_err().to_string();
        assert!(
            err.contains("run.devices") && err.contains("5 class"),
            "{err}"
        );
    }
}
