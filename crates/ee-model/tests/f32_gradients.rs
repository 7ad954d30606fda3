//! f32 gradient accuracy on the CPU backend: every gradient of a GoogLeNet + 64-d head step in
//! train mode against PyTorch's float64 gradients of the same model and batch, bounded by a
//! small multiple of PyTorch's own float32 error on the same case.
//!
//! The fixture is `support/googlenet_grads.py`'s (target/parity/googlenet_grads; `cargo xtask
//! fixtures` writes it): the weights, the batch, the float64 gradients, PyTorch's float32 error
//! per tensor, and the float64 forward's decisions (each ReLU mask, each max pool's argmax).
//!
//! Why the decisions: a ReLU input or two max-pool candidates closer than float32's forward
//! error are decided differently by float32 and float64, and one such flip moves the
//! gradients of every layer before it by 1e-3 .. 7e-2 relative. Every float32 implementation,
//! PyTorch's included, flips a few of a batch's ~10^6 decisions on most inputs, a different
//! few for each summation order. So this test reads its own forward's decisions, layer by
//! layer, and compares them with float64's:
//! - every gradient after the last stage with a flip (all of them when nothing flipped) must
//!   be within [`FACTOR`] x PyTorch's float32 error *with the same decisions* (its arithmetic
//!   alone);
//! - the gradients up to that stage (and the input's) only within [`FLIPPED_BOUND`].
//!
//! The cases: 4 x 64 px with image seed 3 (the case of the issue that asked for this test) and
//! 8 x 64 px with image seed 0. On both, PyTorch's own float32 flips 4 to 13 decisions
//! (its conv1 gradient error: 1.2e-2 and 9.8e-3; with the same decisions 7.9e-5 and 2.3e-5).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use ee_model::pool::host::PoolGeometry;
use ee_model::{
    apply_transform_input, Backbone, BasicConv2d, EmbeddingModel, EmbeddingModelConfig, GoogLeNet,
    Inception, MaxPool2dCeil,
};

type AD = Autodiff<Flex>;
type Grads = <AD as AutodiffBackend>::Gradients;

/// Our error may be this many times PyTorch's float32 error with the same decisions.
const FACTOR: f64 = 4.0;
/// PyTorch's error below this (a few f32 ulps) counts as this.
const FLOOR: f64 = 1e-6;
/// Bound for the gradients a decision flip can move (measured: up to 7e-2).
const FLIPPED_BOUND: f64 = 0.1;

const MAKE: &str = "cargo xtask fixtures (or target/tch-venv/bin/python \
                    crates/ee-model/tests/support/googlenet_grads.py)";

/// The forward's stages in order; a decision flipped in one can move the gradients of that
/// stage, the ones before it and the input's, never a later one's.
const STAGES: [&str; 17] = [
    "conv1",
    "maxpool1",
    "conv2",
    "conv3",
    "maxpool2",
    "inception3a",
    "inception3b",
    "maxpool3",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "maxpool4",
    "inception5a",
    "inception5b",
    "embedding",
];

/// The stage of a gradient key or decision name (`inception3a.branch2.1.bn.weight` ->
/// `inception3a`'s).
fn stage(name: &str) -> usize {
    let first = name.split('.').next().unwrap_or(name);
    STAGES
        .iter()
        .position(|s| *s == first)
        .unwrap_or_else(|| panic!("{name}: no stage"))
}

fn fixture_dir() -> Option<PathBuf> {
    support::torch_fixture(
        "EE_GOOGLENET_GRADS_DIR",
        "googlenet_grads",
        "googlenet_grads.pth",
        MAKE,
    )
}

/// Our forward's decisions, recorded on the way: each BasicConv2d's ReLU mask and each max
/// pool's argmax (index into the input plane, first maximum in row-major order, as PyTorch's).
#[derive(Default)]
struct Decisions {
    made: BTreeMap<String, Vec<f32>>,
}

impl Decisions {
    fn basic(&mut self, name: &str, layer: &BasicConv2d<AD>, x: Tensor<AD, 4>) -> Tensor<AD, 4> {
        let y = layer.forward(x);
        let mask = values(y.clone().inner())
            .into_iter()
            .map(|v| f32::from(u8::from(v > 0.0)))
            .collect();
        self.made.insert(name.to_string(), mask);
        y
    }

    fn pool(&mut self, name: &str, pool: &MaxPool2dCeil, x: Tensor<AD, 4>) -> Tensor<AD, 4> {
        let [_, _, height, width] = x.dims();
        let geometry = PoolGeometry {
            kernel: pool.kernel_size,
            stride: pool.stride,
            padding: pool.padding,
            input: [height, width],
            output: pool.output_size(height, width).unwrap(),
        };
        let (_, argmax) = ee_model::pool::host::forward(&geometry, &values(x.clone().inner()));
        self.made.insert(
            name.to_string(),
            argmax.into_iter().map(|i| i as f32).collect(),
        );
        pool.forward(x)
    }

