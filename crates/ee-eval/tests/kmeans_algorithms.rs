//! The k-means algorithms against each other: the host and backend engines of Lloyd, and
//! mini-batch against Lloyd, on clustered data with many small classes (SOP's shape, smaller).

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ee_eval::{kmeans, normalized_mutual_information, Engine, KMeansAlgorithm, KMeansConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `classes` Gaussian blobs of `per_class` points in `dim` dimensions; `spread` is the
/// within-class standard deviation against unit-variance centres.
fn blobs(
    classes: usize,
    per_class: usize,
    dim: usize,
    spread: f32,
    seed: u64,
) -> (Vec<f32>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        let centre: Vec<f32> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        for _ in 0..per_class {
            for &m in &centre {
                let noise: f32 = StandardNormal.sample(&mut rng);
                data.push(m + spread * noise);
            }
            labels.push(c as i64);
        }
    }
    // Shuffle the rows so that classes are not contiguous.
    let n = labels.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let shuffled: Vec<f32> = order
        .iter()
        .flat_map(|&i| data[i * dim..(i + 1) * dim].to_vec())
        .collect();
    (shuffled, order.iter().map(|&i| labels[i]).collect())
}

fn run(data: &[f32], dim: usize, k: usize, config: &KMeansConfig) -> ee_eval::KMeansResult {
    let x = Tensor::<Flex, 2>::from_data(
        TensorData::new(data.to_vec(), [data.len() / dim, dim]),
        &Default::default(),
    );
    kmeans(x, k, config, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()
}

#[test]
fn minibatch_nmi_stays_within_0_005_of_lloyd() {
    let (classes, dim) = (400, 16);
    let (data, labels) = blobs(classes, 5, dim, 0.6, 1);
    let lloyd = run(
        &data,
        dim,
        classes,
        &KMeansConfig::new().with_algorithm(KMeansAlgorithm::Lloyd),
    );
    let mini = run(
        &data,
        dim,
        classes,
        &KMeansConfig::new()
            .with_algorithm(KMeansAlgorithm::MiniBatch)
            .with_minibatch_size(512),
    );
    assert_eq!(lloyd.algorithm, KMeansAlgorithm::Lloyd);
    assert_eq!(mini.algorithm, KMeansAlgorithm::MiniBatch);
    let nmi_lloyd = normalized_mutual_information(&labels, &lloyd.assignments);
    let nmi_mini = normalized_mutual_information(&labels, &mini.assignments);
    assert!(nmi_lloyd > 0.8, "Lloyd NMI {nmi_lloyd}");
    // Lloyd as the evaluation runs it by default (5 restarts).
    assert!(
        (nmi_mini - nmi_lloyd).abs() < 0.005,
        "mini-batch NMI {nmi_mini} vs Lloyd {nmi_lloyd}"
    );
}

#[test]
fn host_and_backend_lloyd_agree_on_separated_blobs() {
    let (classes, dim) = (12, 8);
    let (data, labels) = blobs(classes, 20, dim, 0.05, 2);
    for engine in [Engine::Host, Engine::Backend] {
        let config = KMeansConfig::new()
            .with_engine(engine)
            .with_algorithm(KMeansAlgorithm::Lloyd);
        let r = run(&data, dim, classes, &config);
        let nmi = normalized_mutual_information(&labels, &r.assignments);
        assert!((nmi - 1.0).abs() < 1e-12, "{engine:?}: NMI {nmi}");
        assert!(r.converged, "{engine:?}");
    }
}

#[test]
fn auto_limits_lloyd_on_large_problems() {
    let config = KMeansConfig::new().with_large_above(1_000);
    assert_eq!(config.plan_for(100, 10), (KMeansAlgorithm::Lloyd, 5, 100));
    assert_eq!(config.plan_for(101, 10), (KMeansAlgorithm::Lloyd, 1, 10));
    // SOP's test set with the default threshold, CARS196's below it
    let defaults = KMeansConfig::new();
    assert_eq!(
        defaults.plan_for(60_502, 11_316),
        (KMeansAlgorithm::Lloyd, 1, 10)
    );
    assert_eq!(
        defaults.plan_for(8_131, 98),
        (KMeansAlgorithm::Lloyd, 5, 100)
    );
    let mini = KMeansConfig::new().with_algorithm(KMeansAlgorithm::MiniBatch);
    assert_eq!(mini.plan_for(8_131, 98).0, KMeansAlgorithm::MiniBatch);
}
