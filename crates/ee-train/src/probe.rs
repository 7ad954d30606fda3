//! Cross-backend probes: the same fixed computations on any burn backend (`ee probe` runs
//! them on the one it was built with), written as JSON so that two backends (CUDA on a GPU
//! machine, the CPU one here) can be compared number by number, and timed beside PyTorch.
//! `cargo xtask gpu-check` packs `ee` with a script that runs these on a GPU and compares
//! them with the CPU backend's results.
//!
//! Every input comes from a seeded ChaCha8 stream on the host (GoogLeNet's torchvision
//! initialisation included), so every backend sees the same numbers:
//! - [`Probe::Loss`]: EE (2 inner points) + HPHN triplet on 64 x 128 unit embeddings, 16
//!   classes x 4: the loss and its gradient with respect to the embeddings;
//! - [`Probe::Forward`]: GoogLeNet + 512-d head on 4 images of 227 px, in eval and in train
//!   mode (batch statistics);
//! - [`Probe::Step`]: one Adam step (the reference recipe: coupled weight decay, two parameter
//!   groups) of GoogLeNet-512 + EE/HPHN on 16 images of 64 px, then the eval-mode embeddings;
//! - [`Probe::Throughput`]: images/s of that train step at a chosen batch and size (median
//!   of timed steps after warm-up);
//! - [`Probe::Recall`]: Recall@K and MAP@R of `n` clustered 512-d unit vectors, timed; the
//!   vectors are written as `.npy` beside the report for a baseline to score the same data.
//!
//! ```
//! use ee_train::probe::{run_probe, Probe, ProbeSettings};
//! # type B = burn::backend::Autodiff<burn::backend::Flex>;
//! let out = std::env::temp_dir().join(format!("ee-probe-doc-{}", std::process::id()));
//! let report = run_probe::<B>(Probe::Loss, &ProbeSettings::default(), &out, &Default::default())
//!     .unwrap();
//! assert!(report["loss"].as_f64().unwrap() > 0.0);
//! # std::fs::remove_dir_all(&out).ok();
//! ```

use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use ee_eval::{evaluate_matrix, EmbeddingMatrix, EvalConfig};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig};
use ee_model::{EmbeddingModel, EmbeddingModelConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::error::{Result, TrainError};
use crate::{OptimizerConfig, StepSettings, Stepper};

/// One probe (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// EE + HPHN loss and gradient on fixed embeddings.
    Loss,
    /// GoogLeNet-512 forward, eval and train mode.
    Forward,
    /// One Adam step of GoogLeNet-512 + EE/HPHN.
    Step,
    /// Images/s of a train step.
    Throughput,
    /// Recall@K / MAP@R of clustered embeddings, timed.
    Recall,
}

impl Probe {
    /// Every probe, in report order.
    pub const ALL: [Probe; 5] = [
        Probe::Loss,
        Probe::Forward,
        Probe::Step,
        Probe::Throughput,
        Probe::Recall,
    ];

    /// The probe's key in the report.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Loss => "loss",
            Probe::Forward => "forward",
            Probe::Step => "step",
            Probe::Throughput => "throughput",
            Probe::Recall => "recall",
        }
    }

    /// The probe named `name`.
    pub fn parse(name: &str) -> Result<Probe> {
        Probe::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                TrainError::Probe(format!(
                    "unknown probe `{name}`: loss, forward, step, throughput or recall"
                ))
            })
    }
}

/// Sizes of the probes that take them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// Throughput: images per step.
    pub batch: usize,
    /// Throughput: image side in pixels.
    pub image_size: usize,
    /// Throughput: instances per class in the batch.
    pub instances: usize,
    /// Throughput: untimed steps first.
    pub warmup: usize,
    /// Throughput: timed steps.
    pub steps: usize,
    /// Recall: number of embeddings.
    pub recall_n: usize,
    /// Recall: number of classes.
    pub recall_classes: usize,
    /// Recall: the Ks.
    pub recall_ks: Vec<usize>,
}

impl Default for ProbeSettings {
    /// The GPU check's sizes: batch 128 at 227 px (32 classes x 4), 3 + 10 steps; SOP's
    /// test set (60,502 embeddings of 11,316 classes) at Recall@1, 10, 100, 1000.
    fn default() -> Self {
        Self {
            batch: 128,
            image_size: 227,
            instances: 4,
            warmup: 3,
            steps: 10,
            recall_n: 60_502,
            recall_classes: 11_316,
            recall_ks: vec![1, 10, 100, 1000],
        }
    }
}

/// Runs one probe on `device` and returns its JSON object; [`Probe::Recall`] also writes
/// `recall_embeddings.npy` and `recall_labels.npy` to `out`.
pub fn run_probe<B: AutodiffBackend>(
    probe: Probe,
    settings: &ProbeSettings,
    out: &Path,
    device: &B::Device,
) -> Result<Value> {
    match probe {
        Probe::Loss => loss_probe::<B>(device),
        Probe::Forward => forward_probe::<B>(device),
        Probe::Step => step_probe::<B>(device),
        Probe::Throughput => throughput_probe::<B>(settings, device),
        Probe::Recall => recall_probe::<B::InnerBackend>(settings, out, device),
    }
}

