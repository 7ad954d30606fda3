//! The configs of `configs/paper/` (one per row of the paper's results table): each one opens
//! with the paper's figure for its row (`# paper: ...`), is listed in that folder's README,
//! parses against the config schema, passes every check with stand-ins for the dataset and the
//! weights (which are not on disk here), and builds its loss.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ee_cli::config::{DataFormat, RawConfig};

fn paper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/paper")
}

fn paper_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(paper_dir())
        .expect("configs/paper exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    configs.sort();
    configs
}

/// `<dataset>_<loss>[_ee].toml` -> (data.format, loss.name, loss.n_inner_pts).
fn expected_from_name(stem: &str) -> (DataFormat, &'static str, usize) {
    let (rest, n_inner_pts) = match stem.strip_suffix("_ee") {
        Some(rest) => (rest, 2),
        None => (stem, 0),
    };
    let (dataset, loss) = rest.split_once('_').expect("<dataset>_<loss>");
    let format = match dataset {
        "cars196" => DataFormat::ReferenceMeta,
        "cub200" => DataFormat::Cub,
        "sop" => DataFormat::Sop,
        other => panic!("{stem}: unknown dataset `{other}`"),
    };
    let loss = match loss {
        "hphn" => "hphn_triplet",
        "triplet" => "triplet",
        "npair" => "npair",
        "lifted" => "lifted",
        "ms" => "multi_similarity",
        other => panic!("{stem}: unknown loss `{other}`"),
    };
    (format, loss, n_inner_pts)
}

#[test]
fn every_paper_config_cites_its_row_and_is_valid() {
    let configs = paper_configs();
    // 3 datasets x 5 losses x with and without EE
    assert_eq!(configs.len(), 30, "{configs:?}");
    let readme = std::fs::read_to_string(paper_dir().join("README.md")).unwrap();

    // Stand-ins for what `check` looks for on disk: a data root holding the reference meta
    // files (CARS196), and a weights file.
    let stand_in = tempfile::tempdir().unwrap();
    for meta in ["train.txt", "test.txt"] {
        std::fs::write(stand_in.path().join(meta), "").unwrap();
    }
    let weights = stand_in.path().join("googlenet.pth");
    std::fs::write(&weights, "").unwrap();
    let stand_ins = [
        format!("data.root={}", stand_in.path().display()),
        format!("model.pretrained={}", weights.display()),
    ];

    let mut output_dirs = HashSet::new();
    for path in &configs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();

        let first_line = text.lines().next().unwrap_or_default();
        assert!(
            first_line.starts_with("# paper: ") && first_line.contains("R@1 "),
            "{name}: the first line must be `# paper: <row>, <dataset>: ... R@1 ...`, found {first_line:?}"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not listed in configs/paper/README.md"
        );

        // Schema level, the file exactly as written.
        let raw = RawConfig::parse_str(&text, &[], &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            output_dirs.insert(raw.run.output_dir.clone()),
            "{name}: run.output_dir {:?} is another file's too",
            raw.run.output_dir
        );

        // Every value rule, with the dataset and weights paths swapped for the stand-ins.
        let checked = RawConfig::parse_str(&text, &stand_ins, &name)
            .and_then(RawConfig::check)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (format, loss_name, n_inner_pts) = expected_from_name(&stem);
        let config = checked.get();
        assert_eq!(config.data.format, format, "{name}: data.format");
        assert_eq!(
            config.loss.n_inner_pts, n_inner_pts,
            "{name}: loss.n_inner_pts"
        );
        let loss = checked
            .loss()
            .init()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loss.name(), loss_name, "{name}: loss.name");
    }
}
