// The cases of `tests/trainer.rs`, compiled there once per backend: this file is
// `include!`d into a module that defines `Inner`, the backend under test.

use crate::common;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use burn::backend::Autodiff;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{module::adaptive_avg_pool2d, Tensor};
use common::{dataset, loader};
use ee_data::Dataset;
use ee_loss::{
    EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch, HphnTripletLossConfig, LossOutput,
    PairLoss,
};
use ee_model::{
    l2_normalize, BackboneInit, BackboneKind, Embed, EmbeddingModel, EmbeddingModelConfig,
};
use ee_train::checkpoint::CheckpointFile;
use ee_train::{EvalSet, TrainData, TrainError, TrainModel, TrainerConfig};

type B = Autodiff<Inner>;

/// 4 train classes x 8 images; batches of 2 classes x 4, 2 batches per epoch.
fn trainer(run_dir: &Path, epochs: u64) -> TrainerConfig {
    common::trainer(run_dir, epochs, 4)
}

/// The small CNN with seeded (ChaCha) weights: Kaiming would draw from the backend's global
/// RNG, which tests running in parallel share.
fn small_cnn() -> EmbeddingModel<B> {
    EmbeddingModelConfig::new()
        .with_backbone(Some(BackboneKind::SmallCnn))
        .with_init(Some(BackboneInit::Torchvision))
        .with_embed_dim(8)
        .with_seed(3)
        .init::<B>(&Default::default())
        .unwrap()
}

