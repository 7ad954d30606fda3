//! `ee-eval`: retrieval and clustering metrics (Recall@K, MAP@R, NMI, F1) with exact,
//! chunked k-NN and k-means on any burn backend.
//!
//! Work in progress: see the project's issue on ee-eval.
