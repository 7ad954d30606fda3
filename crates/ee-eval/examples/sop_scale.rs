//! Times one full self-mode evaluation at the scale of SOP's test set (60,502 x 512,
//! 11,316 classes) on the CPU backend: Recall@{1,10,100,1000} and MAP@R.
//!
//! ```text
//! cargo run --release -p ee-eval --example sop_scale [n]
//! ```

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ee_eval::{evaluate, EvalConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("n must be a number"))
        .unwrap_or(60_502);
    let dim = 512;
    let classes = (n * 11_316 / 60_502).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let values: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    let labels: Vec<i64> = (0..n).map(|i| (i * classes / n) as i64).collect();
    let x = Tensor::<Flex, 2>::from_data(TensorData::new(values, [n, dim]), &Default::default());
    let config = EvalConfig::new()
        .with_recall_ks(vec![1, 10, 100, 1000])
        .with_clustering(false);
    let start = Instant::now();
    let report = evaluate(x, &labels, &config).expect("evaluation");
    let secs = start.elapsed().as_secs_f64();
    println!("{report}");
    println!("n = {n}, dim = {dim}: Recall@K + MAP@R in {secs:.1} s");
}
