//! Data-parallel training on two devices of the CPU backend (threads of one process, burn's
//! collective): the whole batch is mined as one, so one step on 2 devices equals one step on
//! 1 device, BatchNorm aside; and a two-device run resumes exactly.
//!
//! burn's collective server is global to the process: the tests take turns (the library's
//! own lock), which the `DataParallel` sessions below share with the trainer.

mod common;

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{module::adaptive_avg_pool2d, Int, Tensor, TensorData};
use common::{dataset, loader};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLoss, HphnTripletLossConfig};
use ee_model::{l2_normalize, Embed};
use ee_train::parallel::{all_reduce_gradients, gather_embeddings, split_rows};
use ee_train::{DataParallel, EvalSet, TrainData, TrainModel, TrainerConfig};

type B = Autodiff<Flex>;
type Inner = <B as AutodiffBackend>::InnerBackend;

/// A 16 px image pooled to 4 x 4, a hidden layer (with BatchNorm when asked), a linear head.
#[derive(Module, Debug)]
struct Net<B: Backend> {
    hidden: Linear<B>,
    bn: Option<BatchNorm<B>>,
    head: Linear<B>,
}

impl<B: Backend> Embed<B> for Net<B> {
    fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = images.dims()[0];
        let x = adaptive_avg_pool2d(images, [4, 4]).reshape([n, 48]);
        let mut h = self.hidden.forward(x);
        if let Some(bn) = &self.bn {
            // BatchNorm over the 24 features: [n, 24] -> [n, 24, 1] and back.
            h = bn.forward(h.unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2);
        }
        l2_normalize(self.head.forward(burn::tensor::activation::relu(h)))
    }
}

impl<B: AutodiffBackend> TrainModel<B> for Net<B> {}

/// Seeded weights: the backends' global RNG is shared by tests running in parallel.
fn net(batch_norm: bool) -> Net<B> {
    let device = Default::default();
    let seeded = |shape: [usize; 2], seed: u64| {
        let n = shape[0] * shape[1];
        let values: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5) * 0.6)
            .collect();
        Tensor::<B, 2>::from_data(TensorData::new(values, shape), &device)
    };
    // Zero biases: `LinearConfig::init` would draw them from the global RNG.
    let linear = |shape: [usize; 2], seed: u64| {
        let mut layer = LinearConfig::new(shape[0], shape[1]).init(&device);
        layer.weight = layer.weight.map(|_| seeded(shape, seed).require_grad());
        layer.bias = layer.bias.map(|b| b.map(|t| t.zeros_like().require_grad()));
        layer
    };
    let hidden = linear([48, 24], 1);
    let head = linear([24, 8], 2);
    Net {
        hidden,
        bn: batch_norm.then(|| BatchNormConfig::new(24).init(&device)),
        head,
    }
}

fn ee_hphn() -> HphnTripletLoss {
    HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(2))
        .init()
        .unwrap()
}

/// A 4 classes x 4 instances batch of fixed images (classes in contiguous runs).
fn batch() -> (Tensor<B, 4>, Vec<u32>) {
    let values: Vec<f32> = (0..16 * 3 * 16 * 16)
        .map(|i| ((i * 7919) % 251) as f32 / 251.0 - 0.5)
        .collect();
    let images = Tensor::from_data(
        TensorData::new(values, [16, 3, 16, 16]),
        &Default::default(),
    );
    let classes = (0..16).map(|r| [5u32, 2, 9, 4][r / 4]).collect();
    (images, classes)
}

fn labels(classes: &[u32]) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = classes.iter().map(|&c| c as i64).collect();
    Tensor::from_data(
        TensorData::new(values, [classes.len()]),
        &Default::default(),
    )
}

/// The head's weight gradient, the loss, from one device: `embed` gives the batch's
/// embeddings from the model.
fn one_device(
    model: &Net<B>,
    loss: &HphnTripletLoss,
    classes: &[u32],
    embed: impl Fn(&Net<B>) -> Tensor<B, 2>,
) -> (f32, Vec<f32>) {
    let expanded = loss
        .expansion()
        .expand(embed(model), labels(classes))
        .unwrap();
    let out = loss.forward_expanded(&expanded);
    let value = out.loss.clone().into_scalar();
    let grads = GradientsParams::from_grads(out.loss.backward(), model);
    (value, head_grad(model, &grads))
}

