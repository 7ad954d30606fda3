//! `cargo xtask gpu-check`: packs a folder that checks the CUDA build on a machine with an
//! NVIDIA GPU and PyTorch but no Rust toolchain.
//!
//! The folder (default `target/gpu-check`, under 60 MB) holds `ee.xz`: `ee` built for CUDA
//! (release, stripped, xz-compressed), `gpu_check.py` (the runner, `xtask/gpu_check/`),
//! `train_step.py` (PyTorch's train step, `xtask/baselines/`), `gpu_train.toml` (a short
//! synthetic training run) and `cpu_reference.json`: the same probes (`ee probe`) and training run computed here on the
//! CPU backend, which the GPU side is compared with. `--with-tch` adds `ee-tch.xz`, `ee` built
//! for LibTorch: it runs the same probes and train step on the GPU machine's own libtorch
//! when that machine's PyTorch is torch 2.9.0 (the version it is built against), and is
//! skipped, saying why, otherwise. `--run` then runs the folder here (with `--backend flex`,
//! a dry run of the whole thing on the CPU; `--quick` for small sizes).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the folder goes unless `--out` says otherwise.
const DEFAULT_OUT: &str = "target/gpu-check";
/// The limit on the folder.
const MAX_BYTES: u64 = 60 * 1024 * 1024;
/// Files copied into the folder from the repository.
const FILES: &[(&str, &str)] = &[
    ("xtask/gpu_check/gpu_check.py", "gpu_check.py"),
    ("xtask/gpu_check/gpu_train.toml", "gpu_train.toml"),
    ("xtask/baselines/train_step.py", "train_step.py"),
];

#[derive(Debug)]
struct Options {
    out: PathBuf,
    backend: String,
    run: bool,
    quick: bool,
    python: Option<PathBuf>,
    with_tch: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        out: PathBuf::from(DEFAULT_OUT),
        backend: "cuda".into(),
        run: false,
        quick: false,
        python: None,
        with_tch: false,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("`{arg}` needs a value"))
        };
        match arg.as_str() {
            "--out" => options.out = PathBuf::from(value()?),
            "--backend" => {
                options.backend = match value()?.as_str() {
                    "cuda" => "cuda".into(),
                    "flex" | "cpu" => "flex".into(),
                    other => return Err(format!("--backend {other}: cuda, or flex for a dry run")),
                }
            }
            "--run" => options.run = true,
            "--quick" => options.quick = true,
            "--with-tch" => options.with_tch = true,
            "--python" => options.python = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown argument `{other}`: cargo xtask gpu-check [--out DIR] \
                     [--backend cuda|flex] [--with-tch] [--run [--quick]] [--python PATH]"
                ))
            }
        }
    }
    Ok(options)
}

/// Builds `ee` (release) with `backend`'s feature and returns a copy of it at `to`.
fn build_ee(backend: &str, to: &Path) -> Result<(), String> {
    eprintln!("building ee (release, backend {backend}) ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    if backend == "tch" {
        // Against the venv's torch 2.9.0 (made with pip on first use).
        crate::tch::ensure()?.apply(&mut command);
    }
    let status = command
        .args(["build", "--release", "--quiet", "--package", "ee-cli"])
        .args([
            "--no-default-features",
            "--features",
            backend,
            "--bin",
            "ee",
        ])
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building ee with --features {backend} failed"));
    }
    let built = Path::new("target/release/ee");
    std::fs::copy(built, to)
        .map_err(|e| format!("copying {} to {}: {e}", built.display(), to.display()))?;
    Ok(())
}

/// Builds `ee` for `backend` at `to`, strips it and compresses it to `to`.xz.
fn pack_ee(backend: &str, to: &Path) -> Result<(), String> {
    build_ee(backend, to)?;
    // Debug symbols are most of the binary; the folder must stay small.
    if Command::new("strip").arg(to).status().is_err() {
        eprintln!("warning: `strip` not found; the binary keeps its symbols");
    }
    // The stripped CUDA binary alone is ~63 MB: pack it xz-compressed; gpu_check.py
    // unpacks it on first use (Python's lzma; nothing to install).
    check(
        Command::new("xz").args(["-6", "-T0", "-f"]).arg(to),
        "xz (Debian: apt install xz-utils)",
    )
}

