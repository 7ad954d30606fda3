//! Host kernels of a 2-D convolution (groups = 1) and both of its gradients, on contiguous
//! NCHW buffers: im2col / col2im with the batch folded into the GEMM columns, and the `gemm`
//! crate for the products.
//!
//! ```text
//! forward:  y[n]  = W [O, K] x cols(x[n]) [K, P]            K = C*KH*KW, P = OH*OW
//! input:    dx[n] = col2im(W^T [K, O] x dy[n] [O, P])
//! weight:   dW    = sum_n dy[n] [O, P] x cols(x[n])^T [P, K]
//! ```
//! Samples are processed in chunks of `ceil(TARGET_COLUMNS / P)` so that late layers with
//! tiny feature maps still give the GEMM wide matrices. When the batch gives every thread
//! work, the threads take fixed, contiguous sample ranges (each runs its GEMMs serially);
//! otherwise one range runs with the GEMM's own threads. The weight gradient adds the
//! threads' partial sums in range order, so results are the same from run to run for a given
//! thread count.

use rayon::prelude::*;

pub use crate::element::ConvElement;

/// GEMM columns a chunk of samples aims for (samples per chunk = ceil(this / P)).
const TARGET_COLUMNS: usize = 256;

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_GEMM_MACS: usize = 1 << 20;

/// Shapes, strides and paddings of one convolution (groups = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// Dilation (height, width).
    pub dilation: [usize; 2],
    /// Zero padding before the first row and column (top, left).
    pub pad_begin: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl ConvGeometry {
    /// The geometry of `conv2d(x [N, C, H, W], w [O, C, KH, KW])` with padding
    /// `((top, bottom), (left, right))`, or `None` when the shapes do not fit (channel
    /// mismatch, a zero stride or dilation, or a kernel larger than the padded input).
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: [[usize; 2]; 2],
    ) -> Option<Self> {
        let [batch, in_channels, height, width] = input;
        let [out_channels, weight_channels, kh, kw] = weight;
        if weight_channels != in_channels || stride.contains(&0) || dilation.contains(&0) {
            return None;
        }
        let out = |size: usize, pad: [usize; 2], k: usize, s: usize, d: usize| {
            let span = d * (k.checked_sub(1)?) + 1;
            (size + pad[0] + pad[1])
                .checked_sub(span)
                .map(|r| r / s + 1)
        };
        let output = [
            out(height, padding[0], kh, stride[0], dilation[0])?,
            out(width, padding[1], kw, stride[1], dilation[1])?,
        ];
        Some(Self {
            batch,
            in_channels,
            out_channels,
            input: [height, width],
            kernel: [kh, kw],
            stride,
            dilation,
            pad_begin: [padding[0][0], padding[1][0]],
            output,
        })
    }

    /// Rows of the im2col matrix: `C * KH * KW`.
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    fn in_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn out_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// A 1x1, stride-1, unpadded convolution: the im2col matrix of a sample is the sample.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad_begin == [0, 0]
    }

    /// Multiply-adds of the forward product.
    pub fn macs(&self) -> usize {
        self.batch * self.out_channels * self.out_plane() * self.col_rows()
    }

    /// Input, weight and output element counts.
    pub fn sizes(&self) -> [usize; 3] {
        [
            self.batch * self.in_channels * self.in_plane(),
            self.out_channels * self.col_rows(),
            self.batch * self.out_channels * self.out_plane(),
        ]
    }
}

/// How a call divides its samples between threads.
struct Plan {
    /// Contiguous sample ranges, one per task.
    ranges: Vec<std::ops::Range<usize>>,
    /// Samples per GEMM chunk inside a range.
    chunk: usize,
    /// Whether the GEMMs use their own threads (a single range).
    gemm_threads: bool,
}

impl Plan {
    fn new(geometry: &ConvGeometry) -> Self {
        let batch = geometry.batch;
        let plane = geometry.out_plane().max(1);
        let chunk = TARGET_COLUMNS.div_ceil(plane).clamp(1, batch.max(1));
        let threads = rayon::current_num_threads().max(1);
        // Each thread takes a range of samples when every range holds at least one chunk.
        let tasks = if batch >= threads * chunk { threads } else { 1 };
        let ranges = (0..tasks)
            .map(|t| (batch * t / tasks)..(batch * (t + 1) / tasks))
            .collect();
        Self {
            ranges,
            chunk,
            gemm_threads: tasks == 1,
        }
    }

    fn parallelism(&self, macs: usize) -> gemm::Parallelism {
        if self.gemm_threads && macs >= PARALLEL_GEMM_MACS {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        }
    }

