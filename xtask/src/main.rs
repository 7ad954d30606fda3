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

    cargo xtask test [--backend flex|tch|wgpu|cuda[,...]] [--compile BACKENDS] [--quick]
        flex (default): `cargo test --workspace`, the README's test command. Any other list
        (e.g. `--backend tch,wgpu --compile cuda`, what CI runs) is one test build with every
        listed backend compiled in, from which the backend-generic test files (loss vs the
        reference port, k-NN exactness, the model, the trainer) run once per backend;
        --compile backends are compiled into that build but not run (cuda without a GPU). tch:
        also the `ee` train + resume tests on LibTorch, with the torch 2.9.0 venv set up as
        for `train --backend tch`. wgpu: burn's wgpu backend (a Vulkan device is needed;
        lavapipe runs it on the CPU); --quick runs a subset on it (loss, k-NN, GoogLeNet vs
        torchvision, train + resume). cuda: an NVIDIA GPU (libcuda) is needed to run.

    cargo xtask fixtures
        Make the torch 2.9.0 venv (target/tch-venv, as for --backend tch) and write the
        PyTorch fixtures of ee-model's GoogLeNet-vs-torchvision test (target/parity/googlenet)
        and f32-gradient test (target/parity/googlenet_grads), unless the current scripts
        wrote them. `cargo test` runs those tests when the fixtures are there
        (EE_REQUIRE_TORCH_FIXTURE=1: must), and says they skipped otherwise.

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
            for dir in tch::ensure_googlenet_fixtures(&env)? {
                eprintln!("GoogLeNet fixture in {}", dir.display());
            }
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

/// The test files whose cases are compiled once per backend the build enables (a module per
/// backend: `flex::`, `wgpu::` with `test-wgpu`, `libtorch::` with `test-tch`, `cuda::` with
/// `test-cuda`): loss against
/// the reference port, k-NN exactness, the model, the trainer.
const BACKEND_GENERIC_TESTS: &[&str] = &["hphn_reference", "brute_force", "model", "trainer"];

/// The crates with `test-tch` / `test-wgpu` features.
const BACKEND_TEST_CRATES: &[&str] = &["ee-loss", "ee-eval", "ee-model", "ee-train"];

/// A backend the backend-generic test files run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TestBackend {
    Flex,
    Tch,
    Wgpu,
    Cuda,
}

impl TestBackend {
    fn parse(name: &str) -> Result<TestBackend, String> {
        match name {
            "flex" | "cpu" => Ok(TestBackend::Flex),
            "tch" | "libtorch" => Ok(TestBackend::Tch),
            "wgpu" => Ok(TestBackend::Wgpu),
            "cuda" => Ok(TestBackend::Cuda),
            other => Err(format!(
                "unknown test backend `{other}`: flex, tch, wgpu or cuda"
            )),
        }
    }

    /// The crates' feature that compiles the cases for this backend (none for flex: always).
    fn feature(self) -> Option<&'static str> {
        match self {
            TestBackend::Flex => None,
            TestBackend::Tch => Some("test-tch"),
            TestBackend::Wgpu => Some("test-wgpu"),
            TestBackend::Cuda => Some("test-cuda"),
        }
    }

    /// The module the test files put this backend's cases in: the test-name filter.
    fn module(self) -> &'static str {
        match self {
            TestBackend::Flex => "flex::",
            TestBackend::Tch => "libtorch::",
            TestBackend::Wgpu => "wgpu::",
            TestBackend::Cuda => "cuda::",
        }
    }
}

/// `--quick` on wgpu (lavapipe, where a GoogLeNet step takes seconds): the whole loss file,
/// the k-NN file but the host-engine scale test (a CPU-only engine, minutes on lavapipe), the
/// model's BatchNorm / train-eval / gradient / GoogLeNet-vs-torchvision / host-read tests, and
/// the trainer's run + exact resume. Test names, passed (after the backend's module) as
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
    "eval_forward_reads_nothing_back_off_flex",
    // trainer
    "trains_a_small_cnn_and_writes_the_run",
    "resume_continues_exactly",
];

/// The backends of `--backend a,b,...`, each once, in the order given.
fn parse_test_backends(list: &str) -> Result<Vec<TestBackend>, String> {
    let mut backends = Vec::new();
    for name in list.split(',').map(str::trim) {
        let backend = TestBackend::parse(name)?;
        if !backends.contains(&backend) {
            backends.push(backend);
        }
    }
    Ok(backends)
}

