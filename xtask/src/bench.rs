//! `cargo xtask bench train-step`: our training step (ee-model's `train_step` benchmark) and
//! PyTorch's (`xtask/baselines/train_step.py`) on the same shapes and threads, one after the
//! other in one run, with the ratio. `cargo xtask bench loader`: ee-data's decode + train
//! transform (`decode_transform` benchmark) against PIL + torchvision
//! (`xtask/baselines/image_pipeline.py`) on the same JPEGs, one thread each.
//!
//! `cargo xtask bench eval`: ee-eval's Recall@1,2,4,8 + MAP@R (and, with `--nmi`, k-means
//! NMI) of synthetic CARS196- and SOP-sized embeddings (`eval_speed` benchmark) against
//! faiss-cpu's exact `IndexFlatL2` and `Kmeans` (`xtask/baselines/eval_knn.py`) on the same
//! .npy files and threads, with the ratios and a check that the metrics agree.
//! `cargo xtask bench loss`: forward + backward of EE + HPHN alone (ee-loss's `loss_step`
//! benchmark) against the PyTorch port (`xtask/baselines/loss_step.py`) on the same
//! embeddings, with a check that the two losses agree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shapes the issue tracks: (image size, batch, instances per class).
const SHAPES: &[(usize, usize, usize)] = &[(64, 64, 8), (227, 16, 8)];

/// Where the baseline's virtual environment lives (made on first use).
const VENV: &str = "target/bench-venv";

/// One measured side, as the benchmark scripts print it.
struct Measured {
    median_seconds: f64,
    line: serde_json::Value,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut steps = 5usize;
    let mut with_burn_kernels = false;
    let mut with_tch = false;
    let mut python = None;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("train-step") => {}
        Some("loader") => return loader(),
        Some("eval") => return eval(&args[1..]),
        Some("loss") => return loss(&args[1..]),
        Some(other) => {
            return Err(format!(
                "unknown benchmark `{other}`; try `train-step`, `loader`, `eval` or `loss`"
            ))
        }
        None => {
            return Err("which benchmark? `cargo xtask bench train-step|loader|eval|loss`".into())
        }
    }
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--threads" => threads = parse(value()?)?,
            "--steps" => steps = parse(value()?)?,
            "--python" => python = Some(PathBuf::from(value()?)),
            "--with-burn-kernels" => with_burn_kernels = true,
            "--backend" => match value()?.as_str() {
                "tch" | "libtorch" => with_tch = true,
                "flex" | "cpu" => {}
                other => {
                    return Err(format!(
                        "`--backend {other}`: the CPU benchmark knows flex and tch"
                    ))
                }
            },
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let python = match python {
        Some(python) => Some(python),
        None => baseline_python(),
    };

    eprintln!("building the train_step benchmark (bench profile) ...");
    let binary = build_bench("ee-model", "train_step", None)?;
    let tch = if with_tch {
        let env = crate::tch::ensure()?;
        eprintln!("building the train_step benchmark on LibTorch (bench profile) ...");
        let binary = build_bench("ee-model", "train_step", Some(&env))?;
        Some((env, binary))
    } else {
        None
    };
    // Columns after ours (flex, host kernels): burn's kernels, tch, PyTorch.
    let mut columns = vec!["ee flex (host kernels)".to_string()];
    if with_burn_kernels {
        columns.push("ee flex (burn kernels)".into());
    }
    if with_tch {
        columns.push("ee tch".into());
    }
    columns.push("PyTorch".into());
    let mut rows: Vec<(String, Vec<Option<Measured>>)> = Vec::new();
    for &(size, batch, instances) in SHAPES {
        for mode in ["train", "embed"] {
            let common = [
                "--threads".to_string(),
                threads.to_string(),
                "--image-size".into(),
                size.to_string(),
                "--batch".into(),
                batch.to_string(),
                "--instances".into(),
                instances.to_string(),
                "--mode".into(),
                mode.into(),
                "--steps".into(),
                steps.to_string(),
            ];
            let label = format!("{mode} {size} px / batch {batch}");
            eprintln!("== {label}");
            let mut cells = vec![Some(measure(Command::new(&binary).args(&common), threads)?)];
            if with_burn_kernels {
                cells.push(Some(measure(
                    Command::new(&binary)
                        .args(&common)
                        .env(CPU_KERNELS_ENV, "burn"),
                    threads,
                )?));
            }
            if let Some((env, binary)) = &tch {
                cells.push(
                    measure(env.apply(Command::new(binary).args(&common)), threads)
                        .map_err(|e| eprintln!("tch side failed: {e}"))
                        .ok(),
                );
            }
            cells.push(match &python {
                Some(python) => measure(
                    Command::new(python)
                        .arg("-B")
                        .arg("xtask/baselines/train_step.py")
                        .args(&common),
                    threads,
                )
                .map_err(|e| eprintln!("PyTorch side failed: {e}"))
                .ok(),
                None => None,
            });
            rows.push((label, cells));
        }
    }

    print_train_step_table(threads, steps, &columns, &rows);
    if python.is_none() {
        println!("(PyTorch side not run: see the message above)");
    }
    Ok(())
}

