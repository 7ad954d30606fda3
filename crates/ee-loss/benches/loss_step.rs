//! Embedding Expansion + HPHN triplet, forward and backward, timed step by step and printed as
//! a JSON line: the ee-loss side of `cargo xtask bench loss` (the other side is the PyTorch
//! port, `xtask/baselines/loss_step.py`, on the same inputs and threads).
//!
//! ```text
//! loss_step [--batch 128] [--dim 512] [--instances 32] [--n-inner 2] [--steps 30]
//!           [--inputs X.npy]
//! ```
//!
//! A step is what the trainer runs: `expand_unchecked`, `forward_expanded`, `backward`, and the
//! gradient read back (`sum().into_scalar()`, as the PyTorch side's `.item()`). Without
//! `--inputs` the embeddings are random unit vectors. 5 warm-up steps, then the median.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};
use ee_loss::{EmbeddingExpansionConfig, HphnTripletLossConfig};

type B = Autodiff<Flex>;

fn main() {
    if let Err(e) = run() {
        eprintln!("loss_step: {e}");
        std::process::exit(2);
    }
}

fn number(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        }
        None => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let batch = number(&args, "--batch", 128)?;
    let dim = number(&args, "--dim", 512)?;
    let instances = number(&args, "--instances", 32)?;
    let n = number(&args, "--n-inner", 2)?;
    let steps = number(&args, "--steps", 30)?.max(1);
    if instances == 0 || instances % 2 == 1 || batch % instances != 0 {
        return Err(format!(
            "batch {batch} must hold whole classes of an even --instances ({instances})"
        ));
    }
    let device = Default::default();
    let x: Tensor<B, 2> = match args.iter().position(|a| a == "--inputs") {
        Some(i) => {
            let path = args.get(i + 1).ok_or("--inputs needs a file")?;
            let m = ee_core::npy::read_matrix(std::path::Path::new(path))
                .map_err(|e| format!("{path}: {e}"))?;
            if (m.rows, m.cols) != (batch, dim) {
                return Err(format!(
                    "{path}: {} x {}, expected --batch {batch} x --dim {dim}",
                    m.rows, m.cols
                ));
            }
            Tensor::from_data(TensorData::new(m.values, [batch, dim]), &device)
        }
        None => {
            let x = Tensor::<B, 2>::random([batch, dim], Distribution::Normal(0.0, 1.0), &device);
            let norm = x.clone().square().sum_dim(1).sqrt();
            x / norm
        }
    };
    let labels: Vec<i64> = (0..batch as i64).map(|i| i / instances as i64).collect();
    let labels = Tensor::<B, 1, Int>::from_data(labels.as_slice(), &device);
    let loss = HphnTripletLossConfig::new()
        .with_expansion(EmbeddingExpansionConfig::new().with_n_inner_pts(n))
        .init()
        .map_err(|e| e.to_string())?;
    let expansion = *loss.expansion();
    let step = || {
        let x = x.clone().detach().require_grad();
        let expanded = expansion.expand_unchecked(x.clone(), labels.clone());
        let out = loss.forward_expanded(&expanded);
        let value: f64 = out.loss.clone().into_scalar().elem();
        let grads = out.loss.backward();
        let g: f64 = x
            .grad(&grads)
            .expect("x requires grad")
            .sum()
            .into_scalar()
            .elem();
        (value, g)
    };
    for _ in 0..5 {
        step();
    }
    let mut times = Vec::with_capacity(steps);
    let mut last = (0.0, 0.0);
    for _ in 0..steps {
        let start = Instant::now();
        last = step();
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let line = serde_json::json!({
        "framework": "ee-loss",
        "backend": "autodiff<flex>",
        "batch": batch,
        "dim": dim,
        "instances": instances,
        "n_inner_pts": n,
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "steps": steps,
        "median_seconds": times[times.len() / 2],
        "min_seconds": times[0],
        "loss": last.0,
        "gradient_sum": last.1,
    });
    println!("{line}");
    Ok(())
}