    fn inception(&mut self, name: &str, block: &Inception<AD>, x: Tensor<AD, 4>) -> Tensor<AD, 4> {
        let b1 = self.basic(&format!("{name}.branch1"), &block.branch1, x.clone());
        let mut chain = |branch: &str, layers: &[BasicConv2d<AD>]| {
            let reduced = self.basic(&format!("{name}.{branch}.0"), &layers[0], x.clone());
            self.basic(&format!("{name}.{branch}.1"), &layers[1], reduced)
        };
        let b2 = chain("branch2", &block.branch2);
        let b3 = chain("branch3", &block.branch3);
        let pooled = self.pool(&format!("{name}.branch4.0"), &block.pool, x);
        let b4 = self.basic(&format!("{name}.branch4.1"), &block.branch4[0], pooled);
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }

    /// `GoogLeNet::forward`, op for op, recording every decision.
    fn features(&mut self, net: &GoogLeNet<AD>, images: Tensor<AD, 4>) -> Tensor<AD, 4> {
        let x = match net.transform_input {
            true => apply_transform_input(images),
            false => images,
        };
        let x = self.basic("conv1", &net.conv1, x);
        let x = self.pool("maxpool1", &net.maxpool1, x);
        let x = self.basic("conv2", &net.conv2, x);
        let x = self.basic("conv3", &net.conv3, x);
        let x = self.pool("maxpool2", &net.maxpool2, x);
        let x = self.inception("inception3a", &net.inception3a, x);
        let x = self.inception("inception3b", &net.inception3b, x);
        let mut x = self.pool("maxpool3", &net.maxpool3, x);
        for (name, block) in [
            ("inception4a", &net.inception4a),
            ("inception4b", &net.inception4b),
            ("inception4c", &net.inception4c),
            ("inception4d", &net.inception4d),
            ("inception4e", &net.inception4e),
        ] {
            x = self.inception(name, block, x);
        }
        let x = self.pool("maxpool4", &net.maxpool4, x);
        let x = self.inception("inception5a", &net.inception5a, x);
        self.inception("inception5b", &net.inception5b, x)
    }
}

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// Every BasicConv2d of the backbone under torchvision's key prefix.
fn basic_layers(net: &GoogLeNet<AD>) -> Vec<(String, &BasicConv2d<AD>)> {
    let mut layers = vec![
        ("conv1".to_string(), &net.conv1),
        ("conv2".to_string(), &net.conv2),
        ("conv3".to_string(), &net.conv3),
    ];
    for (name, block) in [
        ("inception3a", &net.inception3a),
        ("inception3b", &net.inception3b),
        ("inception4a", &net.inception4a),
        ("inception4b", &net.inception4b),
        ("inception4c", &net.inception4c),
        ("inception4d", &net.inception4d),
        ("inception4e", &net.inception4e),
        ("inception5a", &net.inception5a),
        ("inception5b", &net.inception5b),
    ] {
        layers.push((format!("{name}.branch1"), &block.branch1));
        for i in 0..2 {
            layers.push((format!("{name}.branch2.{i}"), &block.branch2[i]));
            layers.push((format!("{name}.branch3.{i}"), &block.branch3[i]));
        }
        layers.push((format!("{name}.branch4.1"), &block.branch4[0]));
    }
    layers
}

/// Our gradient of every parameter under torchvision's key, and of the input (`input`).
fn our_gradients(
    model: &EmbeddingModel<AD>,
    images: &Tensor<AD, 4>,
    grads: &Grads,
) -> BTreeMap<String, Vec<f32>> {
    let Backbone::GoogLeNet(net) = &model.backbone else {
        panic!("the fixture's model is a GoogLeNet");
    };
    let mut out = BTreeMap::new();
    let missing = |key: &str| format!("no gradient for {key}");
    for (prefix, layer) in basic_layers(net) {
        let weight = layer.conv.weight.val().grad(grads);
        assert!(
            layer.conv.bias.is_none(),
            "{prefix}: torchvision's convs have no bias"
        );
        let gamma = layer.bn.gamma.val().grad(grads);
        let beta = layer.bn.beta.val().grad(grads);
        let key = format!("{prefix}.conv.weight");
        out.insert(
            key.clone(),
            values(weight.unwrap_or_else(|| panic!("{}", missing(&key)))),
        );
        let key = format!("{prefix}.bn.weight");
        out.insert(
            key.clone(),
            values(gamma.unwrap_or_else(|| panic!("{}", missing(&key)))),
        );
        let key = format!("{prefix}.bn.bias");
        out.insert(
            key.clone(),
            values(beta.unwrap_or_else(|| panic!("{}", missing(&key)))),
        );
    }
    let linear = &model.head.embedding;
    assert!(model.head.hidden.is_none());
    // burn's Linear weight is [in, out], torch's [out, in].
    let weight = linear.weight.val().grad(grads).expect("embedding.weight");
    out.insert("embedding.weight".into(), values(weight.transpose()));
    let bias = linear.bias.as_ref().expect("embedding.bias");
    out.insert(
        "embedding.bias".into(),
        values(bias.val().grad(grads).expect("embedding.bias")),
    );
    out.insert(
        "input".into(),
        values(images.grad(grads).expect("input gradient")),
    );
    out
}