    /// The chunks (sample ranges) of one task's range.
    fn chunks(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = std::ops::Range<usize>> {
        let chunk = self.chunk;
        range
            .clone()
            .step_by(chunk)
            .map(move |start| start..(start + chunk).min(range.end))
    }
}

/// Splits `data` into consecutive mutable pieces of `lengths`.
fn split_lengths<T>(mut data: &mut [T], lengths: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    lengths
        .map(|len| {
            let (head, tail) = std::mem::take(&mut data).split_at_mut(len);
            data = tail;
            head
        })
        .collect()
}

/// A row-major matrix view for [`matmul`]: element (i, j) at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
struct MatRef<T> {
    ptr: *const T,
    row_stride: isize,
    col_stride: isize,
}

impl<T> MatRef<T> {
    fn rows(data: &[T], row_len: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: row_len as isize,
            col_stride: 1,
        }
    }

    fn transposed(data: &[T], row_len: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: 1,
            col_stride: row_len as isize,
        }
    }
}

/// `dst [m, n] (row-major, contiguous) = lhs [m, k] x rhs [k, n]`, or `+=` with `accumulate`.
///
/// # Safety
/// `lhs` and `rhs` must address `m x k` and `k x n` readable elements of live slices.
unsafe fn matmul<T: ConvElement>(
    [m, n, k]: [usize; 3],
    dst: &mut [T],
    accumulate: bool,
    lhs: MatRef<T>,
    rhs: MatRef<T>,
    parallelism: gemm::Parallelism,
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: dst is a live m x n buffer; the caller vouches for lhs and rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The valid output columns `[lo, hi)` of one kernel column: `iw = ow * stride + offset`
/// must lie in `[0, width)`.
fn valid_span(out: usize, width: usize, stride: usize, offset: isize) -> (usize, usize) {
    let (width, stride) = (width as isize, stride as isize);
    let lo = if offset < 0 {
        (-offset + stride - 1) / stride
    } else {
        0
    };
    let hi = if offset < width {
        (width - offset + stride - 1) / stride
    } else {
        0
    };
    let lo = (lo as usize).min(out);
    (lo, (hi as usize).clamp(lo, out))
}

/// im2col of the samples in `x` (`samples * C * H * W` values) into `cols` `[K, samples * P]`.
fn im2col<T: ConvElement>(g: &ConvGeometry, x: &[T], samples: usize, cols: &mut [T]) {
    let [kh_size, kw_size] = g.kernel;
    let [height, width] = g.input;
    let out_w = g.output[1];
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let columns = samples * out_plane;
    cols.par_chunks_mut(columns)
        .enumerate()
        .for_each(|(row, col_row)| {
            let channel = row / (kh_size * kw_size);
            let (kh, kw) = ((row / kw_size) % kh_size, row % kw_size);
            let h_offset = (kh * g.dilation[0]) as isize - g.pad_begin[0] as isize;
            let w_offset = (kw * g.dilation[1]) as isize - g.pad_begin[1] as isize;
            let (lo, hi) = valid_span(out_w, width, g.stride[1], w_offset);
            for sample in 0..samples {
                let plane = &x[(sample * g.in_channels + channel) * in_plane..][..in_plane];
                let dst = &mut col_row[sample * out_plane..][..out_plane];
                for (oh, dst_row) in dst.chunks_exact_mut(out_w).enumerate() {
                    let ih = (oh * g.stride[0]) as isize + h_offset;
                    if ih < 0 || ih >= height as isize || lo == hi {
                        dst_row.fill(T::default());
                        continue;
                    }
                    let src = &plane[ih as usize * width..][..width];
                    dst_row[..lo].fill(T::default());
                    dst_row[hi..].fill(T::default());
                    let first = (lo * g.stride[1]) as isize + w_offset;
                    if g.stride[1] == 1 {
                        dst_row[lo..hi].copy_from_slice(&src[first as usize..][..hi - lo]);
                    } else {
                        let step = g.stride[1];
                        for (value, iw) in dst_row[lo..hi]
                            .iter_mut()
                            .zip((first as usize..).step_by(step))
                        {
                            *value = src[iw];
                        }
                    }
                }
            }
        });
}

/// col2im: adds `cols` `[K, samples * P]` back into `dx` (`samples * C * H * W` values).
fn col2im<T: ConvElement>(g: &ConvGeometry, cols: &[T], samples: usize, dx: &mut [T]) {
    let [kh_size, kw_size] = g.kernel;
    let width = g.input[1];
    let height = g.input[0];
    let out_w = g.output[1];
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let columns = samples * out_plane;
    dx.par_chunks_mut(in_plane)
        .enumerate()
        .for_each(|(index, plane)| {
            let (sample, channel) = (index / g.in_channels, index % g.in_channels);
            for kh in 0..kh_size {
                let h_offset = (kh * g.dilation[0]) as isize - g.pad_begin[0] as isize;
                for kw in 0..kw_size {
                    let row = (channel * kh_size + kh) * kw_size + kw;
                    let w_offset = (kw * g.dilation[1]) as isize - g.pad_begin[1] as isize;
                    let (lo, hi) = valid_span(out_w, width, g.stride[1], w_offset);
                    if lo == hi {
                        continue;
                    }
                    let src = &cols[row * columns + sample * out_plane..][..out_plane];
                    for (oh, src_row) in src.chunks_exact(out_w).enumerate() {
                        let ih = (oh * g.stride[0]) as isize + h_offset;
                        if ih < 0 || ih >= height as isize {
                            continue;
                        }
                        let dst = &mut plane[ih as usize * width..][..width];
                        let first = (lo * g.stride[1]) as isize + w_offset;
                        for (value, iw) in src_row[lo..hi]
                            .iter()
                            .zip((first as usize..).step_by(g.stride[1]))
                        {
                            dst[iw] += *value;
                        }
                    }
                }
            }
        });
}

/// `[samples, O, P]` (NCHW) -> `[O, samples * P]`.
fn to_channel_major<T: ConvElement>(
    src: &[T],
    samples: usize,
    channels: usize,
    plane: usize,
    dst: &mut [T],
) {
    let columns = samples * plane;
    dst.par_chunks_mut(columns)
        .enumerate()
        .for_each(|(channel, row)| {
            for (sample, piece) in row.chunks_exact_mut(plane).enumerate() {
                piece.copy_from_slice(&src[(sample * channels + channel) * plane..][..plane]);
            }
        });
}

/// `[O, samples * P]` -> `[samples, O, P]` (NCHW).
fn from_channel_major<T: ConvElement>(
    src: &[T],
    samples: usize,
    channels: usize,
    plane: usize,
    dst: &mut [T],
) {
    let columns = samples * plane;
    dst.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(index, piece)| {
            let (sample, channel) = (index / channels, index % channels);
            piece.copy_from_slice(&src[channel * columns + sample * plane..][..plane]);
        });
}

