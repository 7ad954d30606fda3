//! ResNet-50: output shapes, the torchvision layout (checked against torchvision's own key list,
//! `support/resnet50_keys.txt`), weight import from torchvision-keyed `.pth` and safetensors
//! files written here, import errors, init, training mode, and (ignored: it needs a fixture
//! made with PyTorch) parity with torchvision's forward.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{s, Distribution, ElementConversion, Tensor, TensorData};
use ee_model::{
    BackboneInit, ModelError, ResNet50, ResNet50Config, WeightFormat, RESNET50_FEATURES,
};
use rand::distr::{Distribution as _, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use support::{max_abs_diff, write_pth, write_safetensors, Entry, StateDict};

type B = Flex;
type AD = Autodiff<Flex>;

/// torchvision's `resnet50().state_dict()`: key, shape, dtype (written by
/// `support/resnet50_parity.py --keys`).
const TORCHVISION_KEYS: &str = include_str!("support/resnet50_keys.txt");

/// Tensors burn loads: 53 convolutions + 53 BatchNorms x 4.
const BACKBONE_TENSORS: usize = 53 + 53 * 4;

/// Parameters of torchvision's resnet50 (25,557,032) without fc (2048 x 1000 + 1000).
const BACKBONE_PARAMS: usize = 25_557_032 - 2048 * 1000 - 1000;

/// torchvision's keys and shapes, in its order.
fn torchvision_keys() -> Vec<(String, Vec<usize>, String)> {
    TORCHVISION_KEYS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let shape = match fields[1] {
                "-" => vec![],
                dims => dims.split(',').map(|d| d.parse().unwrap()).collect(),
            };
            (fields[0].to_string(), shape, fields[2].to_string())
        })
        .collect()
}

fn is_ignored(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with(".num_batches_tracked")
}

/// The backbone part of torchvision's key list: key -> shape.
fn backbone_shapes() -> BTreeMap<String, Vec<usize>> {
    torchvision_keys()
        .into_iter()
        .filter(|(key, _, _)| !is_ignored(key))
        .map(|(key, shape, dtype)| {
            assert_eq!(dtype, "float32", "{key}");
            (key, shape)
        })
        .collect()
}

/// Random values under torchvision's backbone keys: conv weights ~ U(+-sqrt(3 / fan_in)),
/// BatchNorm weights around 1, biases and running means around 0, running variances in
/// [0.5, 1.5]. With `with_fc`, torchvision's fc too (the batch counters are added by the
/// writers).
fn random_state_dict(seed: u64, with_fc: bool) -> StateDict {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut dict = StateDict::new();
    for (key, shape, _) in torchvision_keys() {
        if key.ends_with(".num_batches_tracked") || (!with_fc && is_ignored(&key)) {
            continue;
        }
        let count: usize = shape.iter().product();
        let (lo, hi) = if shape.len() == 4 {
            let bound = (3.0 / (shape[1] * shape[2] * shape[3]) as f32).sqrt();
            (-bound, bound)
        } else if key.ends_with(".running_var") {
            (0.5, 1.5)
        } else if key.ends_with(".running_mean") {
            (-0.2, 0.2)
        } else if key.ends_with(".bias") {
            (-0.1, 0.1)
        } else {
            (0.8, 1.2)
        };
        let uniform = Uniform::new(lo, hi).unwrap();
        let values = (0..count).map(|_| uniform.sample(&mut rng)).collect();
        dict.insert(key, Entry { values, shape });
    }
    dict
}

fn entry<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Entry {
    let shape = tensor.dims().to_vec();
    let values = tensor.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    Entry { values, shape }
}

fn put_conv<B: Backend>(dict: &mut StateDict, prefix: &str, conv: &Conv2d<B>) {
    assert!(conv.bias.is_none(), "{prefix} has a bias");
    dict.insert(format!("{prefix}.weight"), entry(conv.weight.val()));
}

