//! Host matrix kernels shared by the host engines of k-NN and k-means.

use rayon::prelude::*;

/// The squared norm of every row of the row-major `[rows, dim]` matrix `data`, summed in f64
/// in index order, rows in parallel.
pub(crate) fn squared_norms(data: &[f32], dim: usize) -> Vec<f64> {
    data.par_chunks(dim)
        .map(|row| row.iter().map(|&v| v as f64 * v as f64).sum())
        .collect()
}

/// `dst[r * cols + c] = a_r . b_c` for the rows `a` (`[rows, dim]`) and `b` (`[cols, dim]`),
/// single-threaded (callers run one tile per task): the `gemm` crate, as burn's flex
/// backend uses it.
pub(crate) fn dot_tile(
    dst: &mut [f32],
    a: &[f32],
    rows: usize,
    b: &[f32],
    cols: usize,
    dim: usize,
) {
    assert!(a.len() >= rows * dim && b.len() >= cols * dim && dst.len() >= rows * cols);
    if rows == 0 || cols == 0 {
        return;
    }
    // SAFETY: the pointers cover `rows x dim`, `cols x dim` and `rows x cols` values with the
    // strides given (asserted above); `dst` does not alias the inputs.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            dim,
            dst.as_mut_ptr(),
            1,
            cols as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_tile_matches_the_definition() {
        let (rows, cols, dim) = (3, 5, 7);
        let a: Vec<f32> = (0..rows * dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..cols * dim).map(|i| (i as f32 * 0.91).cos()).collect();
        let mut dst = vec![0.0; rows * cols];
        dot_tile(&mut dst, &a, rows, &b, cols, dim);
        for r in 0..rows {
            for c in 0..cols {
                let want: f32 = (0..dim).map(|i| a[r * dim + i] * b[c * dim + i]).sum();
                assert!((dst[r * cols + c] - want).abs() < 1e-5);
            }
        }
    }
}
