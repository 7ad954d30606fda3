#![cfg(unix)]

//! The `ee-tch` binary itself: one-line errors with exit code 2 when libtorch or `ee` is
//! missing, and a faithful hand-over (arguments, library path, exit code) when both are there.
//! The real LibTorch `ee` is started through it by `cargo xtask test --backend tch`.

use std::path::Path;
use std::process::{Command, Output};

/// `ee-tch` with a clean environment: no torch on any path, no python on PATH, no venv.
fn launcher(scratch: &Path) -> Command {
    let empty = scratch.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ee-tch"));
    command
        .env_clear()
        .env("PATH", &empty)
        .env("EE_TCH_VENV", scratch.join("no-venv"));
    command
}

/// A torch install with `libtorch_cpu.so` (empty) and its `version.py`; returns its `lib/`.
fn fake_torch(root: &Path, version: &str) -> std::path::PathBuf {
    let lib = root.join("torch").join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libtorch_cpu.so"), b"").unwrap();
    std::fs::write(
        root.join("torch").join("version.py"),
        format!("__version__ = '{version}'\n"),
    )
    .unwrap();
    lib
}

/// A stand-in for `ee`: prints its library path and arguments, exits with 7.
fn fake_ee(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("ee");
    std::fs::write(
        &path,
        "#!/bin/sh\necho \"LD_LIBRARY_PATH=$LD_LIBRARY_PATH\"\necho \"ARGS=$*\"\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The one stderr line of a failed launch (asserting exit code 2 and exactly one line).
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("ee-tch: "), "{stderr}");
    lines[0].to_string()
}

#[test]
fn without_libtorch_it_says_where_it_looked_and_what_to_do() {
    let scratch = tempfile::tempdir().unwrap();
    let out = launcher(scratch.path()).arg("--help").output().unwrap();
    let line = one_line_error(&out);
    assert!(line.contains("no libtorch of torch 2.9.0 found"), "{line}");
    assert!(line.contains("LD_LIBRARY_PATH: unset"), "{line}");
    assert!(line.contains("no-venv: no such venv"), "{line}");
    assert!(line.contains("python3: not found"), "{line}");
    assert!(line.contains("cargo xtask fixtures"), "{line}");
    assert!(line.contains("EE_LIBTORCH_LIB"), "{line}");
}

#[test]
fn a_torch_of_another_version_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let lib = fake_torch(scratch.path(), "2.4.1+cpu");
    let out = launcher(scratch.path())
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    let line = one_line_error(&out);
    assert!(
        line.contains("torch 2.4.1, but ee was built against 2.9.0"),
        "{line}"
    );
}

#[test]
fn a_missing_ee_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let lib = fake_torch(scratch.path(), "2.9.0+cu128");
    let out = launcher(scratch.path())
        .env("EE_LIBTORCH_LIB", &lib)
        .env("EE_TCH_BINARY", scratch.path().join("nowhere/ee"))
        .output()
        .unwrap();
    let line = one_line_error(&out);
    assert!(line.contains("nowhere/ee not found"), "{line}");
    assert!(line.contains("--features tch"), "{line}");
}

#[test]
fn hands_over_arguments_library_path_and_exit_code() {
    let scratch = tempfile::tempdir().unwrap();
    // Found through a venv laid out as pip lays it out.
    let venv = scratch.path().join("venv");
    let site = venv.join("lib").join("python3.11").join("site-packages");
    let lib = fake_torch(&site, "2.9.0+cu128");
    let ee = fake_ee(scratch.path());
    let out = launcher(scratch.path())
        .env("EE_TCH_VENV", &venv)
        .env("EE_TCH_BINARY", &ee)
        .env("LD_LIBRARY_PATH", "/opt/other")
        .args(["train", "configs/demo.toml", "--set", "run.backend=tch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("LD_LIBRARY_PATH={}:/opt/other", lib.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("ARGS=train configs/demo.toml --set run.backend=tch"),
        "{stdout}"
    );
}