fn put_bn<B: Backend>(dict: &mut StateDict, prefix: &str, bn: &BatchNorm<B>) {
    dict.insert(format!("{prefix}.weight"), entry(bn.gamma.val()));
    dict.insert(format!("{prefix}.bias"), entry(bn.beta.val()));
    dict.insert(
        format!("{prefix}.running_mean"),
        entry(bn.running_mean.value()),
    );
    dict.insert(
        format!("{prefix}.running_var"),
        entry(bn.running_var.value()),
    );
}

/// Every tensor of the backbone under the torchvision key it should have, read field by
/// field: what the import must have filled in.
fn by_field<B: Backend>(model: &ResNet50<B>) -> StateDict {
    let mut dict = StateDict::new();
    put_conv(&mut dict, "conv1", &model.conv1);
    put_bn(&mut dict, "bn1", &model.bn1);
    let layers = [&model.layer1, &model.layer2, &model.layer3, &model.layer4];
    for (l, layer) in layers.into_iter().enumerate() {
        for (b, block) in layer.iter().enumerate() {
            let p = format!("layer{}.{b}", l + 1);
            put_conv(&mut dict, &format!("{p}.conv1"), &block.conv1);
            put_bn(&mut dict, &format!("{p}.bn1"), &block.bn1);
            put_conv(&mut dict, &format!("{p}.conv2"), &block.conv2);
            put_bn(&mut dict, &format!("{p}.bn2"), &block.bn2);
            put_conv(&mut dict, &format!("{p}.conv3"), &block.conv3);
            put_bn(&mut dict, &format!("{p}.bn3"), &block.bn3);
            if let Some((conv, bn)) = &block.downsample {
                put_conv(&mut dict, &format!("{p}.downsample.0"), conv);
                put_bn(&mut dict, &format!("{p}.downsample.1"), bn);
            }
        }
    }
    dict
}

fn shapes(dict: &StateDict) -> BTreeMap<String, Vec<usize>> {
    dict.iter()
        .map(|(k, e)| (k.clone(), e.shape.clone()))
        .collect()
}

fn small_model<B: Backend>(device: &B::Device) -> ResNet50<B> {
    // burn's init is cheaper to draw than 23.5 M normals; the tests that use it load weights
    // or look at shapes only.
    ResNet50Config::new()
        .with_init(BackboneInit::Kaiming)
        .init::<B>(device)
        .unwrap()
}

#[test]
fn layout_is_torchvisions() {
    let device = Default::default();
    let model = small_model::<B>(&device);
    assert_eq!(shapes(&by_field(&model)), backbone_shapes());
    assert_eq!(backbone_shapes().len(), BACKBONE_TENSORS);
    // burn counts BatchNorm's running mean and variance as parameters too.
    let bn_channels: usize = backbone_shapes()
        .iter()
        .filter(|(key, _)| key.ends_with(".running_mean"))
        .map(|(_, shape)| shape[0])
        .sum();
    assert_eq!(model.num_params(), BACKBONE_PARAMS + 2 * bn_channels);
    // The key list has torchvision's extras too: fc and one batch counter per BatchNorm.
    let keys = torchvision_keys();
    assert_eq!(keys.len(), BACKBONE_TENSORS + 2 + 53);
    // v1.5: a layer's first block strides on its 3x3 convolution and on the shortcut.
    for (layer, stride) in [
        (&model.layer1, 1),
        (&model.layer2, 2),
        (&model.layer3, 2),
        (&model.layer4, 2),
    ] {
        let first = &layer[0];
        assert_eq!(first.conv1.stride, [1, 1]);
        assert_eq!(first.conv2.stride, [stride, stride]);
        assert_eq!(first.conv3.stride, [1, 1]);
        assert_eq!(
            first.downsample.as_ref().unwrap().0.stride,
            [stride, stride]
        );
        assert!(layer[1..].iter().all(|b| b.downsample.is_none()));
        assert!(layer
            .iter()
            .all(|b| b.conv2.stride == [1, 1] || b.conv2.stride == [2, 2]));
    }
    assert_eq!(model.conv1.stride, [2, 2]);
    let pool = &model.maxpool;
    assert_eq!(
        (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode),
        (3, 2, 1, false)
    );
    // BatchNorm: torchvision's epsilon and momentum.
    assert_eq!(model.bn1.epsilon, 1e-5);
    assert_eq!(model.layer4[2].bn3.momentum, 0.1);
}