fn hphn() -> ee_loss::HphnTripletLoss {
    HphnTripletLossConfig::new().init().unwrap()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn params<M: Module<B>>(model: &M) -> Vec<Vec<f32>> {
    use burn::module::ModuleVisitor;
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            self.0.push(param.val().into_data().to_vec().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

#[test]
fn trains_a_small_cnn_and_writes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let run = dir.path().join("run");
    let mut t = trainer(&run, 2).init().unwrap();
    let before = params(&small_cnn());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let fitted = t
        .fit(small_cnn(), &hphn(), train, &Default::default())
        .unwrap();
    assert_eq!((fitted.summary.epochs, fitted.summary.steps), (2, 4));
    assert!(params(&fitted.model) != before, "the weights did not move");
    assert!(fitted.summary.best_epoch >= 1);
    for file in ["last.mpk", "best.mpk", "trainer.json", "metrics.jsonl"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let metrics = lines(&run.join("metrics.jsonl"));
    let train_lines: Vec<_> = metrics.iter().filter(|l| l["kind"] == "train").collect();
    assert_eq!(train_lines.len(), 4);
    for line in &train_lines {
        // HPHN reports its mining through the generic diagnostics.
        let fraction = line["synthetic_negative_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&fraction), "{line}");
        assert!(line["mean_positive_distance"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(metrics.iter().filter(|l| l["kind"] == "eval").count(), 2);
    let last = CheckpointFile::load(&run.join("last.mpk")).unwrap();
    assert_eq!(last.state.global_step, 4);
    assert_eq!(
        last.state.metrics_len,
        std::fs::metadata(run.join("metrics.jsonl")).unwrap().len()
    );
}

#[test]
fn resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let device = Default::default();

    let straight = dir.path().join("straight");
    let a = trainer(&straight, 3)
        .init()
        .unwrap()
        .fit(small_cnn(), &hphn(), train, &device)
        .unwrap();

    let split = dir.path().join("split");
    trainer(&split, 1)
        .init()
        .unwrap()
        .fit(small_cnn(), &hphn(), train, &device)
        .unwrap();
    // A fresh model: every weight, statistic and moment must come from last.mpk.
    let fresh = EmbeddingModelConfig::new()
        .with_backbone(Some(BackboneKind::SmallCnn))
        .with_init(Some(BackboneInit::Torchvision))
        .with_embed_dim(8)
        .with_seed(99)
        .init::<B>(&device)
        .unwrap();
    let b = trainer(&split, 3)
        .with_resume(true)
        .init()
        .unwrap()
        .fit(fresh, &hphn(), train, &device)
        .unwrap();
    assert_eq!(a.summary.steps, b.summary.steps);
    assert!(
        params(&a.model) == params(&b.model),
        "resumed weights differ"
    );
    let losses = |run: &Path| -> Vec<f64> {
        lines(&run.join("metrics.jsonl"))
            .iter()
            .filter(|l| l["kind"] == "train")
            .map(|l| l["loss_sum"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(losses(&straight), losses(&split));
}

/// A 16 px image pooled to 2 x 2, one linear layer: a user's own model.
#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> Embed<B> for Tiny<B> {
    fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = images.dims()[0];
        l2_normalize(
            self.linear
                .forward(adaptive_avg_pool2d(images, [2, 2]).reshape([n, 12])),
        )
    }
}

impl<B: AutodiffBackend> TrainModel<B> for Tiny<B> {}

fn tiny() -> Tiny<B> {
    Tiny {
        linear: LinearConfig::new(12, 6).init(&Default::default()),
    }
}

/// A user's loss: the mean distance between original points of the same class, with the
/// number of calls as a diagnostic, and NaN from call `nan_from` on.
struct Pull {
    expansion: EmbeddingExpansion,
    calls: AtomicU32,
    nan_from: u32,
}

impl PairLoss for Pull {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let b = batch.batch_size();
        let d = batch.distance_matrix().slice([0..b, 0..b]);
        let per_anchor = d.mean_dim(1).reshape([b]);
        let per_anchor = if self.calls.load(Ordering::Relaxed) >= self.nan_from {
            per_anchor.add_scalar(f32::NAN)
        } else {
            per_anchor
        };
        let calls = Tensor::<B, 1>::from_floats(
            [self.calls.load(Ordering::Relaxed) as f32],
            &per_anchor.device(),
        );
        LossOutput::new(per_anchor.clone().mean(), per_anchor).with_diagnostic("calls", calls)
    }
}

#[test]
fn a_user_model_and_loss_train_and_report_their_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let run = dir.path().join("run");
    let loss = Pull {
        expansion: EmbeddingExpansionConfig::new().with_n_inner_pts(0).init(),
        calls: AtomicU32::new(0),
        nan_from: u32::MAX,
    };
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let before = params(&tiny());
    let fitted = trainer(&run, 2)
        .init()
        .unwrap()
        .fit(tiny(), &loss, train, &Default::default());
    let fitted = fitted.unwrap();
    assert_eq!(loss.calls.load(Ordering::Relaxed), 4);
    assert!(params(&fitted.model) != before, "the weights did not move");
    let calls: Vec<f64> = lines(&run.join("metrics.jsonl"))
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| l["calls"].as_f64().unwrap())
        .collect();
    assert_eq!(calls, vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let run = dir.path().join("run");
    let loss = Pull {
        expansion: EmbeddingExpansionConfig::new().with_n_inner_pts(2).init(),
        calls: AtomicU32::new(0),
        nan_from: 4,
    };
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let err = trainer(&run, 3)
        .init()
        .unwrap()
        .fit(tiny(), &loss, train, &Default::default())
        .unwrap_err();
    match &err {
        TrainError::NonFiniteLoss {
            epoch: 2,
            step: 4,
            checkpoint: Some(path),
            ..
        } => {
            assert_eq!(path, &run.join("last.mpk"));
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .contains("lower optimizer.lr, then `--resume`"),
        "{err}"
    );
    let last = CheckpointFile::load(&run.join("last.mpk")).unwrap();
    assert_eq!(
        last.state.global_step, 2,
        "the epoch-1 checkpoint is intact"
    );
}

#[test]
fn validation_classes_select_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    // 4 train classes: the two highest held out, 2 left to train on (batches of 2 classes).
    let (train_split, held) = data.train.clone().hold_out_classes(2).unwrap();
    assert_eq!(
        (train_split.classes(), held.classes()),
        (vec![0, 1], vec![2, 3])
    );
    let validation = EvalSet::SelfRetrieval(loader().init(&held).unwrap());
    let run = dir.path().join("run");
    let train = TrainData {
        train: &train_split,
        test: &test,
        validation: Some(&validation),
    };
    let fitted = trainer(&run, 2)
        .with_eval_before_training(true)
        .init()
        .unwrap()
        .fit(small_cnn(), &hphn(), train, &Default::default())
        .unwrap();
    let evals: Vec<_> = lines(&run.join("metrics.jsonl"))
        .into_iter()
        .filter(|l| l["kind"] == "eval")
        .collect();
    // Before training and after each epoch: the test line, then the validation line.
    assert_eq!(evals.len(), 6);
    let validation_lines: Vec<_> = evals
        .iter()
        .filter(|l| l["split"] == "validation")
        .collect();
    assert_eq!(validation_lines.len(), 3);
    let best_validation = validation_lines[1..]
        .iter()
        .map(|l| l["recall"]["1"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(fitted.summary.best_recall, best_validation);
    let best_epoch = fitted.summary.best_epoch as usize;
    if best_epoch > 0 {
        let test_at_best = evals
            .iter()
            .filter(|l| l.get("split").is_none() && l["epoch"] == best_epoch)
            .map(|l| l["recall"]["1"].as_f64().unwrap())
            .next();
        assert_eq!(fitted.summary.test_recall_at_best, test_at_best);
    }
}

#[test]
fn bad_settings_and_existing_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let err = trainer(&run, 0).init().err().unwrap().to_string();
    assert_eq!(
        err,
        "invalid trainer config: epochs = 0: must be at least 1"
    );
    let err = trainer(&run, 1)
        .with_optimizer(ee_train::OptimizerConfig::new().with_lr(-1.0))
        .init()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("optimizer.lr = -1"), "{err}");
    // One class per batch: no anchor would have a negative.
    let err = common::trainer(&run, 1, 8).init().err().unwrap().to_string();
    assert!(
        err.contains("sampler.batch_size = 8") && err.contains("at least 2 classes"),
        "{err}"
    );

    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let err = trainer(&run, 1)
        .with_resume(true)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default())
        .unwrap_err();
    assert!(matches!(err, TrainError::NothingToResume { .. }), "{err}");
    trainer(&run, 1)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default())
        .unwrap();
    let err = trainer(&run, 1)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default())
        .unwrap_err();
    assert!(matches!(err, TrainError::RunExists { .. }), "{err}");
}

#[test]
fn any_earlier_run_is_a_run_and_interrupted_writes_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    // A best.mpk without last.mpk (a run stopped after its first evaluation) is a run.
    let run = dir.path().join("best_only");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("best.mpk"), b"earlier").unwrap();
    let err = trainer(&run, 1)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default());
    assert!(matches!(err, Err(TrainError::RunExists { .. })));
    assert_eq!(
        std::fs::read(run.join("best.mpk")).unwrap(),
        b"earlier",
        "left as it was"
    );

    // A kill during a checkpoint write leaves `.last.mpk.tmp.PID`: the next start removes it.
    let run = dir.path().join("killed");
    std::fs::create_dir_all(&run).unwrap();
    let stale = run.join(".last.mpk.tmp.4194303");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    std::fs::write(run.join("notes.tmp.txt"), b"mine").unwrap();
    trainer(&run, 1)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default())
        .unwrap();
    assert!(!stale.exists(), "the stale temporary file is gone");
    assert!(
        run.join("notes.tmp.txt").exists(),
        "other files are left alone"
    );
}

