//! The checked config turned into each crate's own `Config`: the model (ee-model), the
//! loader (ee-data), the evaluation (ee-eval) and the trainer (ee-train). The crates keep
//! their own validation; [`RawConfig::check`] only adds names and context.

use ee_data::LoaderConfig;
use ee_eval::EvalConfig;
use ee_model::{BackboneKind, EmbeddingModelConfig};
use ee_train::{OptimizerConfig, TrainerConfig};

use super::{OptimizerSection, RawConfig, RunConfig};

/// The model `[model]` describes; `load_pretrained` keeps `model.pretrained` (off when the
/// weights come from a checkpoint anyway).
pub fn model_config(config: &RawConfig, load_pretrained: bool) -> EmbeddingModelConfig {
    let model = &config.model;
    let pretrained = model.pretrained.as_ref().map(|p| p.display().to_string());
    let googlenet = model.backbone == BackboneKind::Googlenet;
    EmbeddingModelConfig::new()
        .with_backbone(Some(model.backbone))
        .with_embed_dim(model.embed_dim)
        .with_seed(config.run.seed)
        // The flag follows `pretrained` even when the weights come from a checkpoint.
        .with_transform_input(googlenet.then_some(pretrained.is_some()))
        .with_init(Some(model.resolved_init()))
        .with_head_key(if load_pretrained && pretrained.is_some() {
            model.head_key.clone()
        } else {
            None
        })
        .with_pretrained(if load_pretrained { pretrained } else { None })
}

/// The image loader settings of `[data]` (the train split's augmentation included).
pub fn loader_config(config: &RawConfig) -> LoaderConfig {
    let data = &config.data;
    LoaderConfig::new()
        .with_image_size(data.image_size)
        .with_use_bbox(data.use_bbox)
        .with_workers(data.workers)
        .with_prefetch_batches(data.prefetch_batches)
        .with_cache_images(data.cache_images)
        .with_augment(data.augment.clone())
        .with_skip_unreadable(data.skip_unreadable)
}

/// The evaluation settings of `[schedule]`.
pub fn eval_config(config: &RawConfig) -> EvalConfig {
    EvalConfig::new()
        .with_recall_ks(config.schedule.recall_k.clone())
        .with_map_at_r(true)
        .with_clustering(config.schedule.eval_clustering)
        .with_seed(config.run.seed)
}

/// The optimiser of `[optimizer]`.
pub fn optimizer_config(o: &OptimizerSection) -> OptimizerConfig {
    OptimizerConfig::new()
        .with_kind(o.name)
        .with_lr(o.lr)
        .with_beta1(o.beta1)
        .with_beta2(o.beta2)
        .with_epsilon(o.epsilon)
        .with_weight_decay(o.weight_decay)
        .with_base_lr_mult(o.base_lr_mult)
        .with_lr_decay_factor(o.lr_decay_factor)
        .with_lr_decay_epochs(o.lr_decay_epochs.clone())
}

/// The trainer of the whole config.
pub fn trainer_config(config: &RunConfig, resume: bool, quiet: bool) -> TrainerConfig {
    raw_trainer_config(config.get(), resume, quiet)
}

/// The config key of a setting of ee-train's [`TrainerConfig`] (`epochs` ->
/// `schedule.epochs`, `sampler.batch_size` -> `schedule.batch_size`, ...), or of its
/// sampler's ([`ee_data::SamplerConfig`]: `batch_size`, `epoch_size`, ...), so that errors of
/// ee-train's and ee-data's checks name the key the user wrote.
pub fn trainer_key(field: &str) -> String {
    let field = field.strip_prefix("sampler.").unwrap_or(field);
    match field {
        "epochs"
        | "eval_every_epochs"
        | "eval_batch_size"
        | "batch_size"
        | "instances_per_class" => format!("schedule.{field}"),
        "epoch_size" => "schedule.samples_per_epoch".into(),
        "eval.recall_ks" | "recall_ks" => "schedule.recall_k".into(),
        "log_every_steps" | "checkpoint_every_steps" => format!("run.{field}"),
        // optimizer.* is spelled the same in both.
        other => other.into(),
    }
}

/// [`trainer_config`] of a config being checked.
pub fn raw_trainer_config(c: &RawConfig, resume: bool, quiet: bool) -> TrainerConfig {
    let schedule = &c.schedule;
    TrainerConfig::new(c.run.output_dir.clone())
        .with_optimizer(optimizer_config(&c.optimizer))
        .with_sampler(
            ee_data::SamplerConfig::new()
                .with_batch_size(schedule.batch_size)
                .with_instances_per_class(schedule.instances_per_class)
                .with_epoch_size(schedule.samples_per_epoch),
        )
        .with_loader(loader_config(c))
        .with_eval(eval_config(c))
        .with_epochs(schedule.epochs)
        .with_eval_every_epochs(schedule.eval_every_epochs)
        .with_eval_batch_size(schedule.eval_batch_size)
        .with_eval_before_training(schedule.eval_before_training)
        .with_log_every_steps(c.run.log_every_steps)
        .with_checkpoint_every_steps(c.run.checkpoint_every_steps)
        .with_seed(c.run.seed)
        .with_resume(resume)
        .with_quiet(quiet)
}

/// Builds the model `[model]` describes (seeding the backend with `run.seed` first);
/// `load_pretrained` reads `model.pretrained`.
pub fn build_model<B: burn::tensor::backend::Backend>(
    config: &RawConfig,
    load_pretrained: bool,
    device: &B::Device,
) -> Result<ee_model::EmbeddingModel<B>, ee_model::ModelError> {
    B::seed(device, config.run.seed);
    model_config(config, load_pretrained).init(device)
}