/// `max |ours - truth| / max |truth|`.
fn relative_error(ours: &[f32], truth: &[f32]) -> f64 {
    assert_eq!(ours.len(), truth.len());
    let scale = truth.iter().fold(0f64, |m, &t| m.max(f64::from(t).abs()));
    let gap = ours.iter().zip(truth).fold(0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    gap / scale
}

fn tensor<const D: usize>(entry: &support::Entry) -> Tensor<AD, D> {
    Tensor::from_data(
        TensorData::new(entry.values.clone(), entry.shape.clone()),
        &Default::default(),
    )
}

fn check_case(file: &str) {
    let Some(dir) = fixture_dir() else {
        return;
    };
    let io = support::read_safetensors(&dir.join(file), MAKE);
    let device = Default::default();
    let config = EmbeddingModelConfig::new()
        .with_embed_dim(64)
        .with_pretrained(Some(dir.join("googlenet_grads.pth").display().to_string()));
    let model: EmbeddingModel<AD> = config.init(&device).unwrap();
    let Backbone::GoogLeNet(net) = &model.backbone else {
        panic!("a GoogLeNet config builds GoogLeNet");
    };
    let images = tensor::<4>(&io["images"]).require_grad();

    // Our decisions, from a walk of the forward that must equal the model's own.
    let mut decisions = Decisions::default();
    let walked = decisions.features(net, images.clone());
    let features = net.forward(images.clone());
    assert!(
        values(walked.inner()) == values(features.inner()),
        "the test's walk of the forward differs from GoogLeNet::forward"
    );
    let mut flips = BTreeMap::new();
    for (name, ours) in &decisions.made {
        let truth = &io[&format!("decision.{name}")].values;
        assert_eq!(ours.len(), truth.len(), "decision.{name}");
        let n = ours.iter().zip(truth).filter(|(a, b)| a != b).count();
        if n > 0 {
            flips.insert(name.clone(), n);
        }
    }
    let decided = decisions.made.len();
    let in_fixture = io.keys().filter(|k| k.starts_with("decision.")).count();
    assert_eq!(decided, in_fixture, "decisions: ours vs the fixture's");
    let deepest = flips.keys().map(|name| stage(name)).max();

    // The step: the user's path, EmbeddingModel::forward.
    let embeddings = model.forward(images.clone());
    let r = tensor::<2>(&io["R"]);
    let loss = (embeddings.clone() * r).sum();
    let loss_gap = relative_error(&values(loss.clone().inner()), &io["loss"].values);
    let embedding_gap = relative_error(&values(embeddings.inner()), &io["embeddings"].values);
    let grads = loss.backward();
    let ours = our_gradients(&model, &images, &grads);

    println!(
        "{file}: loss {loss_gap:.1e}, embeddings {embedding_gap:.1e} relative; our f32 \
         decisions differing from f64: {flips:?} (stage {:?})",
        deepest.map(|s| STAGES[s])
    );
    assert!(loss_gap < 1e-4 && embedding_gap < 1e-4);
    println!(
        "  {:40} {:>9} {:>9} {:>9} {:>9}",
        "gradient", "ours", "torch f32", "same dec.", "bound"
    );
    let mut over = Vec::new();
    let mut checked = 0;
    for (key, entry) in io
        .iter()
        .filter_map(|(k, e)| Some((k.strip_prefix("grad.")?, e)))
    {
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("fixture gradient {key} has no counterpart here"));
        let error = relative_error(mine, &entry.values);
        let torch = f64::from(io[&format!("torch_f32_error.{key}")].values[0]);
        let same = f64::from(io[&format!("torch_f32_error_same_decisions.{key}")].values[0]);
        let moved = deepest.is_some_and(|d| key == "input" || stage(key) <= d);
        let bound = match moved {
            true => FLIPPED_BOUND,
            false => FACTOR * same.max(FLOOR),
        };
        let mark = if error > bound { "  OVER" } else { "" };
        println!("  {key:40} {error:9.2e} {torch:9.2e} {same:9.2e} {bound:9.2e}{mark}");
        if error > bound {
            over.push(format!("{key}: {error:.2e} > {bound:.2e}"));
        }
        checked += 1;
    }
    assert_eq!(checked, ours.len(), "gradients: fixture vs ours");
    assert!(over.is_empty(), "{file}: {over:#?}");
}

#[test]
fn f32_gradients_4x64_seed3_within_pytorch_f32_error() {
    check_case("grads_b4_64px.safetensors");
}

#[test]
fn f32_gradients_8x64_within_pytorch_f32_error() {
    check_case("grads_b8_64px.safetensors");
}