#[test]
fn output_shapes() {
    let device = Default::default();
    let model = small_model::<B>(&device);
    let images = Tensor::<B, 4>::random([1, 3, 224, 224], Distribution::Default, &device);
    assert_eq!(model.forward(images).dims(), [1, RESNET50_FEATURES, 7, 7]);
    assert_eq!(model.feature_map_size(224, 224), Some([7, 7]));

    // Odd and non-square sizes: every stride-2 step rounds up, ceil(n / 32) in all.
    let images = Tensor::<B, 4>::random([2, 3, 65, 47], Distribution::Default, &device);
    assert_eq!(model.forward(images).dims(), [2, 2048, 3, 2]);
    let images = Tensor::<B, 4>::random([1, 3, 1, 33], Distribution::Default, &device);
    assert_eq!(model.forward(images).dims(), [1, 2048, 1, 2]);
    for n in 1..=300 {
        assert_eq!(
            model.feature_map_size(n, 7),
            Some([n.div_ceil(32), 1]),
            "{n}"
        );
    }
    assert_eq!(model.feature_map_size(0, 7), None);

    assert!(model.check_input([2, 3, 64, 64]).is_ok());
    assert!(model.check_input([1, 3, 1, 1]).is_ok());
    let err = model.check_input([2, 1, 64, 64]).unwrap_err();
    assert!(matches!(err, ModelError::BadInput { .. }));
    assert!(err.to_string().contains("[2, 1, 64, 64]"), "{err}");
    assert!(err.to_string().contains("ResNet-50"), "{err}");
    assert!(model.check_input([0, 3, 64, 64]).is_err());
    assert!(model.check_input([1, 3, 0, 64]).is_err());
}

fn values(tensor: Tensor<B, 4>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().unwrap()
}

#[test]
fn torchvision_init_is_kaiming_normal_fan_out() {
    let device = Default::default();
    let config = ResNet50Config::new().with_seed(3);
    assert_eq!(config.init, BackboneInit::Torchvision);
    let model = config.init::<B>(&device).unwrap();
    // N(0, 2 / fan_out), fan_out = out * kh * kw, for every kind of convolution.
    let block = &model.layer4[0];
    for (name, conv) in [
        ("conv1", &model.conv1),
        ("layer4.0.conv2", &block.conv2),
        ("layer4.0.conv3", &block.conv3),
        (
            "layer4.0.downsample.0",
            &block.downsample.as_ref().unwrap().0,
        ),
    ] {
        let [out, _, kh, kw] = conv.weight.dims();
        let w = values(conv.weight.val());
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let want = 2.0 / (out * kh * kw) as f64;
        assert!(mean.abs() < 4.0 * (want / n).sqrt(), "{name}: mean {mean}");
        assert!(
            (var / want - 1.0).abs() < 0.05,
            "{name}: var {var}, want {want}"
        );
        // Not truncated: draws beyond 3 std exist in the large tensors.
        if n > 1e5 {
            let beyond = w.iter().filter(|&&v| (v as f64).abs() > 3.0 * want.sqrt());
            assert!(beyond.count() > 0, "{name}");
        }
    }
    // BatchNorm at weight 1, bias 0, running statistics 0 / 1.
    let bn = &model.layer2[1].bn3;
    let ones = |t: Tensor<B, 1>| {
        t.into_data()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .all(|&v| v == 1.0)
    };
    let zeros = |t: Tensor<B, 1>| {
        t.into_data()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    };
    assert!(ones(bn.gamma.val()) && zeros(bn.beta.val()));
    assert!(zeros(bn.running_mean.value()) && ones(bn.running_var.value()));

    // The seed decides the draws, on any backend.
    let again = config.init::<B>(&device).unwrap();
    assert_eq!(
        values(again.conv1.weight.val()),
        values(model.conv1.weight.val())
    );
    let other = config.with_seed(4).init::<B>(&device).unwrap();
    assert_ne!(
        values(other.conv1.weight.val()),
        values(model.conv1.weight.val())
    );

    // `kaiming` is burn's default: U(+-1/sqrt(fan_in)).
    let kaiming = small_model::<B>(&device);
    let w = values(kaiming.layer1[0].conv2.weight.val());
    let bound = 1.0 / (64.0f32 * 9.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound * (1.0 + 1e-6)));

    // Bad settings are refused.
    let err = ResNet50Config::new()
        .with_bn_momentum(1.5)
        .init::<B>(&device)
        .unwrap_err();
    assert!(err.to_string().contains("bn_momentum"), "{err}");
    assert!(ResNet50Config::new()
        .with_bn_epsilon(0.0)
        .init::<B>(&device)
        .is_err());
}

