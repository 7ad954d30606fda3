//! The HPHN mining on distinct points equals the mining on the expanded matrix: the same
//! values bit for bit and the same gradients, ties included.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use ee_loss::mining::{hardest_pairs, hardest_pairs_distinct};
use ee_loss::EmbeddingExpansionConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = Autodiff<Flex>;

/// `classes x instances` rows of unit vectors in `dim` dimensions; with `duplicates`, every
/// class's second row repeats its first (ties among originals).
fn batch(seed: u64, classes: usize, instances: usize, dim: usize, duplicates: bool) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for _ in 0..classes {
        for i in 0..instances {
            let row: Vec<f32> = if duplicates && i == 1 {
                rows.last().unwrap().clone()
            } else {
                let v: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() - 0.5).collect();
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.iter().map(|a| a / norm).collect()
            };
            rows.push(row);
        }
    }
    rows.concat()
}

fn values(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn distinct_mining_matches_expanded_mining() {
    let device = Default::default();
    for (seed, n, duplicates) in [
        (0, 1, false),
        (1, 2, false),
        (2, 2, true),
        (3, 4, true),
        (4, 3, false),
    ] {
        let (classes, instances, dim) = (4, 4, 8);
        let rows = classes * instances;
        let data = batch(seed, classes, instances, dim, duplicates);
        let labels: Vec<i64> = (0..rows as i64).map(|r| r / instances as i64).collect();
        let expansion = EmbeddingExpansionConfig::new().with_n_inner_pts(n).init();
        let run = |distinct: bool| {
            let x = Tensor::<B, 2>::from_data(TensorData::new(data.clone(), [rows, dim]), &device)
                .require_grad();
            let y = Tensor::<B, 1, Int>::from_data(labels.as_slice(), &device);
            let expanded = expansion.expand(x.clone(), y).unwrap();
            let pairs = if distinct {
                hardest_pairs_distinct(&expanded)
            } else {
                hardest_pairs(&expanded, expanded.distance_matrix())
            };
            let synthetic: Vec<bool> = pairs
                .negative_is_synthetic
                .clone()
                .into_data()
                .to_vec()
                .unwrap();
            let objective = pairs.positive_distance.clone().mul_scalar(3.0).sum()
                - pairs.negative_distance.clone().sum();
            let grads = objective.backward();
            let gradient: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            (
                values(pairs.positive_distance.detach()),
                values(pairs.negative_distance.detach()),
                synthetic,
                gradient,
            )
        };
        let (ap, an, syn, grad) = run(false);
        let (ap2, an2, syn2, grad2) = run(true);
        assert_eq!(ap, ap2, "seed {seed} n {n}: d_ap");
        assert_eq!(an, an2, "seed {seed} n {n}: d_an");
        assert_eq!(syn, syn2, "seed {seed} n {n}: synthetic negatives");
        let scale = grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0);
        for (i, (a, b)) in grad.iter().zip(&grad2).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "seed {seed} n {n}: gradient {i}: {a} vs {b}"
            );
        }
    }
}
