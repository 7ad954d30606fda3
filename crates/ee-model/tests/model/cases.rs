// The cases of `tests/model.rs`, compiled there once per backend: this file is
// `include!`d into a module that defines `B`, the backend under test.

use crate::support;
use burn::backend::Autodiff;
use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::{s, Distribution, ElementConversion, Tensor};
use ee_model::{
    xavier_bound, BasicConv2dConfig, EmbeddingHeadConfig, EmbeddingModel,
    EmbeddingModelConfig,
};
use support::max_abs_diff;

type AD = Autodiff<B>;

fn row_norms(x: Tensor<B, 2>) -> Vec<f32> {
    x.square()
        .sum_dim(1)
        .sqrt()
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn head_output_has_unit_norm() {
    let device = Default::default();
    for hidden_dim in [None, Some(32)] {
        let head = EmbeddingHeadConfig::new()
            .with_in_features(48)
            .with_embed_dim(16)
            .with_hidden_dim(hidden_dim)
            .init::<B>(&device)
            .unwrap();
        let features = Tensor::<B, 2>::random([5, 48], Distribution::Normal(0.0, 3.0), &device);
        let embeddings = head.forward(features);
        assert_eq!(embeddings.dims(), [5, 16]);
        for norm in row_norms(embeddings) {
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
    }
    // A zero row stays zero (the epsilon keeps it finite).
    let head = EmbeddingHeadConfig::new()
        .with_in_features(4)
        .with_embed_dim(3)
        .init::<B>(&device)
        .unwrap();
    let out = head.forward(Tensor::zeros([1, 4], &device));
    assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![0.0; 3]);
}

#[test]
fn head_init_is_mxnet_xavier_with_zero_bias() {
    let device = Default::default();
    let config = EmbeddingHeadConfig::new().with_seed(7);
    let head = config.init::<B>(&device).unwrap();
    let weights = head
        .embedding
        .weight
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(head.embedding.weight.dims(), [1024, 512]);
    let bound = xavier_bound(1024, 512) as f32; // sqrt(2 / 768)
    let max = weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    assert!(
        max <= bound && max > 0.99 * bound,
        "max {max} bound {bound}"
    );
    let mean = weights.iter().sum::<f32>() / weights.len() as f32;
    let var = weights.iter().map(|w| (w - mean).powi(2)).sum::<f32>() / weights.len() as f32;
    assert!(mean.abs() < 1e-3);
    // U(-a, a) has variance a^2 / 3.
    assert!(
        (var / (bound * bound / 3.0) - 1.0).abs() < 0.01,
        "var {var}"
    );
    let bias = head
        .embedding
        .bias
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(bias.iter().all(|&b| b == 0.0));

    // The seed decides the weights, on any backend.
    let again = config.init::<B>(&device).unwrap().embedding.weight.val();
    assert_eq!(again.into_data().to_vec::<f32>().unwrap(), weights);
    let other = config
        .with_seed(8)
        .init::<B>(&device)
        .unwrap()
        .embedding
        .weight
        .val();
    assert_ne!(other.into_data().to_vec::<f32>().unwrap(), weights);
}

#[test]
fn batchnorm_uses_batch_statistics_in_training_and_running_ones_in_eval() {
    let device = Default::default();
    let layer = BasicConv2dConfig::new(2, 3, 1).init::<AD>(&device);
    let x = Tensor::<AD, 4>::random([4, 2, 3, 3], Distribution::Normal(1.0, 2.0), &device);
    let z = layer.conv.forward(x.clone()); // [4, 3, 3, 3], before BatchNorm
    let y = layer.forward(x.clone());

    // Training: per channel over (batch, h, w), biased variance, gamma 1, beta 0, eps 1e-3.
    let zc = z.clone().swap_dims(0, 1).reshape([3, 36]);
    let mean = zc.clone().mean_dim(1); // [3, 1]
    let var = (zc.clone() - mean.clone()).square().mean_dim(1);
    let expected = ((zc - mean.clone()) / (var.clone() + 1e-3).sqrt())
        .clamp_min(0.0)
        .reshape([3, 4, 3, 3])
        .swap_dims(0, 1);
    assert!(max_abs_diff(y.inner(), expected.inner()) < 1e-5);

    // Running statistics moved by momentum 0.1 from (0, 1) (`value()` may lag one update).
    let running_mean = layer.bn.running_mean.value_sync().inner();
    let running_var = layer.bn.running_var.value_sync().inner();
    let want_mean = mean.clone().inner().reshape([3]) * 0.1;
    let want_var = var.inner().reshape([3]) * 0.1 + 0.9;
    assert!(max_abs_diff(running_mean.clone(), want_mean) < 1e-6);
    assert!(max_abs_diff(running_var.clone(), want_var) < 1e-6);

    // Eval: running statistics, independent of the batch.
    let eval = layer.valid();
    let xi = x.inner();
    let zi = z.inner();
    let y_eval = eval.forward(xi.clone());
    let shape = [1, 3, 1, 1];
    let expected = ((zi - running_mean.reshape(shape))
        / (running_var.reshape(shape) + 1e-3).sqrt())
    .clamp_min(0.0);
    assert!(max_abs_diff(y_eval.clone(), expected) < 1e-5);
    let first_alone = eval.forward(xi.slice(s![0..1]));
    assert!(max_abs_diff(first_alone, y_eval.slice(s![0..1])) < 1e-6);
}

#[test]
fn full_model_train_mode_depends_on_the_batch_and_eval_does_not() {
    let device = Default::default();
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .init::<AD>(&device)
        .unwrap();
    let a = Tensor::<AD, 4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<AD, 4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let c = Tensor::<AD, 4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let ab = model.forward(Tensor::cat(vec![a.clone(), b], 0)).inner();
    let ac = model
        .forward(Tensor::cat(vec![a.clone(), c.clone()], 0))
        .inner();
    assert!(max_abs_diff(ab.slice(s![0..1]), ac.slice(s![0..1])) > 1e-4);

    let eval = model.valid();
    let (a, c) = (a.inner(), c.inner());
    let alone = eval.forward(a.clone());
    let with_c = eval.forward(Tensor::cat(vec![a, c], 0));
    assert!(max_abs_diff(alone, with_c.slice(s![0..1])) < 1e-5);
}

#[test]
fn gradients_split_between_backbone_and_head() {
    let device = Default::default();
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .init::<AD>(&device)
        .unwrap();
    let images = Tensor::<AD, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let embeddings = model.forward(images);
    let loss = embeddings.clone().slice(s![0..1]).sum() - embeddings.slice(s![1..2]).sum();
    let mut grads = loss.backward();
    let backbone = GradientsParams::from_module(&mut grads, &model.backbone);
    let head = GradientsParams::from_module(&mut grads, &model.head);
    // 57 convs + 57 x (gamma, beta); the head's weight and bias.
    assert_eq!(backbone.len(), 57 * 3);
    assert_eq!(head.len(), 2);
    let g = head.get::<B, 2>(model.head.embedding.weight.id).unwrap();
    let largest: f32 = g.abs().max().into_scalar().elem();
    assert!(largest > 0.0);
}

#[test]
fn bad_configs_are_clear_errors() {
    let device = Default::default();
    for (bad, field) in [
        (EmbeddingModelConfig::new().with_embed_dim(0), "embed_dim"),
        (
            EmbeddingModelConfig::new().with_bn_momentum(1.5),
            "bn_momentum",
        ),
        (
            EmbeddingModelConfig::new().with_bn_epsilon(0.0),
            "bn_epsilon",
        ),
        (
            EmbeddingModelConfig::new().with_hidden_dim(Some(0)),
            "hidden_dim",
        ),
    ] {
        let err = bad.init::<B>(&device).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

/// Every conv weight of a freshly built backbone, flattened.
fn conv_weights(backbone: &ee_model::GoogLeNet<B>) -> Vec<f32> {
    let mut weights = Vec::new();
    for conv in [&backbone.conv1, &backbone.conv2, &backbone.conv3] {
        weights.extend(conv.conv.weight.val().into_data().to_vec::<f32>().unwrap());
    }
    let block = &backbone.inception4c;
    for conv in [
        &block.branch1,
        &block.branch2[1],
        &block.branch3[1],
        &block.branch4[0],
    ] {
        weights.extend(conv.conv.weight.val().into_data().to_vec::<f32>().unwrap());
    }
    weights
}

fn mean_std(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn torchvision_init_is_the_default_seeded_truncated_normal() {
    let device = Default::default();
    let config = ee_model::GoogLeNetConfig::new();
    assert_eq!(config.init, ee_model::BackboneInit::Torchvision);
    let backbone = config.init::<B>(&device).unwrap();
    let weights = conv_weights(&backbone);
    let (mean, std) = mean_std(&weights);
    assert!(mean.abs() < 5e-4, "mean {mean}");
    assert!(
        (std - ee_model::TORCHVISION_INIT_STD).abs() < 2e-4,
        "std {std}"
    );
    assert!(
        weights.iter().all(|w| w.abs() < 0.08),
        "no draw past 8 sigma"
    );
    // BatchNorm starts at 1 / 0.
    let gamma = backbone
        .conv1
        .bn
        .gamma
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let beta = backbone
        .conv1
        .bn
        .beta
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(gamma.iter().all(|&g| g == 1.0) && beta.iter().all(|&b| b == 0.0));
    // Seeded: the same seed draws the same weights, another seed others.
    let again = conv_weights(&ee_model::GoogLeNetConfig::new().init::<B>(&device).unwrap());
    assert_eq!(weights, again);
    let other = conv_weights(
        &ee_model::GoogLeNetConfig::new()
            .with_seed(1)
            .init::<B>(&device)
            .unwrap(),
    );
    assert_ne!(weights, other);
}

#[test]
fn kaiming_init_keeps_burns_uniform_bound() {
    let device = Default::default();
    let backbone = ee_model::GoogLeNetConfig::new()
        .with_init(ee_model::BackboneInit::Kaiming)
        .init::<B>(&device)
        .unwrap();
    // conv1: fan_in = 3 * 7 * 7, U(+-1/sqrt(fan_in)) has std bound / sqrt(3).
    let conv1 = backbone
        .conv1
        .conv
        .weight
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let bound = 1.0 / (147.0f64).sqrt();
    let (_, std) = mean_std(&conv1);
    assert!(conv1.iter().all(|w| (w.abs() as f64) <= bound + 1e-6));
    assert!((std - bound / 3f64.sqrt()).abs() < 0.1 * bound, "std {std}");
}

#[test]
fn model_config_passes_init_and_seed_to_the_backbone() {
    let config = EmbeddingModelConfig::new()
        .with_init(Some(ee_model::BackboneInit::Kaiming))
        .with_seed(9);
    let backbone = config.backbone_config();
    assert_eq!(backbone.init, ee_model::BackboneInit::Kaiming);
    assert_eq!(backbone.seed, 9);
    // Configs written before `init` existed still load, with the default.
    let old = r#"{"embed_dim": 64, "pretrained": null, "transform_input": false, "hidden_dim": null, "bn_epsilon": 0.001, "bn_momentum": 0.1, "seed": 0}"#;
    let loaded = EmbeddingModelConfig::load_binary(old.as_bytes()).unwrap();
    assert_eq!(loaded.init, None);
    assert_eq!(
        loaded.backbone_config().init,
        ee_model::BackboneInit::Torchvision
    );
}

/// The PyTorch fixture of `tests/support/googlenet_parity.py`: `EE_GOOGLENET_PARITY_DIR`, or
/// `target/parity/googlenet` of the workspace. `None` (the test says it skipped) when absent,
/// unless `EE_REQUIRE_TORCH_FIXTURE=1` (set by `cargo xtask test --backend tch`, so by CI).
fn googlenet_fixture() -> Option<std::path::PathBuf> {
    support::torch_fixture(
        "EE_GOOGLENET_PARITY_DIR",
        "googlenet",
        "io.safetensors",
        "cargo xtask fixtures (or python crates/ee-model/tests/support/googlenet_parity.py with \
         torch + torchvision)",
    )
}

/// Largest absolute difference relative to the reference's largest magnitude.
fn relative_gap<const D: usize>(got: Tensor<B, D>, want: Tensor<B, D>) -> f32 {
    let scale: f32 = want.clone().abs().max().into_scalar().elem();
    max_abs_diff(got, want) / scale
}

fn fixture_tensor<const D: usize>(entry: &support::Entry) -> Tensor<B, D> {
    Tensor::from_data(
        burn::tensor::TensorData::new(entry.values.clone(), entry.shape.clone()),
        &Default::default(),
    )
}

#[test]
fn googlenet_matches_torchvision() {
    let Some(dir) = googlenet_fixture() else {
        return;
    };
    let io = support::read_safetensors(&dir.join("io.safetensors"), "googlenet_parity.py");
    let device = Default::default();
    // One PyTorch state dict: torchvision's GoogLeNet keys + `embedding.weight` / `.bias`.
    let config = EmbeddingModelConfig::new()
        .with_embed_dim(64)
        .with_pretrained(Some(
            dir.join("googlenet_embedding.pth").display().to_string(),
        ));
    let (model, report) = config.init_with_report::<B>(&device).unwrap();
    let report = report.unwrap();
    assert_eq!(report.head.as_deref(), Some("embedding"));
    assert_eq!(report.applied, 57 * 5);
    assert!(model.backbone.transform_input());

    // Eval mode (running statistics). For scale: PyTorch's float32 ResNet-50 forward differs
    // from its float64 one by 4.5e-5 relative (eval) and 2.2e-4 (train).
    let images = fixture_tensor::<4>(&io["images"]);
    let features = model.backbone.forward(images.clone());
    let gap = relative_gap(features, fixture_tensor(&io["eval_features"]));
    println!("eval_features: relative max gap {gap:.2e}");
    assert!(gap < 2e-4, "eval_features: {gap}");
    let embeddings = model.forward(images.clone());
    let gap = relative_gap(embeddings, fixture_tensor(&io["eval_embeddings"]));
    println!("eval_embeddings: relative max gap {gap:.2e}");
    assert!(gap < 2e-4, "eval_embeddings: {gap}");

    // Training mode: batch statistics, and the running means move as PyTorch's.
    let model: EmbeddingModel<AD> = config.init(&device).unwrap();
    let features = model
        .backbone
        .forward(Tensor::<AD, 4>::from_inner(images))
        .inner();
    let gap = relative_gap(features, fixture_tensor(&io["train_features"]));
    println!("train_features: relative max gap {gap:.2e}");
    assert!(gap < 1e-3, "train_features: {gap}");
    let ee_model::Backbone::GoogLeNet(net) = &model.backbone else {
        panic!("a GoogLeNet config builds GoogLeNet");
    };
    for (name, bn) in [
        ("conv1.bn", &net.conv1.bn),
        ("inception3a.branch4.1.bn", &net.inception3a.branch4[0].bn),
        ("inception5b.branch2.1.bn", &net.inception5b.branch2[1].bn),
    ] {
        let want = fixture_tensor::<1>(&io[&format!("train.{name}.running_mean")]);
        let gap = relative_gap(bn.running_mean.value_sync().inner(), want);
        println!("{name}.running_mean after the train forward: relative max gap {gap:.2e}");
        assert!(gap < 1e-4, "{name}: {gap}");
        // PyTorch updates the running variance with the unbiased batch variance, burn (and
        // MXNet, the reference) with the biased one: torch's update, re-done with the batch
        // variance scaled by (n - 1) / n, must be ours.
        let torch_after = fixture_tensor::<1>(&io[&format!("train.{name}.running_var")]);
        let before = fixture_tensor::<1>(&io[&format!("train.{name}.running_var_before")]);
        let n = io[&format!("train.{name}.count")].values[0] as f64;
        let m = 0.1;
        let unbiased = (torch_after.clone() - before.clone() * (1.0 - m)) / m;
        let want = before * (1.0 - m) + unbiased * (m * (n - 1.0) / n);
        let ours = bn.running_var.value_sync().inner();
        let gap = relative_gap(ours.clone(), want);
        let torch_gap = relative_gap(ours, torch_after);
        println!(
            "{name}.running_var after the train forward (n = {n}): relative max gap {gap:.2e} \
             to the biased update, {torch_gap:.2e} to PyTorch's"
        );
        assert!(gap < 1e-4, "{name}: {gap}");
        if n < 100.0 {
            // Few values per channel: the two updates differ visibly (8 / 7 at 2 x 2 x 2).
            assert!(torch_gap > 1e-3, "{name}: {torch_gap}");
        }
    }
}

#[test]
fn conv2d_gradients_equal_burns_own_convolution() {
    // ee_model::conv2d takes its own path on flex (host kernels) and on tch (torch's
    // backward); layer.forward is burn's. Same values, same gradients, strided and padded,
    // with and without bias, and for an input that needs no gradient (the images).
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    let device = Default::default();
    <AD as burn::tensor::backend::Backend>::seed(&device, 3);
    for (stride, padding, bias, input_grad) in
        [(1, 1, true, true), (2, 3, false, true), (2, 0, true, false)]
    {
        let layer = Conv2dConfig::new([3, 5], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(bias)
            .init::<AD>(&device);
        let x = Tensor::<B, 4>::random([2, 3, 11, 9], Distribution::Normal(0.0, 1.0), &device);
        let dy_seed =
            Tensor::<B, 4>::random([2, 5, 11, 11], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = Tensor::<AD, 4>::from_inner(x.clone());
            let x = if input_grad { x.require_grad() } else { x };
            let y = if ours {
                ee_model::conv2d(&layer, x.clone())
            } else {
                layer.forward(x.clone())
            };
            let [n, c, h, w] = y.dims();
            let dy = Tensor::<AD, 4>::from_inner(dy_seed.clone().slice([0..n, 0..c, 0..h, 0..w]));
            let grads = (y.clone() * dy).sum().backward();
            let dx = input_grad.then(|| x.grad(&grads).unwrap());
            let dw = layer.weight.val().grad(&grads).unwrap();
            (y.inner(), dx, dw)
        };
        let (y_ours, dx_ours, dw_ours) = run(true);
        let (y_burn, dx_burn, dw_burn) = run(false);
        let case = format!("stride {stride}, padding {padding}, bias {bias}");
        assert!(max_abs_diff(y_ours, y_burn) < 1e-4, "{case}: output");
        assert!(
            max_abs_diff(dw_ours, dw_burn) < 1e-3,
            "{case}: weight gradient"
        );
        if let (Some(a), Some(b)) = (dx_ours, dx_burn) {
            assert!(max_abs_diff(a, b) < 1e-4, "{case}: input gradient");
        }
    }
}

#[test]
fn conv_bn_relu_equals_its_three_layers() {
    // ee_model::conv_bn_relu is one autodiff node on tch in training mode (torch's backward
    // for all three layers); here against conv2d, batch_norm and relu called one by one:
    // outputs, all four gradients, and the running statistics it updates.
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    use burn::tensor::activation::relu;
    let device = Default::default();
    <AD as burn::tensor::backend::Backend>::seed(&device, 5);
    for (stride, padding, input_grad) in [(1, 1, true), (2, 0, false)] {
        let conv = Conv2dConfig::new([3, 6], [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(false)
            .init::<AD>(&device);
        // Non-trivial affine parameters, so that their gradients and ReLU's cut both matter.
        let gamma = Tensor::<AD, 1>::random([6], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<AD, 1>::random([6], Distribution::Normal(0.0, 0.5), &device);
        // A fresh layer per run: clones of a BatchNorm share its running statistics.
        let new_bn = || burn::nn::BatchNorm {
            gamma: burn::module::Param::from_tensor(gamma.clone()),
            beta: burn::module::Param::from_tensor(beta.clone()),
            ..BatchNormConfig::new(6)
                .with_momentum(0.3)
                .init::<AD>(&device)
        };
        let x = Tensor::<B, 4>::random([4, 3, 10, 9], Distribution::Normal(0.0, 1.0), &device);
        let dy_seed =
            Tensor::<B, 4>::random([4, 6, 10, 9], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let bn = new_bn();
            let x = Tensor::<AD, 4>::from_inner(x.clone());
            let x = if input_grad { x.require_grad() } else { x };
            let y = if fused {
                ee_model::conv_bn_relu(&conv, &bn, x.clone())
            } else {
                relu(ee_model::batch_norm(
                    &bn,
                    ee_model::conv2d(&conv, x.clone()),
                ))
            };
            let [n, c, h, w] = y.dims();
            let dy = Tensor::<AD, 4>::from_inner(dy_seed.clone().slice([0..n, 0..c, 0..h, 0..w]));
            let grads = (y.clone() * dy).sum().backward();
            let dx = input_grad.then(|| x.grad(&grads).unwrap());
            let dw = conv.weight.val().grad(&grads).unwrap();
            let dgamma = bn.gamma.val().grad(&grads).unwrap();
            let dbeta = bn.beta.val().grad(&grads).unwrap();
            let running = (
                bn.running_mean.value().inner(),
                bn.running_var.value().inner(),
            );
            (y.inner(), dx, dw, dgamma, dbeta, running)
        };
        let (y_f, dx_f, dw_f, dg_f, db_f, (rm_f, rv_f)) = run(true);
        let (y_s, dx_s, dw_s, dg_s, db_s, (rm_s, rv_s)) = run(false);
        let case = format!("stride {stride}, padding {padding}");
        let zeros: f32 = y_s
            .clone()
            .lower_equal_elem(0.0)
            .float()
            .mean()
            .into_scalar()
            .elem();
        assert!(
            zeros > 0.2 && zeros < 0.8,
            "{case}: ReLU cuts {zeros} of the outputs"
        );
        assert!(max_abs_diff(y_f, y_s) < 1e-4, "{case}: output");
        assert!(max_abs_diff(dw_f, dw_s) < 1e-3, "{case}: weight gradient");
        assert!(max_abs_diff(dg_f, dg_s) < 1e-3, "{case}: gamma gradient");
        assert!(max_abs_diff(db_f, db_s) < 1e-3, "{case}: beta gradient");
        assert!(max_abs_diff(rm_f, rm_s) < 1e-5, "{case}: running mean");
        assert!(max_abs_diff(rv_f, rv_s) < 1e-5, "{case}: running variance");
        if let (Some(a), Some(b)) = (dx_f, dx_s) {
            assert!(max_abs_diff(a, b) < 1e-4, "{case}: input gradient");
        }
    }
}

#[test]
fn eval_forward_reads_nothing_back_off_flex() {
    // Only Flex's host kernels may copy tensors to the host (its tensors live there); on a
    // GPU backend each copy is a device-to-host transfer and a sync. GoogLeNet (convolution,
    // BatchNorm, both max-pool kinds) and the head in evaluation mode.
    let device = Default::default();
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .with_seed(4)
        .init::<B>(&device)
        .unwrap();
    let images = Tensor::<B, 4>::random([1, 3, 32, 32], Distribution::Default, &device);
    let before = ee_model::host_reads();
    let embeddings = model.forward(images);
    let reads = ee_model::host_reads() - before;
    assert_eq!(embeddings.dims(), [1, 8]);
    let on_flex = std::any::TypeId::of::<B>() == std::any::TypeId::of::<burn::backend::Flex>();
    let host_kernels = std::env::var(ee_model::conv::CPU_KERNELS_ENV).as_deref() != Ok("burn");
    if on_flex && host_kernels {
        // The counter is wired: Flex's eval BatchNorm reads its four parameters per layer.
        assert!(reads >= 4, "{reads} host reads on Flex");
    } else if !on_flex {
        assert_eq!(
            reads,
            0,
            "{} copied {reads} tensors to the host",
            std::any::type_name::<B>()
        );
    }
}