/// The convolution `y = conv2d(x, w)` (no bias): `x` `[N, C, H, W]`, `w` `[O, C, KH, KW]`,
/// returns `y` `[N, O, OH, OW]`, all contiguous row-major.
pub fn forward<T: ConvElement>(g: &ConvGeometry, x: &[T], w: &[T]) -> Vec<T> {
    let [x_len, w_len, y_len] = g.sizes();
    assert!(
        x.len() == x_len && w.len() == w_len,
        "conv2d forward: buffer sizes do not fit {g:?}"
    );
    let mut y = vec![T::default(); y_len];
    let plan = Plan::new(g);
    let (k, o, plane) = (g.col_rows(), g.out_channels, g.out_plane());
    let x_sample = g.in_channels * g.in_plane();
    let y_sample = o * plane;
    let pieces = split_lengths(&mut y, plan.ranges.iter().map(|r| r.len() * y_sample));
    pieces
        .into_par_iter()
        .zip(plan.ranges.clone())
        .for_each(|(y_range, range)| {
            let first_sample = range.start;
            let mut cols = Vec::new();
            let mut staged = Vec::new();
            for chunk in plan.chunks(range) {
                let samples = chunk.len();
                let columns = samples * plane;
                let x_chunk = &x[chunk.start * x_sample..chunk.end * x_sample];
                let rhs = if g.is_pointwise() && samples == 1 {
                    MatRef::rows(x_chunk, columns)
                } else if g.is_pointwise() {
                    cols.resize(k * columns, T::default());
                    to_channel_major(x_chunk, samples, g.in_channels, plane, &mut cols);
                    MatRef::rows(&cols, columns)
                } else {
                    cols.resize(k * columns, T::default());
                    im2col(g, x_chunk, samples, &mut cols);
                    MatRef::rows(&cols, columns)
                };
                let y_chunk =
                    &mut y_range[(chunk.start - first_sample) * y_sample..][..samples * y_sample];
                let parallelism = plan.parallelism(o * columns * k);
                let lhs = MatRef::rows(w, k);
                if samples == 1 {
                    // SAFETY: w is [o, k], rhs addresses k x columns values of x or cols.
                    unsafe { matmul([o, columns, k], y_chunk, false, lhs, rhs, parallelism) };
                } else {
                    staged.resize(o * columns, T::default());
                    // SAFETY: as above.
                    unsafe { matmul([o, columns, k], &mut staged, false, lhs, rhs, parallelism) };
                    from_channel_major(&staged, samples, o, plane, y_chunk);
                }
            }
        });
    y
}

