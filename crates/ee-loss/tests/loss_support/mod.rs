//! Shared by the loss test binaries: f64 tensors on Autodiff<Flex>, random batches, a plain
//! Rust copy of the expansion and of each anchor's pairs, and a finite-difference check.
#![allow(dead_code)]

use std::sync::Once;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{FloatDType, Int, IntDType, Tensor, TensorData};
use ee_loss::{LossError, LossOutput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type B = Autodiff<Flex>;

static F64: Once = Once::new();

/// The device, with f64 floats as default (set once per test binary, before any tensor).
pub fn device() -> burn::tensor::Device<B> {
    let device = Default::default();
    F64.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&device, FloatDType::F64, IntDType::I64)
            .expect("f64 default dtype on flex");
    });
    device
}

pub fn embeddings(rows: &[Vec<f64>]) -> Tensor<B, 2> {
    let d = rows[0].len();
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), d]), &device())
}

pub fn labels(labels: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(labels.to_vec(), [labels.len()]), &device())
}

/// The single value of `t` (read as f64: `into_scalar` would round to the backend's f32
/// element type).
pub fn scalar(t: Tensor<B, 1>) -> f64 {
    let values = vector(t);
    assert_eq!(values.len(), 1);
    values[0]
}

pub fn vector(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// `classes` x `instances` rows of dimension `dim`, each class's rows consecutive, labels
/// 10, 11, ...; rows L2-normalised when `normalise`.
pub fn random_batch(
    classes: usize,
    instances: usize,
    dim: usize,
    normalise: bool,
    seed: u64,
) -> (Vec<Vec<f64>>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for class in 0..classes {
        for _ in 0..instances {
            let mut row: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            if normalise {
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                row.iter_mut().for_each(|v| *v /= norm);
            }
            rows.push(row);
            labels.push(10 + class as i64);
        }
    }
    (rows, labels)
}

/// The expanded set `[x ; s_1 ; ... ; s_n]` of METHOD.md section 2, in plain f64.
pub fn expand_reference(x: &[Vec<f64>], n: usize, l2_norm: bool) -> Vec<Vec<f64>> {
    let mut out = x.to_vec();
    for t in 1..=n {
        for (i, xi) in x.iter().enumerate() {
            let partner = &x[i ^ 1];
            let mut s: Vec<f64> = xi
                .iter()
                .zip(partner)
                .map(|(a, p)| (t as f64 * p + (n + 1 - t) as f64 * a) / (n + 1) as f64)
                .collect();
            if l2_norm {
                let norm = (s.iter().map(|v| v * v).sum::<f64>() + 1e-10).sqrt();
                s.iter_mut().for_each(|v| *v /= norm);
            }
            out.push(s);
        }
    }
    out
}

pub fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .max(1e-12)
        .sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    dot(a, b) / ((dot(a, a) + 1e-10).sqrt() * (dot(b, b) + 1e-10).sqrt())
}

/// The pairs of original anchor `i` by the documented EE rule: positives `j` (originals,
/// `j != i`, same class) and negatives `(r, c)` (`r` = `i` or one of its synthetic rows
/// `g B + i`, `c` any expanded row of another class).
pub struct ReferencePairs {
    pub positives: Vec<usize>,
    pub negatives: Vec<(usize, usize)>,
}

pub fn reference_pairs(labels: &[i64], n: usize, anchor: usize) -> ReferencePairs {
    let b = labels.len();
    let expanded = (n + 1) * b;
    let label = |row: usize| labels[row % b];
    let positives = (0..b)
        .filter(|&j| j != anchor && labels[j] == labels[anchor])
        .collect();
    let mut negatives = Vec::new();
    for g in 0..=n {
        let r = g * b + anchor;
        for c in 0..expanded {
            if label(c) != labels[anchor] {
                negatives.push((r, c));
            }
        }
    }
    ReferencePairs {
        positives,
        negatives,
    }
}

/// Central finite differences of `loss` against its autodiff gradient at `rows`.
pub fn check_gradient(
    rows: &[Vec<f64>],
    label_values: &[i64],
    loss: impl Fn(Tensor<B, 2>, Tensor<B, 1, Int>) -> Result<LossOutput<B>, LossError>,
) {
    let x = embeddings(rows).require_grad();
    let output = loss(x.clone(), labels(label_values)).unwrap();
    let grads = output.loss.backward();
    let analytic: Vec<f64> = x
        .grad(&grads)
        .expect("gradient reaches the embeddings")
        .into_data()
        .convert::<f64>()
        .to_vec()
        .unwrap();
    let d = rows[0].len();
    let h = 1e-6;
    let mut largest = 0.0f64;
    for (k, &got) in analytic.iter().enumerate() {
        let value_at = |delta: f64| {
            let mut moved = rows.to_vec();
            moved[k / d][k % d] += delta;
            scalar(loss(embeddings(&moved), labels(label_values)).unwrap().loss)
        };
        let numeric = (value_at(h) - value_at(-h)) / (2.0 * h);
        assert!(
            (got - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs(),
            "d loss / d x[{}][{}]: autodiff {got}, finite differences {numeric}",
            k / d,
            k % d
        );
        largest = largest.max(numeric.abs());
    }
    assert!(
        largest > 1e-4,
        "the check needs a non-zero gradient ({largest})"
    );
}

/// Points on the unit circle at the given angles (degrees).
pub fn on_circle(degrees: &[f64]) -> Vec<Vec<f64>> {
    degrees
        .iter()
        .map(|a| vec![a.to_radians().cos(), a.to_radians().sin()])
        .collect()
}

pub fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 + 1e-9 * want.abs(),
        "{what}: got {got}, expected {want}"
    );
}

/// Eight 3-d rows in two tight clusters (classes 0 and 1, four rows each) around
/// `(+centre, 0, 0)` and `(-centre, 0, 0)`, jittered by 0.01 x a fixed random draw.
pub fn two_clusters(centre: f64) -> Vec<Vec<f64>> {
    let (jitter, _) = random_batch(1, 8, 3, false, 7);
    jitter
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let c = if i < 4 { centre } else { -centre };
            vec![c + 0.01 * j[0], 0.01 * j[1], 0.01 * j[2]]
        })
        .collect()
}
