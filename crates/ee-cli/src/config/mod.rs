//! The run configuration: a TOML file with the sections `data`, `model`, `loss`, `optimizer`,
//! `schedule` and `run`, plus `--set section.key=value` overrides.
//!
//! Reading happens in two layers, as ripgrep parses its flags:
//!
//! 1. [`RawConfig`]: a faithful record of what the file (and the overrides) say. Unknown keys
//!    are rejected with their full name (`optimizer.lrr`); missing keys take the reference
//!    run's values.
//! 2. [`RawConfig::check`] validates every value and returns a [`RunConfig`], the only type the
//!    trainer accepts: once it exists, every value in it is usable.
//!
//! ```
//! use ee_cli::config::RawConfig;
//! let raw = RawConfig::parse_str(
//!     "[data]\nformat = \"synthetic\"\nroot = \"data/synth\"\n[run]\noutput_dir = \"runs/x\"",
//!     &["schedule.epochs=3".to_string()],
//!     "inline.toml",
//! )
//! .unwrap();
//! assert_eq!(raw.schedule.epochs, 3);
//! ```
//!
//! The modules, in the order a config goes through them:
//! [`schema`] (the sections and their defaults), [`overrides`] (reading a file and applying
//! `--set`), [`check`] (validation, with the CLI's names and context on top of each crate's
//! own checks) and [`resolve`] (the checked config turned into each crate's own `Config`:
//! ee-model's, ee-loss's, ee-data's, ee-eval's and ee-train's).

pub mod check;
pub mod overrides;
pub mod resolve;
pub mod schema;

use std::path::{Path, PathBuf};

pub use overrides::apply_override;
pub use schema::*;

/// A value of the configuration that breaks a rule, or a file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{origin}: {key}{message}")]
    Parse {
        /// The file (or `--set`) at fault.
        origin: String,
        /// The dotted key at fault followed by ": ", or empty when unknown.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// A value breaks a rule.
    #[error("invalid {field} = {value}: {rule}")]
    Invalid {
        /// Dotted key, e.g. `schedule.batch_size`.
        field: String,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
}

pub(crate) fn invalid(
    field: &str,
    value: impl std::fmt::Display,
    rule: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        rule: rule.into(),
    }
}

/// Errors naming `field` unless `root/file` is a file.
pub(crate) fn file_in_root(root: &Path, field: &str, file: &Path) -> Result<(), ConfigError> {
    if root.join(file).is_file() {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("\"{}\"", file.display()),
        format!("no such file in data.root ({})", root.join(file).display()),
    ))
}

/// A validated configuration: only [`RawConfig::check`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    raw: RawConfig,
    loss: ee_loss::LossConfig,
}

impl RunConfig {
    /// The values (all valid).
    pub fn get(&self) -> &RawConfig {
        &self.raw
    }

    /// The loss, validated by ee-loss.
    pub fn loss(&self) -> &ee_loss::LossConfig {
        &self.loss
    }

    /// The synthetic dataset's options, with defaults filled in (format = "synthetic").
    pub fn synthetic(&self) -> Option<&SyntheticSection> {
        self.raw.data.synthetic.as_ref()
    }

    /// The resolved config as TOML (every value explicit).
    pub fn to_toml(&self) -> String {
        self.raw.to_toml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        format!(
            "[data]\nformat = \"synthetic\"\nroot = \"nowhere/synth\"\n[run]\noutput_dir = \"runs/t\"\n{extra}"
        )
    }

