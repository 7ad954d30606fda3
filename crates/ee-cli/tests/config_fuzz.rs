//! Fuzz / property tests of the config parser: random TOML-ish text and random
//! `--set key=value` overrides through [`RawConfig::parse_str`], [`RawConfig::check`] and
//! [`RawConfig::to_toml`].
//!
//! Every input must give a config or an error that names the file, the `--set` argument or
//! the key at fault: never a panic, never a stack overflow (which would abort this test
//! binary). A config that checks must write a `config.toml` that reads back to itself.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use ee_cli::config::{ConfigError, RawConfig};
use proptest::prelude::*;

const ORIGIN: &str = "fuzz.toml";

/// A config that checks: synthetic data (no files needed).
const BASE: &str = "[data]\nformat = \"synthetic\"\nroot = \"nowhere/synth\"\n[run]\noutput_dir = \"nowhere/run\"\n";

/// Parses, checks and round-trips `text` with `sets`; describes the first broken rule.
fn run(text: &str, sets: &[String]) -> Result<(), String> {
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let raw = match RawConfig::parse_str(text, sets, ORIGIN) {
            Ok(raw) => raw,
            Err(e) => return named(&e),
        };
        let written = raw.to_toml();
        let checked = match raw.clone().check() {
            Ok(checked) => checked,
            Err(e) => return named(&e),
        };
        // What `config.toml` in the run directory holds must read back as the same config.
        let again = RawConfig::parse_str(&checked.to_toml(), &[], "config.toml")
            .map_err(|e| format!("the checked config does not read back: {e}"))?;
        again
            .check()
            .map_err(|e| format!("the checked config does not check again: {e}"))?;
        RawConfig::parse_str(&written, &[], "config.toml")
            .map_err(|e| format!("to_toml does not read back: {e}\n{written}"))?;
        Ok(())
    }));
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => Err(format!("panicked: {}", panic_message(payload))),
    };
    if start.elapsed() > Duration::from_secs(5) {
        return Err(format!("took {:?}", start.elapsed()));
    }
    result.map_err(|e| format!("{e}\ntext: {text:?}\nsets: {sets:?}"))
}

/// An error must say which file, `--set` argument or key is at fault.
fn named(e: &ConfigError) -> Result<(), String> {
    let ok = match e {
        ConfigError::Parse { origin, .. } => origin == ORIGIN,
        // Displayed as `--set <arg>: <message>`.
        ConfigError::Override { message, .. } => !message.is_empty(),
        ConfigError::Invalid { field, rule, .. } => !field.is_empty() && !rule.is_empty(),
        ConfigError::Read { .. } => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("the error names nothing: {e:?}"))
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

const SECTIONS: &[&str] = &[
    "[data]",
    "[model]",
    "[loss]",
    "[optimizer]",
    "[schedule]",
    "[run]",
    "[data.synthetic]",
    "[data.augment]",
    "[loss.params]",
    "[[run]]",
    "[data.synthetic.deeper]",
    "[",
    "[]",
    "[ data ]",
    "[\"data\"]",
];

/// Keys of the schema, and some that are not.
const KEYS: &[&str] = &[
    "format",
    "root",
    "train_split",
    "test_split",
    "query_split",
    "gallery_split",
    "train_classes",
    "image_size",
    "use_bbox",
    "cache_images",
    "workers",
    "prefetch_batches",
    "skip_unreadable",
    "validation_classes",
    "num_classes",
    "images_per_class",
    "image_side",
    "seed",
    "difficulty",
    "flip",
    "policy",
    "enlarge",
    "scale",
    "ratio",
    "backbone",
    "embed_dim",
    "pretrained",
    "init",
    "name",
    "n_inner_pts",
    "ee_l2norm",
    "margin",
    "reduction",
    "expansion",
    "lr",
    "beta1",
    "beta2",
    "epsilon",
    "weight_decay",
    "base_lr_mult",
    "lr_decay_factor",
    "lr_decay_epochs",
    "epochs",
    "batch_size",
    "instances_per_class",
    "samples_per_epoch",
    "eval_every_epochs",
    "recall_k",
    "eval_batch_size",
    "eval_clustering",
    "eval_before_training",
    "output_dir",
    "backend",
    "log_every_steps",
    "checkpoint_every_steps",
    "lrr",
    "",
    "a.b",
    "\"quoted key\"",
    "é",
    "data",
    "synthetic",
    "params",
];

/// Values, valid and not, for every type the schema has.
const VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "7",
    "16",
    "32",
    "128",
    "255",
    "256",
    "1024",
    "65536",
    "65537",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "9223372036854775808",
    "1e-4",
    "0.5",
    "1.0",
    "-0.0",
    "1e308",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "\"\"",
    "\"synthetic\"",
    "\"folder\"",
    "\"cars196\"",
    "\"cub\"",
    "\"sop\"",
    "\"inshop\"",
    "\"reference_meta\"",
    "\"small_cnn\"",
    "\"googlenet\"",
    "\"resnet50\"",
    "\"hphn_triplet\"",
    "\"triplet\"",
    "\"lifted\"",
    "\"npair\"",
    "\"multi_similarity\"",
    "\"sum\"",
    "\"mean\"",
    "\"adam\"",
    "\"flex\"",
    "\"cuda\"",
    "\"runs/x\"",
    "\"/\"",
    "\"\\u0000\"",
    "'literal'",
    "[]",
    "[1, 2]",
    "[2, 1]",
    "[0]",
    "[0.5, 1.0]",
    "[1.0, 0.5]",
    "[\"a\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "1979-05-27T07:32:00Z",
    "\"\"\"multi\nline\"\"\"",
    "[[1], [2]]",
    "0x10",
    "1_000",
    "+5",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(SECTIONS).prop_map(str::to_string),
        6 => (prop::sample::select(KEYS), prop::sample::select(VALUES))
            .prop_map(|(k, v)| format!("{k} = {v}")),
        1 => proptest::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
        1 => prop::sample::select(&["# comment", "", "=", "= 1", "a =", "a.b.c = 1", "x = [1,"][..])
            .prop_map(str::to_string),
    ]
}

