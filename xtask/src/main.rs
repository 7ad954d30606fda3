//! `cargo xtask`: the project's developer commands (`cargo xtask --help`).
//!
//! `cargo xtask train CONFIG [--backend flex|cuda] [--set key=value ...]` builds the `ee`
//! binary in release mode with the chosen backend's cargo feature and runs `ee train`.

use std::process::{Command, ExitCode};

const USAGE: &str = "\
cargo xtask: developer commands for embedding-expansion

USAGE:
    cargo xtask train CONFIG [--backend flex|cuda] [--set key=value ...]
        Build `ee` (release, with the backend's feature) and run `ee train CONFIG`.
        The backend defaults to flex (CPU); `--backend cuda` trains on the GPU.
";

/// Backends the `ee` binary can be built with, each a cargo feature of `ee-cli`.
const BACKENDS: &[&str] = &["flex", "cuda"];

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
        Some("train") => train(&args[1..]),
        Some(other) => Err(format!("unknown command `{other}`; see `cargo xtask --help`")),
    }
}

fn train(args: &[String]) -> Result<ExitCode, String> {
    let mut backend = "flex".to_string();
    let mut passthrough = Vec::new();
    let mut config = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => {
                backend = it.next().ok_or("`--backend` needs a value (flex or cuda)")?.clone();
            }
            "--set" => {
                let kv = it.next().ok_or("`--set` needs a `key=value` argument")?;
                passthrough.extend(["--set".to_string(), kv.clone()]);
            }
            flag if flag.starts_with('-') => passthrough.push(flag.to_string()),
            path if config.is_none() => config = Some(path.to_string()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    let config = config.ok_or("missing CONFIG: `cargo xtask train configs/inner2.toml`")?;
    if !BACKENDS.contains(&backend.as_str()) {
        return Err(format!("unknown backend `{backend}`; choose one of {BACKENDS:?}"));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["run", "--release", "--package", "ee-cli", "--no-default-features"])
        .args(["--features", &backend, "--", "train", &config])
        .args(&passthrough)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}