    fn parse(text: &str, sets: &[&str]) -> Result<RawConfig, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RawConfig::parse_str(text, &sets, "t.toml")
    }

    #[test]
    fn query_and_gallery_splits_go_together_with_reference_meta() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train.txt", "test.txt", "q.txt", "g.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let config = |format: &str, extra: &str| {
            let text = format!(
                "[data]\nformat = \"{format}\"\nroot = \"{}\"\n{extra}\n[run]\noutput_dir = \"r\"\n",
                dir.path().display()
            );
            parse(&text, &["data.train_split=train.txt"]).unwrap()
        };
        let both = "query_split = \"q.txt\"\ngallery_split = \"g.txt\"";
        let ok = config("reference_meta", both);
        assert_eq!(ok.data.query_split.as_deref(), Some(Path::new("q.txt")));
        ok.check().unwrap();

        let cases = [
            (
                "reference_meta",
                "query_split = \"q.txt\"",
                &["data.query_split", "give both"][..],
            ),
            (
                "reference_meta",
                "query_split = \"q.txt\"\ngallery_split = \"missing.txt\"",
                &["data.gallery_split", "missing.txt"],
            ),
            ("folder", both, &["reference_meta"]),
            ("inshop", "", &["list_eval_partition.txt"]),
        ];
        for (format, extra, needles) in cases {
            let e = config(format, extra).check().unwrap_err().to_string();
            for needle in needles {
                assert!(e.contains(needle), "{needle:?} not in {e}");
            }
        }
    }

    #[test]
    fn run_devices_take_a_count_or_distinct_indices() {
        let devices = |extra: &str| {
            parse(&base(extra), &[])
                .and_then(|c| c.check())
                .map(|c| c.get().run.devices.indices())
                .map_err(|e| e.to_string())
        };
        assert_eq!(devices(""), Ok(vec![0]));
        assert_eq!(devices("devices = 2"), Ok(vec![0, 1]));
        assert_eq!(devices("devices = [1, 3]"), Ok(vec![1, 3]));
        for (bad, shown) in [
            ("devices = 0", "= 0:"),
            ("devices = []", "= []:"),
            ("devices = [1, 1]", "= [1, 1]:"),
        ] {
            let e = devices(bad).unwrap_err();
            assert!(e.contains("run.devices") && e.contains(shown), "{bad}: {e}");
        }
        // One device (the default) stays out of the resolved config; more are written.
        let one = parse(&base(""), &[]).unwrap().check().unwrap();
        assert!(!one.to_toml().contains("devices"));
        let two = parse(&base("devices = 2"), &[]).unwrap().check().unwrap();
        let again = parse(&two.to_toml(), &[]).unwrap().check().unwrap();
        assert_eq!(again.get().run.devices.indices(), vec![0, 1]);
    }

    #[test]
    fn defaults_are_the_reference_run() {
        let c = parse(&base(""), &[]).unwrap().check().unwrap();
        let c = c.get();
        assert_eq!(c.optimizer.lr, 1e-4);
        assert_eq!(c.optimizer.epsilon, 1e-8);
        assert_eq!(c.optimizer.weight_decay, 5e-4);
        assert_eq!(c.optimizer.lr_decay_epochs, vec![400, 800, 1200, 1600]);
        assert_eq!(c.schedule.batch_size, 128);
        assert_eq!(c.schedule.instances_per_class, 32);
        assert_eq!(c.loss.n_inner_pts, 2);
        let ee_loss::LossConfig::HphnTriplet(h) = c.loss.loss_config().unwrap() else {
            panic!()
        };
        assert_eq!(h.margin, 1e-5);
        assert_eq!(h.reduction, ee_loss::Reduction::Sum);
        assert!(!h.soft_margin);
        assert_eq!(c.model.embed_dim, 512);
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let e = parse(&base("[optimizer]\nlrr = 0.1\n"), &[]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("optimizer.lrr") || text.contains("`lrr`"),
            "{text}"
        );
        assert!(text.starts_with("t.toml: optimizer"), "{text}");
        let e = parse(&base("[nonsense]\na = 1\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse(&base("[schedule]\nepochs = \"many\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.epochs"), "{e}");
    }

    #[test]
    fn overrides_apply_before_deserialising() {
        let c = parse(
            &base(""),
            &[
                "optimizer.lr=0.5",
                "run.output_dir=runs/b",
                "loss.ee_l2norm=false",
                "optimizer.lr_decay_epochs=[1, 2]",
            ],
        )
        .unwrap();
        assert_eq!(c.optimizer.lr, 0.5);
        assert_eq!(c.run.output_dir, PathBuf::from("runs/b"));
        assert!(!c.loss.ee_l2norm);
        assert_eq!(c.optimizer.lr_decay_epochs, vec![1, 2]);
        // an override can also introduce an unknown key, which is then rejected
        let e = parse(&base(""), &["optimizer.lrr=1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lrr"), "{e}");
        let e = parse(&base(""), &["lr=1"]).unwrap_err().to_string();
        assert!(e.contains("section.key"), "{e}");
        let e = parse(&base(""), &["optimizer.lr"]).unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
    }

    #[test]
    fn odd_k_with_expansion_is_rejected() {
        let e = parse(
            &base("[schedule]\ninstances_per_class = 3\nbatch_size = 12\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid schedule.instances_per_class = 3"),
            "{e}"
        );
        // without expansion an odd K is fine
        parse(
            &base(
                "[schedule]\ninstances_per_class = 3\nbatch_size = 12\n[loss]\nn_inner_pts = 0\n",
            ),
            &[],
        )
        .unwrap()
        .check()
        .unwrap();
    }

    #[test]
    fn batch_not_divisible_by_k_is_rejected() {
        let e = parse(
            &base("[schedule]\ninstances_per_class = 4\nbatch_size = 10\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid schedule.batch_size = 10"), "{e}");
    }

    #[test]
    fn missing_data_root_is_rejected() {
        let text = "[data]\nformat = \"reference_meta\"\nroot = \"/definitely/not/here\"\n[run]\noutput_dir = \"r\"\n";
        let e = parse(text, &[]).unwrap().check().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid data.root = \"/definitely/not/here\""),
            "{e}"
        );
    }

    #[test]
    fn value_rules() {
        let cases = [
            ("optimizer.lr=0", "optimizer.lr"),
            (
                "optimizer.lr_decay_epochs=[5, 3]",
                "optimizer.lr_decay_epochs",
            ),
            ("optimizer.lr_decay_factor=1.5", "optimizer.lr_decay_factor"),
            ("optimizer.beta2=1.0", "optimizer.beta2"),
            ("loss.margin=-1.0", "loss.margin"),
            ("loss.name=contrastive", "loss"),
            ("loss.marginn=1.0", "loss"),
            ("schedule.recall_k=[]", "schedule.recall_k"),
            ("schedule.epochs=0", "schedule.epochs"),
            ("data.image_size=8", "data.image_size"),
            ("model.embed_dim=0", "model.embed_dim"),
            ("model.pretrained=no/such.pth", "model.pretrained"),
            ("run.log_every_steps=0", "run.log_every_steps"),
            ("data.augment.enlarge=0.5", "data.augment.enlarge"),
            ("data.augment.scale=[0.9, 0.1]", "data.augment.scale"),
        ];
        for (set, field) in cases {
            let e = parse(&base(""), &[set])
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("invalid {field} = ")), "{set}: {e}");
        }
    }

    #[test]
    fn a_bad_loss_parameter_names_its_key_and_value() {
        let error = parse(&base("[loss]\nmargin = -0.1\n"), &[])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid loss.margin = -0.1: "), "{error}");
        assert!(error.contains("hphn_triplet"), "{error}");
        assert!(!error.contains(" = :"), "no empty value slot: {error}");
    }

    #[test]
    fn other_losses_take_their_parameters() {
        let c = parse(
            &base("[loss]\nname = \"multi_similarity\"\nbeta = 40.0\nn_inner_pts = 0\n"),
            &[],
        )
        .unwrap()
        .check()
        .unwrap();
        let ee_loss::LossConfig::MultiSimilarity(ms) = c.loss() else {
            panic!("{:?}", c.loss())
        };
        assert_eq!(ms.beta, 40.0);
        assert_eq!(ms.expansion.n_inner_pts, 0);
        // the resolved config writes every parameter out
        assert!(c.to_toml().contains("alpha"), "{}", c.to_toml());
        let c = parse(&base("[loss]\nreduction = \"mean\"\n"), &[])
            .unwrap()
            .check()
            .unwrap();
        let ee_loss::LossConfig::HphnTriplet(h) = c.loss() else {
            panic!()
        };
        assert_eq!(h.reduction, ee_loss::Reduction::Mean);
        assert!(
            c.to_toml().contains("reduction = \"mean\""),
            "{}",
            c.to_toml()
        );
        let e = parse(&base("[loss]\nname = \"npair\"\nmargin = 1.0\n"), &[])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("margin"), "{e}");
    }

    #[test]
    fn backend_aliases() {
        for alias in ["cpu", "ndarray", "flex"] {
            let c = parse(&base(""), &[&format!("run.backend={alias}")]).unwrap();
            assert_eq!(c.run.backend, BackendName::Flex);
        }
        assert!(parse(&base(""), &["run.backend=tpu"]).is_err());
    }

    #[test]
    fn augment_section_reaches_the_loader_and_keeps_unset_defaults() {
        let text = base("[data.augment]\nflip = false\n");
        let c = parse(&text, &[]).unwrap().check().unwrap();
        let loader = resolve::loader_config(c.get());
        assert!(!loader.augment.flip);
        assert_eq!(
            loader.augment.clone().with_flip(true),
            ee_data::AugmentConfig::new(),
            "keys left out keep the reference's values"
        );
        // Without the section: the reference's transform, and the round trip keeps it.
        let plain = parse(&base(""), &[]).unwrap().check().unwrap();
        assert_eq!(
            resolve::loader_config(plain.get()).augment,
            ee_data::AugmentConfig::new()
        );
        let again = parse(&c.to_toml(), &[]).unwrap().check().unwrap();
        assert!(!again.get().data.augment.flip);
        let e = parse(&base("[data.augment]\nflipp = false\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("flipp"), "{e}");
    }

    #[test]
    fn each_backbone_has_its_own_size_and_weight_rules() {
        let check = |sets: &[&str]| parse(&base(""), sets).unwrap().check();
        let e = check(&["model.backbone=resnet50", "data.image_size=16"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid data.image_size = 16: ResNet-50 needs at least 32 px"
        );
        check(&["model.backbone=small_cnn", "data.image_size=16"]).unwrap();
        let e = check(&["model.backbone=small_cnn", "model.pretrained=x.pth"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"googlenet\" and \"resnet50\" only"),
            "{e}"
        );
        let e = check(&["model.backbone=resnet50", "model.pretrained=no/r.pth"]).unwrap_err();
        assert!(e.to_string().contains("resnet50-0676ba61.pth"), "{e}");
    }

    #[test]
    fn resolve_hands_each_crate_its_settings() {
        let c = parse(
            &base(""),
            &[
                "model.backbone=small_cnn",
                "optimizer.name=adamw",
                "optimizer.lr=0.002",
                "schedule.epochs=3",
                "run.seed=9",
            ],
        )
        .unwrap()
        .check()
        .unwrap();
        let t = resolve::trainer_config(&c, true, false);
        assert_eq!(t.optimizer.kind, ee_train::OptimizerKind::Adamw);
        assert_eq!(
            (t.optimizer.lr, t.epochs, t.seed, t.resume),
            (0.002, 3, 9, true)
        );
        assert_eq!(t.run_dir, c.get().run.output_dir);
        let m = resolve::model_config(c.get(), true);
        assert_eq!(m.backbone_kind(), ee_model::BackboneKind::SmallCnn);
        assert_eq!(m.init, Some(ee_model::BackboneInit::Kaiming));
        assert_eq!(
            m.transform_input, None,
            "only GoogLeNet re-normalises its input"
        );
        t.init().expect("a checked config makes a valid trainer");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = parse(&base(""), &["schedule.epochs=7"])
            .unwrap()
            .check()
            .unwrap();
        let again = parse(&c.to_toml(), &[]).unwrap().check().unwrap();
        assert_eq!(again, c);
        assert!(c.to_toml().contains("[data.synthetic]"));
    }
}
