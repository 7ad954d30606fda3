//! Embedding images with a trained network: a checkpoint's network, the images to embed
//! (a dataset split, a folder, a list file, one image), and `ee embed` itself.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::backend::Backend;
use ee_data::formats::IMAGE_EXTENSIONS;
use ee_data::{ImageLoader, Item, LoaderConfig, Split};
use ee_model::EmbeddingModel;
use ee_train::checkpoint::{self, CheckpointFile};
pub use ee_train::{embed_loader, Embedded};

use crate::config::resolve::build_model;
use crate::config::RawConfig;
use crate::error::{CliError, Result};
use ee_eval::embedding_set::EmbeddingSet;

/// A checkpoint's network (eval mode) and the config it was trained with.
pub struct TrainedNetwork<B: Backend> {
    /// The model with the checkpoint's weights.
    pub network: EmbeddingModel<B>,
    /// The run config stored in the checkpoint (model, image size, loader settings).
    pub config: RawConfig,
    /// The checkpoint file.
    pub path: PathBuf,
}

impl<B: Backend> TrainedNetwork<B> {
    /// Loads `checkpoint` (`best.mpk` or `last.mpk` of `ee train`).
    pub fn load(checkpoint: &Path, device: &B::Device) -> Result<Self> {
        Self::load_with_config(checkpoint, None, device)
    }

    /// Loads `checkpoint`: an `ee train` checkpoint, or a PyTorch state dict (`.pth` or
    /// safetensors; a torchvision backbone plus an embedding head, see `model.head_key`),
    /// whose network `config`'s `[model]` describes (required for a state dict).
    pub fn load_with_config(
        checkpoint: &Path,
        config: Option<&RawConfig>,
        device: &B::Device,
    ) -> Result<Self> {
        let file = match CheckpointFile::load(checkpoint) {
            Ok(file) => file,
            Err(_) if ee_model::detect_format(checkpoint).is_ok() => {
                let Some(config) = config else {
                    return Err(CliError::Usage(format!(
                        "{} is a PyTorch state dict, not an `ee train` checkpoint: pass the \
                         run config too (`ee eval CONFIG --checkpoint ...`, `ee embed \
                         --config CONFIG ...`), whose [model] describes the network, or \
                         fine-tune from it with model.pretrained",
                        checkpoint.display()
                    )));
                };
                return Self::from_state_dict(checkpoint, config, device);
            }
            Err(error) => return Err(error.into()),
        };
        let config = RawConfig::parse_str(&file.config, &[], &checkpoint.display().to_string())?;
        Self::from_file(file, config, checkpoint, device)
    }

    /// Builds the network `config.model` describes with its weights from the PyTorch state
    /// dict `path` (the backbone's torchvision keys and the head's `model.head_key`).
    pub fn from_state_dict(path: &Path, config: &RawConfig, device: &B::Device) -> Result<Self> {
        let mut config = config.clone();
        config.model.pretrained = Some(path.to_path_buf());
        let network = build_model::<B>(&config, true, device)?;
        Ok(TrainedNetwork {
            network,
            config,
            path: path.to_path_buf(),
        })
    }

    /// Builds the network `config.model` describes and loads the weights of `file` into it.
    pub fn from_file(
        file: CheckpointFile,
        config: RawConfig,
        checkpoint: &Path,
        device: &B::Device,
    ) -> Result<Self> {
        let network = build_model::<B>(&config, false, device)?;
        let network: EmbeddingModel<B> = network.load_record(
            checkpoint::record_from_bytes::<B, _>(file.network, device, checkpoint)?,
        );
        Ok(TrainedNetwork {
            network,
            config,
            path: checkpoint.to_path_buf(),
        })
    }

    /// Dimension of the embeddings the network writes.
    pub fn embed_dim(&self) -> usize {
        self.config.model.embed_dim
    }

    /// Errors unless the network's embeddings have `dim` dimensions (those of `what`).
    pub fn check_dim(&self, dim: usize, what: &Path) -> Result<()> {
        if dim != self.embed_dim() {
            return Err(CliError::Usage(format!(
                "checkpoint {} embeds to {} dimensions but {} holds {dim}-dimensional \
                 embeddings: embed both with the same model",
                self.path.display(),
                self.embed_dim(),
                what.display()
            )));
        }
        Ok(())
    }

    /// The test-transform loader settings of the checkpoint's config for arbitrary images
    /// (no bounding boxes, no cache).
    pub fn loader_config(&self) -> LoaderConfig {
        let data = &self.config.data;
        LoaderConfig::new()
            .with_image_size(data.image_size)
            .with_workers(data.workers)
            .with_prefetch_batches(data.prefetch_batches)
    }
}

/// Images to embed, with a class label where the source gives one.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageList {
    /// Image paths.
    pub paths: Vec<PathBuf>,
    /// Their labels.
    pub labels: Vec<Option<String>>,
}

