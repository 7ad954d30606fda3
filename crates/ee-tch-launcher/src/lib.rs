//! The launcher of the LibTorch (`tch`) build of `ee`.
//!
//! A binary linked against libtorch cannot report a missing libtorch itself: the dynamic
//! loader resolves `libtorch_cpu.so` before `main` runs and stops with its own message.
//! `ee-tch` links nothing but std. It finds torch's `lib/` folder, checks that it holds
//! `libtorch_cpu.so` of the torch version `ee` was built against ([`TORCH_VERSION`]), puts it
//! first on `LD_LIBRARY_PATH` and replaces itself with the `ee` next to it. When it cannot,
//! it prints one line that says what it looked for and what to do.
//!
//! Where it looks, first match wins:
//! 1. `EE_LIBTORCH_LIB`: a `lib/` folder (an error if it is wrong, no fallback);
//! 2. `LIBTORCH`: tch-rs's variable, a libtorch folder whose `lib/` is used (same);
//! 3. a folder on `LD_LIBRARY_PATH` that holds `libtorch_cpu.so`;
//! 4. the workspace's venv that `cargo xtask` makes (`target/tch-venv`, or `EE_TCH_VENV`);
//! 5. the torch of `$VIRTUAL_ENV/bin/python`, else of `python3` on `PATH`.
//!
//! `EE_TCH_BINARY` names the `ee` to start instead of the one next to `ee-tch`.
//!
//! ```no_run
//! let env = ee_tch_launcher::Env::from_process();
//! match ee_tch_launcher::find_libtorch(&env) {
//!     Ok(found) => println!("{} (from {})", found.lib_dir.display(), found.source),
//!     Err(why) => eprintln!("{why}"),
//! }
//! ```

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The torch version whose libtorch `ee`'s tch feature builds against (torch-sys 0.22).
pub const TORCH_VERSION: &str = "2.9.0";

/// The library `ee` needs first; its folder is torch's `lib/`.
const LIBTORCH_CPU: &str = "libtorch_cpu.so";

/// What the launcher reads: environment variables and its own path. Tests build their own.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Environment variables.
    pub vars: HashMap<OsString, OsString>,
    /// The launcher's own path (`ee` is looked for next to it).
    pub exe: Option<PathBuf>,
}

impl Env {
    /// This process's variables and path.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().collect(),
            exe: std::env::current_exe().ok(),
        }
    }

    /// A variable, unless unset or empty.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }
}

/// A usable libtorch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibTorch {
    /// The folder holding `libtorch_cpu.so`.
    pub lib_dir: PathBuf,
    /// Its torch version, when the install says (`version.py` or `build-version`).
    pub version: Option<String>,
    /// Where it was found, for messages (`EE_LIBTORCH_LIB`, `the workspace venv`, ...).
    pub source: String,
}

/// The torch version of the install whose `lib/` is `lib_dir`: pip's `torch/version.py`
/// (`__version__ = '2.9.0+cu128'`) or a libtorch zip's `build-version`, local part dropped.
fn version_of(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    let strip = |v: &str| v.split('+').next().unwrap_or(v).trim().to_string();
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("__version__") {
                let value = rest.trim_start_matches([' ', '=']).trim();
                return Some(strip(value.trim_matches(['\'', '"'])));
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|v| strip(&v))
}

/// `lib_dir` as a [`LibTorch`] if it holds `libtorch_cpu.so` of [`TORCH_VERSION`] (or of an
/// unstated version), else why not.
fn check(lib_dir: &Path, source: &str) -> Result<LibTorch, String> {
    if !lib_dir.is_dir() {
        return Err(format!("{}: no such folder", lib_dir.display()));
    }
    if !lib_dir.join(LIBTORCH_CPU).is_file() {
        return Err(format!("{}: no {LIBTORCH_CPU}", lib_dir.display()));
    }
    let version = version_of(lib_dir);
    if let Some(v) = &version {
        if v != TORCH_VERSION {
            return Err(format!(
                "{}: torch {v}, but ee was built against {TORCH_VERSION}",
                lib_dir.display()
            ));
        }
    }
    Ok(LibTorch {
        lib_dir: lib_dir.to_path_buf(),
        version,
        source: source.to_string(),
    })
}

