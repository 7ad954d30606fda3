//! `cargo xtask bench train-step`: our training step (ee-model's `train_step` benchmark) and
//! PyTorch's (`xtask/baselines/train_step.py`) on the same shapes and threads, one after the
//! other in one run, with the ratio.

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
    let mut with_burn_conv = false;
    let mut python = None;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("train-step") => {}
        Some(other) => return Err(format!("unknown benchmark `{other}`; try `train-step`")),
        None => return Err("which benchmark? `cargo xtask bench train-step`".into()),
    }
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--threads" => threads = parse(value()?)?,
            "--steps" => steps = parse(value()?)?,
            "--python" => python = Some(PathBuf::from(value()?)),
            "--with-burn-conv" => with_burn_conv = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let python = match python {
        Some(python) => Some(python),
        None => baseline_python(),
    };

    eprintln!("building the train_step benchmark (bench profile) ...");
    let binary = build_bench()?;
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
            let burn_conv = if with_burn_conv {
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
            rows.push((label, ours, burn_conv, torch));
        }
    }

    println!("\ntrain step, {threads} threads, median of {steps} steps (seconds)");
    println!(
        "| work | ee (host conv) | {}PyTorch | ee / PyTorch |",
        if with_burn_conv {
            "ee (burn conv) | "
        } else {
            ""
        }
    );
    println!(
        "|---|---|{}---|---|",
        if with_burn_conv { "---|" } else { "" }
    );
    for (label, ours, burn_conv, torch) in &rows {
        let burn_cell = burn_conv
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
    for (_, ours, burn_conv, torch) in &rows {
        for side in [Some(ours), burn_conv.as_ref(), torch.as_ref()]
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
    let output = command
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
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
    let line: serde_json::Value =
        serde_json::from_str(last).map_err(|e| format!("bad JSON from {command:?}: {e}"))?;
    let median_seconds = line["median_seconds"]
        .as_f64()
        .ok_or(format!("no median_seconds in {last}"))?;
    eprintln!("   {median_seconds:.3} s  ({})", line["framework"]);
    Ok(Measured {
        median_seconds,
        line,
    })
}

/// Builds the benchmark binary and returns its path.
fn build_bench() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "bench",
            "-p",
            "ee-model",
            "--bench",
            "train_step",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err("building the train_step benchmark failed".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "train_step")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the train_step executable".into())
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
