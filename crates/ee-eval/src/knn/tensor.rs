//! The backend engine of the k-NN scan: one matmul per chunk of queries on the burn backend
//! (the route for GPUs), each `[chunk, gallery]` block of dot products read back and cut to
//! every query's shortlist on the host (see [`crate::knn`]).

use std::ops::Range;

use burn::tensor::{backend::Backend, Tensor};
use rayon::prelude::*;

use super::select::shortlist_row;
use super::{KOf, Screening, Shortlist};
use crate::input::{read_f32, squared_norms};

/// The backend engine over one query set and one gallery (the same set in self mode).
pub(crate) struct TensorScreening<'a, B: Backend> {
    queries: Tensor<B, 2>,
    /// `[dim, m]`
    gallery_t: Tensor<B, 2>,
    /// `[m]`, f32 from the backend.
    gallery_sq: Vec<f32>,
    max_gallery_sq: f64,
    query_host: Vec<f32>,
    /// `None` in self mode: the gallery is `query_host`.
    gallery_host: Option<Vec<f32>>,
    dim: usize,
    exclude_self: bool,
    error_factor: f64,
    chunk_size: usize,
    k_of: KOf<'a>,
}

impl<'a, B: Backend> TensorScreening<'a, B> {
    /// Reads back the norms and the host copies the ranking needs; errors if a norm could
    /// overflow the screening distance.
    pub(crate) fn new(
        queries: Tensor<B, 2>,
        gallery: Tensor<B, 2>,
        exclude_self: bool,
        error_factor: f64,
        chunk_size: usize,
        k_of: KOf<'a>,
    ) -> crate::Result<Self> {
        let dim = queries.dims()[1];
        let (query_set, gallery_set) = if exclude_self {
            ("embeddings", "embeddings")
        } else {
            ("queries", "gallery")
        };
        // [1, m]
        let gallery_sq = read_f32(squared_norms(gallery_set, &gallery)?);
        let max_gallery_sq = gallery_sq
            .iter()
            .fold(0.0f64, |max, &value| max.max(value as f64));
        let query_host = read_f32(queries.clone());
        let gallery_host = if exclude_self {
            None
        } else {
            squared_norms(query_set, &queries)?;
            Some(read_f32(gallery.clone()))
        };
        Ok(Self {
            queries,
            gallery_t: gallery.transpose(),
            gallery_sq,
            max_gallery_sq,
            query_host,
            gallery_host,
            dim,
            exclude_self,
            error_factor,
            chunk_size,
            k_of,
        })
    }
}

impl<B: Backend> Screening for TensorScreening<'_, B> {
    fn num_queries(&self) -> usize {
        self.queries.dims()[0]
    }

    fn block_rows(&self) -> usize {
        self.chunk_size
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn host_rows(&self) -> (&[f32], &[f32]) {
        let gallery = self.gallery_host.as_deref().unwrap_or(&self.query_host);
        (&self.query_host, gallery)
    }

    fn shortlists(&mut self, block: Range<usize>) -> crate::Result<Vec<Shortlist>> {
        let dim = self.dim;
        let start = block.start;
        let chunk = self.queries.clone().slice([block, 0..dim]);
        // [c]
        let chunk_sq = read_f32(chunk.clone().powi_scalar(2).sum_dim(1));
        // [c, m]: only the dot products come back; the norms are added on the host while
        // building each row, saving three passes over the block on the backend.
        let dots = read_f32(chunk.matmul(self.gallery_t.clone()));
        let (gallery_sq, query_host) = (&self.gallery_sq, &self.query_host);
        let (max_gallery_sq, error_factor) = (self.max_gallery_sq, self.error_factor);
        let (exclude_self, k_of) = (self.exclude_self, self.k_of);
        let shortlists = dots
            .par_chunks(gallery_sq.len())
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(row, values): &mut (Vec<f32>, Vec<f32>), (i, dot_row)| {
                    let q = start + i;
                    // |q|^2 + |g|^2 - 2 q.g, in the reference's order of operations (f32)
                    row.clear();
                    row.extend(
                        dot_row
                            .iter()
                            .zip(gallery_sq)
                            .map(|(&dot, &g_sq)| (chunk_sq[i] + g_sq) - 2.0 * dot),
                    );
                    let query = &query_host[q * dim..(q + 1) * dim];
                    let query_sq: f64 = query.iter().map(|&v| v as f64 * v as f64).sum();
                    let mut shortlist = Shortlist {
                        entries: Vec::new(),
                        slack: 2.0 * error_factor * (query_sq + max_gallery_sq),
                    };
                    let skip = exclude_self.then_some(q);
                    let (k, slack) = (k_of(q), shortlist.slack);
                    shortlist_row(row, skip, k, slack, values, &mut shortlist.entries);
                    shortlist
                },
            )
            .collect();
        Ok(shortlists)
    }
}
