//! End-to-end tests of using a trained model: `ee embed`, `ee search`, `ee eval` in
//! query/gallery mode and `ee viz`, on a tiny synthetic dataset trained for one epoch.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::backend::Flex;
use ee_eval::embedding_set::EmbeddingSet;
use ee_viz::retrieval::{self, cell_origin, grid_size};

mod common;
use common::*;

/// A trained tiny run, shared by the tests of this file.
struct Fixture {
    dir: PathBuf,
    config: PathBuf,
    checkpoint: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ee-retrieval-tests");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = tiny_config(&dir, 1);
        assert_ok(&ee(&["train", config.to_str().unwrap(), "--quiet"]));
        let checkpoint = dir.join("run").join("best.mpk");
        assert!(checkpoint.is_file());
        Fixture {
            dir,
            config,
            checkpoint,
        }
    })
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout_json(args: &[&str]) -> serde_json::Value {
    let out = ee(args);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The fixture's config with another `data.format` and `data.root` (plus `extra` [data]
/// lines) and no synthetic section, running into `f.dir/run_dir`; written to `f.dir/name`.
fn derived_config(
    f: &Fixture,
    name: &str,
    format: &str,
    root: &Path,
    extra: &str,
    run_dir: &str,
) -> PathBuf {
    let toml = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("format = \"synthetic\"", &format!("format = \"{format}\""))
        .replace(
            &format!("root = \"{}\"", f.dir.join("synth").display()),
            &format!("root = \"{}\"\n{extra}", root.display()),
        )
        .replace(
            &format!("output_dir = \"{}\"", f.dir.join("run").display()),
            &format!("output_dir = \"{}\"", f.dir.join(run_dir).display()),
        );
    let toml = toml[..toml.find("[data.synthetic]").unwrap()].to_string()
        + &toml[toml.find("[model]").unwrap()..];
    let path = f.dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

/// Runs `ee embed --checkpoint <the fixture's> args...`, expecting success.
fn embed(f: &Fixture, args: &[&str]) {
    let mut all = vec!["embed", "--checkpoint", s(&f.checkpoint)];
    all.extend_from_slice(args);
    assert_ok(&ee(&all));
}

/// Runs `ee args`, expecting a one-line error with exit code `code` that contains every
/// needle.
fn assert_error(args: &[&str], code: i32, needles: &[&str]) {
    let e = one_line_error(&ee(args), code);
    for needle in needles {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}

/// The synthetic dataset's test meta file (`image_id class_id view_id path`) as (path,
/// class) pairs.
fn test_images(f: &Fixture) -> Vec<(PathBuf, String)> {
    let meta = f.dir.join("synth/cars196/test.txt");
    std::fs::read_to_string(meta)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (
                f.dir.join("synth/cars196").join(fields[3]),
                fields[1].to_string(),
            )
        })
        .collect()
}

#[test]
fn embed_then_search_finds_every_gallery_item_first_at_distance_zero() {
    let f = fixture();
    let gallery = f.dir.join("gallery.npy");
    embed(
        f,
        &["--config", s(&f.config), "--out", s(&gallery), "--quiet"],
    );
    let set = EmbeddingSet::load(&gallery).unwrap();
    let images = test_images(f);
    assert_eq!(set.len(), images.len());
    assert_eq!(set.dim(), 16);
    for (i, (path, class)) in images.iter().enumerate() {
        assert_eq!(set.paths[i], path.display().to_string());
        assert_eq!(set.labels[i].as_deref(), Some(class.as_str()));
    }
    for row in 0..set.len() {
        let norm: f32 = set.embeddings.row(row).iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "row {row}: |x|^2 = {norm}");
    }

    // The same embeddings in the safetensors layout.
    let st = f.dir.join("gallery.safetensors");
    embed(f, &["--config", s(&f.config), "--out", s(&st), "-q"]);
    let st_set = EmbeddingSet::load(&st).unwrap();
    assert_eq!(st_set.paths, set.paths);
    for (a, b) in st_set
        .embeddings
        .as_slice()
        .iter()
        .zip(set.embeddings.as_slice())
    {
        assert!((a - b).abs() < 1e-6);
    }

    // Each gallery item, as an embedding, finds itself first.
    let results = stdout_json(&[
        "search",
        "--gallery",
        s(&gallery),
        "--query",
        s(&gallery),
        "-k",
        "3",
        "--json",
    ]);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), set.len());
    for (q, r) in results.iter().enumerate() {
        let first = &r["hits"][0];
        assert_eq!(first["index"].as_u64(), Some(q as u64), "query {q}: {r}");
        assert!(first["distance"].as_f64().unwrap() < 1e-6, "{r}");
        assert_eq!(r["hits"].as_array().unwrap().len(), 3);
        let d: Vec<f64> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["distance"].as_f64().unwrap())
            .collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    }

    // Each gallery image, embedded again from its file (a list file of every third image),
    // finds itself first.
    let list = f.dir.join("queries.txt");
    let picked: Vec<usize> = (0..images.len()).step_by(3).collect();
    let lines: String = picked
        .iter()
        .map(|&i| format!("{}\t{}\n", images[i].0.display(), images[i].1))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let results = stdout_json(&[
        "search",
        "--gallery",
        s(&st),
        "--query",
        s(&list),
        "--checkpoint",
        s(&f.checkpoint),
        "-k",
        "2",
        "--json",
        "-q",
    ]);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), picked.len());
    for (r, &i) in results.iter().zip(&picked) {
        assert_eq!(r["hits"][0]["index"].as_u64(), Some(i as u64), "{r}");
        assert!(r["hits"][0]["distance"].as_f64().unwrap() < 1e-3, "{r}");
        assert_eq!(r["label"].as_str(), Some(images[i].1.as_str()));
    }

    // One image, as a table.
    let out = ee(&[
        "search",
        "--gallery",
        s(&gallery),
        "--query",
        s(&images[5].0),
        "--checkpoint",
        s(&f.checkpoint),
        "-k",
        "1",
        "-q",
    ]);
    assert_ok(&out);
    let table = text(&out.stdout);
    let row = table.lines().nth(2).unwrap();
    assert!(row.contains(&images[5].0.display().to_string()), "{table}");

    // Query/gallery scores from the files: a subset of the gallery as queries retrieves
    // itself, so Recall@1 is exactly 1.
    let queries = f.dir.join("queries.npy");
    embed(f, &["--list", s(&list), "--out", s(&queries), "-q"]);
    let report = stdout_json(&[
        "eval",
        "--query",
        s(&queries),
        "--gallery",
        s(&gallery),
        "--json",
    ]);
    assert_eq!(report["mode"], "query_gallery", "{report}");
    assert_eq!(report["queries"].as_u64(), Some(picked.len() as u64));
    assert_eq!(
        report["recall_at_k"][0]["recall"].as_f64(),
        Some(1.0),
        "{report}"
    );

    // The gallery file against itself gives what `ee eval` gives for the checkpoint.
    let from_file = stdout_json(&["eval", s(&f.config), "--embeddings", s(&gallery), "--json"]);
    let from_checkpoint = stdout_json(&[
        "eval",
        s(&f.config),
        "--checkpoint",
        s(&f.checkpoint),
        "--json",
        "-q",
    ]);
    assert_eq!(from_file["mode"], "self_retrieval", "{from_file}");
    assert_eq!(from_file["recall_at_k"], from_checkpoint["recall_at_k"]);
    assert_eq!(from_file["map_at_r"], from_checkpoint["map_at_r"]);
}

