//! Test helpers: torchvision-keyed GoogLeNet state dicts built in Rust, written as safetensors
//! and as PyTorch `.pth` (zip + pickle, the layout `torch.save` produces), and a model whose
//! weights are set field by field ("by hand") from the same dict.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use ee_model::{BasicConv2d, GoogLeNet, Inception};
use rand::distr::{Distribution, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One tensor of a state dict: f32 values (row-major) and shape.
#[derive(Clone, Debug)]
pub struct Entry {
    pub values: Vec<f32>,
    pub shape: Vec<usize>,
}

pub type StateDict = BTreeMap<String, Entry>;

/// torchvision's inception blocks: name and
/// (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), as in torchvision/models/googlenet.py.
const INCEPTIONS: [(&str, [usize; 7]); 9] = [
    ("inception3a", [192, 64, 96, 128, 16, 32, 32]),
    ("inception3b", [256, 128, 128, 192, 32, 96, 64]),
    ("inception4a", [480, 192, 96, 208, 16, 48, 64]),
    ("inception4b", [512, 160, 112, 224, 24, 64, 64]),
    ("inception4c", [512, 128, 128, 256, 24, 64, 64]),
    ("inception4d", [512, 112, 144, 288, 32, 64, 64]),
    ("inception4e", [528, 256, 160, 320, 32, 128, 128]),
    ("inception5a", [832, 256, 160, 320, 32, 128, 128]),
    ("inception5b", [832, 384, 192, 384, 48, 128, 128]),
];

/// `(prefix, in, out, kernel)` of every BasicConv2d of torchvision's backbone, with
/// torchvision's key prefixes.
pub fn torchvision_convs() -> Vec<(String, usize, usize, usize)> {
    let mut convs = vec![
        ("conv1".to_string(), 3, 64, 7),
        ("conv2".to_string(), 64, 64, 1),
        ("conv3".to_string(), 64, 192, 3),
    ];
    for (name, [i, c1, r3, c3, r5, c5, pp]) in INCEPTIONS {
        convs.push((format!("{name}.branch1"), i, c1, 1));
        convs.push((format!("{name}.branch2.0"), i, r3, 1));
        convs.push((format!("{name}.branch2.1"), r3, c3, 3));
        convs.push((format!("{name}.branch3.0"), i, r5, 1));
        convs.push((format!("{name}.branch3.1"), r5, c5, 3));
        convs.push((format!("{name}.branch4.1"), i, pp, 1));
    }
    convs
}

/// A random backbone state dict with torchvision's keys (no `num_batches_tracked`, no aux/fc):
/// conv weights ~ U(+-sqrt(3/fan_in)) (variance-preserving), BatchNorm weights around 1,
/// biases and running means around 0, running variances in [0.5, 1.5].
pub fn random_state_dict(seed: u64) -> StateDict {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
        let d = Uniform::new(lo, hi).unwrap();
        (0..n).map(|_| d.sample(&mut rng)).collect()
    };
    let mut dict = StateDict::new();
    for (prefix, i, o, k) in torchvision_convs() {
        let bound = (3.0 / (i * k * k) as f32).sqrt() * 1.6;
        dict.insert(
            format!("{prefix}.conv.weight"),
            Entry {
                values: uniform(o * i * k * k, -bound, bound),
                shape: vec![o, i, k, k],
            },
        );
        for (name, lo, hi) in [
            ("weight", 0.8, 1.2),
            ("bias", -0.1, 0.1),
            ("running_mean", -0.2, 0.2),
            ("running_var", 0.5, 1.5),
        ] {
            dict.insert(
                format!("{prefix}.bn.{name}"),
                Entry {
                    values: uniform(o, lo, hi),
                    shape: vec![o],
                },
            );
        }
    }
    dict
}

/// Keys torchvision's file has besides the backbone's: aux classifiers and fc (small shapes
/// here; they are ignored whatever their shape).
pub fn torchvision_extras() -> StateDict {
    let mut extras = StateDict::new();
    for key in [
        "aux1.conv.conv.weight",
        "aux1.fc1.weight",
        "aux2.fc2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        extras.insert(
            key.into(),
            Entry {
                values: vec![0.5; 4],
                shape: vec![2, 2],
            },
        );
    }
    extras
}