/// Loads `path` into a fresh backbone and checks that every tensor of the file landed in the
/// field of its name.
fn assert_import_lands(path: &Path, dict: &StateDict, format: WeightFormat) {
    let device = Default::default();
    let (loaded, report) = small_model::<B>(&device).load_torchvision(path).unwrap();
    assert_eq!(report.format, format);
    assert_eq!(report.applied, BACKBONE_TENSORS);
    // fc and the 53 batch counters were ignored, not loaded.
    assert_eq!(report.ignored.len(), 2 + 53, "{:?}", report.ignored);
    assert!(report.ignored.iter().any(|k| k == "fc.weight"));
    assert!(report
        .ignored
        .iter()
        .any(|k| k == "layer3.0.downsample.1.num_batches_tracked"));

    let got = by_field(&loaded);
    let want: StateDict = dict
        .iter()
        .filter(|(k, _)| !is_ignored(k))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    assert_eq!(got.len(), want.len());
    for (key, entry) in &want {
        let loaded = &got[key];
        assert_eq!(loaded.shape, entry.shape, "{key}");
        assert!(
            loaded.values == entry.values,
            "{key} did not land in its field"
        );
    }
    // A spot check through the public fields.
    let running_var = &loaded.layer3[0].downsample.as_ref().unwrap().1.running_var;
    assert_eq!(
        running_var.value().into_data().to_vec::<f32>().unwrap(),
        dict["layer3.0.downsample.1.running_var"].values
    );

    // The loaded network runs (eval mode, running statistics).
    let images = Tensor::<B, 4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let features = loaded.forward(images);
    assert_eq!(features.dims(), [1, 2048, 2, 2]);
    let finite = features.into_data().to_vec::<f32>().unwrap();
    assert!(finite.iter().all(|v| v.is_finite()));
}

#[test]
fn pth_import_puts_every_tensor_in_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let dict = random_state_dict(1, true);
    let path = dir.path().join("resnet50-0676ba61.pth");
    write_pth(&path, &dict, true);
    assert_import_lands(&path, &dict, WeightFormat::Pytorch);
}

#[test]
fn safetensors_import_puts_every_tensor_in_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let dict = random_state_dict(2, true);
    let path = dir.path().join("resnet50.safetensors");
    write_safetensors(&path, &dict, true);
    assert_import_lands(&path, &dict, WeightFormat::Safetensors);
}

