//! Import of torchvision-keyed state dicts (`.pth` pickles and safetensors): GoogLeNet and
//! ResNet-50.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::error::ModelError;
use crate::googlenet::GoogLeNet;
use crate::head::EmbeddingHead;
use crate::resnet::ResNet50;

use crate::network::BackboneKind;

/// The default key prefix of the embedding head in a PyTorch state dict: `embedding.weight`
/// (`[embed_dim, features]`, torch's `[out, in]`) and `embedding.bias` (`[embed_dim]`), as in
/// `model.embedding = nn.Linear(1024, 512)` next to torchvision's GoogLeNet.
pub const DEFAULT_HEAD_KEY: &str = "embedding";

/// How one backbone's parameter paths relate to the keys of torchvision's state dict.
struct TorchvisionLayout {
    /// The network.
    network: BackboneKind,
    /// `(regex on the file's keys, replacement)`: torchvision keys to our parameter paths,
    /// where they differ beyond BatchNorm's `weight`/`bias` (burn-store's adapter renames those).
    key_remapping: &'static [(&'static str, &'static str)],
    /// Our parameter path (or a remapped file key) back to the torchvision key.
    torchvision_key: fn(&str) -> String,
    /// File keys that are deliberately not loaded.
    is_ignored_key: fn(&str) -> bool,
}

/// torchvision keys that are deliberately not loaded: the auxiliary classifiers, the ImageNet
/// classifier and BatchNorm's batch counters (burn's BatchNorm has none).
fn is_ignored_key(key: &str) -> bool {
    ["aux1.", "aux2.", "fc."]
        .iter()
        .any(|prefix| key.starts_with(prefix))
        || key.ends_with(".num_batches_tracked")
}

/// torchvision's `inceptionX.branch4` is `Sequential(MaxPool2d, BasicConv2d)`; our pool holds
/// no parameters, so its convolution is element 0 of [`Inception::branch4`](crate::Inception).
const KEY_REMAPPING: [(&str, &str); 1] = [(r"\.branch4\.1\.", ".branch4.0.")];

const GOOGLENET_LAYOUT: TorchvisionLayout = TorchvisionLayout {
    network: BackboneKind::Googlenet,
    key_remapping: &KEY_REMAPPING,
    torchvision_key,
    is_ignored_key,
};

/// ResNet-50 keys that are deliberately not loaded: the ImageNet classifier and BatchNorm's
/// batch counters.
fn is_ignored_resnet_key(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with(".num_batches_tracked")
}

/// The torchvision key of a [`ResNet50`] parameter path: the paths are torchvision's, except
/// BatchNorm's `gamma`/`beta` (torchvision's `weight`/`bias`; only BatchNorms have them).
fn resnet_torchvision_key(path: &str) -> String {
    if let Some(prefix) = path.strip_suffix(".gamma") {
        format!("{prefix}.weight")
    } else if let Some(prefix) = path.strip_suffix(".beta") {
        format!("{prefix}.bias")
    } else {
        path.to_string()
    }
}

const RESNET50_LAYOUT: TorchvisionLayout = TorchvisionLayout {
    network: BackboneKind::Resnet50,
    key_remapping: &[],
    torchvision_key: resnet_torchvision_key,
    is_ignored_key: is_ignored_resnet_key,
};

/// The two formats a torchvision-keyed state dict can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `torch.save(state_dict)`: a zip archive (PyTorch >= 1.6) or a legacy pickle/tar.
    Pytorch,
    /// A safetensors file with the same keys.
    Safetensors,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The detected file format.
    pub format: WeightFormat,
    /// How many tensors were loaded.
    pub applied: usize,
    /// Keys in the file that were ignored on purpose (fc, batch counters, GoogLeNet's aux
    /// classifiers).
    pub ignored: Vec<String>,
    /// The key prefix the embedding head was loaded from (`embedding` for `embedding.weight`
    /// and `embedding.bias`); `None` when the file held the backbone only and the head kept
    /// its initialisation.
    pub head: Option<String>,
}

