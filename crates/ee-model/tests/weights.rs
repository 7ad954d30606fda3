//! Import of torchvision-keyed state dicts (safetensors and .pth written here) and the errors
//! for bad weight files.

mod support;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use ee_model::{EmbeddingModelConfig, GoogLeNetConfig, ModelError, WeightFormat};
use support::{
    max_abs_diff, random_state_dict, set_by_hand, torchvision_convs, torchvision_extras, write_pth,
    write_safetensors, StateDict,
};

type B = Flex;

/// Backbone tensors burn loads: 57 BasicConv2d x (conv weight + 4 BatchNorm tensors).
const BACKBONE_TENSORS: usize = 57 * 5;

fn full_file_dict(seed: u64) -> (StateDict, StateDict) {
    let backbone = random_state_dict(seed);
    let mut file = backbone.clone();
    file.extend(torchvision_extras());
    (backbone, file)
}

#[test]
fn torchvision_key_set_is_complete() {
    // 3 stem convs + 9 inceptions x 6 convs.
    assert_eq!(torchvision_convs().len(), 57);
    assert_eq!(random_state_dict(0).len(), BACKBONE_TENSORS);
}

/// Loads `path` into a fresh backbone and checks it computes what the same weights set
/// field by field compute (eval mode, so the running statistics matter too).
fn assert_import_matches_by_hand(
    path: &std::path::Path,
    backbone_dict: &StateDict,
    format: WeightFormat,
) {
    let device = Default::default();
    let config = GoogLeNetConfig::new();
    let (loaded, report) = config
        .init::<B>(&device)
        .unwrap()
        .load_torchvision(path)
        .unwrap();
    assert_eq!(report.format, format);
    assert_eq!(report.applied, BACKBONE_TENSORS);
    // aux/fc keys and the 57 batch counters were ignored, not loaded.
    assert_eq!(report.ignored.len(), 5 + 57, "{:?}", report.ignored);
    assert!(report.ignored.iter().any(|k| k == "fc.weight"));
    assert!(report
        .ignored
        .iter()
        .any(|k| k == "conv1.bn.num_batches_tracked"));

    let by_hand = set_by_hand(config.init::<B>(&device).unwrap(), backbone_dict, &device);
    // A spot check of one remapped tensor, then the whole network.
    let key = "inception4c.branch4.1.bn.running_var";
    let want = &backbone_dict[key].values;
    let got = loaded.inception4c.branch4[0].bn.running_var.value();
    assert_eq!(got.into_data().to_vec::<f32>().unwrap(), *want);

    // 47 px gives a 2x2 feature map: every layer and both pool regimes take part.
    let images = Tensor::<B, 4>::random([2, 3, 47, 47], Distribution::Normal(0.0, 1.0), &device);
    let a = loaded.forward(images.clone());
    let b = by_hand.forward(images.clone());
    assert_eq!(a.dims(), [2, 1024, 2, 2]);
    assert!(max_abs_diff(a.clone(), b) < 1e-6);
    // And the weights really changed something: a random backbone disagrees.
    let random = config.init::<B>(&device).unwrap();
    assert!(max_abs_diff(a, random.forward(images)) > 1e-2);
}

#[test]
fn safetensors_import_reproduces_weights_set_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (backbone, file) = full_file_dict(1);
    let path = dir.path().join("googlenet.safetensors");
    write_safetensors(&path, &file, true);
    assert_import_matches_by_hand(&path, &backbone, WeightFormat::Safetensors);
}

#[test]
fn pth_import_reproduces_weights_set_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (backbone, file) = full_file_dict(2);
    let path = dir.path().join("googlenet-test.pth");
    write_pth(&path, &file, true);
    assert_import_matches_by_hand(&path, &backbone, WeightFormat::Pytorch);
}