/// Gradients of `y = conv2d(x, w)` given `dy = dL/dy`: `(dL/dx, dL/dw)`, each computed only
/// when asked for.
pub fn backward<T: ConvElement>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    want_input: bool,
    want_weight: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let [x_len, w_len, y_len] = g.sizes();
    assert!(
        x.len() == x_len && w.len() == w_len && dy.len() == y_len,
        "conv2d backward: buffer sizes do not fit {g:?}"
    );
    let plan = Plan::new(g);
    let (k, o, plane) = (g.col_rows(), g.out_channels, g.out_plane());
    let x_sample = g.in_channels * g.in_plane();
    let y_sample = o * plane;
    let mut dx = want_input.then(|| vec![T::default(); x_len]);
    let dx_pieces: Vec<Option<&mut [T]>> = match dx.as_mut() {
        Some(dx) => split_lengths(dx, plan.ranges.iter().map(|r| r.len() * x_sample))
            .into_iter()
            .map(Some)
            .collect(),
        None => plan.ranges.iter().map(|_| None).collect(),
    };
    let partial_weights: Vec<Option<Vec<T>>> = dx_pieces
        .into_par_iter()
        .zip(plan.ranges.clone())
        .map(|(mut dx_range, range)| {
            let first_sample = range.start;
            let mut dw = want_weight.then(|| vec![T::default(); w_len]);
            let mut cols = Vec::new();
            let mut dy_staged = Vec::new();
            let mut dcols = Vec::new();
            for chunk in plan.chunks(range) {
                let samples = chunk.len();
                let columns = samples * plane;
                let dy_chunk = &dy[chunk.start * y_sample..chunk.end * y_sample];
                let dy_matrix = if samples == 1 {
                    dy_chunk
                } else {
                    dy_staged.resize(o * columns, T::default());
                    to_channel_major(dy_chunk, samples, o, plane, &mut dy_staged);
                    &dy_staged[..]
                };
                let parallelism = plan.parallelism(o * columns * k);
                if let Some(dw) = dw.as_mut() {
                    let x_chunk = &x[chunk.start * x_sample..chunk.end * x_sample];
                    let cols_matrix = if g.is_pointwise() && samples == 1 {
                        x_chunk
                    } else {
                        cols.resize(k * columns, T::default());
                        if g.is_pointwise() {
                            to_channel_major(x_chunk, samples, g.in_channels, plane, &mut cols);
                        } else {
                            im2col(g, x_chunk, samples, &mut cols);
                        }
                        &cols[..]
                    };
                    // dW [o, k] += dy [o, columns] x cols^T [columns, k]
                    // SAFETY: both operands are live slices of the addressed sizes.
                    unsafe {
                        matmul(
                            [o, k, columns],
                            dw,
                            true,
                            MatRef::rows(dy_matrix, columns),
                            MatRef::transposed(cols_matrix, columns),
                            parallelism,
                        )
                    };
                }
                if let Some(dx_range) = dx_range.as_deref_mut() {
                    let dx_chunk = &mut dx_range[(chunk.start - first_sample) * x_sample..]
                        [..samples * x_sample];
                    let lhs = MatRef::transposed(w, k); // W^T [k, o]
                    let rhs = MatRef::rows(dy_matrix, columns);
                    if g.is_pointwise() && samples == 1 {
                        // SAFETY: w is [o, k], dy_matrix is [o, columns].
                        unsafe { matmul([k, columns, o], dx_chunk, false, lhs, rhs, parallelism) };
                    } else {
                        dcols.resize(k * columns, T::default());
                        // SAFETY: as above.
                        unsafe {
                            matmul([k, columns, o], &mut dcols, false, lhs, rhs, parallelism)
                        };
                        if g.is_pointwise() {
                            from_channel_major(&dcols, samples, g.in_channels, plane, dx_chunk);
                        } else {
                            col2im(g, &dcols, samples, dx_chunk);
                        }
                    }
                }
            }
            dw
        })
        .collect();
    let dw = want_weight.then(|| {
        let mut partials = partial_weights.into_iter().flatten();
        let mut total = partials.next().unwrap_or_else(|| vec![T::default(); w_len]);
        for partial in partials {
            total.iter_mut().zip(&partial).for_each(|(t, p)| *t += *p);
        }
        total
    });
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, the definition.
    fn naive_forward(g: &ConvGeometry, x: &[f64], w: &[f64]) -> Vec<f64> {
        let [h, wd] = g.input;
        let [oh_n, ow_n] = g.output;
        let mut y = vec![0.0; g.sizes()[2]];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let mut sum = 0.0;
                        for c in 0..g.in_channels {
                            for kh in 0..g.kernel[0] {
                                for kw in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + kh * g.dilation[0]) as isize
                                        - g.pad_begin[0] as isize;
                                    let iw = (ow * g.stride[1] + kw * g.dilation[1]) as isize
                                        - g.pad_begin[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                        continue;
                                    }
                                    let xv = x[((n * g.in_channels + c) * h + ih as usize) * wd
                                        + iw as usize];
                                    let wv = w[((o * g.in_channels + c) * g.kernel[0] + kh)
                                        * g.kernel[1]
                                        + kw];
                                    sum += xv * wv;
                                }
                            }
                        }
                        y[((n * g.out_channels + o) * oh_n + oh) * ow_n + ow] = sum;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        // A small LCG: deterministic, no dependency.
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn forward_and_gradients_match_the_definition() {
        // (input, weight, stride, dilation, padding ((top, bottom), (left, right)))
        let cases = [
            ([2, 3, 7, 6], [4, 3, 3, 3], [1, 1], [1, 1], [[1, 1], [1, 1]]),
            ([3, 2, 9, 8], [5, 2, 7, 7], [2, 2], [1, 1], [[3, 3], [3, 3]]),
            ([1, 4, 5, 5], [3, 4, 1, 1], [1, 1], [1, 1], [[0, 0], [0, 0]]),
            ([5, 4, 2, 3], [6, 4, 1, 1], [1, 1], [1, 1], [[0, 0], [0, 0]]),
            ([2, 3, 8, 7], [2, 3, 3, 2], [2, 3], [2, 1], [[2, 0], [1, 2]]),
            (
                [70, 2, 3, 3],
                [3, 2, 3, 3],
                [1, 1],
                [1, 1],
                [[1, 1], [1, 1]],
            ),
        ];
        for (input, weight, stride, dilation, padding) in cases {
            let g = ConvGeometry::new(input, weight, stride, dilation, padding).unwrap();
            let [x_len, w_len, y_len] = g.sizes();
            let (x, w, dy) = (values(x_len, 1), values(w_len, 2), values(y_len, 3));
            let y = forward(&g, &x, &w);
            let expected = naive_forward(&g, &x, &w);
            for (a, b) in y.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
            // The convolution is bilinear: <dy, conv(x, w)> = <dx, x> = <dw, w>, and its
            // gradients are the adjoints, checked along random directions.
            let (dx, dw) = backward(&g, &x, &w, &dy, true, true);
            let (dx, dw) = (dx.unwrap(), dw.unwrap());
            let dir_x = values(x_len, 4);
            let dir_w = values(w_len, 5);
            let along_x = dot(&dy, &naive_forward(&g, &dir_x, &w));
            let along_w = dot(&dy, &naive_forward(&g, &x, &dir_w));
            assert!(
                (dot(&dx, &dir_x) - along_x).abs() < 1e-9 * (1.0 + along_x.abs()),
                "{g:?}"
            );
            assert!(
                (dot(&dw, &dir_w) - along_w).abs() < 1e-9 * (1.0 + along_w.abs()),
                "{g:?}"
            );
            let (only_dx, no_dw) = backward(&g, &x, &w, &dy, true, false);
            assert_eq!(only_dx.unwrap(), dx);
            assert!(no_dw.is_none());
        }
    }

    #[test]
    fn geometry_rejects_what_does_not_fit() {
        assert!(
            ConvGeometry::new([1, 3, 4, 4], [2, 2, 3, 3], [1, 1], [1, 1], [[0, 0], [0, 0]])
                .is_none()
        );
        assert!(
            ConvGeometry::new([1, 3, 2, 2], [2, 3, 3, 3], [1, 1], [1, 1], [[0, 0], [0, 0]])
                .is_none()
        );
        assert!(
            ConvGeometry::new([1, 3, 4, 4], [2, 3, 3, 3], [0, 1], [1, 1], [[0, 0], [0, 0]])
                .is_none()
        );
        let g = ConvGeometry::new(
            [1, 3, 227, 227],
            [64, 3, 7, 7],
            [2, 2],
            [1, 1],
            [[3, 3], [3, 3]],
        );
        assert_eq!(g.unwrap().output, [114, 114]);
    }
}