fn tensor<B: Backend, const D: usize>(
    dict: &StateDict,
    key: &str,
    device: &B::Device,
) -> Tensor<B, D> {
    let entry = dict
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in test dict"));
    Tensor::from_data(
        TensorData::new(entry.values.clone(), entry.shape.clone()),
        device,
    )
}

fn set_basic<B: Backend>(
    mut layer: BasicConv2d<B>,
    prefix: &str,
    dict: &StateDict,
    device: &B::Device,
) -> BasicConv2d<B> {
    let t1 = |name: &str| tensor::<B, 1>(dict, &format!("{prefix}.bn.{name}"), device);
    layer.conv.weight = Param::from_tensor(tensor(dict, &format!("{prefix}.conv.weight"), device));
    layer.bn.gamma = Param::from_tensor(t1("weight"));
    layer.bn.beta = Param::from_tensor(t1("bias"));
    layer.bn.running_mean = RunningState::new(t1("running_mean"));
    layer.bn.running_var = RunningState::new(t1("running_var"));
    layer
}

fn set_inception<B: Backend>(
    mut block: Inception<B>,
    name: &str,
    dict: &StateDict,
    device: &B::Device,
) -> Inception<B> {
    block.branch1 = set_basic(block.branch1, &format!("{name}.branch1"), dict, device);
    for (branch, layers) in [
        ("branch2", &mut block.branch2),
        ("branch3", &mut block.branch3),
    ] {
        let taken: Vec<_> = std::mem::take(layers);
        *layers = taken
            .into_iter()
            .enumerate()
            .map(|(i, l)| set_basic(l, &format!("{name}.{branch}.{i}"), dict, device))
            .collect();
    }
    let proj = block.branch4.pop().expect("branch4 conv");
    block.branch4 = vec![set_basic(proj, &format!("{name}.branch4.1"), dict, device)];
    block
}

/// Sets every backbone tensor from `dict` field by field, without burn-store.
pub fn set_by_hand<B: Backend>(
    mut net: GoogLeNet<B>,
    dict: &StateDict,
    device: &B::Device,
) -> GoogLeNet<B> {
    net.conv1 = set_basic(net.conv1, "conv1", dict, device);
    net.conv2 = set_basic(net.conv2, "conv2", dict, device);
    net.conv3 = set_basic(net.conv3, "conv3", dict, device);
    net.inception3a = set_inception(net.inception3a, "inception3a", dict, device);
    net.inception3b = set_inception(net.inception3b, "inception3b", dict, device);
    net.inception4a = set_inception(net.inception4a, "inception4a", dict, device);
    net.inception4b = set_inception(net.inception4b, "inception4b", dict, device);
    net.inception4c = set_inception(net.inception4c, "inception4c", dict, device);
    net.inception4d = set_inception(net.inception4d, "inception4d", dict, device);
    net.inception4e = set_inception(net.inception4e, "inception4e", dict, device);
    net.inception5a = set_inception(net.inception5a, "inception5a", dict, device);
    net.inception5b = set_inception(net.inception5b, "inception5b", dict, device);
    net
}

/// Writes `dict` (f32) plus `num_batches_tracked` int64 scalars for every BatchNorm as
/// safetensors.
pub fn write_safetensors(path: &Path, dict: &StateDict, with_batch_counters: bool) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let mut bytes: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = dict
        .iter()
        .map(|(k, e)| {
            let data = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (k.clone(), (Dtype::F32, e.shape.clone(), data))
        })
        .collect();
    if with_batch_counters {
        for key in batch_counter_keys(dict) {
            bytes.insert(key, (Dtype::I64, vec![], 7i64.to_le_bytes().to_vec()));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (dtype, shape, data))| {
            (
                k.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn batch_counter_keys(dict: &StateDict) -> Vec<String> {
    dict.keys()
        .filter_map(|k| k.strip_suffix(".running_mean"))
        .map(|prefix| format!("{prefix}.num_batches_tracked"))
        .collect()
}

/// Minimal pickle writer for what `torch.save(state_dict)` emits (protocol 2).
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, byte: u8) {
        self.0.push(byte);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.op(b'J'); // BININT
        self.0.extend_from_slice(&(v as i32).to_le_bytes());
    }
    fn int_tuple(&mut self, values: &[usize]) {
        self.op(b'(');
        for &v in values {
            self.int(v);
        }
        self.op(b't');
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')'); // EMPTY_TUPLE
        self.op(b'R'); // REDUCE
    }
    /// `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`
    fn tensor(&mut self, storage_type: &str, storage_key: &str, shape: &[usize]) {
        let numel: usize = shape.iter().product();
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        // persistent id: ('storage', torch.<Type>Storage, key, 'cpu', numel)
        self.op(b'(');
        self.string("storage");
        self.global("torch", storage_type);
        self.string(storage_key);
        self.string("cpu");
        self.int(numel);
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0); // storage offset
        self.int_tuple(shape);
        self.int_tuple(&stride);
        self.op(0x89); // NEWFALSE: requires_grad
        self.empty_ordered_dict(); // backward hooks
        self.op(b't');
        self.op(b'R');
    }
}

