//! Helpers shared by the end-to-end tests of the `ee` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const EE: &str = env!("CARGO_BIN_EXE_ee");

/// A config for a tiny run: 8 classes x 8 images (4 train classes), batches of 2 classes x
/// 4 instances, so an epoch is 4 x 4 = 16 images = 2 steps.
pub fn tiny_config(dir: &Path, epochs: u64) -> PathBuf {
    let text = format!(
        r#"
[data]
format = "synthetic"
root = "{root}"
image_size = 32
workers = 1

[data.synthetic]
num_classes = 8
images_per_class = 8
image_side = 32
seed = 1

[model]
backbone = "small_cnn"
embed_dim = 16

[loss]
n_inner_pts = 2

[optimizer]
lr = 1e-3
lr_decay_epochs = [1]

[schedule]
epochs = {epochs}
batch_size = 8
instances_per_class = 4
eval_every_epochs = 1
recall_k = [1, 2]
eval_batch_size = 16

[run]
seed = 7
output_dir = "{out}"
log_every_steps = 1
backend = "{backend}"
"#,
        root = dir.join("synth").display(),
        out = dir.join("run").display(),
        // The backend the test binary's `ee` was built with (flex, or tch in the LibTorch run).
        backend = ee_cli::config::BackendName::compiled().as_str(),
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn ee(args: &[&str]) -> Output {
    Command::new(EE).args(args).output().expect("ee runs")
}

pub fn ee_env(args: &[&str], key: &str, value: &str) -> Output {
    Command::new(EE)
        .args(args)
        .env(key, value)
        .output()
        .expect("ee runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "ee failed:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The last line of stderr, asserting it is a one-line error and not a panic.
pub fn one_line_error(out: &Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with("error: "), "{stderr}");
    line
}

pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
