//! `ee-model`: GoogLeNet (Inception v1 with BatchNorm) + the embedding head, and
//! pretrained-weight import.
//!
//! Work in progress: see the project's issue on ee-model.