/// Writes `dict` as `torch.save(state_dict)` does since PyTorch 1.6: a zip archive with
/// `archive/data.pkl` (an OrderedDict of `_rebuild_tensor_v2` calls whose storages are
/// persistent ids) and one `archive/data/<n>` file per storage; plus int64
/// `num_batches_tracked` counters when asked.
pub fn write_pth(path: &Path, dict: &StateDict, with_batch_counters: bool) {
    let mut storages: Vec<Vec<u8>> = Vec::new();
    let mut pickle = Pickle(vec![0x80, 2]); // PROTO 2
    pickle.empty_ordered_dict();
    pickle.op(b'(');
    for (key, entry) in dict {
        pickle.string(key);
        pickle.tensor("FloatStorage", &storages.len().to_string(), &entry.shape);
        storages.push(entry.values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    if with_batch_counters {
        for key in batch_counter_keys(dict) {
            pickle.string(&key);
            pickle.tensor("LongStorage", &storages.len().to_string(), &[]);
            storages.push(7i64.to_le_bytes().to_vec());
        }
    }
    pickle.op(b'u'); // SETITEMS
    pickle.op(b'.'); // STOP

    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, data: &[u8]| {
        zip.start_file(format!("archive/{name}"), options).unwrap();
        zip.write_all(data).unwrap();
    };
    put("data.pkl", &pickle.0);
    put("byteorder", b"little");
    for (i, data) in storages.iter().enumerate() {
        put(&format!("data/{i}"), data);
    }
    put("version", b"3\n");
    zip.finish().unwrap();
}

/// Largest absolute difference of two equally shaped tensors.
pub fn max_abs_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar().elem()
}

use burn::tensor::ElementConversion;

/// Every tensor of the safetensors file `path` (a PyTorch fixture; f32, or u8 / i32 masks and
/// indices, as f32); a missing file panics with `make` (the command that writes it).
pub fn read_safetensors(path: &Path, make: &str) -> StateDict {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}; make it with `{make}`", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                // Masks and indices (exact in f32 below 2^24).
                safetensors::Dtype::U8 => data.iter().map(|&b| f32::from(b)).collect(),
                safetensors::Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                    .collect(),
                other => panic!(
                    "{}: {name} is {other:?}, not f32, u8 or i32",
                    path.display()
                ),
            };
            (
                name,
                Entry {
                    values,
                    shape: view.shape().to_vec(),
                },
            )
        })
        .collect()
}

/// The folder of a PyTorch fixture: `$ENV_VAR`, else `target/parity/<name>` of the workspace,
/// when it holds `marker`. Without it the test skips (`None`, saying so), unless
/// `EE_REQUIRE_TORCH_FIXTURE=1` (set by CI), where it fails naming `make`.
pub fn torch_fixture(env_var: &str, name: &str, marker: &str, make: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/parity")
                .join(name)
        });
    if dir.join(marker).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("EE_REQUIRE_TORCH_FIXTURE").as_deref() != Ok("1"),
        "EE_REQUIRE_TORCH_FIXTURE=1 but {} has no {marker}: {make}",
        dir.display()
    );
    eprintln!("skipped: no {marker} in {}; {make}", dir.display());
    None
}
