//! `ee search`: exact top-k retrieval of query embeddings in a gallery file, by ee-eval's
//! chunked k-NN (bounded memory, ties broken by gallery order), printed as a table or JSON.

use std::path::Path;

use burn::tensor::backend::Backend;
use ee_eval::embedding_set::{EmbeddingSet, SetLayout};
use ee_eval::{knn_query_gallery, knn_self, KnnConfig, Neighbours};
use ee_viz::retrieval::{Hit, QueryHits};

use crate::embed::{embed_images, ImageList, TrainedNetwork};
use crate::error::{CliError, Result};

/// Checks `k` against the gallery size, with errors that name the option.
pub fn check_k(k: usize, gallery: usize) -> Result<()> {
    if k == 0 {
        return Err(CliError::Usage("invalid -k 0: must be at least 1".into()));
    }
    if k > gallery {
        return Err(CliError::Usage(format!(
            "invalid -k {k}: must be at most {gallery}, the number of gallery items that can be returned"
        )));
    }
    Ok(())
}

fn hits(neighbours: &Neighbours, query: &EmbeddingSet, gallery: &EmbeddingSet) -> Vec<QueryHits> {
    (0..neighbours.num_queries())
        .map(|q| QueryHits {
            query: query.paths[q].clone(),
            label: query.labels[q].clone(),
            hits: neighbours
                .of(q)
                .iter()
                .enumerate()
                .map(|(r, n)| {
                    let g = n.index as usize;
                    Hit {
                        rank: r + 1,
                        index: g,
                        path: gallery.paths[g].clone(),
                        label: gallery.labels[g].clone(),
                        distance: n.distance.max(0.0).sqrt(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The `k` nearest gallery items of every query (exact, nearest first).
pub fn search<B: Backend>(
    query: &EmbeddingSet,
    gallery: &EmbeddingSet,
    k: usize,
    device: &B::Device,
) -> Result<Vec<QueryHits>> {
    check_k(k, gallery.len())?;
    let neighbours = knn_query_gallery(
        query.embeddings.to_tensor::<B>(device),
        gallery.embeddings.to_tensor::<B>(device),
        k,
        &KnnConfig::new(),
    )?;
    Ok(hits(&neighbours, query, gallery))
}

/// Every gallery item queried against the others (itself left out).
pub fn search_self<B: Backend>(
    gallery: &EmbeddingSet,
    k: usize,
    device: &B::Device,
) -> Result<Vec<QueryHits>> {
    check_k(k, gallery.len().saturating_sub(1))?;
    let neighbours = knn_self(
        gallery.embeddings.to_tensor::<B>(device),
        k,
        &KnnConfig::new(),
    )?;
    Ok(hits(&neighbours, gallery, gallery))
}

/// The query embeddings `--query PATH` names: an embeddings file (`.npy` with its index, or
/// `.safetensors`) as it is; a folder, a list file or one image embedded with `checkpoint`.
/// Errors if the dimensions differ from the gallery's (`gallery_dim`, of `gallery_path`).
pub fn query_set<B: Backend>(
    query: &Path,
    checkpoint: Option<&Path>,
    gallery_dim: usize,
    gallery_path: &Path,
    batch_size: usize,
    quiet: bool,
    device: &B::Device,
) -> Result<EmbeddingSet> {
    let set = if SetLayout::is_embeddings_file(query) {
        EmbeddingSet::load(query)?
    } else {
        // The images first: a missing or empty query is the likeliest mistake.
        let images = ImageList::from_path(query)?;
        let Some(checkpoint) = checkpoint else {
            return Err(CliError::Usage(format!(
                "--query {} holds images: pass --checkpoint to embed them (or give an \
                 embeddings file from `ee embed`)",
                query.display()
            )));
        };
        let trained = TrainedNetwork::<B>::load(checkpoint, device)?;
        trained.check_dim(gallery_dim, gallery_path)?;
        embed_images(&trained, &images, batch_size, false, quiet, device)?
    };
    if set.dim() != gallery_dim {
        return Err(CliError::Usage(format!(
            "{} holds {}-dimensional embeddings but the gallery {} holds {gallery_dim}-dimensional ones",
            query.display(),
            set.dim(),
            gallery_path.display()
        )));
    }
    Ok(set)
}

/// What `--gallery G --query Q` asks for: `k` is checked first, then the queries are
/// resolved (see [`query_set`]; images embedded with `checkpoint`) and searched in `gallery`
/// (read from `gallery_path`).
#[allow(clippy::too_many_arguments)]
pub fn search_query<B: Backend>(
    gallery: &EmbeddingSet,
    gallery_path: &Path,
    query: &Path,
    checkpoint: Option<&Path>,
    k: usize,
    batch_size: usize,
    quiet: bool,
    device: &B::Device,
) -> Result<Vec<QueryHits>> {
    check_k(k, gallery.len())?;
    let queries = query_set::<B>(
        query,
        checkpoint,
        gallery.dim(),
        gallery_path,
        batch_size,
        quiet,
        device,
    )?;
    search::<B>(&queries, gallery, k, device)
}

/// The results as a plain-text table, one block per query.
pub fn table(results: &[QueryHits]) -> String {
    let mut out = String::new();
    for (i, q) in results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "query {}: {}{}\n",
            i + 1,
            q.query,
            q.label
                .as_ref()
                .map(|l| format!("  (label {l})"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "{:>4}  {:>10}  {:<12}  {}\n",
            "rank", "distance", "label", "path"
        ));
        for h in &q.hits {
            let mark = match q.is_match(h) {
                Some(true) => " ",
                Some(false) => "x",
                None => " ",
            };
            out.push_str(&format!(
                "{:>4}  {:>10.6}  {:<12}{mark} {}\n",
                h.rank,
                h.distance,
                h.label.as_deref().unwrap_or("-"),
                h.path
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use ee_eval::EmbeddingMatrix;

    fn set(values: Vec<f32>, labels: &[&str]) -> EmbeddingSet {
        let n = labels.len();
        EmbeddingSet::new(
            EmbeddingMatrix::new(values, 2).unwrap(),
            (0..n).map(|i| format!("g{i}.jpg")).collect(),
            labels.iter().map(|l| Some(l.to_string())).collect(),
        )
        .unwrap()
    }

    #[test]
    fn finds_nearest_with_euclidean_distance_and_labels() {
        let device = Default::default();
        let gallery = set(vec![0.0, 0.0, 3.0, 4.0, 1.0, 0.0], &["a", "b", "a"]);
        let query = set(vec![3.0, 4.0], &["a"]);
        let r = search::<Flex>(&query, &gallery, 3, &device).unwrap();
        let got: Vec<(usize, f64)> = r[0].hits.iter().map(|h| (h.index, h.distance)).collect();
        assert_eq!(got[0], (1, 0.0));
        assert_eq!(got[1].0, 2);
        assert!((got[1].1 - 20f64.sqrt()).abs() < 1e-9, "{got:?}");
        assert!((got[2].1 - 5.0).abs() < 1e-9, "{got:?}");
        assert_eq!(r[0].is_match(&r[0].hits[0]), Some(false));
        assert_eq!(r[0].is_match(&r[0].hits[1]), Some(true));
        let t = table(&r);
        assert!(t.contains("g1.jpg") && t.contains("0.000000"), "{t}");
    }

    #[test]
    fn self_search_leaves_the_query_out() {
        let device = Default::default();
        let gallery = set(vec![0.0, 0.0, 0.0, 1.0, 5.0, 5.0], &["a", "a", "b"]);
        let r = search_self::<Flex>(&gallery, 1, &device).unwrap();
        let first: Vec<usize> = r.iter().map(|q| q.hits[0].index).collect();
        assert_eq!(first, vec![1, 0, 1]);
    }

    #[test]
    fn k_is_checked_with_the_option_named() {
        let device = Default::default();
        let gallery = set(vec![0.0, 0.0, 1.0, 1.0], &["a", "b"]);
        let e = search::<Flex>(&gallery, &gallery, 0, &device).unwrap_err();
        assert!(e.to_string().contains("-k 0"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = search::<Flex>(&gallery, &gallery, 3, &device).unwrap_err();
        assert!(e.to_string().contains("at most 2"), "{e}");
        let e = search_self::<Flex>(&gallery, 2, &device).unwrap_err();
        assert!(e.to_string().contains("at most 1"), "{e}");
    }
}