/// Detects the format from the file's first bytes (extensions vary: `.pth`, `.pt`, `.bin`).
pub fn detect_format(path: &Path) -> Result<WeightFormat, ModelError> {
    if !path.is_file() {
        return Err(ModelError::FileNotFound {
            path: path.to_path_buf(),
        });
    }
    let unreadable = |message: String| ModelError::UnreadableWeights {
        path: path.to_path_buf(),
        message,
    };
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| unreadable(e.to_string()))?;
    let is_zip = head.starts_with(b"PK\x03\x04");
    let is_tar = head.get(257..262) == Some(b"ustar".as_slice());
    if is_zip || is_tar {
        return Ok(WeightFormat::Pytorch);
    }
    // safetensors: u64 little-endian header length, then a JSON object. Checked before the
    // pickle's PROTO byte: the header length's low byte can be 0x80 too.
    let file_len = path.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    if let Some(length) = head.get(..8) {
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
        if head.get(8) == Some(&b'{') && length.saturating_add(8) <= file_len {
            return Ok(WeightFormat::Safetensors);
        }
    }
    if head.first() == Some(&0x80) {
        return Ok(WeightFormat::Pytorch);
    }
    Err(unreadable(
        "neither a PyTorch state dict (.pth) nor a safetensors file".into(),
    ))
}

impl<B: Backend> GoogLeNet<B> {
    /// Loads a torchvision-keyed GoogLeNet state dict (torchvision's
    /// `googlenet-1378be20.pth`, or the same keys in safetensors) into the backbone.
    ///
    /// Every backbone parameter and BatchNorm running statistic must be present with the right
    /// shape; `aux1.*`, `aux2.*`, `fc.*` and `*.num_batches_tracked` are ignored; any other key
    /// is an error. This does not switch on [`GoogLeNet::transform_input`]: the caller decides
    /// (see [`EmbeddingModelConfig`](crate::EmbeddingModelConfig), which does).
    pub fn load_torchvision(
        self,
        path: impl AsRef<Path>,
    ) -> Result<(Self, ImportReport), ModelError> {
        self.load_torchvision_beside_head(path.as_ref(), None)
    }

    /// As [`GoogLeNet::load_torchvision`], leaving the keys under `head.` (for
    /// [`EmbeddingHead::load_torch`]) unloaded but expected.
    pub(crate) fn load_torchvision_beside_head(
        mut self,
        path: &Path,
        head: Option<&str>,
    ) -> Result<(Self, ImportReport), ModelError> {
        let report = load_state_dict(&mut self, path, &GOOGLENET_LAYOUT, head)?;
        Ok((self, report))
    }
}

impl<B: Backend> ResNet50<B> {
    /// Loads a torchvision-keyed ResNet-50 state dict (torchvision's `resnet50-0676ba61.pth`,
    /// `ResNet50_Weights.IMAGENET1K_V1`, or `resnet50-11ad3fa6.pth`, `IMAGENET1K_V2`; or the
    /// same keys in safetensors) into the backbone.
    ///
    /// Every backbone parameter and BatchNorm running statistic must be present with the right
    /// shape; `fc.*` and `*.num_batches_tracked` are ignored; any other key is an error, as is
    /// any missing or wrongly shaped one ([`ModelError::WeightMismatch`] lists them all).
    pub fn load_torchvision(
        self,
        path: impl AsRef<Path>,
    ) -> Result<(Self, ImportReport), ModelError> {
        self.load_torchvision_beside_head(path.as_ref(), None)
    }

    /// As [`ResNet50::load_torchvision`], leaving the keys under `head.` unloaded but expected.
    pub(crate) fn load_torchvision_beside_head(
        mut self,
        path: &Path,
        head: Option<&str>,
    ) -> Result<(Self, ImportReport), ModelError> {
        let report = load_state_dict(&mut self, path, &RESNET50_LAYOUT, head)?;
        Ok((self, report))
    }
}