fn import_error(file: &StateDict) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write_safetensors(&path, file, false);
    let err = small_model::<B>(&Default::default())
        .load_torchvision(&path)
        .unwrap_err();
    assert!(matches!(err, ModelError::WeightMismatch { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn missing_unexpected_and_misshaped_keys_are_listed() {
    let mut file = random_state_dict(4, true);
    file.remove("layer3.2.bn1.running_var");
    file.remove("layer4.0.downsample.0.weight");
    let extra = file["layer1.0.bn1.bias"].clone();
    file.insert("layer5.0.bn1.bias".into(), extra.clone());
    // GoogLeNet's aux classifiers are not ResNet keys: unexpected, not ignored.
    file.insert("aux1.fc1.weight".into(), extra);
    let conv2 = file.get_mut("layer2.1.conv2.weight").unwrap();
    conv2.shape = vec![128, 128, 1, 1];
    conv2.values.truncate(128 * 128);

    let err = import_error(&file);
    assert!(
        err.contains("does not fit torchvision's ResNet-50"),
        "{err}"
    );
    assert!(err.contains("missing (2)"), "{err}");
    assert!(err.contains("layer3.2.bn1.running_var"), "{err}");
    assert!(err.contains("layer4.0.downsample.0.weight"), "{err}");
    assert!(
        err.contains("unexpected (2): aux1.fc1.weight, layer5.0.bn1.bias"),
        "{err}"
    );
    assert!(err.contains("wrong shape (1)"), "{err}");
    assert!(
        err.contains("layer2.1.conv2.weight: expected [128, 128, 3, 3], found [128, 128, 1, 1]"),
        "{err}"
    );
    // Ignored keys are never reported.
    assert!(
        !err.contains("fc.weight,") && !err.contains("fc.bias"),
        "{err}"
    );
}

#[test]
fn a_googlenet_file_lists_every_key() {
    let mut file = StateDict::new();
    file.insert(
        "inception3a.branch1.conv.weight".into(),
        Entry {
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
        err.contains("unexpected (1): inception3a.branch1.conv.weight"),
        "{err}"
    );

    let device = Default::default();
    let err = small_model::<B>(&device)
        .load_torchvision("/nonexistent/resnet50-11ad3fa6.pth")
        .unwrap_err();
    assert!(matches!(err, ModelError::FileNotFound { .. }), "{err:?}");
}

#[test]
fn a_safetensors_header_length_ending_in_0x80_is_not_a_pickle() {
    // The first byte of a safetensors file is the low byte of its header length; 0x80 is also
    // a pickle's PROTO opcode. (The key set above happens to hit it.)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.bin");
    let header = format!(
        "{{\"__metadata__\":{{\"a\":\"{}\"}}}}",
        "x".repeat(0x80 - 25)
    );
    assert_eq!(header.len(), 0x80);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(bytes[0], 0x80);
    assert_eq!(
        ee_model::detect_format(&path).unwrap(),
        WeightFormat::Safetensors
    );
    // A pickle still is one.
    std::fs::write(&path, [0x80, 2, b'}', b'q', 0, b'.']).unwrap();
    assert_eq!(
        ee_model::detect_format(&path).unwrap(),
        WeightFormat::Pytorch
    );
}

#[test]
fn training_mode_uses_batch_statistics_and_has_gradients() {
    let device = Default::default();
    let model = small_model::<AD>(&device);
    let images = Tensor::<AD, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let features = model.forward(images.clone());
    assert_eq!(features.dims(), [2, 2048, 1, 1]);
    let grads = features.sum().backward();
    let block = &model.layer2[0];
    for (name, grad) in [
        ("conv1", model.conv1.weight.grad(&grads)),
        ("layer2.0.conv2", block.conv2.weight.grad(&grads)),
        (
            "layer2.0.downsample.0",
            block.downsample.as_ref().unwrap().0.weight.grad(&grads),
        ),
    ] {
        let grad = grad.unwrap_or_else(|| panic!("no gradient for {name}"));
        let g = grad.into_data().to_vec::<f32>().unwrap();
        assert!(
            g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0),
            "{name}"
        );
    }
    assert!(model.layer4[2].bn3.gamma.grad(&grads).is_some());
    // The running statistics moved from (0, 1).
    let mean = model.bn1.running_mean.value_sync().inner();
    assert!(mean.abs().max().into_scalar() > 0.0);

    // Eval mode: the running statistics, so a sample's features do not depend on its batch.
    use burn::module::AutodiffModule;
    let eval = model.valid();
    let images = images.inner();
    let both = eval.forward(images.clone());
    let first = eval.forward(images.slice(s![0..1]));
    assert!(max_abs_diff(first, both.slice(s![0..1])) < 1e-4);
}

// ---------------------------------------------------------------------------------------------
// Parity with torchvision (needs the fixture of support/resnet50_parity.py).

fn parity_dir() -> PathBuf {
    std::env::var_os("EE_RESNET50_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/parity/resnet50")
        })
}

fn read_safetensors(path: &Path) -> StateDict {
    support::read_safetensors(
        path,
        "target/bench-venv/bin/python crates/ee-model/tests/support/resnet50_parity.py",
    )
}

fn tensor<B: Backend>(entry: &Entry, device: &B::Device) -> Tensor<B, 4> {
    Tensor::from_data(
        TensorData::new(entry.values.clone(), entry.shape.clone()),
        device,
    )
}

/// Largest absolute difference relative to the reference's largest magnitude.
fn relative_gap<B: Backend, const D: usize>(got: Tensor<B, D>, want: Tensor<B, D>) -> f32 {
    let scale: f32 = want.clone().abs().max().into_scalar().elem();
    max_abs_diff(got, want) / scale
}

#[test]
#[ignore = "needs the PyTorch fixture: run crates/ee-model/tests/support/resnet50_parity.py"]
fn torchvision_parity() {
    let dir = parity_dir();
    let io = read_safetensors(&dir.join("io.safetensors"));
    let device = Default::default();

    // torch.save's own file, and the safetensors copy, give the same network.
    let pth = dir.join("resnet50.pth");
    let (model, report) = small_model::<B>(&device).load_torchvision(&pth).unwrap();
    assert_eq!(report.applied, BACKBONE_TENSORS);
    assert_eq!(report.ignored.len(), 2 + 53, "{:?}", report.ignored);
    let (from_safetensors, report) = small_model::<B>(&device)
        .load_torchvision(dir.join("resnet50.safetensors"))
        .unwrap();
    assert_eq!(report.format, WeightFormat::Safetensors);
    assert_eq!(report.applied, BACKBONE_TENSORS);
    let from_pth = by_field(&model);
    for (key, entry) in by_field(&from_safetensors) {
        assert!(from_pth[&key].values == entry.values, "{key}");
    }

    // Eval mode, 64 px and an odd size. For scale: PyTorch's own float32 forward differs from
    // its float64 one by 4.5e-5 (eval) and 2.2e-4 (train) on this fixture.
    for (input, output) in [
        ("images", "eval_features"),
        ("images_odd", "eval_features_odd"),
    ] {
        let images = tensor::<B>(&io[input], &device);
        let want = tensor::<B>(&io[output], &device);
        let got = model.forward(images);
        assert_eq!(got.dims(), want.dims());
        let gap = relative_gap(got, want);
        println!("{output}: relative max gap {gap:.2e}");
        assert!(gap < 2e-4, "{output}: {gap}");
    }

    // Training mode: batch statistics, and the running means move as PyTorch's.
    let (model, _) = small_model::<AD>(&device).load_torchvision(&pth).unwrap();
    let images = tensor::<AD>(&io["images"], &device);
    let got = model.forward(images).inner();
    let want = tensor::<B>(&io["train_features"], &device);
    let gap = relative_gap(got, want);
    println!("train_features: relative max gap {gap:.2e}");
    assert!(gap < 1e-3, "train_features: {gap}");
    let tracked: [(&str, &BatchNorm<AD>); 4] = [
        ("bn1", &model.bn1),
        (
            "layer1.0.downsample.1",
            &model.layer1[0].downsample.as_ref().unwrap().1,
        ),
        ("layer3.5.bn2", &model.layer3[5].bn2),
        ("layer4.2.bn3", &model.layer4[2].bn3),
    ];
    for (name, bn) in tracked {
        let want = &io[&format!("train.{name}.running_mean")];
        let want = Tensor::<B, 1>::from_data(
            TensorData::new(want.values.clone(), want.shape.clone()),
            &device,
        );
        let gap = relative_gap(bn.running_mean.value_sync().inner(), want);
        println!("{name}.running_mean after the train step: relative max gap {gap:.2e}");
        assert!(gap < 1e-4, "{name}: {gap}");
    }
}