/// Fails, saying what to install, unless Vulkan shows a device (lavapipe counts): without one
/// every wgpu test would fail on its first tensor with a less clear message.
fn check_vulkan_device() -> Result<(), String> {
    let install =
        "install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers vulkan-tools` \
                   (lavapipe runs Vulkan on the CPU)";
    let output = Command::new("vulkaninfo")
        .arg("--summary")
        .output()
        .map_err(|e| {
            format!("wgpu tests need Vulkan, and `vulkaninfo` cannot run ({e}): {install}")
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let devices: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("deviceName"))
        .map(|rest| rest.trim_start_matches([' ', '=']).trim())
        .collect();
    if !output.status.success() || devices.is_empty() {
        return Err(format!(
            "wgpu tests need a Vulkan device, and `vulkaninfo --summary` shows none ({}): {install}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("no deviceName line")
        ));
    }
    eprintln!("== Vulkan devices: {}", devices.join(", "));
    Ok(())
}

/// `cargo xtask test [--backend flex|tch|wgpu|cuda[,...]] [--compile BACKENDS] [--quick]`.
///
/// `flex` alone is `cargo test --workspace`, the README's test command. Any other list is one
/// test build with every listed backend's feature (burn and the test files compiled once),
/// from which each backend's cases run in turn, filtered by their module. `--compile`
/// backends are in that build too, not run: CI compiles the CUDA cases on machines without
/// a GPU, so that the primary backend's instantiation of our code never stops building.
fn run_tests(args: &[String]) -> Result<ExitCode, String> {
    const USAGE: &str = "usage: cargo xtask test [--backend flex|tch|wgpu|cuda[,...]] \
                         [--compile BACKENDS] [--quick]";
    let mut backends = vec![TestBackend::Flex];
    let mut compile_only = Vec::new();
    let mut quick = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--backend" => backends = parse_test_backends(rest.next().ok_or(USAGE)?)?,
            "--compile" => compile_only = parse_test_backends(rest.next().ok_or(USAGE)?)?,
            "--quick" => quick = true,
            _ => return Err(USAGE.into()),
        }
    }
    compile_only.retain(|b| !backends.contains(b) && *b != TestBackend::Flex);
    let has = |backend| backends.contains(&backend);
    if quick && !has(TestBackend::Wgpu) {
        return Err("--quick is for --backend wgpu (lavapipe)".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if backends == [TestBackend::Flex] && compile_only.is_empty() {
        return cargo_test(&cargo, None, &["--workspace".into()]);
    }
    if has(TestBackend::Wgpu) {
        check_vulkan_device()?;
    }
    // Every command of this build gets the same environment (torch-sys's build script reads
    // it: another one would rebuild burn-tch and everything above it).
    let env = if has(TestBackend::Tch) {
        let env = tch::ensure()?;
        tch::ensure_googlenet_fixtures(&env)?;
        Some(env)
    } else {
        None
    };
    let mut features: Vec<String> = Vec::new();
    for feature in backends
        .iter()
        .chain(&compile_only)
        .filter_map(|b| b.feature())
    {
        features.extend(BACKEND_TEST_CRATES.iter().map(|c| format!("{c}/{feature}")));
    }
    if has(TestBackend::Tch) {
        features.push("ee-cli/tch".into());
    }
    let with_features = || -> Vec<String> {
        let mut args = vec!["--workspace".to_string()];
        if !features.is_empty() {
            args.extend(["--features".to_string(), features.join(",")]);
        }
        args
    };
    // The backend-generic test files with those features: the build every run below shares.
    let generic_tests = || -> Vec<String> {
        let mut args = with_features();
        for name in BACKEND_GENERIC_TESTS {
            args.extend(["--test".to_string(), name.to_string()]);
        }
        args
    };
    if !compile_only.is_empty() {
        // The build every run below shares, with the compile-only backends' cases in it.
        let mut build = generic_tests();
        build.push("--no-run".into());
        let names: Vec<&str> = compile_only.iter().map(|b| b.module()).collect();
        eprintln!("== compiled, not run: {}", names.join(", "));
        let code = cargo_test(&cargo, env.as_ref(), &build)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    for &backend in &backends {
        // The same package selection as `cargo test --workspace`, so that the dependencies
        // built for it are reused.
        let mut generic = generic_tests();
        generic.push("--".into());
        if quick && backend == TestBackend::Wgpu {
            generic.extend(
                WGPU_QUICK
                    .iter()
                    .map(|name| format!("{}{name}", backend.module())),
            );
        } else {
            generic.push(backend.module().into());
        }
        let code = cargo_test(&cargo, env.as_ref(), &generic)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        if backend == TestBackend::Tch {
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
            let code = cargo_test(&cargo, env.as_ref(), &cli)?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            check_launcher(&cargo, env.as_ref().expect("tch has its env"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo test ARGS` (with the LibTorch environment when given), timed.
fn cargo_test(cargo: &str, env: Option<&tch::TchEnv>, args: &[String]) -> Result<ExitCode, String> {
    let mut command = Command::new(cargo);
    if let Some(env) = env {
        // The GoogLeNet-vs-torchvision test must run, not skip.
        env.apply(&mut command).env("EE_REQUIRE_TORCH_FIXTURE", "1");
    }
    command.arg("test").args(args);
    eprintln!("== cargo test {}", args.join(" "));
    let start = std::time::Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    eprintln!("== {:.0} s", start.elapsed().as_secs_f64());
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_backends_are_a_list_each_once() {
        use TestBackend::*;
        assert_eq!(parse_test_backends("tch,wgpu").unwrap(), [Tch, Wgpu]);
        assert_eq!(
            parse_test_backends("wgpu, libtorch,wgpu").unwrap(),
            [Wgpu, Tch]
        );
        assert_eq!(parse_test_backends("cpu").unwrap(), [Flex]);
        assert_eq!(parse_test_backends("tch,cuda").unwrap(), [Tch, Cuda]);
        assert!(parse_test_backends("tch,metal")
            .unwrap_err()
            .contains("`metal`"));
        assert_eq!(Cuda.feature(), Some("test-cuda"));
        assert_eq!(Wgpu.module(), "wgpu::");
        assert_eq!(Flex.feature(), None);
    }

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
