//! One training step of the reference recipe on the CPU (`Flex`) backend, timed the way
//! `xtask/baselines/train_step.py` times PyTorch's, so `cargo xtask bench train-step` can put
//! the two side by side: GoogLeNet (torchvision init) + Linear head + L2 norm, EE (n inner
//! points) + HPHN triplet (margin 1e-5, summed), Adam lr 1e-4 with coupled weight decay 5e-4
//! and epsilon 1e-8 on two parameter groups (backbone, head), a fixed random batch (no data
//! loading), the loss read back once.
//!
//! ```text
//! cargo bench -p ee-model --bench train_step -- --threads 2 --image-size 64 --batch 64 \
//!     --instances 8 [--mode train|embed] [--steps 5] [--warmup 2] [--json out.json]
//! ```
//! Prints one JSON line: the step times, their median, images/s, and where a step's time went
//! (forward, loss, backward, optimiser; the host convolution's forward and backward inside
//! them). `EE_CPU_KERNELS=burn` times burn's own convolution instead.

use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig};
use ee_model::{EmbeddingModel, EmbeddingModelConfig};

// `--features test-tch` times the same step on LibTorch (`cargo xtask bench train-step
// --backend tch`), whose threads follow OMP_NUM_THREADS.
#[cfg(not(feature = "test-tch"))]
type Inner = burn::backend::Flex;
#[cfg(feature = "test-tch")]
type Inner = burn::backend::LibTorch;
type AD = Autodiff<Inner>;
/// The backend's name in the report.
const BACKEND: &str = if cfg!(feature = "test-tch") {
    "tch"
} else {
    "flex"
};

struct Args {
    threads: usize,
    image_size: usize,
    batch: usize,
    instances: usize,
    embed_dim: usize,
    n_inner_pts: usize,
    mode: String,
    warmup: usize,
    steps: usize,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        image_size: 64,
        batch: 64,
        instances: 8,
        embed_dim: 128,
        n_inner_pts: 2,
        mode: "train".into(),
        warmup: 2,
        steps: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // cargo bench passes it
        }
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--threads" => args.threads = number(value()?)?,
            "--image-size" => args.image_size = number(value()?)?,
            "--batch" => args.batch = number(value()?)?,
            "--instances" => args.instances = number(value()?)?,
            "--embed-dim" => args.embed_dim = number(value()?)?,
            "--n-inner-pts" => args.n_inner_pts = number(value()?)?,
            "--warmup" => args.warmup = number(value()?)?,
            "--steps" => args.steps = number(value()?)?,
            "--mode" => args.mode = value()?,
            "--json" => args.json = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.instances == 0 || !args.batch.is_multiple_of(args.instances) || args.steps == 0 {
        return Err("--batch must be a multiple of --instances, and --steps >= 1".into());
    }
    if !matches!(args.mode.as_str(), "train" | "embed") {
        return Err(format!("--mode {}: train or embed", args.mode));
    }
    Ok(args)
}

