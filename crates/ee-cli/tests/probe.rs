//! `ee probe`'s reports: what `cargo xtask gpu-check` compares across backends must be the
//! same numbers on every run, and the recall probe must score the very embeddings it writes
//! for the PyTorch baseline.

use std::path::PathBuf;

use ee_cli::backend::{open_device, Train};
use ee_train::probe::{run_probe, write_probes, Probe, ProbeSettings};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ee-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn loss_and_step_reports_are_reproducible_and_complete() {
    let device = open_device().unwrap();
    let settings = ProbeSettings::default();
    let (a, b) = (temp_dir("a"), temp_dir("b"));
    let probes = [Probe::Loss, Probe::Step];
    let read = |dir: &PathBuf| -> Value {
        let path = write_probes::<Train>(&probes, &settings, dir, &device, "test").unwrap();
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (first, second) = (read(&a), read(&b));
    assert_eq!(first["probes"], second["probes"], "two runs differ");

    let loss = &first["probes"]["loss"];
    assert!(loss["loss"].as_f64().unwrap() > 0.0);
    let grad = floats(&loss["grad"]);
    assert_eq!(grad.len(), 64 * 128);
    assert!(
        grad.iter().any(|g| *g != 0.0),
        "the loss gradient is all zero"
    );

    let step = &first["probes"]["step"];
    assert!(step["loss_before"].as_f64().unwrap().is_finite());
    let after = floats(&step["embeddings_after"]);
    assert_eq!(after.len(), 16 * 512);
    for row in after.chunks(512) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "an embedding of norm {norm}");
    }
    assert!(
        !a.join(".probe.json.tmp").exists(),
        "the temporary file stayed"
    );
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn recall_probe_scores_the_embeddings_it_writes() {
    let device = open_device().unwrap();
    let settings = ProbeSettings {
        recall_n: 600,
        recall_classes: 100,
        recall_ks: vec![1, 5],
        ..ProbeSettings::default()
    };
    let out = temp_dir("recall");
    let report = run_probe::<Train>(Probe::Recall, &settings, &out, &device).unwrap();
    let x = ee_eval::load_embeddings_npy(out.join("recall_embeddings.npy")).unwrap();
    let labels = ee_eval::load_labels_npy(out.join("recall_labels.npy")).unwrap();
    assert_eq!((x.rows(), x.dim(), labels.len()), (600, 512, 600));

    // Brute force: rank every other item by dot product (unit vectors), count a hit when a
    // same-class item is among the first K.
    let mut hits = [0usize; 2];
    for q in 0..x.rows() {
        let mut others: Vec<(f32, usize)> = (0..x.rows())
            .filter(|&i| i != q)
            .map(|i| {
                let dot: f32 = x.row(q).iter().zip(x.row(i)).map(|(a, b)| a * b).sum();
                (dot, i)
            })
            .collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (slot, k) in [1usize, 5].into_iter().enumerate() {
            if others[..k].iter().any(|&(_, i)| labels[i] == labels[q]) {
                hits[slot] += 1;
            }
        }
    }
    for (slot, k) in ["1", "5"].into_iter().enumerate() {
        let reported = report["recall"][k].as_f64().unwrap();
        let expected = hits[slot] as f64 / 600.0;
        assert!(
            (reported - expected).abs() < 1e-12,
            "Recall@{k}: probe {reported}, brute force {expected}"
        );
    }
    // Neither trivial nor hopeless: the data has class structure.
    let r1 = report["recall"]["1"].as_f64().unwrap();
    assert!(r1 > 0.05 && r1 < 0.99, "Recall@1 = {r1}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn unknown_probes_and_bad_sizes_are_named() {
    let err = Probe::parse("speed").unwrap_err().to_string();
    assert!(err.contains("speed") && err.contains("throughput"), "{err}");
    let device = open_device().unwrap();
    let settings = ProbeSettings {
        batch: 10,
        instances: 4,
        ..ProbeSettings::default()
    };
    let out = temp_dir("bad");
    let err = run_probe::<Train>(Probe::Throughput, &settings, &out, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch 10") && err.contains("instances 4"),
        "{err}"
    );
}
