//! `cargo xtask`: the project's developer commands (`cargo xtask --help`).
//!
//! `cargo xtask train CONFIG [--backend flex|cpu|cuda] [--set key=value ...] [--resume]`
//! builds the `ee` binary in release mode with the chosen backend's cargo feature and runs
//! `ee train`. The backend defaults to the config's `run.backend`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod gpu_check;
mod parity;
mod tch;

const USAGE: &str = "\
cargo xtask: developer commands for embedding-expansion

USAGE:
    cargo xtask train CONFIG [--backend flex|cpu|cuda|tch] [--set section.key=value ...] [--resume] [--quiet]
        Build `ee` (release, with the backend's cargo feature) and run `ee train CONFIG`.
        The backend defaults to the config's run.backend; `--backend cpu` (an alias of flex)
        switches a GPU config to the CPU for debugging. `--backend tch` runs on LibTorch
        (PyTorch's kernels; CUDA when present, see run.tch_device): the first use makes a
        venv with torch 2.9.0 in target/tch-venv (a ~4 GB pip download).

    cargo xtask eval CONFIG --checkpoint PATH [--backend ...] [--set ...]
        Build `ee` the same way and run `ee eval`.

    cargo xtask ee [--backend flex|cpu|cuda|tch] ARGS...
        Build `ee` (release; flex unless --backend says otherwise) and run `ee ARGS...`,
        e.g. `cargo xtask ee embed --checkpoint runs/demo/best.mpk --images photos/ --out g.npy`.

    cargo xtask test [--backend flex|tch|wgpu] [--quick]
        flex (default): `cargo test --workspace`, the README's test command. tch: the
        backend-generic test files (loss vs the reference port, k-NN exactness, the model,
        the trainer, weight import) and the `ee` train + resume tests on LibTorch, with the
        torch 2.9.0 venv set up as for `train --backend tch`. wgpu: the same test files on
        burn's wgpu backend (a Vulkan driver is needed; lavapipe runs it on the CPU);
        --quick runs a subset (loss, k-NN, GoogLeNet vs torchvision, train + resume).

    cargo xtask fixtures
        Make the torch 2.9.0 venv (target/tch-venv, as for --backend tch) and write the
        PyTorch fixture of the GoogLeNet-vs-torchvision test (target/parity/googlenet).
        `cargo test` runs that test when the fixture is there (EE_REQUIRE_TORCH_FIXTURE=1:
        must), and says it skipped otherwise.

    cargo xtask bench train-step [--backend tch] [--threads N] [--steps N] [--with-burn-kernels] [--python PATH]
        Time one training step (and one eval-mode forward) of GoogLeNet + EE/HPHN on the CPU
        backend and the same step in PyTorch, 64 px / batch 64 and 227 px / batch 16, one
        after the other, and print the ratios. PyTorch comes from a venv made with pip in
        target/bench-venv on first use (or --python); without it only our side runs.
        --backend tch also times the same step on burn's LibTorch backend.
        --with-burn-kernels also times burn's own convolution, BatchNorm and pool (EE_CPU_KERNELS=burn).

    cargo xtask bench loader
        Decode + train transform of 64 synthetic 500x375 JPEGs to 227 px on one thread:
        ee-data against PIL + torchvision (xtask/baselines/image_pipeline.py).

    cargo xtask bench eval [--threads N] [--sizes 8131,60502] [--repeats N] [--nmi] [--python PATH]
        Exact kNN Recall@1,2,4,8 + MAP@R of synthetic 512-d embeddings (8131 rows / 98
        classes like CARS196, 60502 / 11316 like SOP, else N/83 classes; written once to
        target/bench-eval) with ee-eval against faiss-cpu IndexFlatL2 (the same work, and
        k = 9 only; xtask/baselines/eval_knn.py), the ratios, and whether the metrics agree.
        Repeats default to 3 below 20000 rows, 1 above. --nmi also times k-means NMI
        against faiss Kmeans (20 iterations; slow). faiss-cpu is pip-installed into the
        baseline venv if missing; without it only our side runs.

    cargo xtask bench loss [--threads N] [--steps N] [--python PATH]
        Forward + backward of EE + HPHN alone, batch 128, dim 512, 32 instances, 0 and 2
        synthetic points, median of N steps (default 30): ee-loss against the PyTorch port
        (xtask/baselines/loss_step.py) on the same embeddings (target/bench-loss), and
        whether the two losses agree to 1e-4 relative.

    cargo xtask gpu-check [--out DIR] [--backend cuda|flex] [--run [--quick]] [--python PATH]
        Pack a folder (default target/gpu-check, under 60 MB) that checks the CUDA build on a
        machine with an NVIDIA GPU and PyTorch but no Rust: `ee` built for CUDA, the runner
        gpu_check.py, PyTorch's train step, a short training config, and the CPU backend's
        results of the same probes and run (cpu_reference.json). There, `python3
        gpu_check.py --out results` writes results/report.json: CUDA vs CPU loss, gradients,
        GoogLeNet forward and one train step; train-step images/s vs PyTorch (batch 128,
        227 px); Recall@K at N = 60,502 vs torch matmul + topk; R@1 of a short training run.
        --run runs the folder here; with --backend flex --quick, a dry run on the CPU.

    cargo xtask parity-train [--steps N]
        Run PyTorch's training step (xtask/baselines/parity_train.py) and ours on the same
        start weights and batches, N steps (default 10), and print loss, parameter and
        BatchNorm gaps per step: Adam (coupled decay) and AdamW with base_lr_mult 0.5,
        against PyTorch in float64, plus PyTorch float32 against float64 for scale.

EXAMPLES:
    cargo xtask train configs/demo.toml
    cargo xtask train configs/inner2.toml
    cargo xtask train configs/inner2.toml --backend cpu --set schedule.epochs=1
";

/// Backends the `ee` binary can be built with, each a cargo feature of `ee-cli`.
const BACKENDS: &[&str] = &["flex", "cuda", "tch"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(command @ ("train" | "eval")) => run_ee(command, &args[1..]),
        Some("bench") => bench::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("gpu-check") => gpu_check::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("parity-train") => parity::run(&args[1..]).map(|()| ExitCode::SUCCESS),
        Some("test") => run_tests(&args[1..]),
        Some("fixtures") => {
            let env = tch::ensure()?;
            let dir = tch::ensure_googlenet_fixture(&env)?;
            eprintln!("GoogLeNet fixture in {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some("ee") => {
            let (backend, rest) = match args.get(1).map(String::as_str) {
                Some("--backend") => {
                    let name = args
                        .get(2)
                        .ok_or("`--backend` needs a value (flex, cpu, cuda or tch)")?;
                    (canonical_backend(name)?, &args[3..])
                }
                _ => ("flex", &args[1..]),
            };
            cargo_run_ee(backend, rest)
        }
        Some(other) => Err(format!(
            "unknown command `{other}`; see `cargo xtask --help`"
        )),
    }
}

/// `cpu` and `ndarray` (the name for the CPU backend) are aliases of `flex`.
fn canonical_backend(name: &str) -> Result<&'static str, String> {
    match name {
        "flex" | "cpu" | "ndarray" => Ok("flex"),
        "cuda" => Ok("cuda"),
        "tch" | "libtorch" => Ok("tch"),
        other => Err(format!(
            "unknown backend `{other}`; choose one of {BACKENDS:?} (or cpu)"
        )),
    }
}

/// The config's `run.backend` after the `--set` overrides, if it names one.
fn config_backend(config: &str, sets: &[String]) -> Result<Option<String>, String> {
    for kv in sets.iter().rev() {
        if let Some(value) = kv.trim().strip_prefix("run.backend=") {
            return Ok(Some(value.trim().trim_matches('"').to_string()));
        }
    }
    let text =
        std::fs::read_to_string(config).map_err(|e| format!("cannot read config {config}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "{config}: {}",
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )
    })?;
    Ok(table
        .get("run")
        .and_then(|r| r.get("backend"))
        .and_then(|b| b.as_str())
        .map(str::to_string))
}

