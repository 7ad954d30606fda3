//! Embedding Expansion: synthetic points interpolated between same-class pairs.
//!
//! For `n` inner points and every row `i` with partner `p(i)` (METHOD.md section 2):
//!
//! ```text
//! s_t(i) = ( t * x_p(i) + (n + 1 - t) * x_i ) / (n + 1),   t = 1..n
//! s_t(i) <- s_t(i) / sqrt( sum(s_t(i)^2) + 1e-10 )           (when l2_norm)
//! ```
//!
//! The expanded set stacks `[x ; s_1 ; ... ; s_n]`, `N = (n + 1) * B` rows, labels repeated.
//! `s_t(i)` and `s_{n+1-t}(p(i))` are the same point. The reference computes both copies with
//! commutative arithmetic, so they are equal bit for bit and distances to them tie exactly;
//! [`ExpandedBatch`] computes each synthetic point once and indexes it twice, which gives the
//! same bits (and the same gradients, as autodiff sums over both uses) without trusting a matrix
//! product to round identical rows identically.

use burn::config::Config;
use burn::tensor::{backend::Backend, Bool, Int, Tensor};

use crate::batch::{check_batch, count_non_finite, labels_to_vec};
use crate::distance::pairwise_euclidean;
use crate::LossError;

/// The reference's L2 normalisation (shared with ee-model's head through ee-core).
pub use ee_core::{l2_normalize, L2_NORM_EPSILON};

/// Configuration of [`EmbeddingExpansion`].
#[derive(Config, Debug, PartialEq)]
pub struct EmbeddingExpansionConfig {
    /// Synthetic points per pair (`n_inner_pts`); 0 turns the expansion off.
    #[config(default = 2)]
    pub n_inner_pts: usize,
    /// L2-normalise the synthetic points (`ee_l2norm`).
    #[config(default = true)]
    pub l2_norm: bool,
}

impl EmbeddingExpansionConfig {
    /// Builds the transform (every `n_inner_pts` and `l2_norm` is valid).
    pub fn init(&self) -> EmbeddingExpansion {
        EmbeddingExpansion {
            n_inner_pts: self.n_inner_pts,
            l2_norm: self.l2_norm,
        }
    }
}

/// The expansion transform: `(embeddings [B, D], labels [B]) -> ExpandedBatch`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingExpansion {
    n_inner_pts: usize,
    l2_norm: bool,
}

impl EmbeddingExpansion {
    /// Synthetic points per pair.
    pub fn n_inner_pts(&self) -> usize {
        self.n_inner_pts
    }

    /// Whether the synthetic points are L2-normalised.
    pub fn l2_norm(&self) -> bool {
        self.l2_norm
    }

    /// Checks the batch (layout, lengths, finite values: see [`check_batch`]) and expands it.
    ///
    /// Reads the labels and one count of non-finite values back to the host.
    pub fn expand<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<ExpandedBatch<B>, LossError> {
        let [rows, _] = embeddings.dims();
        check_batch(&labels_to_vec(&labels), rows, self.n_inner_pts > 0)?;
        let count = count_non_finite(&embeddings);
        if count > 0 {
            return Err(LossError::NonFinite { count });
        }
        Ok(self.expand_unchecked(embeddings, labels))
    }