/// Each section's keys.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "data",
        &[
            "format",
            "root",
            "train_split",
            "test_split",
            "query_split",
            "gallery_split",
            "train_classes",
            "image_size",
            "use_bbox",
            "cache_images",
            "workers",
            "prefetch_batches",
            "skip_unreadable",
            "validation_classes",
        ],
    ),
    (
        "data.synthetic",
        &[
            "num_classes",
            "images_per_class",
            "image_side",
            "seed",
            "difficulty",
        ],
    ),
    (
        "data.augment",
        &["flip", "policy", "enlarge", "scale", "ratio"],
    ),
    ("model", &["backbone", "embed_dim", "pretrained", "init"]),
    (
        "loss",
        &[
            "name",
            "n_inner_pts",
            "ee_l2norm",
            "margin",
            "reduction",
            "soft_margin",
            "expansion",
        ],
    ),
    (
        "optimizer",
        &[
            "name",
            "lr",
            "beta1",
            "beta2",
            "epsilon",
            "weight_decay",
            "base_lr_mult",
            "lr_decay_factor",
            "lr_decay_epochs",
        ],
    ),
    (
        "schedule",
        &[
            "epochs",
            "batch_size",
            "instances_per_class",
            "samples_per_epoch",
            "eval_every_epochs",
            "recall_k",
            "eval_batch_size",
            "eval_clustering",
            "eval_before_training",
        ],
    ),
    (
        "run",
        &[
            "seed",
            "output_dir",
            "backend",
            "log_every_steps",
            "checkpoint_every_steps",
        ],
    ),
];