impl ImageList {
    /// Every image (`.jpg`, `.jpeg`, `.png`) under `dir`, recursively, sorted by path. An
    /// image inside a subfolder is labelled with the name of the subfolder of `dir` it is in
    /// (a folder-per-class tree); an image directly in `dir` has no label. Errors if there
    /// are none.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let found = ee_data::formats::find_images(dir)?;
        for (link, real) in &found.repeated_folders {
            eprintln!(
                "warning: skipping {}: a link to {}, a folder already visited",
                link.display(),
                real.display()
            );
        }
        let paths = found.images;
        if paths.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: no images ({}) in the folder or below it",
                dir.display(),
                IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            )));
        }
        let labels = paths
            .iter()
            .map(|p| {
                let relative = p.strip_prefix(dir).ok()?;
                let mut parts = relative.components();
                let first = parts.next()?;
                parts.next()?; // the image is below a subfolder
                Some(first.as_os_str().to_string_lossy().into_owned())
            })
            .collect();
        Ok(ImageList { paths, labels })
    }

    /// A list file: one image per line, `PATH` or `PATH<TAB>LABEL`; relative paths are taken
    /// from the list file's folder; blank lines and lines starting with `#` are skipped.
    pub fn from_list(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| CliError::io(file, e))?;
        let base = file.parent().unwrap_or(Path::new(""));
        let mut list = ImageList {
            paths: Vec::new(),
            labels: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (path, label) = match line.split_once('\t') {
                Some((p, l)) => (p, Some(l.trim().to_string()).filter(|l| !l.is_empty())),
                None => (line, None),
            };
            let path = base.join(path.trim());
            if !path.is_file() {
                return Err(CliError::Usage(format!(
                    "{}:{}: image {} not found",
                    file.display(),
                    i + 1,
                    path.display()
                )));
            }
            list.paths.push(path);
            list.labels.push(label);
        }
        if list.paths.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: the list names no images",
                file.display()
            )));
        }
        Ok(list)
    }

    /// One image file, unlabelled.
    pub fn single(image: &Path) -> Result<Self> {
        if !image.is_file() {
            return Err(CliError::Usage(format!(
                "{}: image not found",
                image.display()
            )));
        }
        Ok(ImageList {
            paths: vec![image.to_path_buf()],
            labels: vec![None],
        })
    }

    /// A dataset split's images, labelled with their class ids.
    pub fn from_split(split: &Split) -> Self {
        ImageList {
            paths: split.items().iter().map(|i| i.path.clone()).collect(),
            labels: split
                .items()
                .iter()
                .map(|i| Some(i.class_id.to_string()))
                .collect(),
        }
    }

    /// What `ee search --query` and `ee embed` take: a folder, a list file or one image.
    pub fn from_path(path: &Path) -> Result<Self> {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv && path.with_extension("npy").is_file() {
            return Err(CliError::Usage(format!(
                "{} is the index of {}: pass the .npy file",
                path.display(),
                path.with_extension("npy").display()
            )));
        }
        if path.is_dir() {
            Self::from_dir(path)
        } else if ee_data::formats::has_image_extension(path) {
            Self::single(path)
        } else if path.is_file() {
            Self::from_list(path)
        } else {
            Err(CliError::Usage(format!("{}: not found", path.display())))
        }
    }

    /// The images as a split for the loader (labels are tracked here, not in the split).
    fn split(&self, what: &str) -> Result<Split> {
        let items = self
            .paths
            .iter()
            .map(|path| Item {
                path: path.clone(),
                class_id: 0,
                bbox: None,
            })
            .collect();
        Ok(Split::new(items, what)?)
    }
}

/// Embeds `images` through `loader` (built over the same images, in the same order) into an
/// [`EmbeddingSet`]; images the loader skips are left out with a warning on stderr.
pub fn embed_to_set<B: Backend>(
    network: &EmbeddingModel<B>,
    loader: &ImageLoader,
    images: &ImageList,
    batch_size: usize,
    quiet: bool,
    device: &B::Device,
) -> Result<EmbeddingSet> {
    // The index names each row's file: refuse a name it cannot hold losslessly, before the
    // work of embedding.
    if let Some(bad) = images.paths.iter().find(|p| p.to_str().is_none()) {
        return Err(CliError::Usage(format!(
            "{}: the file name is not valid UTF-8, so the embeddings index cannot name it \
             losslessly; rename it or leave it out",
            bad.to_string_lossy()
        )));
    }
    let embedded = embed_loader(network, loader, batch_size, "embed", quiet, device)?;
    for &i in &embedded.skipped {
        eprintln!(
            "warning: skipped unreadable image {}",
            images.paths[i].display()
        );
    }
    Ok(EmbeddingSet::new(
        embedded.embeddings,
        embedded
            .items
            .iter()
            .map(|&i| images.paths[i].display().to_string())
            .collect(),
        embedded
            .items
            .iter()
            .map(|&i| images.labels[i].clone())
            .collect(),
    )?)
}

/// Embeds `images` with a checkpoint's network into an [`EmbeddingSet`]; with
/// `skip_unreadable`, images that cannot be read are left out (with a warning) instead of
/// stopping the run.
pub fn embed_images<B: Backend>(
    trained: &TrainedNetwork<B>,
    images: &ImageList,
    batch_size: usize,
    skip_unreadable: bool,
    quiet: bool,
    device: &B::Device,
) -> Result<EmbeddingSet> {
    let loader = trained
        .loader_config()
        .with_skip_unreadable(skip_unreadable)
        .init(&images.split("images to embed")?)?;
    embed_to_set(&trained.network, &loader, images, batch_size, quiet, device)
}
