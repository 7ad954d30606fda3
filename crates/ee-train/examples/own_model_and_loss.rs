//! Train your own burn model with your own pair loss through ee-train, Embedding Expansion
//! included: `cargo run --release -p ee-train --example own_model_and_loss`.
use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{module::adaptive_avg_pool2d, Tensor};
use ee_data::{formats, LoaderConfig, SamplerConfig, SynthOptions};
use ee_loss::{anchor_pairs::AnchorPairs, masked::masked_mean};
use ee_loss::{EmbeddingExpansion, EmbeddingExpansionConfig, ExpandedBatch, LossOutput, PairLoss};
use ee_model::{l2_normalize, Embed};
use ee_train::{EvalSet, OptimizerConfig, TrainData, TrainModel, TrainerConfig};

/// Pools the image to 4 x 4, then two linear layers to a unit 16-d embedding.
#[derive(Module, Debug)]
struct TinyNet<B: Backend> {
    hidden: Linear<B>,
    out: Linear<B>,
}

impl<B: Backend> Embed<B> for TinyNet<B> {
    fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = images.dims()[0];
        let x = adaptive_avg_pool2d(images, [4, 4]).reshape([n, 48]);
        l2_normalize(self.out.forward(relu(self.hidden.forward(x))))
    }
}

/// No backbone/head split: the whole model trains at `optimizer.lr`.
impl<B: AutodiffBackend> TrainModel<B> for TinyNet<B> {}

/// Contrastive loss on the expanded batch: positives pulled together, negatives (real or
/// synthetic) pushed beyond `margin`.
struct Contrastive {
    margin: f64,
    expansion: EmbeddingExpansion,
}

impl PairLoss for Contrastive {
    fn expansion(&self) -> &EmbeddingExpansion {
        &self.expansion
    }

    fn forward_expanded<B: Backend>(&self, batch: &ExpandedBatch<B>) -> LossOutput<B> {
        let pairs = AnchorPairs::new(batch, batch.distance_matrix());
        let pull = masked_mean(pairs.positive_values.square(), pairs.positive_mask);
        let push = relu(pairs.negative_values.neg().add_scalar(self.margin)).square();
        let per_anchor = pull.clone() + masked_mean(push, pairs.negative_mask);
        LossOutput::new(per_anchor.clone().mean(), per_anchor).with_diagnostic("pull", pull)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let root = std::env::temp_dir().join("ee-train-example");
    let synth = SynthOptions::new()
        .with_num_classes(16)
        .with_images_per_class(12);
    let dir = ee_data::write_synthetic_dataset(&root, &synth)?.cars196_dir;
    let data = formats::read_meta_dataset(&dir, &dir.join("train.txt"), &dir.join("test.txt"))?;

    let hidden = LinearConfig::new(48, 64).init(&device);
    let model = TinyNet::<Autodiff<Flex>> {
        hidden,
        out: LinearConfig::new(64, 16).init(&device),
    };
    let expansion = EmbeddingExpansionConfig::new().with_n_inner_pts(2).init();
    let loss = Contrastive {
        margin: 0.8,
        expansion,
    };
    let loader = LoaderConfig::new().with_image_size(32);
    let test = EvalSet::SelfRetrieval(loader.init(&data.test)?);
    let sampler = SamplerConfig::new()
        .with_batch_size(32)
        .with_instances_per_class(4);
    let _ = std::fs::remove_dir_all(root.join("run")); // a fresh run each time
    let mut trainer = TrainerConfig::new(root.join("run"))
        .with_optimizer(OptimizerConfig::new().with_lr(1e-3))
        .with_sampler(sampler.with_epoch_size(Some(512))) // 16 batches an epoch
        .with_loader(loader)
        .with_epochs(5)
        .with_eval_before_training(true)
        .init()?;
    let data = TrainData {
        train: &data.train,
        test: &test,
        validation: None,
    };
    let fitted = trainer.fit(model, &loss, data, &device)?;
    println!(
        "best R@1 {:.3} at epoch {}",
        fitted.summary.best_recall, fitted.summary.best_epoch
    );
    Ok(())
}