fn run_ee(command: &str, args: &[String]) -> Result<ExitCode, String> {
    let mut backend = None;
    let mut sets = Vec::new();
    let mut passthrough = Vec::new();
    let mut config = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => {
                backend = Some(
                    it.next()
                        .ok_or("`--backend` needs a value (flex, cpu, cuda or tch)")?
                        .clone(),
                );
            }
            "--set" => sets.push(
                it.next()
                    .ok_or("`--set` needs a `section.key=value` argument")?
                    .clone(),
            ),
            "--checkpoint" => {
                let path = it.next().ok_or("`--checkpoint` needs a path")?;
                passthrough.extend(["--checkpoint".to_string(), path.clone()]);
            }
            flag if flag.starts_with('-') => passthrough.push(flag.to_string()),
            path if config.is_none() => config = Some(path.to_string()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    let config = config.ok_or(format!(
        "missing CONFIG: `cargo xtask {command} configs/demo.toml`"
    ))?;
    if !Path::new(&config).is_file() {
        return Err(format!("no such config file: {config}"));
    }
    let backend = match backend {
        Some(b) => canonical_backend(&b)?,
        None => match config_backend(&config, &sets)? {
            Some(b) => canonical_backend(&b).map_err(|e| format!("{config}: run.backend: {e}"))?,
            None => "flex",
        },
    };
    // The binary is built for exactly this backend; record it in the run's config too.
    sets.push(format!("run.backend={backend}"));
    let mut ee_args = vec![command.to_string(), config];
    ee_args.extend(sets.iter().flat_map(|kv| ["--set".to_string(), kv.clone()]));
    ee_args.extend(passthrough);
    cargo_run_ee(backend, &ee_args)
}

/// Builds `ee` in release mode with `backend`'s feature and runs it with `args`, returning
/// its exit code.
fn cargo_run_ee(backend: &str, args: &[String]) -> Result<ExitCode, String> {
    eprintln!("building ee (release, backend {backend}) ...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    if backend == "tch" {
        let env = tch::ensure()?;
        env.apply(&mut command);
        // `ee-tch` beside `ee`: starts this LibTorch build without cargo, or says in one line
        // why it cannot (a libtorch-linked `ee` cannot: the loader stops it first).
        build_launcher(&cargo, &env, true)?;
        eprintln!("(target/release/ee-tch starts this LibTorch build of ee without cargo)");
    }
    let status = command
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "ee-cli",
            "--no-default-features",
        ])
        .args(["--features", backend, "--bin", "ee", "--"])
        .args(args)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

