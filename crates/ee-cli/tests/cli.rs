//! End-to-end tests of the `ee` binary on a tiny synthetic dataset (32 px, a few steps, CPU).

use std::path::{Path, PathBuf};

use ee_train::checkpoint::CheckpointFile;
use ee_train::logging::tensorboard::{decode_scalar, read_records};

mod common;
use common::*;

/// (step, loss_sum) of every logged training step.
fn train_losses(run: &Path) -> Vec<(u64, f64)> {
    json_lines(&run.join("metrics.jsonl"))
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| (l["step"].as_u64().unwrap(), l["loss_sum"].as_f64().unwrap()))
        .collect()
}

fn event_files(run: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn train_writes_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), 2);
    let out = ee(&["train", config.to_str().unwrap(), "--quiet"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("eval epoch 2: R@1 "), "{stdout}");
    let run = dir.path().join("run");

    // the resolved config is complete and reads back
    let resolved = ee_cli::config::RawConfig::load(&run.join("config.toml"), &[]).unwrap();
    assert_eq!(resolved.schedule.epochs, 2);
    assert_eq!(resolved.optimizer.epsilon, 1e-8);
    assert_eq!(resolved.data.synthetic.as_ref().unwrap().num_classes, 8);

    // metrics.jsonl: one line per step (log_every_steps = 1), one per evaluation
    let lines = json_lines(&run.join("metrics.jsonl"));
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    let evals: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "eval").collect();
    assert_eq!(evals.len(), 2);
    for line in lines.iter().filter(|l| l["kind"] == "train") {
        for key in [
            "loss",
            "lr",
            "mean_positive_distance",
            "mean_negative_distance",
            "active_fraction",
            "synthetic_negative_fraction",
        ] {
            assert!(line[key].as_f64().unwrap().is_finite(), "{key} in {line}");
        }
        let fraction = line["synthetic_negative_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&fraction));
    }
    // lr decays after the first iteration of epoch 2 (MXNet's rule: iteration > 1 x 2): steps 1..3 at 1e-3, step 4 at 5e-4
    let lrs: Vec<f64> = lines
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| l["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, vec![1e-3, 1e-3, 1e-3, 5e-4]);
    let r1 = evals[1]["recall"]["1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&r1));

    // TensorBoard: valid framing and CRCs, the reference's scalar names
    let files = event_files(&run);
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("events.out.tfevents."));
    let scalars: Vec<_> = read_records(&files[0])
        .unwrap()
        .iter()
        .filter_map(|r| decode_scalar(r))
        .collect();
    for tag in [
        "loss",
        "lr",
        "metric/R1",
        "metric/R2",
        "metric/R1/best",
        "metric_epoch/R1",
        "loss_stats/synthetic_negative_fraction",
    ] {
        assert!(
            scalars.iter().any(|s| s.tag == tag),
            "no {tag} in {scalars:?}"
        );
    }
    let loss_steps: Vec<i64> = scalars
        .iter()
        .filter(|s| s.tag == "loss")
        .map(|s| s.step)
        .collect();
    assert_eq!(loss_steps, vec![1, 2, 3, 4]);
    let r1_event = scalars.iter().rfind(|s| s.tag == "metric/R1").unwrap();
    assert_eq!(r1_event.step, 4);
    assert!((f64::from(r1_event.value) - r1).abs() < 1e-6);

    // checkpoints
    let last = CheckpointFile::load(&run.join("last.mpk")).unwrap();
    assert_eq!(last.state.global_step, 4);
    assert_eq!(last.state.sampler.epoch, 2);
    assert_eq!(last.state.sampler.seed, 7);
    assert!(
        !last.network.is_empty()
            && !last.head_optimizer.is_empty()
            && !last.backbone_optimizer.is_empty()
    );
    let best = CheckpointFile::load(&run.join("best.mpk")).unwrap();
    assert_eq!(best.state.best_recall, last.state.best_recall);
    assert!(best.state.best_epoch >= 1);

    // a second `ee train` on the same directory refuses to overwrite it
    let again = ee(&["train", config.to_str().unwrap(), "--quiet"]);
    let line = one_line_error(&again, 2);
    assert!(line.contains("--resume"), "{line}");

    // `ee eval` on the best checkpoint reproduces the logged Recall@1
    let out = ee(&[
        "eval",
        config.to_str().unwrap(),
        "--checkpoint",
        run.join("best.mpk").to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let eval_r1 = report["recall_at_k"][0]["recall"].as_f64().unwrap();
    assert!(
        (eval_r1 - best.state.best_recall).abs() < 1e-9,
        "{eval_r1} vs {}",
        best.state.best_recall
    );
}

#[test]
fn resume_continues_exactly() {
    let full_dir = tempfile::tempdir().unwrap();
    let config = tiny_config(full_dir.path(), 3);
    assert_ok(&ee(&["train", config.to_str().unwrap(), "--quiet"]));
    let full = train_losses(&full_dir.path().join("run"));
    assert_eq!(full.len(), 6);

    let split_dir = tempfile::tempdir().unwrap();
    let config = tiny_config(split_dir.path(), 3);
    let c = config.to_str().unwrap();
    assert_ok(&ee(&["train", c, "--quiet", "--set", "schedule.epochs=1"]));
    let out = ee(&["train", c, "--quiet", "--resume"]);
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("resuming"),
        "{}",
        text(&out.stderr)
    );
    let resumed = train_losses(&split_dir.path().join("run"));
    assert_eq!(resumed, full, "a resumed run must compute the same losses");
    // two event files: one per process
    assert_eq!(event_files(&split_dir.path().join("run")).len(), 2);
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), 3);
    let run = dir.path().join("run");
    // step 3 is the first of epoch 2: epoch 1 has been checkpointed
    let out = ee_env(
        &["train", config.to_str().unwrap(), "--quiet"],
        ee_cli::train::POISON_ENV,
        "3",
    );
    let line = one_line_error(&out, 1);
    assert!(line.contains("loss is NaN at epoch 2, step 3"), "{line}");
    assert!(line.contains("last.mpk"), "{line}");
    let last = CheckpointFile::load(&run.join("last.mpk")).unwrap();
    assert_eq!(last.state.global_step, 2);
    assert_eq!(last.state.sampler.epoch, 1);
    // and the run resumes from it
    assert_ok(&ee(&[
        "train",
        config.to_str().unwrap(),
        "--quiet",
        "--resume",
    ]));
    let steps: Vec<u64> = train_losses(&run).iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn config_errors_are_one_named_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), 1);
    let c = config.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--set", "optimizer.lrr=0.1"], "optimizer.lrr"),
        (
            &[
                "--set",
                "schedule.instances_per_class=3",
                "--set",
                "schedule.batch_size=9",
            ],
            "invalid schedule.instances_per_class = 3",
        ),
        (
            &["--set", "schedule.batch_size=10"],
            "invalid schedule.batch_size = 10",
        ),
        (
            &[
                "--set",
                "data.format=reference_meta",
                "--set",
                "data.root=/no/such/dataset",
            ],
            "invalid data.root = \"/no/such/dataset\"",
        ),
        (&["--set", "run.backend=cuda"], "run.backend = \"cuda\""),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["train", c, "--quiet"];
        args.extend_from_slice(extra);
        let out = ee(&args);
        let line = one_line_error(&out, 2);
        assert!(line.contains(expected), "{extra:?}: {line}");
    }
    // nothing was written for a rejected config
    assert!(!dir.path().join("run").exists());
    let out = ee(&["train", "/no/such/config.toml"]);
    let line = one_line_error(&out, 2);
    assert!(line.contains("/no/such/config.toml"), "{line}");
}