/// `n` standard-normal values from `seed`.
fn normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
        .collect()
}

/// Scales each `dim`-long row of `values` to unit length.
fn normalize_rows(values: &mut [f32], dim: usize) {
    for row in values.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

/// `batch` rows of `instances` per class, as a tensor and on the host.
fn labels<B: AutodiffBackend>(
    batch: usize,
    instances: usize,
    device: &B::Device,
) -> (Tensor<B, 1, Int>, Vec<u32>) {
    let class_ids: Vec<u32> = (0..batch).map(|row| (row / instances) as u32).collect();
    let ids: Vec<i64> = class_ids.iter().map(|&id| i64::from(id)).collect();
    (Tensor::from_ints(ids.as_slice(), device), class_ids)
}

fn images<B: AutodiffBackend>(
    batch: usize,
    side: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 4> {
    Tensor::from_data(
        TensorData::new(
            normal(batch * 3 * side * side, seed),
            [batch, 3, side, side],
        ),
        device,
    )
}

fn values<B: burn::tensor::backend::Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 data after convert")
}

/// The reference recipe's loss: EE with 2 inner points + HPHN triplet (margin 1e-5, summed).
fn reference_loss() -> Result<ee_loss::HphnTripletLoss> {
    Ok(HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(2))
        .init()?)
}

fn googlenet<B: AutodiffBackend>(device: &B::Device) -> Result<EmbeddingModel<B>> {
    Ok(EmbeddingModelConfig::new()
        .with_embed_dim(512)
        .init(device)?)
}

fn loss_probe<B: AutodiffBackend>(device: &B::Device) -> Result<Value> {
    let (batch, dim, instances) = (64, 128, 4);
    let mut x = normal(batch * dim, 1);
    normalize_rows(&mut x, dim);
    let embeddings =
        Tensor::<B, 2>::from_data(TensorData::new(x, [batch, dim]), device).require_grad();
    let output =
        reference_loss()?.forward(embeddings.clone(), labels::<B>(batch, instances, device).0)?;
    let loss: f64 = output.loss.clone().into_scalar().elem();
    let grads = output.loss.backward();
    let grad = embeddings.grad(&grads).map(values).unwrap_or_default();
    Ok(json!({
        "batch": batch, "dim": dim, "instances": instances, "n_inner_pts": 2,
        "loss": loss, "grad": grad,
    }))
}

fn forward_probe<B: AutodiffBackend>(device: &B::Device) -> Result<Value> {
    let (batch, side) = (4, 227);
    let model = googlenet::<B>(device)?;
    let input = images::<B>(batch, side, 2, device);
    let eval = values(model.valid().forward(input.clone().inner()));
    let train = values(model.forward(input));
    Ok(json!({
        "batch": batch, "image_size": side, "embed_dim": 512,
        "eval": eval, "train": train,
    }))
}

/// The reference recipe's two Adam groups (coupled weight decay 5e-4, epsilon 1e-8, both at
/// lr 1e-4), stepped by ee-train's training step, the one `ee train` runs.
type ProbeStepper<B> = Stepper<B, EmbeddingModel<B>, ProbeOptimizer<B>>;
type ProbeOptimizer<B> =
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, EmbeddingModel<B>, B>;

const PROBE_LR: f64 = 1e-4;

fn stepper<B: AutodiffBackend>(
    model: EmbeddingModel<B>,
    device: &B::Device,
) -> Result<ProbeStepper<B>> {
    let optimizer = OptimizerConfig::new()
        .with_lr(PROBE_LR)
        .with_epsilon(1e-8)
        .with_weight_decay(5e-4);
    let make = || optimizer.adam().init::<B, EmbeddingModel<B>>();
    Stepper::new(model, make(), make(), std::slice::from_ref(device))
}

/// One train step of the reference recipe ([`Stepper::step`]); the loss before it.
fn train_step<B: AutodiffBackend>(
    stepper: &mut ProbeStepper<B>,
    images: &Tensor<B, 4>,
    (labels, class_ids): &(Tensor<B, 1, Int>, Vec<u32>),
    loss: &ee_loss::HphnTripletLoss,
) -> Result<f64> {
    let settings = StepSettings::new(PROBE_LR, 1.0);
    let outcome = stepper.step(images.clone(), labels.clone(), class_ids, loss, &settings)?;
    Ok(outcome.loss_sum)
}

