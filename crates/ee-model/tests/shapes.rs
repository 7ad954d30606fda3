//! Output shapes of the full network at the reference's sizes.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use ee_model::{global_avg_pool, EmbeddingModelConfig};

#[test]
fn shapes_at_227_and_224() {
    let device = Default::default();
    let model = EmbeddingModelConfig::new().init::<Flex>(&device).unwrap();
    assert_eq!(model.embed_dim(), 512);

    // 227 -> conv1 114 -> 57 -> 28 -> 14 -> 7
    let images = Tensor::<Flex, 4>::random([1, 3, 227, 227], Distribution::Default, &device);
    let features = model.backbone.forward(images);
    assert_eq!(features.dims(), [1, 1024, 7, 7]);
    assert_eq!(model.backbone.feature_map_size(227, 227), Some([7, 7]));
    let embeddings = model.head.forward(global_avg_pool(features));
    assert_eq!(embeddings.dims(), [1, 512]);

    // 224 -> 112 -> 56 -> 28 -> 14 -> 7, through the full forward.
    let images = Tensor::<Flex, 4>::random([1, 3, 224, 224], Distribution::Default, &device);
    assert_eq!(model.forward(images).dims(), [1, 512]);
}

#[test]
fn non_square_and_small_inputs() {
    let device = Default::default();
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .init::<Flex>(&device)
        .unwrap();
    // conv1 then the four ceil-mode pools: 47 -> 24 -> 12 -> 6 -> 3 -> 2 and
    // 33 -> 17 -> 8 -> 4 -> 2 -> 1 (floor mode would give 47 -> .. -> 11 -> 5 -> 2 -> 1).
    let images = Tensor::<Flex, 4>::random([2, 3, 47, 33], Distribution::Default, &device);
    assert_eq!(model.backbone.feature_map_size(47, 33), Some([2, 1]));
    assert_eq!(model.backbone.forward(images).dims(), [2, 1024, 2, 1]);

    assert!(model.check_input([2, 3, 32, 32]).is_ok());
    let err = model.check_input([2, 1, 32, 32]).unwrap_err().to_string();
    assert!(err.contains("[2, 1, 32, 32]"), "{err}");
    assert!(model.check_input([0, 3, 32, 32]).is_err());
}
