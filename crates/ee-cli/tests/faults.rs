//! Bad input and faults (issue 15): each case is one that slipped through before.

mod common;

use common::*;

/// `ee data synth` output (4 classes, 2 train) and a reference_meta config over it.
fn meta_dataset(dir: &std::path::Path, images_per_class: &str) -> std::path::PathBuf {
    let root = dir.join("synth");
    let out = ee(&[
        "data",
        "synth",
        "--root",
        root.to_str().unwrap(),
        "--classes",
        "6",
        "--images-per-class",
        images_per_class,
        "--size",
        "16",
    ]);
    assert_ok(&out);
    let config = dir.join("check.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nformat = \"reference_meta\"\nroot = \"{}\"\nimage_size = 16\n\
             [model]\nbackbone = \"small_cnn\"\n\
             [schedule]\nbatch_size = 4\ninstances_per_class = 2\n[run]\noutput_dir = \"{}\"\n",
            root.join("cars196").display(),
            dir.join("run").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn data_check_runs_the_checks_train_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = meta_dataset(dir.path(), "4");
    let config = config.to_str().unwrap();
    // 3 train classes; a batch of 4 classes x 2 cannot be drawn. Both commands say so, in the
    // same words, with the dotted key and the split, as a config error (exit 2).
    for command in [&["data", "check"][..], &["train"][..]] {
        let mut args = command.to_vec();
        args.extend([config, "--quiet", "--set", "schedule.batch_size=8"]);
        let line = one_line_error(&ee(&args), 2);
        assert!(
            line.starts_with("error: invalid schedule.batch_size = 8: needs 4 distinct classes")
                && line.ends_with("but the split has only 3 (the training split)"),
            "{command:?}: {line}"
        );
    }
    let other = if cfg!(feature = "cuda") {
        "flex"
    } else {
        "cuda"
    };
    let backend = format!("run.backend={other}");
    let out = ee(&["data", "check", config, "--quiet", "--set", &backend]);
    let line = one_line_error(&out, 2);
    assert!(
        line.contains(&format!("run.backend = \"{other}\"")),
        "{line}"
    );
}

#[test]
fn data_check_names_classes_too_small_for_a_positive_pair() {
    let dir = tempfile::tempdir().unwrap();
    let config = meta_dataset(dir.path(), "3");
    // Keep one image of the second training class in the meta file.
    let meta = dir.path().join("synth/cars196/train.txt");
    let text_before = std::fs::read_to_string(&meta).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let classes: Vec<String> = text_before
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let second = classes.iter().find(|c| **c != classes[0]).unwrap().clone();
    let kept: Vec<&str> = text_before
        .lines()
        .filter(|l| {
            let class = l.split_whitespace().nth(1).unwrap().to_string();
            let n = seen.entry(class.clone()).or_default();
            *n += 1;
            class != second || *n == 1
        })
        .collect();
    std::fs::write(&meta, kept.join("\n") + "\n").unwrap();
    let out = ee(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    one_line_error(&out, 1);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "1 train class(es) with fewer than 2 images give no positive pair: class {second} (1 image)"
        )),
        "{stdout}"
    );
}

#[test]
fn skip_unreadable_is_a_config_key_and_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = meta_dataset(dir.path(), "4");
    let broken = dir.path().join("synth/cars196/car_ims/000002.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let config = config.to_str().unwrap();
    let out = ee(&["data", "check", config, "--quiet", "--skip-unreadable"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("000002.jpg"), "{stdout}");
    assert!(
        stdout.contains("1 unreadable train image(s) will be skipped"),
        "{stdout}"
    );

    let out = ee(&[
        "train",
        config,
        "--quiet",
        "--skip-unreadable",
        "--set",
        "schedule.epochs=2",
        "--set",
        "schedule.eval_every_epochs=2",
    ]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("000002.jpg") && stderr.contains("skipped"),
        "{stderr}"
    );
    // Without it, the same run stops on the image, naming it.
    let out = ee(&[
        "train",
        config,
        "--quiet",
        "--set",
        &format!("run.output_dir={}", dir.path().join("run2").display()),
    ]);
    let line = one_line_error(&out, 1);
    assert!(line.contains("000002.jpg"), "{line}");
}