    /// Expands without checking the batch: the caller guarantees the sampler's layout
    /// (partner rows share labels, even batch size when `n_inner_pts > 0`) and finite values.
    pub fn expand_unchecked<B: Backend>(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> ExpandedBatch<B> {
        let [batch_size, _] = embeddings.dims();
        let n = self.n_inner_pts;
        if n == 0 {
            return ExpandedBatch {
                unique: embeddings,
                index: None,
                unique_labels: labels.clone(),
                labels,
                batch_size,
                n_inner_pts: 0,
            };
        }
        let device = embeddings.device();
        let half = batch_size / 2;
        let even_rows = Tensor::<B, 1, Int>::arange_step(0..batch_size as i64, 2, &device);
        let odd_rows = Tensor::<B, 1, Int>::arange_step(1..batch_size as i64, 2, &device);
        let x_even = embeddings.clone().select(0, even_rows.clone()); // [B/2, D]
        let x_odd = embeddings.clone().select(0, odd_rows); // [B/2, D]

        // Only s_t(i) for even i: the odd rows' points are the same ones in reverse order.
        // Divide by a tensor, not a scalar: burn-autodiff 0.21 computes the backward of
        // `div_scalar` with the reciprocal in f32, which costs f64 users 1e-7 of gradient
        // accuracy. Forward bits are the same either way (IEEE division).
        let total = x_even.clone().detach().full_like((n + 1) as f64);
        let mut parts = Vec::with_capacity(n + 1);
        parts.push(embeddings);
        for t in 1..=n {
            // The reference's `anchor * left + pos * right` with anchor = partner (odd row).
            let inner = (x_odd.clone().mul_scalar(t as f64)
                + x_even.clone().mul_scalar((n + 1 - t) as f64))
                / total.clone();
            parts.push(if self.l2_norm {
                l2_normalize(inner)
            } else {
                inner
            });
        }
        let unique = Tensor::cat(parts, 0); // [B + n * B/2, D]

        let mut index: Vec<i64> = (0..batch_size as i64).collect();
        for group in 1..=n {
            for row in 0..batch_size {
                let t = if row % 2 == 0 { group } else { n + 1 - group };
                index.push((batch_size + (t - 1) * half + row / 2) as i64);
            }
        }
        let index = Tensor::<B, 1, Int>::from_data(index.as_slice(), &device);
        // Each synthetic point is labelled as its even row (the pair shares the class).
        let mut unique_labels = vec![labels.clone()];
        unique_labels.extend((0..n).map(|_| labels.clone().select(0, even_rows.clone())));
        ExpandedBatch {
            unique,
            index: Some(index),
            unique_labels: Tensor::cat(unique_labels, 0),
            labels: labels.repeat_dim(0, n + 1),
            batch_size,
            n_inner_pts: n,
        }
    }
}

/// A batch after expansion: `N = (n + 1) * B` rows, originals first, then group `g` (1..=n)
/// holding `s_g(i)` at row `g * B + i`.
#[derive(Debug, Clone)]
pub struct ExpandedBatch<B: Backend> {
    /// Originals [B, D] followed by each distinct synthetic point once [n * B/2, D].
    unique: Tensor<B, 2>,
    /// Row of `unique` for each expanded row [N]; `None` when there is no synthetic point.
    index: Option<Tensor<B, 1, Int>>,
    /// Labels of `unique` [B + n * B/2].
    unique_labels: Tensor<B, 1, Int>,
    /// Labels of the expanded rows [N].
    labels: Tensor<B, 1, Int>,
    batch_size: usize,
    n_inner_pts: usize,
}

impl<B: Backend> ExpandedBatch<B> {
    /// Number of original rows `B`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Synthetic points per pair `n`.
    pub fn n_inner_pts(&self) -> usize {
        self.n_inner_pts
    }

    /// Number of expanded rows `N = (n + 1) * B`.
    pub fn len(&self) -> usize {
        (self.n_inner_pts + 1) * self.batch_size
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.batch_size == 0
    }

    /// The expanded embeddings `[x ; s_1 ; ... ; s_n]`: [N, D].
    pub fn embeddings(&self) -> Tensor<B, 2> {
        match &self.index {
            Some(index) => self.unique.clone().select(0, index.clone()),
            None => self.unique.clone(),
        }
    }

    /// Labels of the expanded rows: [N].
    pub fn labels(&self) -> Tensor<B, 1, Int> {
        self.labels.clone()
    }

    /// True for the `B` original rows, false for synthetic ones: [N].
    pub fn is_original(&self) -> Tensor<B, 1, Bool> {
        Tensor::<B, 1, Int>::arange(0..self.len() as i64, &self.labels.device())
            .lower_elem(self.batch_size as i64)
    }

    /// Euclidean distances between all expanded rows, with the reference's clip: [N, N].
    ///
    /// Computed over the distinct points, so twin synthetic points give bit-identical
    /// distances.
    pub fn distance_matrix(&self) -> Tensor<B, 2> {
        self.expand_pairwise(pairwise_euclidean(self.unique.clone()))
    }

    /// Applies `pairwise` (e.g. a distance or similarity, [M, D] -> [M, M]) to the distinct
    /// points and lays the result out over the expanded rows: [N, N].
    pub fn pairwise_matrix(
        &self,
        pairwise: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        self.expand_pairwise(pairwise(self.unique.clone()))
    }

    /// The distinct points, `[B + n * B / 2, D]`: the originals, then the synthetic points of
    /// the even rows for `t = 1..n`. [`Self::embeddings`] is these rows by [`Self::index`].
    pub fn unique_embeddings(&self) -> Tensor<B, 2> {
        self.unique.clone()
    }

    /// The labels of [`Self::unique_embeddings`].
    pub fn unique_labels(&self) -> Tensor<B, 1, Int> {
        self.unique_labels.clone()
    }

    /// Which distinct point each expanded row is, `[(n + 1) * B]` (`None` when n = 0: the
    /// rows are the points).
    pub fn index(&self) -> Option<Tensor<B, 1, Int>> {
        self.index.clone()
    }

    /// How many expanded rows each distinct point stands for, `[1, U]`: 1 for an original,
    /// 2 for a synthetic point (`s_t(i)` is also `s_{n+1-t}(p(i))`).
    pub fn multiplicity(&self) -> Tensor<B, 2> {
        let [u, _] = self.unique.dims();
        let device = self.unique.device();
        let ones = Tensor::<B, 2>::ones([1, self.batch_size], &device);
        if u == self.batch_size {
            return ones;
        }
        Tensor::cat(
            vec![
                ones,
                Tensor::ones([1, u - self.batch_size], &device).mul_scalar(2.0),
            ],
            1,
        )
    }

    fn expand_pairwise(&self, matrix: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.index {
            Some(index) => matrix.select(0, index.clone()).select(1, index.clone()),
            None => matrix,
        }
    }
}