/// Values of the right type for `key`, valid or not.
fn typed(key: &str) -> &'static [&'static str] {
    const INTS: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "4",
        "8",
        "16",
        "32",
        "64",
        "128",
        "255",
        "256",
        "1024",
        "65536",
        "-1",
        "9223372036854775807",
    ];
    const FLOATS: &[&str] = &[
        "0.0", "1e-8", "1e-4", "0.1", "0.5", "0.9", "0.999", "1.0", "2.0", "-0.5", "nan", "inf",
        "-inf", "1e308",
    ];
    const BOOLS: &[&str] = &["true", "false"];
    const PATHS: &[&str] = &[
        "\"nowhere/x\"",
        "\"\"",
        "\"/\"",
        "\"train.txt\"",
        "\"/dev/null\"",
    ];
    const ARRAYS: &[&str] = &[
        "[]",
        "[1]",
        "[1, 2, 4]",
        "[2, 1]",
        "[0]",
        "[0.5, 1.0]",
        "[1.0, 0.5]",
        "[0.08, 1.0]",
        "[0.75, 1.3333]",
        "[400, 800]",
        "[-1.0, 2.0]",
        "[1, 1]",
    ];
    match key {
        "train_classes"
        | "image_size"
        | "workers"
        | "prefetch_batches"
        | "validation_classes"
        | "num_classes"
        | "images_per_class"
        | "image_side"
        | "seed"
        | "embed_dim"
        | "n_inner_pts"
        | "epochs"
        | "batch_size"
        | "instances_per_class"
        | "samples_per_epoch"
        | "eval_every_epochs"
        | "eval_batch_size"
        | "log_every_steps"
        | "checkpoint_every_steps" => INTS,
        "difficulty" | "enlarge" | "margin" | "lr" | "beta1" | "beta2" | "epsilon"
        | "weight_decay" | "base_lr_mult" | "lr_decay_factor" => FLOATS,
        "use_bbox"
        | "cache_images"
        | "skip_unreadable"
        | "flip"
        | "ee_l2norm"
        | "soft_margin"
        | "eval_clustering"
        | "eval_before_training" => BOOLS,
        "scale" | "ratio" | "lr_decay_epochs" | "recall_k" => ARRAYS,
        "format" => &[
            "\"synthetic\"",
            "\"folder\"",
            "\"cars196\"",
            "\"cub\"",
            "\"sop\"",
            "\"inshop\"",
            "\"reference_meta\"",
            "\"other\"",
        ],
        "policy" => &["\"reference\"", "\"random_crop\"", "\"other\""],
        "backbone" => &[
            "\"small_cnn\"",
            "\"googlenet\"",
            "\"resnet50\"",
            "\"other\"",
        ],
        "init" => &["\"torchvision\"", "\"burn\"", "\"other\""],
        "name" => &[
            "\"hphn_triplet\"",
            "\"triplet\"",
            "\"lifted\"",
            "\"npair\"",
            "\"multi_similarity\"",
            "\"adam\"",
            "\"sgd\"",
            "\"other\"",
        ],
        "reduction" => &["\"sum\"", "\"mean\"", "\"Sum\"", "\"other\""],
        "backend" => &["\"flex\"", "\"cuda\"", "\"other\""],
        _ => PATHS,
    }
}

/// A schema key with a value: usually one of its type, sometimes any.
fn entry() -> impl Strategy<Value = (String, String, String)> {
    let known = (prop::sample::select(SCHEMA), any::<prop::sample::Index>()).prop_flat_map(
        |((section, keys), i)| {
            let key = keys[i.index(keys.len())];
            let value = prop_oneof![
                5 => prop::sample::select(typed(key)).prop_map(str::to_string),
                1 => prop::sample::select(VALUES).prop_map(str::to_string),
            ];
            value.prop_map(move |v| (section.to_string(), key.to_string(), v))
        },
    );
    let any_key = (
        prop::sample::select(SCHEMA),
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
    )
        .prop_map(|((section, _), k, v)| (section.to_string(), k.to_string(), v.to_string()));
    prop_oneof![8 => known, 1 => any_key]
}

/// A config of the base and the entries, each section written once (as TOML requires), or
/// with some probability free lines instead.
fn text() -> impl Strategy<Value = String> {
    let structured = proptest::collection::vec(entry(), 0..6).prop_map(|entries| {
        let mut sections: Vec<(String, Vec<(String, String)>)> = vec![
            (
                "data".into(),
                vec![
                    ("format".into(), "\"synthetic\"".into()),
                    ("root".into(), "\"nowhere/synth\"".into()),
                ],
            ),
            (
                "run".into(),
                vec![("output_dir".into(), "\"nowhere/run\"".into())],
            ),
        ];
        for (section, key, value) in entries {
            let at = match sections.iter().position(|(s, _)| *s == section) {
                Some(at) => at,
                None => {
                    sections.push((section, Vec::new()));
                    sections.len() - 1
                }
            };
            let keys = &mut sections[at].1;
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => keys.push((key, value)),
            }
        }
        let mut text = String::new();
        for (section, keys) in sections {
            text.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        text
    });
    let free =
        (any::<bool>(), proptest::collection::vec(line(), 0..14)).prop_map(|(base, lines)| {
            let mut text = if base {
                BASE.to_string()
            } else {
                String::new()
            };
            for l in lines {
                text.push_str(&l);
                text.push('\n');
            }
            text
        });
    prop_oneof![3 => structured, 1 => free]
}