#[test]
fn data_synth_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("synth");
    let out = ee(&[
        "data",
        "synth",
        "--root",
        root.to_str().unwrap(),
        "--classes",
        "4",
        "--images-per-class",
        "3",
        "--size",
        "16",
    ]);
    assert_ok(&out);
    assert!(root.join("cars196").join("train.txt").is_file());
    let config = dir.path().join("check.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nformat = \"reference_meta\"\nroot = \"{}\"\n[schedule]\nbatch_size = 4\ninstances_per_class = 2\nrecall_k = [1, 2]\n[run]\noutput_dir = \"{}\"\n",
            root.join("cars196").display(),
            dir.path().join("run").display()
        ),
    )
    .unwrap();
    let out = ee(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("train: 6 images, 2 classes"), "{stdout}");
    assert!(stdout.contains("data check passed"), "{stdout}");

    // break one image: the check names it and fails
    let broken = root.join("cars196").join("car_ims").join("000002.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let out = ee(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    one_line_error(&out, 1);
    assert!(
        text(&out.stdout).contains("000002.jpg"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn help_explains_the_commands() {
    let out = ee(&["--help"]);
    assert_ok(&out);
    let help = text(&out.stdout);
    for word in ["train", "eval", "data"] {
        assert!(help.contains(word), "{help}");
    }
    let out = ee(&["train", "--help"]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("--resume"));
    let out = ee(&["data", "synth", "--help"]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("--images-per-class"));
}

/// Every trained parameter of a module with its path (`backbone.blocks.0.conv.weight`),
/// BatchNorm running statistics left out (they move in any training forward pass).
struct Parameters {
    path: Vec<String>,
    found: Vec<(String, Vec<f32>)>,
}

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Parameters {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<B, D>>) {
        let path = self.path.join(".");
        if !path.contains("running_") {
            let values = param.val().into_data().convert::<f32>().to_vec().unwrap();
            self.found.push((path, values));
        }
    }
}

fn parameters<M: burn::module::Module<burn::backend::Flex>>(module: &M) -> Vec<(String, Vec<f32>)> {
    let mut visitor = Parameters {
        path: Vec::new(),
        found: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.found
}

/// `optimizer.base_lr_mult` scales the backbone's learning rate only: at 0 one epoch leaves
/// every backbone parameter at its initial value while the head moves; at 1 both move.
#[test]
fn base_lr_mult_scales_only_the_backbone() {
    use burn::backend::Flex;
    use ee_cli::embed::TrainedNetwork;

    let device = Default::default();
    for mult in ["0", "1"] {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_config(dir.path(), 1);
        let c = config.to_str().unwrap();
        let set = format!("optimizer.base_lr_mult={mult}");
        assert_ok(&ee(&["train", c, "--quiet", "--set", &set]));
        let raw = ee_cli::config::RawConfig::load(&config, &[set]).unwrap();
        let initial = ee_cli::config::resolve::build_model::<Flex>(&raw, true, &device).unwrap();
        let trained =
            TrainedNetwork::<Flex>::load(&dir.path().join("run/last.mpk"), &device).unwrap();
        for (part, before, after) in [
            (
                "backbone",
                parameters(&initial.backbone),
                parameters(&trained.network.backbone),
            ),
            (
                "head",
                parameters(&initial.head),
                parameters(&trained.network.head),
            ),
        ] {
            assert_eq!(before.len(), after.len());
            assert!(!before.is_empty(), "{part}: no parameters found");
            let moved: Vec<&str> = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b.1 != a.1)
                .map(|(b, _)| b.0.as_str())
                .collect();
            let names: Vec<&str> = before.iter().map(|b| b.0.as_str()).collect();
            match (part, mult) {
                ("backbone", "0") => assert!(moved.is_empty(), "moved at mult 0: {moved:?}"),
                _ => assert!(
                    moved.iter().any(|m| m.contains("weight")),
                    "{part} at mult {mult}: no weight moved among {names:?}"
                ),
            }
        }
    }
}