#[test]
fn a_bad_image_stops_the_run_without_leaving_empty_files_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = |data: &Dataset, class: Option<u32>| {
        for item in data.train.items() {
            if class.is_none_or(|c| item.class_id == c) {
                std::fs::write(&item.path, b"not an image").unwrap();
            }
        }
    };
    // Every training image broken: the first batch fails, before anything is logged.
    let data = dataset(&dir.path().join("broken"));
    corrupt(&data, None);
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let run = dir.path().join("run");
    let err = trainer(&run, 1)
        .init()
        .unwrap()
        .fit(tiny(), &hphn(), train, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not an image") || err.contains(".jpg"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&run)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        !run.exists(),
        "an empty run directory was left behind: {left:?}"
    );

    // One class broken, with skip_unreadable: its group is dropped from its batch, and the
    // batch, left with one class, is skipped with a warning; the run goes on (every epoch
    // samples every class once).
    let data = dataset(&dir.path().join("one_class"));
    corrupt(&data, Some(data.train.items()[0].class_id));
    let test = EvalSet::SelfRetrieval(loader().init(&data.test).unwrap());
    let train = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let loss = Pull {
        expansion: EmbeddingExpansionConfig::new().with_n_inner_pts(0).init(),
        calls: AtomicU32::new(0),
        nan_from: u32::MAX,
    };
    let fitted = trainer(&run, 1)
        .with_loader(loader().with_skip_unreadable(true))
        .init()
        .unwrap()
        .fit(tiny(), &loss, train, &Default::default())
        .unwrap();
    assert_eq!(fitted.summary.epochs, 1);
    assert_eq!(
        loss.calls.load(Ordering::Relaxed),
        1,
        "the batch of the broken class was skipped"
    );
}