fn head_grad(model: &Net<B>, grads: &GradientsParams) -> Vec<f32> {
    grads
        .get::<Inner, 2>(model.head.weight.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap()
}

/// The same step on two peers (threads): each embeds its classes, the embeddings are
/// gathered, each back-propagates the whole-batch loss through its rows, the gradients are
/// summed. Returns each peer's (loss, summed head gradient).
fn two_devices(
    model: &Net<B>,
    loss: &HphnTripletLoss,
    images: &Tensor<B, 4>,
    classes: &[u32],
) -> Vec<(f32, Vec<f32>)> {
    let devices = [Default::default(), Default::default()];
    let session = DataParallel::<B>::start(&devices).unwrap();
    let ranges = split_rows(classes, 2).unwrap();
    let rows = classes.len();
    let out = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .into_iter()
            .enumerate()
            .map(|(d, range)| {
                let model = model.clone();
                let images = images.clone().slice([range.clone(), 0..3, 0..16, 0..16]);
                s.spawn(move || {
                    let own = model.embed(images);
                    let full = gather_embeddings::<B>(d, own, range, rows).unwrap();
                    let expanded = loss.expansion().expand(full, labels(classes)).unwrap();
                    let out = loss.forward_expanded(&expanded);
                    let value = out.loss.clone().into_scalar();
                    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                    let grads = all_reduce_gradients::<B>(d, grads).unwrap();
                    (value, head_grad(&model, &grads))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(session);
    out
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all zero");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

#[test]
fn two_devices_give_the_one_device_loss_and_gradients() {
    let (images, classes) = batch();
    let loss = ee_hphn();

    // Without BatchNorm: exactly the one-device step on the whole batch.
    let model = net(false);
    let (value, grad) = one_device(&model, &loss, &classes, |m| m.embed(images.clone()));
    for (peer, (v, g)) in two_devices(&model, &loss, &images, &classes)
        .iter()
        .enumerate()
    {
        assert!(
            (v - value).abs() <= 1e-6 * value.abs().max(1.0),
            "peer {peer}: loss {v} vs {value}"
        );
        assert_close(g, &grad, 1e-5, &format!("peer {peer} head gradient"));
    }

    // With BatchNorm in train mode: each device normalises its own classes. That is the
    // whole difference: one device embedding the two halves separately gives the same step.
    let model = net(true);
    let halves = |m: &Net<B>| {
        let a = m.embed(images.clone().slice([0..8, 0..3, 0..16, 0..16]));
        let b = m.embed(images.clone().slice([8..16, 0..3, 0..16, 0..16]));
        Tensor::cat(vec![a, b], 0)
    };
    let (value, grad) = one_device(&model, &loss, &classes, halves);
    let (whole_value, whole_grad) =
        one_device(&model, &loss, &classes, |m| m.embed(images.clone()));
    for (peer, (v, g)) in two_devices(&model, &loss, &images, &classes)
        .iter()
        .enumerate()
    {
        assert!(
            (v - value).abs() <= 1e-6 * value.abs().max(1.0),
            "peer {peer}: loss {v} vs {value}"
        );
        assert_close(
            g,
            &grad,
            1e-5,
            &format!("peer {peer} head gradient (BatchNorm)"),
        );
    }
    // ... and whole-batch statistics would have given another step.
    let differs = (whole_value - value).abs() > 1e-4
        || whole_grad
            .iter()
            .zip(&grad)
            .any(|(a, b)| (a - b).abs() > 1e-4);
    assert!(
        differs,
        "the BatchNorm check needs per-device statistics to matter"
    );
}

/// 4 train classes x 8 images; batches of 4 classes x 2, 2 batches per epoch.
fn trainer(run_dir: &Path, epochs: u64) -> TrainerConfig {
    common::trainer(run_dir, epochs, 2)
}

fn weights(model: &Net<B>) -> Vec<Vec<f32>> {
    [model.hidden.weight.val(), model.head.weight.val()]
        .into_iter()
        .map(|w| w.into_data().to_vec().unwrap())
        .collect()
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn the_trainer_on_two_devices_matches_one_device_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let loss = ee_hphn();
    let devices = [Default::default(), Default::default()];

    let one = dir.path().join("one");
    let one_device = trainer(&one, 2)
        .init()
        .unwrap()
        .fit(net(false), &loss, train, &devices[0])
        .unwrap();
    let two = dir.path().join("two");
    let two_devices = trainer(&two, 2)
        .init()
        .unwrap()
        .fit_data_parallel(net(false), &loss, train, &devices)
        .unwrap();
    assert_eq!(two_devices.summary.steps, 4);
    let (l1, l2) = (losses(&one), losses(&two));
    assert_eq!(l1.len(), 4);
    for (a, b) in l1.iter().zip(&l2) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "losses {l1:?} vs {l2:?}"
        );
    }
    assert_ne!(
        weights(&two_devices.model),
        weights(&net(false)),
        "nothing trained"
    );
    for (a, b) in weights(&one_device.model)
        .iter()
        .zip(weights(&two_devices.model))
    {
        assert_close(&b, a, 1e-4, "weights after 4 steps");
    }

    // One epoch, then resume for the second: the same run as two epochs straight.
    let split = dir.path().join("split");
    trainer(&split, 1)
        .init()
        .unwrap()
        .fit_data_parallel(net(false), &loss, train, &devices)
        .unwrap();
    let resumed = trainer(&split, 2)
        .with_resume(true)
        .init()
        .unwrap()
        .fit_data_parallel(net(false), &loss, train, &devices)
        .unwrap();
    assert_eq!(weights(&resumed.model), weights(&two_devices.model));
    assert_eq!(losses(&split), l2);
}

#[test]
fn more_devices_than_classes_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let devices = vec![Default::default(); 5];
    let err = trainer(&dir.path().join("run"), 1)
        .init()
        .unwrap()
        .fit_data_parallel(net(false), &ee_hphn(), train, &devices)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run.devices") && err.contains("4 class"),
        "{err}"
    );
}
