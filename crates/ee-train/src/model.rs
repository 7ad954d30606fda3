//! [`TrainModel`]: what the trainer needs of a model beyond [`Embed`].

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use ee_model::{Embed, EmbeddingModel};

/// A model the [`Trainer`](crate::Trainer) can train: any burn module that embeds images
/// ([`Embed`]), plus which of its parameters form the backbone.
///
/// The backbone is trained at `lr * base_lr_mult`, everything else at `lr` (the reference
/// trains an ImageNet backbone slower than its fresh head). The default puts every parameter
/// in the head: one learning rate for the whole model.
///
/// Its eval-mode copy (`model.valid()`) must embed too, so give `Embed` a generic
/// `impl<B: Backend>`; see the `own_model_and_loss` example.
pub trait TrainModel<B: AutodiffBackend>: AutodiffModule<B> + Embed<B> {
    /// Takes the backbone's gradients out of `grads` (what is left is the head's).
    ///
    /// Typically `GradientsParams::from_module(grads, &self.backbone)`.
    fn backbone_gradients(&self, grads: &mut B::Gradients) -> GradientsParams {
        let _ = grads;
        GradientsParams::new()
    }
}

impl<B: AutodiffBackend> TrainModel<B> for EmbeddingModel<B> {
    fn backbone_gradients(&self, grads: &mut B::Gradients) -> GradientsParams {
        GradientsParams::from_module(grads, &self.backbone)
    }
}