/// Wall time of each phase, summed over the timed steps.
#[derive(Default)]
struct Phases {
    forward: Duration,
    loss: Duration,
    backward: Duration,
    optimizer: Duration,
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

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("train_step: {e}");
        std::process::exit(2)
    });
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("the global thread pool is set once");
    let device = Default::default();
    // The input batch comes from the backend's RNG: seeded, so runs are comparable.
    AD::seed(&device, 0);
    let mut model: EmbeddingModel<AD> = EmbeddingModelConfig::new()
        .with_embed_dim(args.embed_dim)
        .init(&device)
        .expect("valid model config");
    let shape = [args.batch, 3, args.image_size, args.image_size];
    let images = Tensor::<AD, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let class_ids: Vec<i64> = (0..args.batch)
        .map(|i| (i / args.instances) as i64)
        .collect();
    let labels = Tensor::<AD, 1, Int>::from_ints(class_ids.as_slice(), &device);
    let loss = HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(args.n_inner_pts))
        .init()
        .expect("valid loss config");
    let adam = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)));
    let mut backbone_optimizer = adam.init::<AD, EmbeddingModel<AD>>();
    let mut head_optimizer = adam.init::<AD, EmbeddingModel<AD>>();
    let lr = 1e-4;

    let mut times = Vec::new();
    let mut phases = Phases::default();
    let mut final_loss = None;
    let mut conv_start = ee_model::conv::host_time();
    for step in 0..args.warmup + args.steps {
        let timed = step >= args.warmup;
        if step == args.warmup {
            // Host-convolution time is counted over the timed steps only.
            conv_start = ee_model::conv::host_time();
        }
        let start = Instant::now();
        let mut phase = Phases::default();
        if args.mode == "embed" {
            let embeddings = model.valid().forward(images.clone().inner());
            let _: Vec<f32> = embeddings.into_data().to_vec().expect("f32 embeddings");
            phase.forward = start.elapsed();
        } else {
            let embeddings = model.forward(images.clone());
            phase.forward = start.elapsed();
            let output = loss
                .forward(embeddings, labels.clone())
                .expect("valid batch");
            let value: f64 = output.loss.clone().into_scalar().elem();
            final_loss = Some(value);
            phase.loss = start.elapsed() - phase.forward;
            let mut grads = output.loss.backward();
            phase.backward = start.elapsed() - phase.forward - phase.loss;
            let backbone_grads = GradientsParams::from_module(&mut grads, &model.backbone);
            let head_grads = GradientsParams::from_module(&mut grads, &model.head);
            model = backbone_optimizer.step(lr, model, backbone_grads);
            model = head_optimizer.step(lr, model, head_grads);
            phase.optimizer = start.elapsed() - phase.forward - phase.loss - phase.backward;
        }
        if timed {
            times.push(start.elapsed().as_secs_f64());
            phases.forward += phase.forward;
            phases.loss += phase.loss;
            phases.backward += phase.backward;
            phases.optimizer += phase.optimizer;
        }
    }
    let conv_end = ee_model::conv::host_time();
    let per_step = |d: Duration| d.as_secs_f64() / args.steps as f64;
    let median_seconds = median(times.clone());
    let kernels = if BACKEND == "tch" {
        "libtorch"
    } else if std::env::var(ee_model::conv::CPU_KERNELS_ENV).is_ok_and(|v| v == "burn") {
        "burn"
    } else {
        "ee-model host kernels"
    };
    let report = format!(
        concat!(
            "{{\"framework\": \"ee (burn {burn}, {backend})\", \"kernels\": \"{kernels}\", \"threads\": {threads}, ",
            "\"mode\": \"{mode}\", \"image_size\": {size}, \"batch\": {batch}, \"instances\": {k}, ",
            "\"embed_dim\": {dim}, \"n_inner_pts\": {n}, \"step_seconds\": {times:?}, ",
            "\"median_seconds\": {median}, \"images_per_second\": {ips}, \"final_loss\": {loss}, ",
            "\"phases_seconds_per_step\": {{\"forward\": {fwd}, \"loss\": {lossp}, \"backward\": {bwd}, ",
            "\"optimizer\": {opt}, \"host_conv_forward\": {cf}, \"host_conv_backward\": {cb}}}}}"
        ),
        burn = "0.21.0",
        backend = BACKEND,
        kernels = kernels,
        threads = args.threads,
        mode = args.mode,
        size = args.image_size,
        batch = args.batch,
        k = args.instances,
        dim = args.embed_dim,
        n = args.n_inner_pts,
        times = times,
        median = median_seconds,
        ips = args.batch as f64 / median_seconds,
        loss = final_loss.map_or("null".to_string(), |l| l.to_string()),
        fwd = per_step(phases.forward),
        lossp = per_step(phases.loss),
        bwd = per_step(phases.backward),
        opt = per_step(phases.optimizer),
        cf = per_step(conv_end.0 - conv_start.0),
        cb = per_step(conv_end.1 - conv_start.1),
    );
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{report}\n")).unwrap_or_else(|e| {
            eprintln!("train_step: cannot write {path}: {e}");
            std::process::exit(1)
        });
    }
}
