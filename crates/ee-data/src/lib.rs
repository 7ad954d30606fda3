//! `ee-data`: dataset readers (reference meta files, CARS196, CUB-200-2011, SOP, folder trees,
//! precomputed features), the classes x instances sampler, and the image pipeline.
//!
//! Work in progress: see the project's issue on ee-data.
