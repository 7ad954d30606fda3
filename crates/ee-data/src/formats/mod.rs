//! Readers (and a few writers) for the dataset layouts users have on disk.
//!
//! Every reader returns [`crate::Split`]s or a [`crate::Dataset`] of [`crate::Item`]s and names
//! the file and line of anything malformed.

pub mod cars196;
pub mod cub;
pub mod folder;
pub mod inshop;
mod mat5;
pub mod reference_meta;
pub mod sop;
mod text;

pub use cars196::{
    read_cars196, read_cars_annotations, write_cars196_meta, write_cars_annotations,
    CarsAnnotation, CARS196_ANNOTATIONS, CARS196_TRAIN_CLASSES,
};
pub use cub::{read_cub, CUB_TRAIN_CLASSES};
pub use folder::{
    find_images, has_image_extension, list_class_folders, read_folder_tree, FolderSplit,
    FoundImages, IMAGE_EXTENSIONS,
};
pub use inshop::{
    inshop_partition_path, read_inshop, write_inshop_partition, QueryGalleryDataset, INSHOP_HEADER,
};
pub use reference_meta::{
    read_meta_boxes, read_meta_dataset, read_meta_records, read_meta_split, write_meta_boxes,
    write_meta_records, MetaRecord, META_HEADER,
};
pub use sop::{read_sop, read_sop_split, SOP_HEADER};
