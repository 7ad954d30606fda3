//! Host kernels of a 2-D max pool (square kernel, PyTorch's ceil-mode output sizes) and its
//! gradient, on contiguous NCHW buffers, parallel over planes.
//!
//! A window is clipped to the input, which equals burn's and PyTorch's `-inf` padding. The
//! gradient goes to the first maximum of each window in row-major order, as PyTorch's.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::element::ConvElement;

/// Kernel, stride, padding, and the input and output plane sizes of one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output height and width (from [`pool_output_size`](crate::pool_output_size)).
    pub output: [usize; 2],
}

impl PoolGeometry {
    fn window(&self, out: usize, size: usize) -> std::ops::Range<usize> {
        let start = (out * self.stride) as isize - self.padding as isize;
        let end = (start + self.kernel as isize).min(size as isize);
        (start.max(0) as usize)..(end.max(0) as usize)
    }
}

/// Max over each window of `x` (`planes` planes): the outputs and, per output, the index of
/// its maximum inside the input plane.
pub fn forward<T: ConvElement + PartialOrd>(g: &PoolGeometry, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let [height, width] = g.input;
    let [out_h, out_w] = g.output;
    let (in_plane, out_plane) = (height * width, out_h * out_w);
    let planes = x.len() / in_plane.max(1);
    let mut y = vec![T::default(); planes * out_plane];
    let mut argmax = vec![0u32; planes * out_plane];
    y.par_chunks_mut(out_plane)
        .zip(argmax.par_chunks_mut(out_plane))
        .zip(x.par_chunks(in_plane))
        .for_each(|((y, argmax), x)| {
            for oh in 0..out_h {
                let rows = g.window(oh, height);
                for ow in 0..out_w {
                    let cols = g.window(ow, width);
                    let mut best = rows.start * width + cols.start;
                    for ih in rows.clone() {
                        for iw in cols.clone() {
                            let index = ih * width + iw;
                            // Greater, or a NaN (PyTorch propagates it): not `<=`.
                            let candidate = x[index].partial_cmp(&x[best]);
                            if !matches!(candidate, Some(Ordering::Less | Ordering::Equal)) {
                                best = index;
                            }
                        }
                    }
                    y[oh * out_w + ow] = x[best];
                    argmax[oh * out_w + ow] = best as u32;
                }
            }
        });
    (y, argmax)
}

/// The input gradient: each output's gradient added at its window's maximum.
pub fn backward<T: ConvElement>(g: &PoolGeometry, dy: &[T], argmax: &[u32]) -> Vec<T> {
    let in_plane = g.input[0] * g.input[1];
    let out_plane = g.output[0] * g.output[1];
    let planes = dy.len() / out_plane.max(1);
    let mut dx = vec![T::default(); planes * in_plane];
    dx.par_chunks_mut(in_plane)
        .zip(dy.par_chunks(out_plane).zip(argmax.par_chunks(out_plane)))
        .for_each(|(dx, (dy, argmax))| {
            for (g, &index) in dy.iter().zip(argmax) {
                dx[index as usize] += *g;
            }
        });
    dx
}