#[test]
fn eval_uses_the_query_and_gallery_splits_a_dataset_defines() {
    let f = fixture();
    // The synthetic test split cut into query (even lines) and gallery (odd lines) meta files.
    let meta_dir = f.dir.join("synth/cars196");
    let test = std::fs::read_to_string(meta_dir.join("test.txt")).unwrap();
    let mut lines = test.lines();
    let header = lines.next().unwrap();
    let (mut query, mut gallery) = (vec![header], vec![header]);
    for (i, line) in lines.enumerate() {
        if i % 2 == 0 {
            query.push(line);
        } else {
            gallery.push(line);
        }
    }
    std::fs::write(meta_dir.join("query.txt"), query.join("\n")).unwrap();
    std::fs::write(meta_dir.join("gallery.txt"), gallery.join("\n")).unwrap();
    let qg_config = derived_config(
        f,
        "qg.toml",
        "reference_meta",
        &meta_dir,
        "query_split = \"query.txt\"\ngallery_split = \"gallery.txt\"",
        "run",
    );

    let report = stdout_json(&[
        "eval",
        s(&qg_config),
        "--checkpoint",
        s(&f.checkpoint),
        "--json",
        "-q",
    ]);
    assert_eq!(report["mode"], "query_gallery", "{report}");
    assert_eq!(report["queries"].as_u64(), Some(query.len() as u64 - 1));
    assert_eq!(report["gallery"].as_u64(), Some(gallery.len() as u64 - 1));

    // The same numbers from the two splits embedded to files.
    let mut files = Vec::new();
    for split in ["query", "gallery"] {
        let out = f.dir.join(format!("qg-{split}.safetensors"));
        embed(
            f,
            &[
                "--config",
                s(&qg_config),
                "--split",
                split,
                "--out",
                s(&out),
                "-q",
            ],
        );
        files.push(out);
    }
    let from_files = stdout_json(&[
        "eval",
        s(&qg_config),
        "--query",
        s(&files[0]),
        "--gallery",
        s(&files[1]),
        "--json",
    ]);
    let recalls = |r: &serde_json::Value| -> Vec<f64> {
        r["recall_at_k"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["recall"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(recalls(&report), recalls(&from_files));
    assert_eq!(report["map_at_r"], from_files["map_at_r"]);
}

#[test]
fn retrieval_grid_frames_follow_the_labels() {
    let f = fixture();
    // A folder-per-class copy of part of the test split: labels come from folder names.
    let tree = f.dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    for (i, (path, class)) in test_images(f)
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
    {
        let folder = tree.join(format!("class-{class}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(path, folder.join(format!("{i:03}.jpg"))).unwrap();
    }
    let gallery = f.dir.join("tree.npy");
    embed(f, &["--images", s(&tree), "--out", s(&gallery), "-q"]);
    let set = EmbeddingSet::load(&gallery).unwrap();
    assert!(set
        .labels
        .iter()
        .all(|l| l.as_deref().is_some_and(|l| l.starts_with("class-"))));

    let png = f.dir.join("grid.png");
    let (k, rows, thumb) = (3u32, 4u32, 24u32);
    assert_ok(&ee(&[
        "viz",
        "retrieval",
        "--gallery",
        s(&gallery),
        "-k",
        &k.to_string(),
        "--queries",
        &rows.to_string(),
        "--thumb",
        &thumb.to_string(),
        "--worst-first",
        "--out",
        s(&png),
    ]));
    let grid = image::open(&png).unwrap().into_rgb8();
    assert_eq!(grid.dimensions(), grid_size(rows, k, thumb));

    // Expected frames: the same search in the library, worst queries first.
    let results =
        ee_cli::search::search_self::<Flex>(&set, k as usize, &Default::default()).unwrap();
    let order = retrieval::select_queries(&results, rows as usize, true).unwrap();
    let mut colours = std::collections::BTreeSet::new();
    for (row, &q) in order.iter().enumerate() {
        let (x, y) = cell_origin(row as u32, 0, thumb);
        assert_eq!(*grid.get_pixel(x + 1, y + 1), retrieval::QUERY);
        for (column, hit) in results[q].hits.iter().enumerate() {
            let expected = if results[q].label == hit.label {
                retrieval::MATCH
            } else {
                retrieval::MISMATCH
            };
            let (x, y) = cell_origin(row as u32, column as u32 + 1, thumb);
            for (dx, dy) in [(1, 1), (thumb + 6, thumb + 6), (thumb / 2, 1)] {
                assert_eq!(
                    *grid.get_pixel(x + dx, y + dy),
                    expected,
                    "row {row}, result {column}"
                );
            }
            colours.insert(expected.0);
        }
    }
    // After one epoch on 32 px shapes the worst queries include wrong results.
    assert!(colours.contains(&retrieval::MISMATCH.0), "{colours:?}");
}

#[test]
fn curves_plot_one_or_more_runs() {
    let f = fixture();
    let png = f.dir.join("curves.png");
    let run = f.dir.join("run");
    assert_ok(&ee(&[
        "viz",
        "curves",
        s(&run),
        s(&run),
        "--recall-k",
        "1",
        "--width",
        "640",
        "--height",
        "300",
        "--out",
        s(&png),
    ]));
    let image = image::open(&png).unwrap().into_rgb8();
    assert_eq!(image.dimensions(), (640, 300));
    let out = ee(&["viz", "curves", s(&f.dir), "--out", s(&png)]);
    let e = one_line_error(&out, 1);
    assert!(e.contains("metrics.jsonl"), "{e}");
}

#[test]
fn bad_requests_are_one_named_line() {
    let f = fixture();
    let images = test_images(f);
    // A gallery of another dimension than the checkpoint's 16.
    let other = f.dir.join("dim8.npy");
    EmbeddingSet::new(
        ee_eval::EmbeddingMatrix::new(vec![0.5; 3 * 8], 8).unwrap(),
        vec!["a".into(), "b".into(), "c".into()],
        vec![None, None, None],
    )
    .unwrap()
    .save(&other)
    .unwrap();
    let ck = s(&f.checkpoint);
    let img = s(&images[0].0);
    let dim8 = s(&other);
    assert_error(
        &[
            "search",
            "--gallery",
            dim8,
            "--query",
            img,
            "--checkpoint",
            ck,
            "-k",
            "1",
        ],
        2,
        &["embeds to 16 dimensions", "dim8.npy"],
    );
    let empty = f.dir.join("empty-folder");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = s(&empty);
    let x_npy = f.dir.join("x.npy");
    let x_txt = f.dir.join("x.txt");
    let png = f.dir.join("g.png");
    let dim8_csv = other.with_extension("csv");
    let cases: [(&[&str], i32, &[&str]); 7] = [
        (
            &[
                "search",
                "--gallery",
                dim8,
                "--query",
                empty,
                "--checkpoint",
                ck,
                "-k",
                "1",
            ],
            2,
            &["empty-folder", "no images"],
        ),
        (
            &[
                "embed",
                "--checkpoint",
                ck,
                "--images",
                empty,
                "--out",
                s(&x_npy),
            ],
            2,
            &["no images"],
        ),
        (
            &["search", "--gallery", dim8, "--query", dim8, "-k", "0"],
            2,
            &["-k 0"],
        ),
        (
            &[
                "search",
                "--gallery",
                dim8,
                "--query",
                s(&dim8_csv),
                "--checkpoint",
                ck,
                "-k",
                "1",
            ],
            2,
            &["dim8.csv is the index of", "pass the .npy file"],
        ),
        (
            &["search", "--gallery", dim8, "--query", img, "-k", "1"],
            2,
            &["--checkpoint"],
        ),
        (
            &[
                "embed",
                "--checkpoint",
                ck,
                "--images",
                empty,
                "--out",
                s(&x_txt),
            ],
            1,
            &[".safetensors"],
        ),
        (
            &[
                "viz",
                "retrieval",
                "--gallery",
                dim8,
                "-k",
                "0",
                "--out",
                s(&png),
            ],
            2,
            &["-k 0"],
        ),
    ];
    for (args, code, needles) in cases {
        assert_error(args, code, needles);
    }
}

/// The synthetic images laid out as DeepFashion In-shop (`Eval/list_eval_partition.txt`):
/// train classes for training, the test classes split into queries and gallery.
#[test]
fn inshop_trains_and_evaluates_queries_against_the_gallery() {
    let f = fixture();
    let root = f.dir.join("inshop");
    let meta = f.dir.join("synth/cars196");
    let mut rows = Vec::new();
    for (file, offset) in [("train.txt", 1000), ("test.txt", 0)] {
        let text = std::fs::read_to_string(meta.join(file)).unwrap();
        for (i, line) in text.lines().skip(1).enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let class: u32 = fields[1].parse().unwrap();
            let status = match (offset, i % 2) {
                (1000, _) => "train",
                (_, 0) => "query",
                _ => "gallery",
            };
            rows.push((
                format!("../synth/cars196/{}", fields[3]),
                offset + class,
                status,
            ));
        }
    }
    ee_data::formats::write_inshop_partition(&root.join("Eval/list_eval_partition.txt"), &rows)
        .unwrap();
    let queries = rows.iter().filter(|r| r.2 == "query").count();
    let gallery = rows.iter().filter(|r| r.2 == "gallery").count();

    let config = derived_config(f, "inshop.toml", "inshop", &root, "", "inshop-run");
    let _ = std::fs::remove_dir_all(f.dir.join("inshop-run"));

    let out = ee(&["train", s(&config), "--quiet"]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{queries} queries against a gallery of {gallery}")),
        "{stderr}"
    );
    let report = stdout_json(&[
        "eval",
        s(&config),
        "--checkpoint",
        s(&f.dir.join("inshop-run/best.mpk")),
        "--json",
        "-q",
    ]);
    assert_eq!(report["mode"], "query_gallery", "{report}");
    assert_eq!(report["queries"].as_u64(), Some(queries as u64));
    assert_eq!(report["gallery"].as_u64(), Some(gallery as u64));
}

/// A corrupt image stops `ee embed` with its path named and nothing written; with
/// `--skip-unreadable` it is left out, named in a warning, and the rest is embedded.
#[test]
fn unreadable_images_stop_embed_unless_skipped() {
    let f = fixture();
    let images = test_images(f);
    let dir = f.dir.join("with-corrupt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("c")).unwrap();
    std::fs::copy(&images[0].0, dir.join("c/a.jpg")).unwrap();
    std::fs::write(dir.join("c/b.jpg"), b"not a jpeg").unwrap();
    std::fs::copy(&images[1].0, dir.join("c/c.jpg")).unwrap();
    let out = f.dir.join("with-corrupt.npy");
    let _ = std::fs::remove_file(&out);
    let args = [
        "embed",
        "--checkpoint",
        s(&f.checkpoint),
        "--images",
        s(&dir),
        "--out",
        s(&out),
        "-q",
    ];
    assert_error(&args, 1, &["b.jpg"]);
    assert!(!out.exists(), "nothing is written when embedding stops");

    let mut skipping = args.to_vec();
    skipping.push("--skip-unreadable");
    let run = ee(&skipping);
    assert_ok(&run);
    assert!(text(&run.stderr).contains("b.jpg"), "{}", text(&run.stderr));
    let set = EmbeddingSet::load(&out).unwrap();
    let names: Vec<&str> = set
        .paths
        .iter()
        .map(|p| Path::new(p).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["a.jpg", "c.jpg"]);
    assert_eq!(set.labels, [Some("c".to_string()), Some("c".to_string())]);
}