fn set() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(str::to_string),
        1 => proptest::collection::vec(any::<char>(), 0..10).prop_map(|c| c.into_iter().collect()),
        1 => prop::sample::select(VALUES).prop_map(|v| format!("{v}\nextra = 1")),
    ];
    let odd_section = prop::sample::select(
        &[
            "",
            "nope",
            "run.output_dir",
            "loss.params",
            "data.synthetic.x",
        ][..],
    );
    prop_oneof![
        6 => entry().prop_map(|(s, k, v)| format!("{s}.{k}={v}")),
        2 => (entry(), value.clone()).prop_map(|((s, k, _), v)| format!("{s}.{k}={v}")),
        2 => (odd_section, prop::sample::select(KEYS), value.clone())
            .prop_map(|(s, k, v)| format!("{s}.{k}={v}")),
        1 => value.clone(),
        1 => (proptest::collection::vec(any::<char>(), 0..10), value)
            .prop_map(|(k, v)| format!("{}={v}", k.into_iter().collect::<String>())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_config_text_is_a_config_or_a_named_error(text in text()) {
        if let Err(e) = run(&text, &[]) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn random_overrides_are_a_config_or_a_named_error(
        sets in proptest::collection::vec(set(), 1..4),
    ) {
        if let Err(e) = run(BASE, &sets) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn random_text_with_overrides_is_a_config_or_a_named_error(
        text in text(),
        sets in proptest::collection::vec(set(), 0..3),
    ) {
        if let Err(e) = run(&text, &sets) {
            prop_assert!(false, "{}", e);
        }
    }
}

fn parse(text: &str, sets: &[&str]) -> Result<RawConfig, ConfigError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    RawConfig::parse_str(text, &sets, ORIGIN)
}

/// `text` reads and checks, or fails with a named error, within a second or two.
fn assert_prompt(text: &str, sets: &[&str]) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let start = Instant::now();
    if let Err(e) = run(text, &sets) {
        panic!("{}", &e[..e.len().min(400)]);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

fn deep() -> String {
    "a.".repeat(50_000)
}

#[test]
fn a_deeply_dotted_key_does_not_overflow_the_stack() {
    assert_prompt(&format!("{BASE}[loss]\n{}b = 1\n", deep()), &[]);
}

#[test]
fn a_deeply_dotted_table_header_does_not_overflow_the_stack() {
    assert_prompt(&format!("{BASE}[loss.{}b]\n", deep()), &[]);
}

#[test]
fn deeply_nested_arrays_and_inline_tables_do_not_overflow_the_stack() {
    let n = 50_000;
    let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let tables = format!("{}1{}", "{a = ".repeat(n), "}".repeat(n));
    for value in [arrays, tables] {
        assert_prompt(&format!("{BASE}[loss]\nx = {value}\n"), &[]);
        assert_prompt(BASE, &[&format!("loss.x={value}")]);
    }
}

#[test]
fn a_deeply_dotted_override_key_is_refused() {
    let set = format!("loss.{}b=1", deep());
    let err = parse(BASE, &[&set]).unwrap_err().to_string();
    assert!(
        err.starts_with("--set loss.a.a.") && err.contains("parts"),
        "{}",
        &err[..200.min(err.len())]
    );
}

#[test]
fn an_override_value_is_one_toml_value() {
    // A newline in the value would add keys of its own, silently dropped before.
    let err = parse(BASE, &["run.output_dir=\"a\"\nseed = 3"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set") && err.contains("one TOML value"),
        "{err}"
    );
    let err = parse(BASE, &["run.output_dir=\"a\"\n[data]\nroot = \"b\""])
        .unwrap_err()
        .to_string();
    assert!(err.contains("one TOML value"), "{err}");
    // One value, a comment after it, or text that is no TOML at all (taken as a string).
    let raw = parse(BASE, &["run.seed=3 # the seed", "run.output_dir=runs/a b"]).unwrap();
    assert_eq!(raw.run.seed, 3);
    assert_eq!(raw.run.output_dir, std::path::Path::new("runs/a b"));
}