/// Builds the `ee-tch` launcher (a package without dependencies: nothing of the workspace's
/// build is re-resolved).
fn build_launcher(cargo: &str, env: &tch::TchEnv, release: bool) -> Result<(), String> {
    let mut command = Command::new(cargo);
    env.apply(&mut command)
        .args(["build", "--quiet", "--package", "ee-tch-launcher"]);
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err("building the ee-tch launcher failed".into());
    }
    Ok(())
}

/// `ee` on LibTorch started through `target/debug/ee-tch` with no library path set: the
/// launcher must find the workspace venv's torch 2.9.0 and hand over to the LibTorch `ee`
/// that the `cli` tests built, which must then compute (the loss probe, written as JSON).
fn check_launcher(cargo: &str, env: &tch::TchEnv) -> Result<(), String> {
    build_launcher(cargo, env, false)?;
    let out_dir = PathBuf::from("target/tch-launcher-check");
    let _ = std::fs::remove_dir_all(&out_dir);
    eprintln!("== target/debug/ee-tch probe --what loss (no LD_LIBRARY_PATH)");
    let output = Command::new("target/debug/ee-tch")
        .args(["probe", "--what", "loss", "--out"])
        .arg(&out_dir)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LIBTORCH")
        .env_remove("EE_LIBTORCH_LIB")
        .env_remove("EE_TCH_BINARY")
        .env("EE_TCH_VENV", &env.venv)
        .output()
        .map_err(|e| format!("could not run target/debug/ee-tch: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ee-tch probe failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report = std::fs::read_to_string(out_dir.join("probe.json")).map_err(|e| {
        format!(
            "ee-tch probe wrote no {}/probe.json: {e}",
            out_dir.display()
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&report)
        .map_err(|e| format!("{}/probe.json: {e}", out_dir.display()))?;
    if json["backend"] != "tch" || json["probes"]["loss"].is_null() {
        return Err(format!(
            "ee-tch probe did not compute the loss on tch: {report}"
        ));
    }
    eprintln!("== ee-tch started ee on LibTorch");
    Ok(())
}

/// The test files that take their backend from a `test-<backend>` feature (loss against the
/// reference port, k-NN exactness, the model, the trainer, weight import).
const BACKEND_GENERIC_TESTS: &[&str] = &[
    "hphn_reference",
    "brute_force",
    "model",
    "trainer",
    "weights",
];

/// The crates with `test-tch` / `test-wgpu` features.
const BACKEND_TEST_CRATES: &[&str] = &["ee-loss", "ee-eval", "ee-model", "ee-train"];

/// `--quick` on wgpu (lavapipe, where a GoogLeNet step takes seconds): the whole loss file,
/// the k-NN file but the host-engine scale test (a CPU-only engine, minutes on lavapipe), the
/// model's BatchNorm / train-eval / gradient / GoogLeNet-vs-torchvision tests, the import of a
/// PyTorch embedding model, and the trainer's run + exact resume. Test names, passed as
/// filters to one `cargo test` over the same test files as the full run (another selection
/// of test targets would resolve other features and rebuild burn).
const WGPU_QUICK: &[&str] = &[
    // hphn_reference: all of it.
    "matches_the_reference_on_random_batches",
    "tie_rule_when_the_hardest_negative_is_a_synthetic_point",
    "reference_default_margin_and_mean_reduction",
    "without_expansion_it_is_plain_batch_hard_triplet",
    "twin_synthetic_points_give_bit_identical_distances_at_full_size",
    "expansion_layout_and_interpolation",
    "bad_batches_and_parameters_are_clear_errors",
    // brute_force, but host_engine_tiles_equal_brute_force_at_scale.
    "self_mode_metrics_equal_brute_force",
    "query_gallery_metrics_equal_brute_force",
    "neighbours_equal_brute_force_rankings_including_ties",
    "chunked_and_unchunked_neighbours_are_identical",
    "query_gallery_with_the_same_set_retrieves_the_query_itself",
    // model
    "batchnorm_uses_batch_statistics_in_training_and_running_ones_in_eval",
    "full_model_train_mode_depends_on_the_batch_and_eval_does_not",
    "gradients_split_between_backbone_and_head",
    "googlenet_matches_torchvision",
    // weights
    "a_pytorch_embedding_model_loads_backbone_and_transposed_head",
    // trainer
    "trains_a_small_cnn_and_writes_the_run",
    "resume_continues_exactly",
];

/// `cargo xtask test [--backend flex|tch|wgpu] [--quick]`.
fn run_tests(args: &[String]) -> Result<ExitCode, String> {
    const USAGE: &str = "usage: cargo xtask test [--backend flex|tch|wgpu] [--quick]";
    let mut backend = "flex";
    let mut quick = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--backend" => {
                backend = match rest.next().map(String::as_str) {
                    Some("flex" | "cpu") => "flex",
                    Some("tch" | "libtorch") => "tch",
                    Some("wgpu") => "wgpu",
                    Some(other) => {
                        return Err(format!("unknown test backend `{other}`: flex, tch or wgpu"))
                    }
                    None => return Err(USAGE.into()),
                }
            }
            "--quick" => quick = true,
            _ => return Err(USAGE.into()),
        }
    }
    if quick && backend != "wgpu" {
        return Err("--quick is for --backend wgpu (lavapipe)".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let env = if backend == "tch" {
        let env = tch::ensure()?;
        tch::ensure_googlenet_fixture(&env)?;
        Some(env)
    } else {
        None
    };
    let mut features: Vec<String> = BACKEND_TEST_CRATES
        .iter()
        .map(|c| format!("{c}/test-{backend}"))
        .collect();
    if backend == "tch" {
        features.push("ee-cli/tch".into());
    }
    let with_features = || -> Vec<String> {
        vec![
            "--workspace".into(),
            "--features".into(),
            features.join(","),
        ]
    };
    // The same package selection as `cargo test --workspace`, so that the dependencies
    // built for it are reused.
    let mut runs: Vec<Vec<String>> = Vec::new();
    if backend == "flex" {
        runs.push(vec!["--workspace".into()]);
    } else {
        let mut generic = with_features();
        for name in BACKEND_GENERIC_TESTS {
            generic.extend(["--test".to_string(), name.to_string()]);
        }
        if quick {
            generic.push("--".into());
            generic.extend(WGPU_QUICK.iter().map(|name| name.to_string()));
        }
        runs.push(generic);
        if backend == "tch" {
            // `ee` itself on LibTorch: a short training run, and an exact resume.
            let mut cli = with_features();
            cli.extend(
                [
                    "--test",
                    "cli",
                    "--",
                    "train_writes_the_run_directory",
                    "resume_continues_exactly",
                ]
                .map(String::from),
            );
            runs.push(cli);
        }
    }
    for run in runs {
        let mut command = Command::new(&cargo);
        if let Some(env) = &env {
            // The GoogLeNet-vs-torchvision test must run, not skip.
            env.apply(&mut command).env("EE_REQUIRE_TORCH_FIXTURE", "1");
        }
        command.arg("test").args(&run);
        eprintln!("== cargo test {}", run.join(" "));
        let start = std::time::Instant::now();
        let status = command
            .status()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        eprintln!("== {:.0} s", start.elapsed().as_secs_f64());
        if !status.success() {
            return Ok(ExitCode::FAILURE);
        }
    }
    if let Some(env) = &env {
        check_launcher(&cargo, env)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_aliases() {
        assert_eq!(canonical_backend("cpu").unwrap(), "flex");
        assert_eq!(canonical_backend("ndarray").unwrap(), "flex");
        assert_eq!(canonical_backend("cuda").unwrap(), "cuda");
        assert_eq!(canonical_backend("tch").unwrap(), "tch");
        assert!(canonical_backend("tpu").is_err());
    }

    #[test]
    fn backend_comes_from_the_config_or_the_last_set() {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[run]\nbackend = \"cuda\"\noutput_dir = \"x\"\n").unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(config_backend(p, &[]).unwrap().as_deref(), Some("cuda"));
        assert_eq!(
            config_backend(p, &["run.backend=cpu".into()])
                .unwrap()
                .as_deref(),
            Some("cpu")
        );
        std::fs::write(&path, "[run]\noutput_dir = \"x\"\n").unwrap();
        assert_eq!(config_backend(p, &[]).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