/// The train-step table: seconds per side, then each side's ratio to PyTorch (the last
/// column), then every side's raw JSON line.
fn print_train_step_table(
    threads: usize,
    steps: usize,
    columns: &[String],
    rows: &[(String, Vec<Option<Measured>>)],
) {
    println!("\ntrain step, {threads} threads, median of {steps} steps (seconds)");
    let ratios: Vec<&String> = columns[..columns.len() - 1].iter().collect();
    println!(
        "| work | {} | {} |",
        columns.join(" | "),
        ratios
            .iter()
            .map(|c| format!("{c} / PyTorch"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(columns.len() + ratios.len()));
    for (label, cells) in rows {
        let torch = cells.last().and_then(Option::as_ref);
        let times: Vec<String> = cells
            .iter()
            .map(|c| {
                c.as_ref()
                    .map_or("-".into(), |m| format!("{:.3}", m.median_seconds))
            })
            .collect();
        let ratio_cells: Vec<String> = cells[..cells.len() - 1]
            .iter()
            .map(|c| match (c, torch) {
                (Some(ours), Some(t)) => format!("{:.2}x", ours.median_seconds / t.median_seconds),
                _ => "-".into(),
            })
            .collect();
        println!(
            "| {label} | {} | {} |",
            times.join(" | "),
            ratio_cells.join(" | ")
        );
    }
    println!("\nraw:");
    for (_, cells) in rows {
        for side in cells.iter().flatten() {
            println!("{}", side.line);
        }
    }
}

/// The environment variable ee-model reads to use burn's convolution.
const CPU_KERNELS_ENV: &str = "EE_CPU_KERNELS";

fn parse(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|e| format!("`{value}` is not a count: {e}"))
}

/// glibc malloc settings for both sides of `bench loss`: no mmap (and page faults) per
/// temporary of a few hundred KB, no trimming between steps. Without them the step times of
/// both sides spread over 2x from run to run, from page faults alone (perf: clear_page,
/// exc_page_fault).
const MALLOC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824";

/// `command` with rayon's and OpenMP's thread counts set to `threads`.
fn with_threads(command: &mut Command, threads: usize) -> &mut Command {
    command
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
}

fn measure(command: &mut Command, threads: usize) -> Result<Measured, String> {
    let line = measure_line(with_threads(command, threads))?;
    let median_seconds = line["median_seconds"]
        .as_f64()
        .ok_or(format!("no median_seconds in {line}"))?;
    eprintln!("   {median_seconds:.3} s  ({})", line["framework"]);
    Ok(Measured {
        median_seconds,
        line,
    })
}

/// `cargo xtask bench loader`.
fn loader() -> Result<(), String> {
    let python = baseline_python();
    eprintln!("building the decode_transform benchmark (bench profile) ...");
    let binary = build_bench("ee-data", "decode_transform", None)?;
    let dir = Path::new("target/bench-jpegs");
    if !dir.is_dir() {
        eprintln!("writing 64 synthetic 500x375 JPEGs to {}", dir.display());
        let status = Command::new(&binary)
            .arg("--write")
            .arg(dir)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        if !status.success() {
            return Err("writing the benchmark JPEGs failed".into());
        }
    }
    let ours = measure_line(Command::new(&binary).arg("--dir").arg(dir))?;
    let theirs = match &python {
        Some(python) => measure_line(
            Command::new(python)
                .args(["-B", "xtask/baselines/image_pipeline.py", "--dir"])
                .arg(dir),
        )
        .map_err(|e| eprintln!("PIL side failed: {e}"))
        .ok(),
        None => None,
    };
    println!("\nimage pipeline, one thread, 500x375 JPEGs -> 227 px (images/s)");
    println!("| work | ee-data | PIL + torchvision | ee-data / PIL |");
    println!("|---|---|---|---|");
    for (label, key) in [
        ("decode", "decode_images_per_second"),
        (
            "decode + train transform + normalise",
            "pipeline_images_per_second",
        ),
    ] {
        let ours_rate = ours[key].as_f64().ok_or(format!("no {key} in {ours}"))?;
        let (cell, ratio) = match theirs.as_ref().and_then(|t| t[key].as_f64()) {
            Some(rate) => (format!("{rate:.0}"), format!("{:.2}x", ours_rate / rate)),
            None => ("-".into(), "-".into()),
        };
        println!("| {label} | {ours_rate:.0} | {cell} | {ratio} |");
    }
    println!("\nraw:\n{ours}");
    if let Some(theirs) = theirs {
        println!("{theirs}");
    }
    Ok(())
}

/// The embedding width of the eval benchmark's inputs (the paper's 512).
const EVAL_DIM: usize = 512;

/// The eval benchmark's default sizes: CARS196's and SOP's test sets.
const EVAL_SIZES: &[usize] = &[8131, 60502];

/// faiss k-means iterations with `--nmi`.
const KMEANS_ITERS: usize = 20;

/// The metrics both eval sides report and must agree on: (JSON path, name).
const EVAL_METRICS: &[(&str, &str)] = &[
    ("/recall_at_k/1", "Recall@1"),
    ("/recall_at_k/2", "Recall@2"),
    ("/recall_at_k/4", "Recall@4"),
    ("/recall_at_k/8", "Recall@8"),
    ("/map_at_r", "MAP@R"),
];

/// How far the two eval sides' metrics may be apart.
const EVAL_TOLERANCE: f64 = 1e-9;

/// One size of `cargo xtask bench eval`: ours and faiss's JSON lines.
struct EvalRow {
    n: usize,
    classes: usize,
    ours: serde_json::Value,
    faiss: Option<serde_json::Value>,
}

/// `cargo xtask bench eval`.
fn eval(args: &[String]) -> Result<(), String> {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut sizes = EVAL_SIZES.to_vec();
    let mut repeats = None;
    let mut nmi = false;
    let mut python = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--threads" => threads = parse(value()?)?,
            "--sizes" => sizes = value()?.split(',').map(parse).collect::<Result<_, _>>()?,
            "--repeats" => repeats = Some(parse(value()?)?),
            "--nmi" => nmi = true,
            "--python" => python = Some(PathBuf::from(value()?)),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if sizes.iter().any(|&n| n < 2) || repeats == Some(0) || threads == 0 {
        return Err("need sizes >= 2, --repeats >= 1 and --threads >= 1".into());
    }
    let python = faiss_python(python.or_else(baseline_python));

    eprintln!("building the eval_speed benchmark (bench profile) ...");
    let binary = build_bench("ee-eval", "eval_speed", None)?;
    let mut rows = Vec::new();
    for &n in &sizes {
        let classes = eval_classes(n);
        let repeats = repeats.unwrap_or(if n < 20_000 { 3 } else { 1 });
        let dir = eval_inputs(&binary, n, classes)?;
        let (embeddings, labels) = (dir.join("embeddings.npy"), dir.join("labels.npy"));
        eprintln!("== n = {n}, {classes} classes, {threads} threads, {repeats} repeats");
        let ours = measure_line(with_threads(
            Command::new(&binary)
                .arg("--embeddings")
                .arg(&embeddings)
                .arg("--labels")
                .arg(&labels)
                .args(["--repeats", &repeats.to_string()])
                .args(["--what", if nmi { "all" } else { "retrieval" }]),
            threads,
        ))?;
        eprintln!("   {} s  (ee-eval)", ours["retrieval_seconds"]);
        let faiss = match &python {
            Some(python) => {
                let mut command = Command::new(python);
                command
                    .args(["-B", "xtask/baselines/eval_knn.py", "--embeddings"])
                    .arg(&embeddings)
                    .arg("--labels")
                    .arg(&labels)
                    .args(["--threads", &threads.to_string()])
                    .args(["--repeats", &repeats.to_string()]);
                if nmi {
                    command.args(["--kmeans", "--kmeans-iters", &KMEANS_ITERS.to_string()]);
                }
                measure_line(with_threads(&mut command, threads))
                    .map_err(|e| eprintln!("faiss side failed: {e}"))
                    .ok()
            }
            None => None,
        };
        if let Some(faiss) = &faiss {
            eprintln!("   {} s  (faiss-cpu)", faiss["retrieval_seconds"]);
        }
        rows.push(EvalRow {
            n,
            classes,
            ours,
            faiss,
        });
    }

    print_retrieval_table(&rows, threads)?;
    if nmi {
        print_nmi_table(&rows)?;
    }
    print_metric_agreement(&rows);
    println!("\nraw:");
    for row in &rows {
        println!("{}", row.ours);
        if let Some(faiss) = &row.faiss {
            println!("{faiss}");
        }
    }
    if python.is_none() {
        println!("(faiss side not run: see the message above)");
    }
    Ok(())
}

/// The number of classes of the synthetic eval inputs of `n` rows: CARS196's test split
/// for 8131, SOP's for 60502, else about 83 rows per class (as CARS196).
fn eval_classes(n: usize) -> usize {
    match n {
        8131 => 98,
        60502 => 11_316,
        n => (n / 83).max(1),
    }
}

/// The directory with `embeddings.npy` and `labels.npy` of `n` rows, written by the
/// `eval_speed` binary (seed 0) unless they are there already.
fn eval_inputs(binary: &Path, n: usize, classes: usize) -> Result<PathBuf, String> {
    let dir = PathBuf::from(format!("target/bench-eval/n{n}"));
    if dir.join("embeddings.npy").is_file() && dir.join("labels.npy").is_file() {
        return Ok(dir);
    }
    eprintln!(
        "writing {n} synthetic {EVAL_DIM}-d embeddings of {classes} classes to {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let status = Command::new(binary)
        .arg("--write-inputs")
        .arg(&dir)
        .args(["--n", &n.to_string(), "--classes", &classes.to_string()])
        .args(["--dim", &EVAL_DIM.to_string(), "--seed", "0"])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !status.success() {
        return Err(format!(
            "writing the eval inputs to {} failed",
            dir.display()
        ));
    }
    Ok(dir)
}

/// A number our side's JSON line must hold.
fn number(line: &serde_json::Value, key: &str) -> Result<f64, String> {
    line[key].as_f64().ok_or(format!("no {key} in {line}"))
}

/// A seconds cell and the ratio `ours / theirs` cell, `-` when `theirs` is missing.
fn seconds_and_ratio(ours: f64, theirs: Option<f64>) -> (String, String) {
    match theirs {
        Some(t) => (format!("{t:.3}"), format!("{:.2}x", ours / t)),
        None => ("-".into(), "-".into()),
    }
}

fn print_retrieval_table(rows: &[EvalRow], threads: usize) -> Result<(), String> {
    println!(
        "\nexact kNN Recall@1,2,4,8 + MAP@R, {EVAL_DIM}-d, {threads} threads, median \
         (seconds; faiss: fresh IndexFlatL2, add + search + metrics)"
    );
    println!(
        "| N | classes | ee-eval Recall@K+MAP@R (s) | faiss same work (s) | ratio | \
         faiss k=9 only (s) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let ours = number(&row.ours, "retrieval_seconds")?;
        let theirs = |key: &str| row.faiss.as_ref().and_then(|f| f[key].as_f64());
        let (same, same_ratio) = seconds_and_ratio(ours, theirs("retrieval_seconds"));
        let (k9, k9_ratio) = seconds_and_ratio(ours, theirs("knn_k9_seconds"));
        println!(
            "| {} | {} | {ours:.3} | {same} | {same_ratio} | {k9} | {k9_ratio} |",
            row.n, row.classes
        );
    }
    Ok(())
}

fn print_nmi_table(rows: &[EvalRow]) -> Result<(), String> {
    println!("\nk-means NMI, k = classes (seconds)");
    println!(
        "| N | k | ee-eval NMI (s) | algorithm | NMI | faiss Kmeans {KMEANS_ITERS} it (s) | \
         faiss NMI |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let seconds = number(&row.ours, "nmi_seconds")?;
        let score = number(&row.ours, "nmi")?;
        let algorithm = format!(
            "{}, {} it",
            row.ours["kmeans_algorithm"].as_str().unwrap_or("?"),
            row.ours["kmeans_iterations"]
        );
        let theirs = |key: &str| row.faiss.as_ref().and_then(|f| f[key].as_f64());
        let faiss_seconds = theirs("kmeans_seconds").map_or("-".into(), |s| format!("{s:.3}"));
        let faiss_nmi = theirs("nmi").map_or("-".into(), |s| format!("{s:.4}"));
        println!(
            "| {} | {} | {seconds:.3} | {algorithm} | {score:.4} | {faiss_seconds} | {faiss_nmi} |",
            row.n, row.classes
        );
    }
    Ok(())
}

/// Says whether Recall@1,2,4,8 and MAP@R of the two sides agree, and by how much not.
fn print_metric_agreement(rows: &[EvalRow]) {
    let compared: Vec<_> = rows
        .iter()
        .filter_map(|row| row.faiss.as_ref().map(|f| (row.n, &row.ours, f)))
        .collect();
    if compared.is_empty() {
        return;
    }
    let gaps: Vec<String> = compared
        .iter()
        .flat_map(|&(n, ours, faiss)| {
            EVAL_METRICS.iter().filter_map(move |&(path, name)| {
                let (a, b) = (ours.pointer(path), faiss.pointer(path));
                match (a.and_then(|v| v.as_f64()), b.and_then(|v| v.as_f64())) {
                    (Some(x), Some(y)) if (x - y).abs() <= EVAL_TOLERANCE => None,
                    (Some(x), Some(y)) => Some(format!(
                        "N = {n}: {name} {x:.9} (ee-eval) vs {y:.9} (faiss), difference {:.3e}",
                        x - y
                    )),
                    _ if a.is_some_and(|v| v.is_null()) && b.is_some_and(|v| v.is_null()) => None,
                    _ => Some(format!(
                        "N = {n}: {name} {} (ee-eval) vs {} (faiss)",
                        a.unwrap_or(&serde_json::Value::Null),
                        b.unwrap_or(&serde_json::Value::Null)
                    )),
                }
            })
        })
        .collect();
    if gaps.is_empty() {
        println!(
            "\nRecall@1,2,4,8 and MAP@R agree between ee-eval and faiss to {EVAL_TOLERANCE:e} \
             at every size"
        );
    } else {
        println!("\nRecall@1,2,4,8 and MAP@R do NOT agree to {EVAL_TOLERANCE:e}:");
        for gap in gaps {
            println!("  {gap}");
        }
    }
}

/// `python` when it imports faiss and numpy, after one `pip install faiss-cpu` into its
/// environment if it did not; `None`, with the reason printed, when it still does not.
fn faiss_python(python: Option<PathBuf>) -> Option<PathBuf> {
    let python = python?;
    let check = "import faiss, numpy";
    let Some(error) = import_error(&python, check) else {
        return Some(python);
    };
    eprintln!(
        "{} cannot `{check}` ({error}): installing faiss-cpu into its environment with pip \
         (once) ...",
        python.display()
    );
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "faiss-cpu"])
        .status()
        .is_ok_and(|s| s.success());
    match import_error(&python, check) {
        None => Some(python),
        Some(error) => {
            eprintln!(
                "faiss baseline unavailable ({}; `{check}`: {error}): timing our side only",
                if installed {
                    "pip installed faiss-cpu"
                } else {
                    "pip install faiss-cpu failed"
                }
            );
            None
        }
    }
}

