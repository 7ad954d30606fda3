//! One evaluation of stored embeddings, timed in-process, printed as a JSON line: the ee-eval
//! side of `cargo xtask bench eval` (faiss-cpu is the other side, `xtask/baselines/eval_knn.py`,
//! on the same files and threads).
//!
//! ```text
//! eval_speed --write-inputs DIR --n N --classes C [--dim 512] [--seed 0]
//! eval_speed --embeddings E.npy --labels L.npy [--repeats 3] [--what retrieval|nmi|all]
//!            [--kmeans-algorithm auto|lloyd|mini_batch] [--kmeans-n-init N]
//!            [--kmeans-max-iter N] [--engine auto|host|backend]
//! ```
//!
//! Inputs are random unit vectors with labels in consecutive equal blocks (CARS196-like: 8,131
//! rows, 98 classes; SOP-like: 60,502 rows, 11,316 classes). Retrieval is Recall@{1,2,4,8} +
//! MAP@R (clustering off), the median of `repeats` runs; NMI is one k-means run with k = the
//! number of classes. Threads: `RAYON_NUM_THREADS`.

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::Flex;
use ee_eval::{
    evaluate_matrix, load_embeddings_npy, load_labels_npy, Engine, EvalConfig, KMeansAlgorithm,
    KMeansConfig, KnnConfig,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn main() {
    if let Err(e) = run() {
        eprintln!("eval_speed: {e}");
        std::process::exit(2);
    }
}

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn number(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    value(args, name).map_or(Ok(default), |v| {
        v.parse().map_err(|e| format!("{name} {v}: {e}"))
    })
}

fn run() -> Result<(), String> {
    // `cargo bench` passes `--bench`; ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let Some(dir) = value(&args, "--write-inputs") {
        return write_inputs(
            PathBuf::from(dir),
            number(&args, "--n", 8_131)?,
            number(&args, "--classes", 98)?,
            number(&args, "--dim", 512)?,
            number(&args, "--seed", 0)? as u64,
        );
    }
    let (Some(embeddings), Some(labels)) = (value(&args, "--embeddings"), value(&args, "--labels"))
    else {
        return Err("give --write-inputs DIR, or --embeddings E.npy --labels L.npy".into());
    };
    let repeats = number(&args, "--repeats", 3)?.max(1);
    let what = value(&args, "--what").unwrap_or("retrieval");
    let engine = match value(&args, "--engine").unwrap_or("auto") {
        "auto" => Engine::Auto,
        "host" => Engine::Host,
        "backend" => Engine::Backend,
        other => return Err(format!("--engine {other}: auto, host or backend")),
    };
    let algorithm = match value(&args, "--kmeans-algorithm").unwrap_or("auto") {
        "auto" => KMeansAlgorithm::Auto,
        "lloyd" => KMeansAlgorithm::Lloyd,
        "mini_batch" => KMeansAlgorithm::MiniBatch,
        other => {
            return Err(format!(
                "--kmeans-algorithm {other}: auto, lloyd or mini_batch"
            ))
        }
    };
    let x = load_embeddings_npy(embeddings).map_err(|e| e.to_string())?;
    let y = load_labels_npy(labels).map_err(|e| e.to_string())?;
    let device = Default::default();
    let threads = rayon::current_num_threads();
    let mut line = serde_json::json!({
        "framework": "ee-eval",
        "n": x.rows(),
        "dim": x.dim(),
        "threads": threads,
        "knn_engine": engine.resolve::<Flex>(&device).name(),
    });
    if what == "retrieval" || what == "all" {
        let config = EvalConfig::new()
            .with_clustering(false)
            .with_knn(KnnConfig::new().with_engine(engine));
        let mut times = Vec::new();
        let mut report = None;
        for _ in 0..repeats {
            let start = Instant::now();
            report =
                Some(evaluate_matrix::<Flex>(&x, &y, &config, &device).map_err(|e| e.to_string())?);
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let report = report.expect("repeats >= 1");
        line["retrieval_seconds"] = times[times.len() / 2].into();
        line["retrieval_runs"] = times.into();
        line["recall_at_k"] = report
            .recall_at_k
            .iter()
            .map(|r| (r.k.to_string(), serde_json::Value::from(r.recall)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        line["map_at_r"] = report.map_at_r.into();
    }
    if what == "nmi" || what == "all" {
        let config = EvalConfig::new()
            .with_recall_ks(vec![])
            .with_map_at_r(false)
            .with_kmeans(
                KMeansConfig::new()
                    .with_engine(engine)
                    .with_algorithm(algorithm)
                    .with_n_init(number(&args, "--kmeans-n-init", 5)?)
                    .with_max_iter(number(&args, "--kmeans-max-iter", 100)?),
            );
        let start = Instant::now();
        let report =
            evaluate_matrix::<Flex>(&x, &y, &config, &device).map_err(|e| e.to_string())?;
        line["nmi_seconds"] = start.elapsed().as_secs_f64().into();
        let c = report.clustering.expect("clustering was asked for");
        line["nmi"] = c.nmi.into();
        line["kmeans_k"] = c.clusters.into();
        line["kmeans_algorithm"] = c.algorithm.into();
        line["kmeans_iterations"] = c.iterations.into();
        line["kmeans_converged"] = c.converged.into();
        line["kmeans_inertia"] = c.inertia.into();
    }
    println!("{line}");
    Ok(())
}

fn write_inputs(
    dir: PathBuf,
    n: usize,
    classes: usize,
    dim: usize,
    seed: u64,
) -> Result<(), String> {
    if classes == 0 || classes > n {
        return Err(format!("--classes {classes} must be in 1..={n}"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.extend(row.iter().map(|v| v / norm));
    }
    let labels: Vec<i64> = (0..n).map(|i| (i * classes / n) as i64).collect();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in [
        (
            "embeddings.npy",
            ee_core::npy::matrix_bytes(&values, n, dim),
        ),
        ("labels.npy", ee_core::npy::labels_bytes(&labels)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!(
        "wrote {n} x {dim} unit vectors, {classes} classes, to {}",
        dir.display()
    );
    Ok(())
}