/// The venv `cargo xtask` makes: `EE_TCH_VENV`, else `target/tch-venv` of the workspace this
/// launcher was built in.
fn workspace_venv(env: &Env) -> PathBuf {
    match env.var("EE_TCH_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
            root.join("target").join("tch-venv")
        }
    }
}

/// torch's `lib/` inside a venv (`lib/python3.*/site-packages/torch/lib`).
fn venv_torch_lib(venv: &Path) -> Result<PathBuf, String> {
    let lib = venv.join("lib");
    let entries =
        std::fs::read_dir(&lib).map_err(|_| format!("{}: no such venv", venv.display()))?;
    let mut pythons: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("python"))
        })
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages").join("torch").join("lib"))
        .find(|p| p.is_dir())
        .ok_or_else(|| format!("{}: torch is not installed in it", venv.display()))
}

/// torch's `lib/` as `python` reports it, or why not (python missing, torch not importable).
fn python_torch_lib(python: &Path) -> Result<PathBuf, String> {
    let script = "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))";
    let out = Command::new(python)
        .args(["-c", script])
        .output()
        .map_err(|_| format!("{}: not found", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("torch does not import");
        return Err(format!("{}: {last}", python.display()));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Finds torch [`TORCH_VERSION`]'s `lib/` (see the crate docs for the order). The error is one
/// line: every place looked at, why each failed, and what to do.
pub fn find_libtorch(env: &Env) -> Result<LibTorch, String> {
    // Explicit settings are obeyed or reported, never silently skipped.
    if let Some(dir) = env.var("EE_LIBTORCH_LIB") {
        return check(Path::new(dir), "EE_LIBTORCH_LIB")
            .map_err(|why| format!("EE_LIBTORCH_LIB is set but unusable: {why}"));
    }
    if let Some(dir) = env.var("LIBTORCH") {
        return check(&Path::new(dir).join("lib"), "LIBTORCH")
            .map_err(|why| format!("LIBTORCH is set but unusable: {why}"));
    }
    let mut tried = Vec::new();
    match env.var("LD_LIBRARY_PATH") {
        Some(paths) => {
            let found: Vec<PathBuf> = std::env::split_paths(paths)
                .filter(|p| p.join(LIBTORCH_CPU).is_file())
                .collect();
            if found.is_empty() {
                tried.push(format!("LD_LIBRARY_PATH: no {LIBTORCH_CPU}"));
            }
            for dir in found {
                match check(&dir, "LD_LIBRARY_PATH") {
                    Ok(found) => return Ok(found),
                    Err(why) => tried.push(format!("LD_LIBRARY_PATH: {why}")),
                }
            }
        }
        None => tried.push("LD_LIBRARY_PATH: unset".into()),
    }
    let venv = workspace_venv(env);
    match venv_torch_lib(&venv).and_then(|lib| check(&lib, "the workspace venv")) {
        Ok(found) => return Ok(found),
        Err(why) => tried.push(why),
    }
    let python = match env.var("VIRTUAL_ENV") {
        Some(v) => Path::new(v).join("bin").join("python"),
        None => PathBuf::from("python3"),
    };
    match python_torch_lib(&python).and_then(|lib| check(&lib, "python's torch")) {
        Ok(found) => return Ok(found),
        Err(why) => tried.push(why),
    }
    Err(format!(
        "no libtorch of torch {TORCH_VERSION} found ({}); run `cargo xtask fixtures` in the \
         workspace (it makes target/tch-venv with pip), or set EE_LIBTORCH_LIB to the lib/ \
         folder of a torch {TORCH_VERSION} install",
        tried.join("; ")
    ))
}

/// The `ee` to start: `EE_TCH_BINARY`, else `ee` next to the launcher.
pub fn ee_binary(env: &Env) -> Result<PathBuf, String> {
    let path = match env.var("EE_TCH_BINARY") {
        Some(p) => PathBuf::from(p),
        None => env
            .exe
            .as_deref()
            .and_then(Path::parent)
            .ok_or("cannot tell where ee-tch itself is (set EE_TCH_BINARY to ee's path)")?
            .join(format!("ee{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.is_file() {
        return Err(format!(
            "{} not found: build the LibTorch `ee` beside ee-tch with `cargo xtask ee --backend \
             tch --help` (or `cargo build --release -p ee-cli --no-default-features --features \
             tch` with LIBTORCH_USE_PYTORCH=1 in the torch venv), or set EE_TCH_BINARY",
            path.display()
        ));
    }
    Ok(path)
}

/// `LD_LIBRARY_PATH` with `lib_dir` first (once).
pub fn library_path(env: &Env, lib_dir: &Path) -> OsString {
    let mut paths = vec![lib_dir.to_path_buf()];
    if let Some(existing) = env.var("LD_LIBRARY_PATH") {
        paths.extend(std::env::split_paths(existing).filter(|p| p != lib_dir));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| lib_dir.as_os_str().to_owned())
}

/// Finds libtorch and `ee`, then runs `ee args` in this process's place. Returns only on
/// failure, with the one-line reason.
pub fn launch(env: &Env, args: &[OsString]) -> String {
    let libtorch = match find_libtorch(env) {
        Ok(found) => found,
        Err(why) => return why,
    };
    let ee = match ee_binary(env) {
        Ok(path) => path,
        Err(why) => return why,
    };
    let mut command = Command::new(&ee);
    command
        .args(args)
        .env("LD_LIBRARY_PATH", library_path(env, &libtorch.lib_dir));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        format!("cannot start {}: {error}", ee.display())
    }
    #[cfg(not(unix))]
    {
        match command.status() {
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(error) => format!("cannot start {}: {error}", ee.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_torch(version: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib").join(LIBTORCH_CPU), b"").unwrap();
        if let Some(v) = version {
            std::fs::write(
                dir.path().join("version.py"),
                format!("from typing import Optional\n__version__ = '{v}'\ncuda = None\n"),
            )
            .unwrap();
        }
        dir
    }

    fn env(vars: &[(&str, &OsStr)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (OsString::from(k), v.to_os_string()))
                .collect(),
            exe: None,
        }
    }

    #[test]
    fn reads_pip_and_libtorch_zip_versions() {
        let pip = fake_torch(Some("2.9.0+cu128"));
        assert_eq!(
            version_of(&pip.path().join("lib")).as_deref(),
            Some("2.9.0")
        );
        let zip = fake_torch(None);
        std::fs::write(zip.path().join("build-version"), "2.9.0+cpu\n").unwrap();
        assert_eq!(
            version_of(&zip.path().join("lib")).as_deref(),
            Some("2.9.0")
        );
        let none = fake_torch(None);
        assert_eq!(version_of(&none.path().join("lib")), None);
    }

    #[test]
    fn explicit_folder_is_used_or_reported_without_fallback() {
        let good = fake_torch(Some("2.9.0"));
        let lib = good.path().join("lib");
        let found = find_libtorch(&env(&[("EE_LIBTORCH_LIB", lib.as_os_str())])).unwrap();
        assert_eq!(found.lib_dir, lib);
        assert_eq!(found.version.as_deref(), Some("2.9.0"));
        // LIBTORCH names the install root.
        let found = find_libtorch(&env(&[("LIBTORCH", good.path().as_os_str())])).unwrap();
        assert_eq!(found.lib_dir, lib);

        let old = fake_torch(Some("2.4.1"));
        let err = find_libtorch(&env(&[(
            "EE_LIBTORCH_LIB",
            old.path().join("lib").as_os_str(),
        )]))
        .unwrap_err();
        assert!(
            err.contains("EE_LIBTORCH_LIB") && err.contains("2.4.1") && err.contains("2.9.0"),
            "{err}"
        );
        // A wrong EE_LIBTORCH_LIB is not rescued by a good LD_LIBRARY_PATH.
        let err = find_libtorch(&env(&[
            ("EE_LIBTORCH_LIB", old.path().as_os_str()),
            ("LD_LIBRARY_PATH", lib.as_os_str()),
        ]))
        .unwrap_err();
        assert!(err.contains("no libtorch_cpu.so"), "{err}");
    }

    #[test]
    fn library_path_puts_torch_first_once() {
        let e = env(&[("LD_LIBRARY_PATH", OsStr::new("/a:/torch/lib:/b"))]);
        assert_eq!(
            library_path(&e, Path::new("/torch/lib")),
            OsString::from("/torch/lib:/a:/b")
        );
        assert_eq!(
            library_path(&env(&[]), Path::new("/t")),
            OsString::from("/t")
        );
    }
}
