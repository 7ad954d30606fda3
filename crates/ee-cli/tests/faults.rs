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

/// A folder-per-class dataset of `ee data synth` images: 4 classes x 3 images, split 2 / 2.
fn folder_dataset(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let synth = dir.join("synth");
    let out = ee(&[
        "data",
        "synth",
        "--root",
        synth.to_str().unwrap(),
        "--classes",
        "4",
        "--images-per-class",
        "3",
        "--size",
        "16",
    ]);
    assert_ok(&out);
    let images: Vec<_> = {
        let mut v: Vec<_> = std::fs::read_dir(synth.join("cars196/car_ims"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let root = dir.join("folders");
    let mut split = String::new();
    for class in 0..4 {
        let folder = root.join(format!("class{class:02}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..3 {
            std::fs::copy(&images[class * 3 + i], folder.join(format!("{i}.jpg"))).unwrap();
        }
        split += &format!(
            "class{class:02} {}\n",
            if class < 2 { "train" } else { "test" }
        );
    }
    std::fs::write(root.join("split.txt"), split).unwrap();
    let config = dir.join("folders.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nformat = \"folder\"\nroot = \"{}\"\ntrain_split = \"split.txt\"\nimage_size = 16\n\
             [model]\nbackbone = \"small_cnn\"\nembed_dim = 8\n\
             [schedule]\nbatch_size = 4\ninstances_per_class = 2\nepochs = 1\nrecall_k = [1, 2]\n[run]\noutput_dir = \"{}\"\n",
            root.display(),
            dir.join("run").display()
        ),
    )
    .unwrap();
    (root, config)
}

#[cfg(unix)]
#[test]
fn a_link_to_itself_is_reported_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (root, config) = folder_dataset(dir.path());
    let link = root.join("class01/3.jpg");
    std::os::unix::fs::symlink(&link, &link).unwrap();
    let out = ee(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    one_line_error(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("train: 7 images"), "{stdout}");
    assert!(stdout.contains(&link.display().to_string()), "{stdout}");
}

#[cfg(unix)]
#[test]
fn embed_images_never_enters_a_folder_twice_and_refuses_lossy_names() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let (root, config) = folder_dataset(dir.path());
    let config = config.to_str().unwrap();
    // Recall@8 cannot be scored on 6 test images: refused before training, not after it.
    let eight = [
        "train",
        config,
        "--quiet",
        "--set",
        "schedule.recall_k=[1, 2, 4, 8]",
    ];
    let line = one_line_error(&ee(&eight), 2);
    assert!(
        line.contains("invalid schedule.recall_k = [1, 2, 4, 8]: K = 8"),
        "{line}"
    );
    assert!(!dir.path().join("run").exists());
    assert_ok(&ee(&["train", config, "--quiet"]));
    let checkpoint = dir.path().join("run/last.mpk");
    std::os::unix::fs::symlink("..", root.join("class00/loop_link")).unwrap();
    let out_file = dir.path().join("e.npy");
    let out = ee(&[
        "embed",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--images",
        root.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
        "--quiet",
    ]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).starts_with("wrote 12 embeddings"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("loop_link"),
        "{}",
        text(&out.stderr)
    );

    let odd = root.join(std::ffi::OsStr::from_bytes(b"class00/\xff.jpg"));
    std::fs::copy(root.join("class00/0.jpg"), &odd).unwrap();
    let out = ee(&[
        "embed",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--images",
        root.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
        "--quiet",
    ]);
    let line = one_line_error(&out, 2);
    assert!(line.contains("not valid UTF-8"), "{line}");
}

#[test]
fn a_negative_k_is_named_as_a_bad_value() {
    let out = ee(&[
        "search",
        "--gallery",
        "g.npy",
        "--query",
        "q.npy",
        "-k",
        "-1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid -k -1: must be at least 1"),
        "{stderr}"
    );
}

/// Disk full (here: a file-size limit, `ulimit -f`, with SIGXFSZ ignored so that the write
/// fails with EFBIG rather than killing the process) during a checkpoint write: the earlier
/// `last.mpk` stays intact and the error is one line naming the file.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_during_a_checkpoint_write_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), 1);
    assert_ok(&ee(&["train", config.to_str().unwrap(), "--quiet"]));
    let run = dir.path().join("run");
    let before = std::fs::read(run.join("last.mpk")).unwrap();
    assert!(before.len() > 512 * 1024, "{} bytes", before.len());
    let script = format!(
        "trap '' XFSZ; ulimit -f 256; exec {} train {} --quiet --resume --set schedule.epochs=2",
        EE,
        config.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let line = one_line_error(&out, 1);
    assert!(
        line.contains(".mpk") && line.contains("File too large"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(run.join("last.mpk")).unwrap(),
        before,
        "last.mpk changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