/// `None` when `python -c statement` succeeds, else the last line of what it printed.
fn import_error(python: &Path, statement: &str) -> Option<String> {
    match Command::new(python).args(["-c", statement]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("no message")
                .trim()
                .to_string(),
        ),
        Err(e) => Some(format!("cannot start {}: {e}", python.display())),
    }
}

/// The loss benchmark's shape: batch, embedding width, instances per class.
const LOSS_SHAPE: (usize, usize, usize) = (128, 512, 32);

/// The synthetic-point counts the loss benchmark times.
const LOSS_N_INNER: &[usize] = &[0, 2];

/// How far apart (relative) the two sides' losses may be on the same inputs.
const LOSS_TOLERANCE: f64 = 1e-4;

/// Writes the loss benchmark's embeddings: `python -c` this with batch, dim and path.
const WRITE_LOSS_INPUTS: &str = "\
import sys
import numpy as np
b, d, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x = np.random.default_rng(0).standard_normal((b, d))
x /= np.linalg.norm(x, axis=1, keepdims=True)
np.save(path, x.astype(np.float32))
";

/// `cargo xtask bench loss`.
fn loss(args: &[String]) -> Result<(), String> {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut steps = 30usize;
    let mut python = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--threads" => threads = parse(value()?)?,
            "--steps" => steps = parse(value()?)?,
            "--python" => python = Some(PathBuf::from(value()?)),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let python = python.or_else(baseline_python);
    let (batch, dim, instances) = LOSS_SHAPE;
    let inputs = python.as_ref().and_then(|python| {
        loss_inputs(python, batch, dim)
            .map_err(|e| eprintln!("{e}: each side uses its own random embeddings"))
            .ok()
    });

    eprintln!("building the loss_step benchmark (bench profile) ...");
    let binary = build_bench("ee-loss", "loss_step", None)?;
    let mut rows = Vec::new();
    for &n_inner in LOSS_N_INNER {
        let mut common = vec![
            "--batch".to_string(),
            batch.to_string(),
            "--dim".into(),
            dim.to_string(),
            "--instances".into(),
            instances.to_string(),
            "--n-inner".into(),
            n_inner.to_string(),
            "--steps".into(),
            steps.to_string(),
        ];
        if let Some(inputs) = &inputs {
            common.extend(["--inputs".to_string(), inputs.display().to_string()]);
        }
        eprintln!("== n_inner_pts = {n_inner}");
        let ours = measure(
            Command::new(&binary)
                .args(&common)
                .env("GLIBC_TUNABLES", MALLOC_TUNABLES),
            threads,
        )?;
        let torch = match &python {
            Some(python) => measure(
                Command::new(python)
                    .args(["-B", "xtask/baselines/loss_step.py"])
                    .args(&common)
                    .args(["--threads", &threads.to_string()])
                    .env("GLIBC_TUNABLES", MALLOC_TUNABLES),
                threads,
            )
            .map_err(|e| eprintln!("PyTorch side failed: {e}"))
            .ok(),
            None => None,
        };
        rows.push((n_inner, ours, torch));
    }

    println!(
        "\nEE + HPHN forward + backward, batch {batch}, dim {dim}, {instances} instances, \
         {threads} threads, median of {steps} steps (ms), both sides with GLIBC_TUNABLES={MALLOC_TUNABLES}"
    );
    println!("| n | ee-loss fwd+bwd (ms) | PyTorch port (ms) | ratio |");
    println!("|---|---|---|---|");
    for (n_inner, ours, torch) in &rows {
        let (cell, ratio) = match torch {
            Some(t) => (
                format!("{:.3}", t.median_seconds * 1e3),
                format!("{:.2}x", ours.median_seconds / t.median_seconds),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {n_inner} | {:.3} | {cell} | {ratio} |",
            ours.median_seconds * 1e3
        );
    }
    print_loss_agreement(&rows, inputs.is_some())?;
    println!("\nraw:");
    for (_, ours, torch) in &rows {
        println!("{}", ours.line);
        if let Some(torch) = torch {
            println!("{}", torch.line);
        }
    }
    if python.is_none() {
        println!("(PyTorch side not run: see the message above)");
    }
    Ok(())
}

/// `target/bench-loss/x_b{batch}_d{dim}.npy`, written with `python`'s numpy unless it is
/// there already.
fn loss_inputs(python: &Path, batch: usize, dim: usize) -> Result<PathBuf, String> {
    let dir = Path::new("target/bench-loss");
    let path = dir.join(format!("x_b{batch}_d{dim}.npy"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let output = Command::new(python)
        .args([
            "-c",
            WRITE_LOSS_INPUTS,
            &batch.to_string(),
            &dim.to_string(),
        ])
        .arg(&path)
        .output()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "writing {} with numpy failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(path)
}

/// Prints both sides' last-step losses and whether they agree (same inputs only).
fn print_loss_agreement(
    rows: &[(usize, Measured, Option<Measured>)],
    same_inputs: bool,
) -> Result<(), String> {
    println!("\nlast-step loss:");
    for (n_inner, ours, torch) in rows {
        let ours_loss = number(&ours.line, "loss")?;
        let Some(torch) = torch else {
            println!("  n = {n_inner}: ee-loss {ours_loss:.6}");
            continue;
        };
        let torch_loss = number(&torch.line, "loss")?;
        let relative = (ours_loss - torch_loss).abs()
            / ours_loss.abs().max(torch_loss.abs()).max(f64::MIN_POSITIVE);
        let verdict = if !same_inputs {
            "not comparable: different random inputs".to_string()
        } else if relative <= LOSS_TOLERANCE {
            format!("agree to {LOSS_TOLERANCE:e} relative")
        } else {
            format!("DIFFER by more than {LOSS_TOLERANCE:e} relative")
        };
        println!(
            "  n = {n_inner}: ee-loss {ours_loss:.6}, PyTorch {torch_loss:.6}, relative \
             difference {relative:.2e}: {verdict}"
        );
    }
    Ok(())
}

/// Runs a benchmark command and parses its last JSON line.
fn measure_line(command: &mut Command) -> Result<serde_json::Value, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or(format!("{command:?} printed no JSON line"))?;
    serde_json::from_str(last).map_err(|e| format!("bad JSON from {command:?}: {e}"))
}

/// Builds a benchmark binary and returns its path.
/// Builds `package`'s benchmark `bench` (bench profile) and returns its executable; with `tch`,
/// the package's `test-tch` build against that LibTorch.
fn build_bench(
    package: &str,
    bench: &str,
    tch: Option<&crate::tch::TchEnv>,
) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["bench", "-p", package, "--bench", bench, "--no-run"]);
    if let Some(env) = tch {
        env.apply(&mut command).args(["--features", "test-tch"]);
    }
    let output = command
        .arg("--message-format=json")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("building the {bench} benchmark failed"));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == bench)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo did not report the {bench} executable"))
}

/// The Python of the baseline's venv, made with pip on first use; `None` (with the reason
/// printed) when it cannot be made.
pub fn baseline_python() -> Option<PathBuf> {
    let python = Path::new(VENV).join("bin/python");
    let ready = |python: &Path| import_error(python, "import torch, torchvision").is_none();
    if ready(&python) {
        return Some(python);
    }
    eprintln!(
        "making the PyTorch baseline's venv in {VENV} with pip (torch, torchvision: a large \
         download, several GB with torch's CUDA libraries; once) ..."
    );
    let made = Command::new("python3")
        .args(["-m", "venv", VENV])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "-r",
                "xtask/baselines/requirements.txt",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if made && ready(&python) {
        Some(python)
    } else {
        eprintln!(
            "cannot make the PyTorch venv (no python3 with venv, or no package index \
             reachable): timing our side only"
        );
        None
    }
}