impl<B: Backend> EmbeddingHead<B> {
    /// Loads the embedding layer from a PyTorch state dict (`.pth` or safetensors):
    /// `{prefix}.weight`, torch's `[embed_dim, in_features]` (transposed into burn's
    /// `[in_features, embed_dim]`), and `{prefix}.bias`, `[embed_dim]`. Other keys are left
    /// alone (the backbone's). A head with a hidden layer cannot be imported.
    ///
    /// Errors name the file and the keys: missing ones, and shapes in torch's layout.
    pub fn load_torch(mut self, path: impl AsRef<Path>, prefix: &str) -> Result<Self, ModelError> {
        let path = path.as_ref();
        if self.hidden.is_some() {
            return Err(ModelError::InvalidConfig {
                field: "hidden_dim",
                value: format!("{:?}", self.hidden.as_ref().map(|h| h.weight.dims()[1])),
                rule: "a head with a hidden layer cannot be imported from a PyTorch state dict",
            });
        }
        let format = detect_format(path)?;
        let unreadable = |message: String| ModelError::UnreadableWeights {
            path: path.to_path_buf(),
            message,
        };
        // The file's `{prefix}.weight` / `.bias` become the head's `embedding.weight` / `.bias`;
        // burn-store's PyTorch adapter transposes the Linear weight.
        let from = format!(r"^{}\.(weight|bias)$", regex_escape(prefix));
        let to = "embedding.$1";
        let result = match format {
            WeightFormat::Pytorch => {
                let mut store = PytorchStore::from_file(path)
                    .map_indices_contiguous(false)
                    .validate(false)
                    .allow_partial(true)
                    .with_key_remapping(&from, to);
                self.load_from(&mut store)
                    .map_err(|e| unreadable(e.to_string()))?
            }
            WeightFormat::Safetensors => {
                let mut store = SafetensorsStore::from_file(path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .map_indices_contiguous(false)
                    .validate(false)
                    .allow_partial(true)
                    .with_key_remapping(&from, to);
                self.load_from(&mut store)
                    .map_err(|e| unreadable(e.to_string()))?
            }
        };
        let file_key = |path: &str| path.replacen("embedding.", &format!("{prefix}."), 1);
        let mut wrong_shape = Vec::new();
        let mut other = Vec::new();
        for error in result.errors {
            match error {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => {
                    // burn holds the weight as [in, out]; say it in torch's [out, in].
                    let (mut expected, mut found) = (expected.to_vec(), found.to_vec());
                    if path.ends_with(".weight") {
                        expected.reverse();
                        found.reverse();
                    }
                    wrong_shape.push(format!(
                        "{}: expected {expected:?}, found {found:?}",
                        file_key(&path)
                    ));
                }
                other_error => other.push(other_error.to_string()),
            }
        }
        let missing: Vec<String> = ["embedding.weight", "embedding.bias"]
            .into_iter()
            .filter(|p| !result.applied.iter().any(|a| a == p))
            .filter(|p| !wrong_shape.iter().any(|w| w.starts_with(&file_key(p))))
            .map(file_key)
            .collect();
        if missing.is_empty() && wrong_shape.is_empty() && other.is_empty() {
            Ok(self)
        } else {
            Err(ModelError::HeadMismatch {
                path: path.into(),
                prefix: prefix.to_string(),
                missing,
                wrong_shape,
                other,
            })
        }
    }
}

/// `text` with the regex metacharacters escaped (a key prefix such as `model.fc`).
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Loads the torchvision-keyed state dict at `path` into `module` (in place), then checks
/// that it was complete.
///
/// Keys under `head.` (a prefix such as `embedding`) are expected but left unloaded: the report
/// says whether there were any ([`ImportReport::head`]).
fn load_state_dict<B: Backend, M: Module<B>>(
    module: &mut M,
    path: &Path,
    layout: &TorchvisionLayout,
    head: Option<&str>,
) -> Result<ImportReport, ModelError> {
    let format = detect_format(path)?;
    let unreadable = |message: String| ModelError::UnreadableWeights {
        path: path.to_path_buf(),
        message,
    };
    // Validation and completeness are checked below, to report every problem at once.
    let result = match format {
        WeightFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .validate(false)
                .allow_partial(true);
            for &(from, to) in layout.key_remapping {
                store = store.with_key_remapping(from, to);
            }
            module
                .load_from(&mut store)
                .map_err(|e| unreadable(e.to_string()))?
        }
        WeightFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .validate(false)
                .allow_partial(true);
            for &(from, to) in layout.key_remapping {
                store = store.with_key_remapping(from, to);
            }
            module
                .load_from(&mut store)
                .map_err(|e| unreadable(e.to_string()))?
        }
    };
    check_result(path, format, result, layout, head)
}

/// The torchvision key of a burn parameter path: BatchNorm `gamma`/`beta` are torchvision's
/// `weight`/`bias`, and `branch4.0` is torchvision's `branch4.1` (see [`KEY_REMAPPING`]).
fn torchvision_key(path: &str) -> String {
    let path = path.replace(".branch4.0.", ".branch4.1.");
    if let Some(prefix) = path.strip_suffix(".bn.gamma") {
        format!("{prefix}.bn.weight")
    } else if let Some(prefix) = path.strip_suffix(".bn.beta") {
        format!("{prefix}.bn.bias")
    } else {
        path
    }
}

