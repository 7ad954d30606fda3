//! The LibTorch backend's environment: a venv with the torch that burn-tch's torch-sys 0.22
//! checks for (2.9.0), made with pip on first use in `target/tch-venv`, and the variables a
//! cargo build and the binaries it makes need (`LIBTORCH_USE_PYTORCH`, `VIRTUAL_ENV`, `PATH`,
//! `LD_LIBRARY_PATH`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The torch version torch-sys 0.22 (burn-tch 0.21's) builds against.
pub const TORCH_VERSION: &str = "2.9.0";

/// The torchvision of that torch: only the GoogLeNet fixture script needs it.
pub const TORCHVISION_VERSION: &str = "0.24.0";

/// Where the venv lives, relative to the workspace root.
pub const VENV: &str = "target/tch-venv";

/// The venv's absolute path with `target/` resolved: CI links `target` to a build cache
/// outside the clone, and torch-sys's build script records the libtorch path it was given
/// (cargo does not rerun it for a new one), so the path must not name a clone that a later
/// run may have deleted.
fn venv_path() -> Result<PathBuf, String> {
    let (target, rest) = VENV.split_once('/').expect("VENV is target/<name>");
    let target = Path::new(target);
    std::fs::create_dir_all(target)
        .map_err(|e| format!("cannot make {}: {e}", target.display()))?;
    let target = std::fs::canonicalize(target)
        .map_err(|e| format!("cannot resolve {}: {e}", target.display()))?;
    Ok(target.join(rest))
}

/// A ready LibTorch environment.
pub struct TchEnv {
    /// The venv's root.
    pub venv: PathBuf,
    /// torch's `lib/` folder (`libtorch_cpu.so`, ...).
    pub lib_dir: PathBuf,
}

impl TchEnv {
    /// Puts the variables on `command`: torch-sys finds libtorch through the venv's Python,
    /// and the binaries find it at run time through `LD_LIBRARY_PATH` (`ee` also has an
    /// rpath; the test binaries of the other crates do not).
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        let bin = self.venv.join("bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&path));
        let mut libs = vec![self.lib_dir.clone()];
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            libs.extend(std::env::split_paths(&existing));
        }
        command
            .env("LIBTORCH_USE_PYTORCH", "1")
            .env("VIRTUAL_ENV", &self.venv)
            .env("PATH", std::env::join_paths(paths).expect("valid PATH"))
            .env(
                "LD_LIBRARY_PATH",
                std::env::join_paths(libs).expect("valid LD_LIBRARY_PATH"),
            )
    }
}

/// The venv's torch `lib/` folder if it holds torch [`TORCH_VERSION`], else why not.
fn probe(python: &Path) -> Result<PathBuf, String> {
    let script = "import os, torch, torchvision, safetensors\n\
                  print(torch.__version__.split('+')[0])\n\
                  print(os.path.join(os.path.dirname(torch.__file__), 'lib'))";
    let output = Command::new(python)
        .args(["-c", script])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr
            .lines()
            .last()
            .unwrap_or("torch does not import")
            .into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let version = lines.next().unwrap_or_default();
    if version != TORCH_VERSION {
        return Err(format!("torch {version} is installed, not {TORCH_VERSION}"));
    }
    let lib = PathBuf::from(lines.next().unwrap_or_default());
    if !lib.join("libtorch_cpu.so").is_file() {
        return Err(format!("{} has no libtorch_cpu.so", lib.display()));
    }
    Ok(lib)
}

/// Free space the pip install needs while it runs (wheels being unpacked + the install).
const NEEDED_GB: f64 = 12.0;

