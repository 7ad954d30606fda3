//! `ee-eval`: retrieval and clustering metrics for embeddings, exact and fast at SOP scale.
//!
//! Give it embeddings (a `[n, dim]` burn tensor, a host [`EmbeddingMatrix`], or a `.npy`/CSV
//! file) and one integer label per row; get an [`EvalReport`] that prints as a table and
//! serialises to JSON.
//!
//! - **Recall@K** for any list of K: the fraction of queries with at least one same-class item
//!   among their K nearest by squared euclidean distance, the query itself excluded.
//! - **MAP@R** and **R-precision** (Musgrave et al., 2020), R = the number of other items of
//!   the query's class.
//! - **NMI** and pairwise **F1** of a k-means clustering with k = the number of classes
//!   (k-means++ seeding, seeded restarts).
//! - **Query/gallery** mode: separate sets, nothing excluded.
//!
//! [`embedding_set`] reads and writes embeddings with the path and label of every row (the
//! `.npy` + CSV index or `.safetensors` files of `ee embed`).
//!
//! Neighbours are exact and ordered by `(distance, index)`: ties between equal distances are
//! broken by the lower gallery index. Distances are computed in tiles on the host (CPU
//! backends) or on the backend (GPUs) in chunks of
//! queries, so the `n x n` matrix is never built (see [`knn`]). Queries whose class has no
//! other item count as misses in Recall@K (denominator: all queries, as the paper's
//! reference code) and are left out of MAP@R and R-precision (as pytorch-metric-learning);
//! [`EvalReport::queries_without_positive`] says how many there were.
//!
//! ```
//! use burn::backend::Flex;
//! use ee_eval::{evaluate_matrix, EmbeddingMatrix, EvalConfig};
//!
//! // Four 2-D embeddings, two classes.
//! let x = EmbeddingMatrix::new(vec![0.0, 0.0, 0.0, 1.0, 9.0, 9.0, 9.0, 8.0], 2).unwrap();
//! let labels = [7, 7, 3, 3];
//! let config = EvalConfig::new().with_recall_ks(vec![1, 2]);
//! let report = evaluate_matrix::<Flex>(&x, &labels, &config, &Default::default()).unwrap();
//! assert_eq!(report.recall(1), Some(1.0));
//! assert_eq!(report.clustering.as_ref().unwrap().nmi, 1.0);
//! println!("{report}");                // a table
//! let json = report.to_json();        // JSON
//! # assert!(json.contains("recall_at_k"));
//! ```

pub mod clustering;
pub mod embedding_set;
pub mod error;
pub mod evaluate;
mod host;
pub mod input;
pub mod io;
pub mod kmeans;
pub mod knn;
pub mod report;
pub mod retrieval;

/// The host engine of k-means, now [`kmeans::host`]; this path stays for existing code.
pub use kmeans::host as kmeans_host;
/// The host engine of the k-NN scan, now [`knn::host`]; this path stays for existing code.
pub use knn::host as knn_host;

pub use clustering::{normalized_mutual_information, pairwise_scores, PairwiseScores};
pub use error::{EvalError, Result};
pub use evaluate::{
    evaluate, evaluate_matrix, evaluate_query_gallery, evaluate_query_gallery_matrix, EvalConfig,
};
pub use input::EmbeddingMatrix;
pub use io::{load_csv, load_embeddings_npy, load_labels_npy};
pub use kmeans::{kmeans, KMeansAlgorithm, KMeansConfig, KMeansResult};
pub use knn::{
    knn_query_gallery, knn_self, runs_on_host, Engine, KnnConfig, Neighbour, Neighbours,
};
pub use report::{ClusteringReport, EvalMode, EvalReport, RecallAtK};
pub use retrieval::{average_precision_at_r, r_precision};