fn step_probe<B: AutodiffBackend>(device: &B::Device) -> Result<Value> {
    let (batch, side, instances) = (16, 64, 4);
    let mut stepper = stepper(googlenet::<B>(device)?, device)?;
    let input = images::<B>(batch, side, 3, device);
    let labels = labels::<B>(batch, instances, device);
    let loss = reference_loss()?;
    let before = train_step(&mut stepper, &input, &labels, &loss)?;
    let after = values(stepper.model().valid().forward(input.inner()));
    Ok(json!({
        "batch": batch, "image_size": side, "instances": instances, "lr": 1e-4,
        "loss_before": before, "embeddings_after": after,
    }))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn throughput_probe<B: AutodiffBackend>(
    settings: &ProbeSettings,
    device: &B::Device,
) -> Result<Value> {
    let (batch, side) = (settings.batch, settings.image_size);
    if settings.instances == 0 || batch % settings.instances != 0 || settings.steps == 0 {
        return Err(TrainError::Probe(format!(
            "throughput: batch {batch} must be a multiple of instances {} and steps > 0",
            settings.instances
        )));
    }
    let mut stepper = stepper(googlenet::<B>(device)?, device)?;
    let input = images::<B>(batch, side, 4, device);
    let labels = labels::<B>(batch, settings.instances, device);
    let loss = reference_loss()?;
    let mut times = Vec::new();
    let mut last = 0.0;
    for step in 0..settings.warmup + settings.steps {
        let start = Instant::now();
        // The loss read-back in the step syncs the device, so the time is the step's.
        last = train_step(&mut stepper, &input, &labels, &loss)?;
        if step >= settings.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let seconds = median(times.clone());
    Ok(json!({
        "batch": batch, "image_size": side, "instances": settings.instances,
        "embed_dim": 512, "n_inner_pts": 2, "step_seconds": times,
        "median_seconds": seconds, "images_per_second": batch as f64 / seconds,
        "final_loss": last,
    }))
}

/// `n` unit vectors of `dim` dims around `classes` random centres (labels in equal consecutive
/// blocks), so that Recall@K is neither 0 nor 1.
pub fn clustered_embeddings(
    n: usize,
    classes: usize,
    dim: usize,
    seed: u64,
) -> (Vec<f32>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..classes * dim)
        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| (i * classes / n) as i64).collect();
    // Noise 2.5 times the centres' scale: same-class neighbours are near, not always nearest
    // (Recall@1 about 0.4 at SOP's size, 0.9 at 600 items of 100 classes).
    let spread = 2.5;
    let mut x = Vec::with_capacity(n * dim);
    for &label in &labels {
        let centre = &centres[label as usize * dim..(label as usize + 1) * dim];
        for &c in centre {
            let noise: f32 =
                rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            x.push(c + spread * noise);
        }
    }
    normalize_rows(&mut x, dim);
    (x, labels)
}

fn recall_probe<B: burn::tensor::backend::Backend>(
    settings: &ProbeSettings,
    out: &Path,
    device: &B::Device,
) -> Result<Value> {
    let (n, classes, dim) = (settings.recall_n, settings.recall_classes, 512);
    if classes == 0 || classes > n {
        return Err(TrainError::Probe(format!(
            "recall: classes {classes} must be in 1..={n}"
        )));
    }
    let (x, labels) = clustered_embeddings(n, classes, dim, 5);
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    for (name, bytes) in [
        (
            "recall_embeddings.npy",
            ee_core::npy::matrix_bytes(&x, n, dim),
        ),
        ("recall_labels.npy", ee_core::npy::labels_bytes(&labels)),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| TrainError::Io { path, source })?;
    }
    let matrix = EmbeddingMatrix::new(x, dim)?;
    let config = EvalConfig::new()
        .with_recall_ks(settings.recall_ks.clone())
        .with_clustering(false);
    let start = Instant::now();
    let report = evaluate_matrix::<B>(&matrix, &labels, &config, device)?;
    let seconds = start.elapsed().as_secs_f64();
    let recall: serde_json::Map<String, Value> = report
        .recall_at_k
        .iter()
        .map(|r| (r.k.to_string(), json!(r.recall)))
        .collect();
    Ok(json!({
        "n": n, "dim": dim, "classes": classes, "seconds": seconds,
        "recall": recall, "map_at_r": report.map_at_r,
        "embeddings": "recall_embeddings.npy", "labels": "recall_labels.npy",
    }))
}

/// Runs `probes` in order and writes `{"backend", "probes": {name: result}, "seconds"}` to
/// `out/probe.json` (atomically, [`ee_core::fs::write_atomic`]), printing a line per probe. Returns
/// the report's path.
pub fn write_probes<B: AutodiffBackend>(
    probes: &[Probe],
    settings: &ProbeSettings,
    out: &Path,
    device: &B::Device,
    backend: &str,
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let mut results = serde_json::Map::new();
    let mut seconds = serde_json::Map::new();
    for &probe in probes {
        let start = Instant::now();
        let result = run_probe::<B>(probe, settings, out, device)?;
        let took = start.elapsed().as_secs_f64();
        eprintln!("probe {}: {took:.2} s", probe.name());
        results.insert(probe.name().into(), result);
        seconds.insert(probe.name().into(), json!(took));
    }
    let report = json!({
        "backend": backend,
        "device": format!("{device:?}"),
        "probes": results,
        "seconds": seconds,
    });
    let path = out.join("probe.json");
    ee_core::fs::write_atomic(&path, report.to_string().as_bytes())?;
    Ok(path)
}
