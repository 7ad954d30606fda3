//! `cargo xtask bench train-step`: our training step (ee-model's `train_step` benchmark) and
//! PyTorch's (`xtask/baselines/train_step.py`) on the same shapes and threads, one after the
//! other in one run, with the ratio. `cargo xtask bench loader`: ee-data's decode + train
//! transform (`decode_transform` benchmark) against PIL + torchvision
//! (`xtask/baselines/image_pipeline.py`) on the same JPEGs, one thread each.

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
    let mut python = None;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("train-step") => {}
        Some("loader") => return loader(),
        Some(other) => {
            return Err(format!(
                "unknown benchmark `{other}`; try `train-step` or `loader`"
            ))
        }
        None => return Err("which benchmark? `cargo xtask bench train-step|loader`".into()),
    }
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--threads" => threads = parse(value()?)?,
            "--steps" => steps = parse(value()?)?,
            "--python" => python = Some(PathBuf::from(value()?)),
            "--with-burn-kernels" => with_burn_kernels = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let python = match python {
        Some(python) => Some(python),
        None => baseline_python(),
    };

    eprintln!("building the train_step benchmark (bench profile) ...");
    let binary = build_bench("ee-model", "train_step")?;
    let mut rows = Vec::new();
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
            let ours = measure(Command::new(&binary).args(&common), threads)?;
            let burn_kernels = if with_burn_kernels {
                Some(measure(
                    Command::new(&binary)
                        .args(&common)
                        .env(CPU_KERNELS_ENV, "burn"),
                    threads,
                )?)
            } else {
                None
            };
            let torch = match &python {
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
            };
            rows.push((label, ours, burn_kernels, torch));
        }
    }

    println!("\ntrain step, {threads} threads, median of {steps} steps (seconds)");
    println!(
        "| work | ee (host kernels) | {}PyTorch | ee / PyTorch |",
        if with_burn_kernels {
            "ee (burn kernels) | "
        } else {
            ""
        }
    );
    println!(
        "|---|---|{}---|---|",
        if with_burn_kernels { "---|" } else { "" }
    );
    for (label, ours, burn_kernels, torch) in &rows {
        let burn_cell = burn_kernels
            .as_ref()
            .map(|b| format!("{:.3} | ", b.median_seconds))
            .unwrap_or_default();
        let (torch_cell, ratio) = match torch {
            Some(t) => (
                format!("{:.3}", t.median_seconds),
                format!("{:.2}x", ours.median_seconds / t.median_seconds),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {label} | {:.3} | {burn_cell}{torch_cell} | {ratio} |",
            ours.median_seconds
        );
    }
    println!("\nraw:");
    for (_, ours, burn_kernels, torch) in &rows {
        for side in [Some(ours), burn_kernels.as_ref(), torch.as_ref()]
            .into_iter()
            .flatten()
        {
            println!("{}", side.line);
        }
    }
    if python.is_none() {
        println!("(PyTorch side not run: see the message above)");
    }
    Ok(())
}

/// The environment variable ee-model reads to use burn's convolution.
const CPU_KERNELS_ENV: &str = "EE_CPU_KERNELS";

fn parse(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|e| format!("`{value}` is not a count: {e}"))
}

fn measure(command: &mut Command, threads: usize) -> Result<Measured, String> {
    let line = measure_line(
        command
            .env("RAYON_NUM_THREADS", threads.to_string())
            .env("OMP_NUM_THREADS", threads.to_string()),
    )?;
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
    let binary = build_bench("ee-data", "decode_transform")?;
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
fn build_bench(package: &str, bench: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["bench", "-p", package, "--bench", bench, "--no-run"])
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
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import torch, torchvision"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
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
