//! Ceil-mode max pooling against hand-computed and brute-force PyTorch-rule outputs.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor, TensorData};
use ee_model::{pool_output_size, MaxPool2dCeil};

type B = Flex;

/// A literal PyTorch-semantics max pool: -inf padding, window starts at `o * stride - pad`,
/// output size from PyTorch's rule. Independent of burn's pooling.
fn reference_pool(
    x: &[f32],
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
) -> (Vec<f32>, usize, usize) {
    let oh = pool_output_size(h, k, s, p, true).unwrap();
    let ow = pool_output_size(w, k, s, p, true).unwrap();
    let mut out = vec![f32::NEG_INFINITY; oh * ow];
    for i in 0..oh {
        for j in 0..ow {
            for di in 0..k {
                for dj in 0..k {
                    let r = (i * s + di) as isize - p as isize;
                    let c = (j * s + dj) as isize - p as isize;
                    if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                        out[i * ow + j] = out[i * ow + j].max(x[r as usize * w + c as usize]);
                    }
                }
            }
        }
    }
    (out, oh, ow)
}

fn grid(h: usize, w: usize, f: impl Fn(usize, usize) -> f32) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..h * w).map(|i| f(i / w, i % w)).collect();
    Tensor::from_data(TensorData::new(values, [1, 1, h, w]), &Default::default())
}

#[test]
fn hand_computed_ceil_windows() {
    // 6x6, kernel 3, stride 2, no padding: ceil gives 3 windows per side, rows {0,1,2},
    // {2,3,4}, {4,5} (the last one partial). Values v(r, c) = 10 r + c, max at the window's
    // bottom-right: rows 2, 4, 5 and columns 2, 4, 5.
    let pool = MaxPool2dCeil::new(3, 2, 0, true).unwrap();
    let out = pool.forward(grid(6, 6, |r, c| (10 * r + c) as f32));
    let expected = [22.0, 24.0, 25.0, 42.0, 44.0, 45.0, 52.0, 54.0, 55.0];
    assert_eq!(out.dims(), [1, 1, 3, 3]);
    assert_eq!(out.into_data().to_vec::<f32>().unwrap(), expected);

    // Maximum in the top-left: v(r, c) = -(10 r + c); windows start at rows 0, 2, 4.
    let out = pool.forward(grid(6, 6, |r, c| -((10 * r + c) as f32)));
    let expected = [0.0, -2.0, -4.0, -20.0, -22.0, -24.0, -40.0, -42.0, -44.0];
    assert_eq!(out.into_data().to_vec::<f32>().unwrap(), expected);
}

#[test]
fn window_starting_in_padding_is_dropped() {
    // 5x5, kernel 2, stride 2, pad 1: plain ceil arithmetic says 4, PyTorch keeps 3 windows,
    // rows {-1,0}, {1,2}, {3,4}. v = 10 r + c -> maxima at rows/cols 0, 2, 4.
    let pool = MaxPool2dCeil::new(2, 2, 1, true).unwrap();
    let out = pool.forward(grid(5, 5, |r, c| (10 * r + c) as f32));
    assert_eq!(out.dims(), [1, 1, 3, 3]);
    let expected = [0.0, 2.0, 4.0, 20.0, 22.0, 24.0, 40.0, 42.0, 44.0];
    assert_eq!(out.into_data().to_vec::<f32>().unwrap(), expected);
}

#[test]
fn googlenet_pool_chain_at_227_matches_reference() {
    // After conv1, 227 px is 114; the four pools give 57, 28, 14, 7.
    let device = Default::default();
    let mut x = Tensor::<B, 4>::random([1, 2, 114, 114], Distribution::Normal(0.0, 1.0), &device);
    for (k, expected) in [(3, 57), (3, 28), (3, 14), (2, 7)] {
        let pool = MaxPool2dCeil::new(k, 2, 0, true).unwrap();
        let y = pool.forward(x.clone());
        let [_, _, h, w] = x.dims();
        assert_eq!(y.dims(), [1, 2, expected, expected]);
        let values = x.clone().into_data().to_vec::<f32>().unwrap();
        let got = y.clone().into_data().to_vec::<f32>().unwrap();
        for channel in 0..2 {
            let plane = &values[channel * h * w..(channel + 1) * h * w];
            let (want, oh, ow) = reference_pool(plane, h, w, k, 2, 0);
            assert_eq!((oh, ow), (expected, expected));
            assert_eq!(&got[channel * oh * ow..(channel + 1) * oh * ow], &want[..]);
        }
        x = y;
    }
}

#[test]
fn inception_pool_keeps_size_and_matches_reference() {
    let pool = MaxPool2dCeil::new(3, 1, 1, true).unwrap();
    let x = Tensor::<B, 4>::random(
        [1, 1, 7, 5],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let values = x.clone().into_data().to_vec::<f32>().unwrap();
    let y = pool.forward(x);
    assert_eq!(y.dims(), [1, 1, 7, 5]);
    let (want, _, _) = reference_pool(&values, 7, 5, 3, 1, 1);
    assert_eq!(y.into_data().to_vec::<f32>().unwrap(), want);
}

#[test]
fn gradient_goes_to_the_window_maximum() {
    // 4x4, kernel 3, stride 2, ceil: 2x2 windows, the second row/column partial.
    type AD = Autodiff<Flex>;
    let device = Default::default();
    let values: Vec<f32> = (0..16).map(|i| ((i * 7) % 16) as f32).collect();
    let x = Tensor::<AD, 4>::from_data(TensorData::new(values.clone(), [1, 1, 4, 4]), &device)
        .require_grad();
    let pool = MaxPool2dCeil::new(3, 2, 0, true).unwrap();
    let y = pool.forward(x.clone());
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    let grads = y.sum().backward();
    let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    // Windows: rows/cols {0,1,2} and {2,3}; each sends gradient 1 to its argmax.
    let mut expected = [0.0f32; 16];
    for (r0, r1) in [(0, 3), (2, 4)] {
        for (c0, c1) in [(0, 3), (2, 4)] {
            let mut best = (f32::NEG_INFINITY, 0);
            for r in r0..r1 {
                for c in c0..c1 {
                    if values[r * 4 + c] > best.0 {
                        best = (values[r * 4 + c], r * 4 + c);
                    }
                }
            }
            expected[best.1] += 1.0;
        }
    }
    assert_eq!(g, expected);
}