#[test]
fn pretrained_in_config_loads_and_turns_on_transform_input() {
    let dir = tempfile::tempdir().unwrap();
    let (backbone, file) = full_file_dict(3);
    let path = dir.path().join("w.pth");
    write_pth(&path, &file, false);
    let device = Default::default();

    let config = EmbeddingModelConfig::new()
        .with_embed_dim(16)
        .with_pretrained(Some(path.to_string_lossy().into_owned()));
    let (model, report) = config.init_with_report::<B>(&device).unwrap();
    assert_eq!(report.unwrap().applied, BACKBONE_TENSORS);
    assert!(model.backbone.transform_input());
    // The flag is what torchvision does: re-normalise, then the plain network.
    let by_hand = set_by_hand(
        GoogLeNetConfig::new().init::<B>(&device).unwrap(),
        &backbone,
        &device,
    );
    let images = Tensor::<B, 4>::random([1, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let expected = by_hand.forward(ee_model::apply_transform_input(images.clone()));
    assert!(max_abs_diff(model.backbone.forward(images), expected) < 1e-6);

    // Explicitly off for weights that expect plain ImageNet normalisation.
    let model = config
        .clone()
        .with_transform_input(Some(false))
        .init::<B>(&device)
        .unwrap();
    assert!(!model.backbone.transform_input());
    // No weights, no transform by default.
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(16)
        .init::<B>(&device)
        .unwrap();
    assert!(!model.backbone.transform_input());
}

fn import_error(file: &StateDict) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write_safetensors(&path, file, false);
    let err = GoogLeNetConfig::new()
        .init::<B>(&Default::default())
        .unwrap()
        .load_torchvision(&path)
        .unwrap_err();
    assert!(matches!(err, ModelError::WeightMismatch { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn missing_unexpected_and_misshaped_keys_are_listed() {
    let (_, mut file) = full_file_dict(4);
    file.remove("inception5b.branch3.1.bn.running_mean");
    file.remove("conv2.conv.weight");
    let mut extra = file["conv1.bn.bias"].clone();
    file.insert("conv1.extra.bias".into(), extra.clone());
    extra.shape = vec![63];
    extra.values.pop();
    file.insert("conv1.bn.bias".into(), extra);
    let err = import_error(&file);
    assert!(err.contains("missing (2)"), "{err}");
    assert!(
        err.contains("inception5b.branch3.1.bn.running_mean"),
        "{err}"
    );
    assert!(err.contains("conv2.conv.weight"), "{err}");
    assert!(err.contains("unexpected (1): conv1.extra.bias"), "{err}");
    assert!(err.contains("wrong shape (1)"), "{err}");
    assert!(
        err.contains("conv1.bn.bias: expected [64], found [63]"),
        "{err}"
    );
    // Ignored keys are never reported.
    assert!(!err.contains("fc.weight") && !err.contains("aux1"), "{err}");
}

#[test]
fn a_file_of_another_network_lists_every_key() {
    let mut file = StateDict::new();
    file.insert(
        "layer1.0.conv1.weight".into(),
        support::Entry {
            values: vec![0.0; 4],
            shape: vec![4],
        },
    );
    let err = import_error(&file);
    assert!(
        err.contains(&format!("missing ({BACKBONE_TENSORS})")),
        "{err}"
    );
    assert!(err.contains("more)"), "long lists are cut: {err}");
    assert!(
        err.contains("unexpected (1): layer1.0.conv1.weight"),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let load = |path: &std::path::Path| {
        GoogLeNetConfig::new()
            .init::<B>(&device)
            .unwrap()
            .load_torchvision(path)
            .unwrap_err()
    };

    let missing = dir.path().join("nope.pth");
    let err = load(&missing);
    assert!(matches!(err, ModelError::FileNotFound { .. }));
    assert!(err.to_string().contains("nope.pth"));

    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "these are not weights").unwrap();
    let err = load(&text).to_string();
    assert!(
        err.contains("notes.pth") && err.contains("neither"),
        "{err}"
    );

    // A zip that is not a state dict.
    let zipped = dir.path().join("other.pth");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
        zip.start_file(
            "readme.txt",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, b"hello").unwrap();
        zip.finish().unwrap();
    }
    let err = load(&zipped);
    assert!(
        matches!(err, ModelError::UnreadableWeights { .. }),
        "{err:?}"
    );

    // A truncated safetensors file.
    let (_, file) = full_file_dict(5);
    let good = dir.path().join("good.safetensors");
    write_safetensors(&good, &file, false);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&truncated);
    assert!(
        matches!(err, ModelError::UnreadableWeights { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated.safetensors"));

    // A pretrained path that does not exist is caught by the config check.
    let err = EmbeddingModelConfig::new()
        .with_pretrained(Some(missing.to_string_lossy().into_owned()))
        .init::<B>(&device)
        .unwrap_err();
    assert!(matches!(err, ModelError::FileNotFound { .. }));
}

/// A head `Linear(1024, dim)` as PyTorch stores it: weight `[dim, 1024]` (`[out, in]`), bias.
fn torch_head(prefix: &str, dim: usize, seed: u64) -> StateDict {
    use rand::distr::{Distribution as _, Uniform};
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let uniform = Uniform::new(-0.05f32, 0.05).unwrap();
    let mut draw = |n: usize| (0..n).map(|_| uniform.sample(&mut rng)).collect::<Vec<_>>();
    let mut dict = StateDict::new();
    dict.insert(
        format!("{prefix}.weight"),
        support::Entry {
            values: draw(dim * 1024),
            shape: vec![dim, 1024],
        },
    );
    dict.insert(
        format!("{prefix}.bias"),
        support::Entry {
            values: draw(dim),
            shape: vec![dim],
        },
    );
    dict
}

/// What the torch model computes from pooled features `x [n, 1024]`: `x W^T + b`, then L2.
fn torch_head_forward(dict: &StateDict, prefix: &str, x: &[f32], n: usize) -> Vec<f32> {
    let w = &dict[&format!("{prefix}.weight")];
    let b = &dict[&format!("{prefix}.bias")].values;
    let (dim, features) = (w.shape[0], w.shape[1]);
    let mut out = vec![0.0f64; n * dim];
    for r in 0..n {
        for o in 0..dim {
            let mut acc = b[o] as f64;
            for i in 0..features {
                acc += x[r * features + i] as f64 * w.values[o * features + i] as f64;
            }
            out[r * dim + o] = acc;
        }
        let norm = out[r * dim..(r + 1) * dim]
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        for v in &mut out[r * dim..(r + 1) * dim] {
            *v /= (norm * norm + 1e-10).sqrt().max(f64::MIN_POSITIVE);
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[test]
fn a_pytorch_embedding_model_loads_backbone_and_transposed_head() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    for (format, prefix, head_key) in [
        (WeightFormat::Pytorch, "embedding", None),
        (WeightFormat::Safetensors, "embedding", None),
        // A renamed head, and torchvision's own `fc` replaced by the embedding layer.
        (
            WeightFormat::Pytorch,
            "model.embedder",
            Some("model.embedder"),
        ),
        (WeightFormat::Safetensors, "fc", Some("fc")),
    ] {
        let (backbone, mut file) = full_file_dict(7);
        file.retain(|k, _| !k.starts_with("fc."));
        let head = torch_head(prefix, 24, 8);
        file.extend(head.clone());
        let path = dir.path().join(format!("pml-{prefix}-{format:?}"));
        match format {
            WeightFormat::Pytorch => write_pth(&path, &file, true),
            WeightFormat::Safetensors => write_safetensors(&path, &file, true),
        }
        let config = EmbeddingModelConfig::new()
            .with_embed_dim(24)
            .with_head_key(head_key.map(str::to_string))
            .with_pretrained(Some(path.to_string_lossy().into_owned()));
        let (model, report) = config.init_with_report::<B>(&device).unwrap();
        let report = report.unwrap();
        assert_eq!(report.head.as_deref(), Some(prefix), "{format:?}");
        assert_eq!(report.applied, BACKBONE_TENSORS);
        // burn's [in, out] is torch's [out, in] transposed.
        assert_eq!(model.head.embedding.weight.dims(), [1024, 24]);

        // The backbone is the file's; the embeddings are the torch head's on its features.
        let images =
            Tensor::<B, 4>::random([2, 3, 40, 40], Distribution::Normal(0.0, 1.0), &device);
        let by_hand = set_by_hand(
            GoogLeNetConfig::new()
                .with_transform_input(true)
                .init::<B>(&device)
                .unwrap(),
            &backbone,
            &device,
        );
        let pooled = ee_model::global_avg_pool(by_hand.forward(images.clone()));
        let expected = torch_head_forward(
            &head,
            prefix,
            &pooled.into_data().to_vec::<f32>().unwrap(),
            2,
        );
        let got = model.forward(images).into_data().to_vec::<f32>().unwrap();
        let gap = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(gap < 1e-5, "{format:?} {prefix}: gap {gap}");
    }
}

#[test]
fn a_backbone_only_file_keeps_the_initialised_head_and_bad_heads_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let (_, file) = full_file_dict(9);
    let path = dir.path().join("backbone.pth");
    write_pth(&path, &file, false);
    let pretrained = Some(path.to_string_lossy().into_owned());
    let config = EmbeddingModelConfig::new()
        .with_embed_dim(24)
        .with_pretrained(pretrained.clone());
    let (model, report) = config.init_with_report::<B>(&device).unwrap();
    assert_eq!(report.unwrap().head, None);
    let fresh = EmbeddingModelConfig::new()
        .with_embed_dim(24)
        .init::<B>(&device)
        .unwrap();
    assert!(
        max_abs_diff(
            model.head.embedding.weight.val(),
            fresh.head.embedding.weight.val()
        ) == 0.0
    );

    // Named explicitly, the head must be there.
    let err = config
        .clone()
        .with_head_key(Some("embedder".into()))
        .init::<B>(&device)
        .unwrap_err();
    assert!(matches!(err, ModelError::HeadMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("backbone.pth") && text.contains("embedder.weight"),
        "{text}"
    );

    // A head of another size: the shapes are said in torch's [out, in].
    let mut wrong = file.clone();
    wrong.extend(torch_head("embedding", 16, 1));
    let path = dir.path().join("wrong.safetensors");
    write_safetensors(&path, &wrong, false);
    let err = config
        .clone()
        .with_pretrained(Some(path.to_string_lossy().into_owned()))
        .init::<B>(&device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embedding.weight: expected [24, 1024], found [16, 1024]"),
        "{err}"
    );
    assert!(
        err.contains("embedding.bias: expected [24], found [16]"),
        "{err}"
    );

    // Without a file to read it from, `head_key` is a config error.
    let err = EmbeddingModelConfig::new()
        .with_head_key(Some("embedding".into()))
        .init::<B>(&device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head_key"), "{err}");
}
