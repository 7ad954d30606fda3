//! `cargo xtask parity-train`: the trainer's step against PyTorch's, step by step.
//!
//! `xtask/baselines/parity_train.py` writes each fixture (start weights, batches, every
//! parameter after every step) under `target/parity/`; the ignored test
//! `ee-train --test parity_train` drives the trainer's step (`ee_train::Stepper`) on it and prints the table. The fixtures are:
//! Adam with coupled decay and AdamW with a backbone lr multiplier of 0.5, both against
//! PyTorch in float64 (the exact computation), and Adam against PyTorch in float32, whose
//! losses the xtask also compares with the float64 run: how far float32 noise alone moves
//! PyTorch's own steps.

use std::path::Path;
use std::process::Command;

use crate::bench::baseline_python;

/// (fixture name, script arguments).
const FIXTURES: &[(&str, &[&str])] = &[
    ("adam_f64", &["--float64"]),
    ("adam_f32", &[]),
    (
        "adamw_mult0.5_f64",
        &[
            "--optimizer",
            "adamw",
            "--weight-decay",
            "0.05",
            "--base-lr-mult",
            "0.5",
            "--float64",
        ],
    ),
];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut steps = "10".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--steps" => steps = it.next().ok_or("`--steps` needs a value")?.clone(),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let python = baseline_python().ok_or("the parity check needs PyTorch (see above)")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (name, extra) in FIXTURES {
        let dir = Path::new("target/parity").join(name);
        eprintln!("== PyTorch fixture {name} -> {}", dir.display());
        let status = Command::new(&python)
            .args(["-B", "xtask/baselines/parity_train.py", "--out"])
            .arg(&dir)
            .args(["--steps", &steps])
            .args(*extra)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !status.success() {
            return Err(format!("the PyTorch side of {name} failed ({status})"));
        }
        if name.ends_with("_f32") {
            continue; // the float32 control is compared with PyTorch's float64 run below
        }
        eprintln!("== ee's step on {name}");
        let status = Command::new(&cargo)
            .args([
                "test",
                "--quiet",
                // --workspace, not -p ee-train: the same features as `cargo test --workspace`,
                // so the test build reuses its dependencies (only ee-train has this target).
                "--workspace",
                "--test",
                "parity_train",
                "--",
            ])
            .args(["--ignored", "--nocapture", "--test-threads", "1"])
            // cargo runs tests in the crate's folder: the path must be absolute.
            .env(
                "EE_PARITY_DIR",
                std::env::current_dir()
                    .map_err(|e| e.to_string())?
                    .join(&dir),
            )
            .status()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("the parity test failed on {name}"));
        }
    }
    let losses = |name: &str| -> Result<Vec<f64>, String> {
        let path = Path::new("target/parity").join(name).join("run.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        run["losses"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_f64()).collect())
            .ok_or(format!("{}: no losses", path.display()))
    };
    let (f32_losses, f64_losses) = (losses("adam_f32")?, losses("adam_f64")?);
    println!("\nPyTorch float32 against PyTorch float64 (Adam), relative loss gap per step:");
    let gaps: Vec<String> = f32_losses
        .iter()
        .zip(&f64_losses)
        .map(|(a, b)| format!("{:.1e}", (a - b).abs() / b.abs().max(1e-12)))
        .collect();
    println!("{}", gaps.join(" | "));
    Ok(())
}