/// Turns burn-store's result into our report or error, naming everything with torchvision's
/// keys (those the user's file has).
fn check_result(
    path: &Path,
    format: WeightFormat,
    result: ApplyResult,
    layout: &TorchvisionLayout,
    head: Option<&str>,
) -> Result<ImportReport, ModelError> {
    let torchvision_key = layout.torchvision_key;
    let is_ignored_key = layout.is_ignored_key;
    let applied: BTreeSet<String> = result.applied.iter().map(|p| torchvision_key(p)).collect();
    // burn-store finds BatchNorm's gamma/beta under torchvision's weight/bias but still lists
    // those keys as unused: they were used.
    let mut failed = BTreeSet::new();
    let mut wrong_shape = Vec::new();
    let mut other = Vec::new();
    for error in result.errors {
        match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                let key = torchvision_key(&path);
                wrong_shape.push(format!(
                    "{key}: expected {:?}, found {:?}",
                    expected.to_vec(),
                    found.to_vec()
                ));
                failed.insert(key);
            }
            ApplyError::DTypeMismatch { ref path, .. }
            | ApplyError::AdapterError { ref path, .. }
            | ApplyError::LoadError { ref path, .. } => {
                failed.insert(torchvision_key(path));
                other.push(error.to_string());
            }
        }
    }
    // A key is unexpected when nothing took it: not applied, not failed, not the head's, not
    // ignored (the head's prefix wins over the ignore list: `fc` can be the head).
    let head_prefix = head.map(|prefix| format!("{prefix}."));
    let is_head_key = |key: &str| {
        head_prefix
            .as_deref()
            .is_some_and(|prefix| key.starts_with(prefix))
    };
    let (head_keys, rest): (Vec<String>, Vec<String>) = result
        .unused
        .iter()
        .map(|key| torchvision_key(key))
        .filter(|key| !applied.contains(key) && !failed.contains(key))
        .partition(|key| is_head_key(key));
    let (ignored, unexpected): (Vec<String>, Vec<String>) =
        rest.into_iter().partition(|key| is_ignored_key(key));
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(p, _)| torchvision_key(p))
        .filter(|key| !failed.contains(key))
        .collect();
    if missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty() && other.is_empty() {
        Ok(ImportReport {
            format,
            applied: applied.len(),
            ignored,
            head: (!head_keys.is_empty()).then(|| head.unwrap_or_default().to_string()),
        })
    } else {
        Err(ModelError::WeightMismatch {
            path: path.into(),
            network: layout.network,
            missing,
            unexpected,
            wrong_shape,
            other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_paths_map_to_torchvision_keys() {
        assert_eq!(torchvision_key("conv1.bn.gamma"), "conv1.bn.weight");
        assert_eq!(torchvision_key("conv1.bn.beta"), "conv1.bn.bias");
        assert_eq!(torchvision_key("conv1.conv.weight"), "conv1.conv.weight");
        assert_eq!(
            torchvision_key("inception3a.branch4.0.bn.running_var"),
            "inception3a.branch4.1.bn.running_var"
        );
        assert!(is_ignored_key("aux2.fc1.weight"));
        assert!(is_ignored_key("conv1.bn.num_batches_tracked"));
        assert!(!is_ignored_key("conv1.bn.weight"));
    }

    #[test]
    fn resnet_paths_map_to_torchvision_keys() {
        let key = resnet_torchvision_key;
        assert_eq!(key("bn1.gamma"), "bn1.weight");
        assert_eq!(key("layer1.0.bn3.beta"), "layer1.0.bn3.bias");
        assert_eq!(
            key("layer2.0.downsample.1.gamma"),
            "layer2.0.downsample.1.weight"
        );
        assert_eq!(
            key("layer2.0.downsample.0.weight"),
            "layer2.0.downsample.0.weight"
        );
        assert_eq!(key("layer4.2.bn2.running_var"), "layer4.2.bn2.running_var");
        assert!(is_ignored_resnet_key("fc.weight"));
        assert!(is_ignored_resnet_key("layer1.0.bn1.num_batches_tracked"));
        assert!(!is_ignored_resnet_key("aux1.fc1.weight"));
        assert!(!is_ignored_resnet_key("layer1.0.bn1.weight"));
    }
}