/// Runs `command`, failing with `what` and its exit status.
fn check(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// The CPU backend's probes and training run, as `cpu_reference.json` wants them.
fn cpu_reference(work: &Path, packed_backend: &str) -> Result<serde_json::Value, String> {
    let ee = work.join("ee-flex");
    build_ee("flex", &ee)?;
    // Absolute: the training run starts in `work`.
    let ee = std::fs::canonicalize(&ee).map_err(|e| format!("{}: {e}", ee.display()))?;
    let probe_dir = work.join("probe");
    eprintln!("CPU reference: ee probe --what loss,forward,step ...");
    check(
        Command::new(&ee)
            .args(["probe", "--what", "loss,forward,step", "--out"])
            .arg(&probe_dir),
        "ee probe on the CPU backend",
    )?;
    let probe_json = probe_dir.join("probe.json");
    let text = std::fs::read_to_string(&probe_json)
        .map_err(|e| format!("{}: {e}", probe_json.display()))?;
    let mut reference: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", probe_json.display()))?;
    eprintln!("CPU reference: ee train gpu_train.toml (60 epochs of the demo) ...");
    let config = work.join("gpu_train.toml");
    std::fs::copy("xtask/gpu_check/gpu_train.toml", &config)
        .map_err(|e| format!("copying gpu_train.toml: {e}"))?;
    let run_dir = work.join("train");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    }
    check(
        Command::new(&ee)
            .current_dir(work)
            .args(["train", "gpu_train.toml", "--quiet", "--set"])
            .arg(format!("run.output_dir={}", run_dir.display())),
        "ee train gpu_train.toml on the CPU backend",
    )?;
    let metrics = run_dir.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let curve: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|row| row["kind"] == "eval" && row.get("split").is_none())
        .map(|row| serde_json::json!([row["epoch"], row["recall"]["1"]]))
        .collect();
    reference["train_recall1"] = serde_json::Value::Array(curve);
    reference["packed_backend"] = packed_backend.into();
    // The libtorch `ee-tch` (if packed) needs on the GPU machine.
    reference["tch_torch_version"] = crate::tch::TORCH_VERSION.into();
    Ok(reference)
}

const FOLDER_README: &str = "\
GPU check of embedding-expansion, packed by `cargo xtask gpu-check`.

Needs: Linux x86-64, an NVIDIA driver, Python 3 with PyTorch (CUDA) and numpy.
No Rust toolchain. Run from anywhere:

    python3 gpu_check.py --out results

It writes results/report.json (and a log per step): CUDA against the CPU backend
(cpu_reference.json), train-step images/s against PyTorch (train_step.py), Recall@K at
N = 60,502 against torch matmul + topk, and a short training run (gpu_train.toml; the
synthetic data is written to data/synth here on first use). About 5 minutes on one GPU.
With ee-tch.xz (packed with --with-tch) and torch 2.9.0 on the machine, it also runs the
probes and the train step on LibTorch (burn-tch), through that torch's lib/ folder.
";

/// `cargo xtask gpu-check [--out DIR] [--backend cuda|flex] [--run [--quick]] [--python P]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let out = &options.out;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let work = PathBuf::from("target/gpu-check-work");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    // Absolute, as the training run's output folder is given to `ee` started in it.
    let work = std::fs::canonicalize(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    let reference = cpu_reference(&work, &options.backend)?;
    let reference_path = out.join("cpu_reference.json");
    std::fs::write(&reference_path, reference.to_string())
        .map_err(|e| format!("{}: {e}", reference_path.display()))?;

    pack_ee(&options.backend, &out.join("ee"))?;
    if options.with_tch {
        // LibTorch's `ee`: run on the GPU machine against its own PyTorch's libtorch when
        // that is torch 2.9.0 (libtorch itself is far too big to pack).
        pack_ee("tch", &out.join("ee-tch"))?;
    }
    for (from, to) in FILES {
        std::fs::copy(from, out.join(to)).map_err(|e| format!("copying {from}: {e}"))?;
    }
    std::fs::write(out.join("README.txt"), FOLDER_README)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let bytes = crate::tch::folder_size(out);
    eprintln!(
        "packed {} ({:.1} MB; ee built for {}{})",
        out.display(),
        bytes as f64 / 1e6,
        options.backend,
        if options.with_tch {
            ", and ee-tch for LibTorch"
        } else {
            ""
        }
    );
    if bytes > MAX_BYTES {
        return Err(format!(
            "{} is {:.1} MB, over the {} MB limit",
            out.display(),
            bytes as f64 / 1e6,
            MAX_BYTES / (1024 * 1024)
        ));
    }
    if options.run {
        let python = match options.python {
            Some(python) => python,
            None => crate::bench::baseline_python()
                .ok_or("--run needs Python with PyTorch: give --python PATH")?,
        };
        // Absolute but not resolved: a venv's python is a symlink to the base interpreter.
        let python =
            std::path::absolute(&python).map_err(|e| format!("{}: {e}", python.display()))?;
        let results = out.join("results");
        let mut command = Command::new(python);
        command
            .arg("-B")
            .arg(out.join("gpu_check.py"))
            .arg("--out")
            .arg(&results);
        if options.quick {
            command.arg("--quick");
        }
        check(&mut command, "gpu_check.py")?;
    } else {
        eprintln!(
            "copy {} to the GPU machine and run `python3 gpu_check.py --out results` there",
            out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args: Vec<String> = ["--backend", "cpu", "--with-tch", "--run", "--quick"]
            .map(String::from)
            .to_vec();
        let options = parse(&args).unwrap();
        assert_eq!(options.backend, "flex");
        assert!(options.with_tch && options.run && options.quick);
        assert_eq!(options.out, PathBuf::from(DEFAULT_OUT));
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.backend, "cuda");
        assert!(!defaults.with_tch);
        assert!(parse(&["--backend".into(), "tpu".into()]).is_err());
        assert!(parse(&["--out".into()]).unwrap_err().contains("--out"));
    }
}