/// Free space (GB) on the file system holding `path` (or its nearest existing parent), read
/// with `df -Pk`.
fn free_gb(path: &Path) -> Option<f64> {
    let mut dir = path;
    while !dir.exists() {
        dir = dir.parent()?;
    }
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let kib: f64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// Fails before pip starts, naming the folder and both sizes, when the disk cannot hold the
/// install: a half-installed torch is worse than none.
fn check_free_space(venv: &Path) -> Result<(), String> {
    match free_gb(venv) {
        Some(gb) if gb < NEEDED_GB => Err(format!(
            "not enough disk for the LibTorch venv in {}: pip needs about {NEEDED_GB} GB free \
             while it installs torch=={TORCH_VERSION}, {gb:.1} GB are free",
            venv.display()
        )),
        _ => Ok(()),
    }
}

/// The environment, making the venv with pip on first use (a ~4 GB download: torch with its
/// CUDA libraries, about 7 GB on disk). Errors say what failed, and so whether a package
/// index could be reached.
pub fn ensure() -> Result<TchEnv, String> {
    let venv = venv_path()?;
    let python = venv.join("bin/python");
    if python.is_file() {
        if let Ok(lib_dir) = probe(&python) {
            return Ok(TchEnv { venv, lib_dir });
        }
    }
    eprintln!(
        "making the LibTorch venv in {} with pip: torch=={TORCH_VERSION} (a ~4 GB download \
         with its CUDA libraries, ~7 GB on disk; once, reused afterwards), and torchvision + \
         safetensors for the GoogLeNet fixture ...",
        venv.display()
    );
    if !python.is_file() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("cannot run python3 to make {}: {e}", venv.display()))?;
        if !status.success() {
            return Err(format!(
                "`python3 -m venv {}` failed (Debian/Ubuntu: apt install python3-venv)",
                venv.display()
            ));
        }
    }
    check_free_space(&venv)?;
    // No wheel cache: the ~4 GB of wheels would otherwise stay on disk beside the install.
    let output = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--progress-bar", "off"])
        .args(["--no-cache-dir", "--timeout", "60", "--retries", "2"])
        .arg(format!("torch=={TORCH_VERSION}"))
        .arg(format!("torchvision=={TORCHVISION_VERSION}"))
        .arg("safetensors")
        .output()
        .map_err(|e| format!("cannot run pip in {}: {e}", venv.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let unreachable = stderr.contains("NewConnectionError")
            || stderr.contains("Could not find a version")
            || stderr.contains("Temporary failure in name resolution");
        let full = stderr.contains("No space left on device");
        return Err(format!(
            "pip could not install torch=={TORCH_VERSION} into {}{}: {}",
            venv.display(),
            if unreachable {
                " (no package index could be reached)".to_string()
            } else if full {
                format!(
                    " (the disk is full: the install needs about {NEEDED_GB} GB free while it \
                     runs; {})",
                    free_gb(&venv).map_or("free space unknown".into(), |gb| format!(
                        "{gb:.1} GB free now"
                    ))
                )
            } else {
                String::new()
            },
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let lib_dir = probe(&python).map_err(|e| format!("after installing torch: {e}"))?;
    let size = folder_size(&venv);
    eprintln!(
        "LibTorch venv ready: {} ({:.1} GB); libtorch in {}",
        venv.display(),
        size as f64 / 1e9,
        lib_dir.display()
    );
    Ok(TchEnv { venv, lib_dir })
}

/// The PyTorch fixtures of ee-model's tests, written with the venv's PyTorch unless they are
/// there and were written by the current script (a copy of it is kept beside them):
/// `target/parity/googlenet` for `googlenet_matches_torchvision` (torchvision GoogLeNet + a
/// Linear head as one state dict, and its outputs) and `target/parity/googlenet_grads` for
/// `f32_gradients` (float64 gradients, PyTorch's float32 errors and decisions).
pub fn ensure_googlenet_fixtures(env: &TchEnv) -> Result<Vec<PathBuf>, String> {
    let fixtures: [(&str, &str, &[&str]); 2] = [
        (
            "googlenet_parity.py",
            "target/parity/googlenet",
            &["io.safetensors", "googlenet_embedding.pth"],
        ),
        (
            "googlenet_grads.py",
            "target/parity/googlenet_grads",
            &[
                "googlenet_grads.pth",
                "grads_b4_64px.safetensors",
                "grads_b8_64px.safetensors",
            ],
        ),
    ];
    let mut dirs = Vec::new();
    for (script, dir, files) in fixtures {
        let script = PathBuf::from("crates/ee-model/tests/support").join(script);
        let dir = PathBuf::from(dir);
        let source =
            std::fs::read(&script).map_err(|e| format!("cannot read {}: {e}", script.display()))?;
        // The parity script is imported by the gradient one: both are part of its source.
        let source = [
            source,
            std::fs::read("crates/ee-model/tests/support/googlenet_parity.py").unwrap_or_default(),
        ]
        .concat();
        let stamp = dir.join("made_by.py");
        let current = files.iter().all(|f| dir.join(f).is_file())
            && std::fs::read(&stamp).is_ok_and(|made_by| made_by == source);
        if !current {
            eprintln!(
                "== writing the PyTorch fixture {} ({})",
                dir.display(),
                script.display()
            );
            let status = Command::new(env.venv.join("bin/python"))
                .arg("-B")
                .arg(&script)
                .arg("--out")
                .arg(&dir)
                .status()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if !status.success() {
                return Err(format!("{} failed ({status})", script.display()));
            }
            std::fs::write(&stamp, &source)
                .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

/// Bytes under `dir` (files only; symlinks not followed).
pub(crate) fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
