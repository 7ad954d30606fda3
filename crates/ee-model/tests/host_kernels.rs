//! The host kernels against burn's own ops on the CPU backend: `ee_model::conv2d` (forward,
//! input, weight and bias gradients, on the shapes GoogLeNet uses and on odd ones) and
//! `ee_model::batch_norm` (training forward, running statistics, gradients), in f32 and f64;
//! that `EE_CPU_KERNELS=burn` sends every layer to burn's ops instead; and that every
//! checkpointing strategy of `Autodiff<Flex, _>` takes the host kernels.

use burn::backend::{Autodiff, Flex};
use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};
use ee_model::{batch_norm, conv2d, own_kernel_calls, KernelCalls, MaxPool2dCeil, CPU_KERNELS_ENV};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type AD = Autodiff<Flex>;

/// One case: input `[n, c, h, w]`, output channels, kernel, stride, padding
/// `(top, left, bottom, right)`, dilation, bias.
struct Case {
    input: [usize; 4],
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: (usize, usize, usize, usize),
    dilation: [usize; 2],
    bias: bool,
}

const fn case(
    input: [usize; 4],
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Case {
    Case {
        input,
        out_channels,
        kernel: [kernel, kernel],
        stride: [stride, stride],
        padding: (padding, padding, padding, padding),
        dilation: [1, 1],
        bias: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // GoogLeNet's: conv1 7x7/2 p3, conv2 1x1, conv3 3x3 p1, and late 1x1 / 3x3 layers on
        // tiny maps with many samples (the batch-folded chunks).
        case([2, 3, 33, 31], 8, 7, 2, 3),
        case([3, 6, 9, 9], 5, 1, 1, 0),
        case([2, 6, 9, 7], 7, 3, 1, 1),
        case([40, 12, 2, 2], 9, 1, 1, 0),
        case([40, 12, 2, 3], 9, 3, 1, 1),
        case([1, 4, 5, 6], 3, 3, 2, 0),
        case([2, 3, 8, 8], 4, 3, 2, 2),
        Case {
            input: [3, 5, 11, 10],
            out_channels: 6,
            kernel: [3, 2],
            stride: [2, 1],
            padding: (2, 0, 1, 3),
            dilation: [2, 1],
            bias: true,
        },
        Case {
            bias: true,
            ..case([5, 4, 7, 7], 6, 1, 2, 0)
        },
    ]
}

/// Values in [-1, 1) from a seeded ChaCha8 stream (not burn's global RNG, which tests
/// running in parallel would share).
fn random<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f64> = (0..shape.iter().product())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_data(TensorData::new(values, shape), (device, dtype))
}

/// The case's layer in `dtype`, with seeded weights (and bias).
fn layer<B: Backend>(case: &Case, dtype: DType, device: &B::Device) -> Conv2d<B> {
    let (top, left, bottom, right) = case.padding;
    let mut conv = Conv2dConfig::new([case.input[1], case.out_channels], case.kernel)
        .with_stride(case.stride)
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .with_dilation(case.dilation)
        .with_bias(case.bias)
        .init::<B>(device);
    conv.weight = Param::from_tensor(random(conv.weight.dims(), 1, dtype, device));
    conv.bias = conv
        .bias
        .map(|_| Param::from_tensor(random([case.out_channels], 2, dtype, device)));
    conv
}

fn relative_gap(a: TensorData, b: TensorData) -> f64 {
    let a = a.convert::<f64>().to_vec::<f64>().unwrap();
    let b = b.convert::<f64>().to_vec::<f64>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let gap = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    gap / scale
}

/// burn's convolution. `Conv2d::forward` pads asymmetric cases by hand with default-dtype
/// (f32) zeros, which flex rejects for f64 inputs; with symmetric padding, the functional
/// op is the same call `Conv2d::forward` makes.
fn reference_conv2d<B: Backend>(case: &Case, conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let (top, left, bottom, right) = case.padding;
    if (top, left) != (bottom, right) {
        return conv.forward(x);
    }
    burn::tensor::module::conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        ConvOptions::new(case.stride, [top, left], case.dilation, 1),
    )
}

/// Forward, and the gradients of `sum(y * r)` for a fixed random `r`, of both
/// implementations: `[y, dx, dw, (db)]` each.
fn outputs(case: &Case, dtype: DType, fast: bool) -> Vec<TensorData> {
    let device = Default::default();
    let conv = layer::<AD>(case, dtype, &device);
    let x = random::<AD, 4>(case.input, 3, dtype, &device).require_grad();
    let y = if fast {
        conv2d(&conv, x.clone())
    } else {
        reference_conv2d(case, &conv, x.clone())
    };
    let r = random::<AD, 4>(y.dims(), 4, dtype, &device);
    let grads = (y.clone() * r).sum().backward();
    let mut out = vec![
        y.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
        conv.weight
            .val()
            .grad(&grads)
            .expect("weight gradient")
            .into_data(),
    ];
    if let Some(bias) = &conv.bias {
        out.push(bias.val().grad(&grads).expect("bias gradient").into_data());
    }
    out
}

#[test]
fn matches_burn_forward_and_gradients_in_f32_and_f64() {
    for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::F64, 1e-10)] {
        for case in cases() {
            let (top, left, bottom, right) = case.padding;
            if dtype == DType::F64 && (top, left) != (bottom, right) {
                continue; // burn's reference cannot run it (see reference_conv2d)
            }
            let fast = outputs(&case, dtype, true);
            let reference = outputs(&case, dtype, false);
            assert_eq!(fast[0].shape, reference[0].shape);
            for (what, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
                .iter()
                .zip(fast.into_iter().zip(reference))
            {
                assert_eq!(a.dtype, dtype, "{what} keeps the dtype");
                let gap = relative_gap(a, b);
                assert!(
                    gap <= tolerance,
                    "{what} of input {:?} kernel {:?} stride {:?} ({dtype:?}): relative gap {gap:e}",
                    case.input,
                    case.kernel,
                    case.stride
                );
            }
        }
    }
}

#[test]
fn eval_backend_forward_matches_burn() {
    let device = Default::default();
    for case in cases() {
        let conv = layer::<Flex>(&case, DType::F32, &device);
        let x = random::<Flex, 4>(case.input, 3, DType::F32, &device);
        let gap = relative_gap(
            conv2d(&conv, x.clone()).into_data(),
            conv.forward(x).into_data(),
        );
        assert!(gap <= 1e-5, "input {:?}: {gap:e}", case.input);
    }
}

#[test]
fn repeated_runs_are_bit_identical() {
    let case = case([40, 12, 5, 5], 9, 3, 1, 1);
    let first = outputs(&case, DType::F32, true);
    let second = outputs(&case, DType::F32, true);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.as_bytes(), b.as_bytes());
    }
}

#[test]
fn grouped_convolutions_fall_back_to_burn() {
    let device = Default::default();
    let conv = Conv2dConfig::new([4, 6], [3, 3])
        .with_groups(2)
        .init::<Flex>(&device);
    let x = random::<Flex, 4>([2, 4, 6, 6], 3, DType::F32, &device);
    let ours = conv2d(&conv, x.clone()).into_data();
    assert_eq!(ours.as_bytes(), conv.forward(x).into_data().as_bytes());
}

/// `[y, dx, dgamma, dbeta, running_mean, running_var]` of a training-mode BatchNorm (after
/// one earlier step, so the running update starts from non-default values).
fn batch_norm_outputs(dtype: DType, fast: bool) -> Vec<TensorData> {
    let device = Default::default();
    let shape = [6, 5, 7, 3];
    let mut layer = BatchNormConfig::new(5)
        .with_momentum(0.3)
        .with_epsilon(1e-3)
        .init::<AD>(&device);
    layer.gamma = Param::from_tensor(random([5], 11, dtype, &device));
    layer.beta = Param::from_tensor(random([5], 12, dtype, &device));
    layer.running_mean = RunningState::new(Tensor::zeros([5], (&device, dtype)));
    layer.running_var = RunningState::new(Tensor::ones([5], (&device, dtype)));
    let run = |x: Tensor<AD, 4>| match fast {
        true => batch_norm(&layer, x),
        false => layer.forward(x),
    };
    let warm = random::<AD, 4>(shape, 13, dtype, &device)
        .mul_scalar(3.0)
        .add_scalar(0.5);
    let _ = run(warm);
    let x = random::<AD, 4>(shape, 14, dtype, &device)
        .mul_scalar(2.0)
        .require_grad();
    let y = run(x.clone());
    let r = random::<AD, 4>(shape, 15, dtype, &device);
    let grads = (y.clone() * r).sum().backward();
    vec![
        y.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
        layer
            .gamma
            .val()
            .grad(&grads)
            .expect("gamma gradient")
            .into_data(),
        layer
            .beta
            .val()
            .grad(&grads)
            .expect("beta gradient")
            .into_data(),
        layer.running_mean.value().into_data(),
        layer.running_var.value().into_data(),
    ]
}

#[test]
fn batch_norm_matches_burn_in_training_mode() {
    for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::F64, 1e-10)] {
        let fast = batch_norm_outputs(dtype, true);
        let reference = batch_norm_outputs(dtype, false);
        let names = [
            "output",
            "input grad",
            "gamma grad",
            "beta grad",
            "running mean",
            "running var",
        ];
        for (what, (a, b)) in names.iter().zip(fast.into_iter().zip(reference)) {
            assert_eq!(a.shape, b.shape, "{what}");
            let gap = relative_gap(a, b);
            assert!(gap <= tolerance, "{what} ({dtype:?}): relative gap {gap:e}");
        }
    }
}

#[test]
fn batch_norm_in_eval_mode_matches_burn() {
    let device = Default::default();
    let mut layer = BatchNormConfig::new(3).init::<Flex>(&device);
    layer.gamma = Param::from_tensor(random([3], 1, DType::F32, &device));
    layer.beta = Param::from_tensor(random([3], 2, DType::F32, &device));
    layer.running_mean = RunningState::new(random([3], 3, DType::F32, &device));
    layer.running_var = RunningState::new(random([3], 4, DType::F32, &device).add_scalar(1.5));
    let x = random::<Flex, 4>([2, 3, 4, 5], 5, DType::F32, &device);
    let gap = relative_gap(
        batch_norm(&layer, x.clone()).into_data(),
        layer.forward(x).into_data(),
    );
    assert!(gap <= 1e-5, "relative gap {gap:e}");
}

/// `[y, dx]` of a max pool, ours or burn's (`EE_CPU_KERNELS` cannot be toggled inside one
/// process, so burn's is called directly, with the same ceil-mode crop).
fn pool_outputs(
    pool: &MaxPool2dCeil,
    shape: [usize; 4],
    dtype: DType,
    fast: bool,
) -> Vec<TensorData> {
    let device = Default::default();
    let x = random::<AD, 4>(shape, 21, dtype, &device).require_grad();
    let y = if fast {
        pool.forward(x.clone())
    } else {
        let k = pool.kernel_size;
        let (s, p) = (pool.stride, pool.padding);
        let [out_h, out_w] = pool.output_size(shape[2], shape[3]).unwrap();
        burn::tensor::module::max_pool2d(x.clone(), [k, k], [s, s], [p, p], [1, 1], pool.ceil_mode)
            .slice([0..shape[0], 0..shape[1], 0..out_h, 0..out_w])
    };
    let r = random::<AD, 4>(y.dims(), 22, dtype, &device);
    let grads = (y.clone() * r).sum().backward();
    vec![
        y.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
    ]
}

#[test]
fn max_pool_matches_burn() {
    // GoogLeNet's pools (3/2 ceil, 3/1 pad 1, 2/2 ceil) on even and odd sizes, and floor mode.
    let pools = [
        (3, 2, 0, true),
        (3, 1, 1, true),
        (2, 2, 0, true),
        (3, 2, 1, false),
    ];
    for (kernel, stride, padding, ceil_mode) in pools {
        let pool = MaxPool2dCeil::new(kernel, stride, padding, ceil_mode).unwrap();
        for shape in [[2, 3, 9, 8], [3, 2, 14, 15], [1, 4, 7, 7]] {
            for dtype in [DType::F32, DType::F64] {
                let ours = pool_outputs(&pool, shape, dtype, true);
                let reference = pool_outputs(&pool, shape, dtype, false);
                for (what, (a, b)) in ["output", "input grad"]
                    .iter()
                    .zip(ours.into_iter().zip(reference))
                {
                    assert_eq!(a.shape, b.shape, "{what} {shape:?}");
                    let gap = relative_gap(a, b);
                    assert!(
                        gap == 0.0,
                        "{what} of pool {kernel}/{stride}/{padding} on {shape:?}: {gap:e}"
                    );
                }
            }
        }
    }
}

/// Own-kernel calls of one GoogLeNet training step (forward + backward on `Autodiff<Flex>`)
/// and of one evaluation forward (`Flex`), in that order.
fn googlenet_kernel_calls() -> [KernelCalls; 2] {
    use ee_model::EmbeddingModelConfig;
    let device = Default::default();
    let model = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .init::<AD>(&device)
        .unwrap();
    let images = random::<AD, 4>([2, 3, 32, 32], 31, DType::F32, &device);
    let before = own_kernel_calls();
    let grads = model.forward(images.clone()).sum().backward();
    let train = delta(before, own_kernel_calls());
    assert!(model.head.embedding.weight.val().grad(&grads).is_some());
    let before = own_kernel_calls();
    let _ = burn::module::AutodiffModule::valid(&model).forward(images.inner());
    [train, delta(before, own_kernel_calls())]
}

fn delta(before: KernelCalls, after: KernelCalls) -> KernelCalls {
    KernelCalls {
        conv: after.conv - before.conv,
        batch_norm_train: after.batch_norm_train - before.batch_norm_train,
        batch_norm_eval: after.batch_norm_eval - before.batch_norm_eval,
        max_pool: after.max_pool - before.max_pool,
    }
}

const BURN_KERNELS_RAN: &str = "EE_CPU_KERNELS=burn: every layer ran on burn's ops";

#[test]
fn cpu_kernels_switch_sends_every_layer_to_burn_in_training_and_evaluation() {
    // The switch is read once per process: this test checks the host kernels here, then runs
    // itself again with EE_CPU_KERNELS=burn, where it checks that none of them ran.
    let [train, eval] = googlenet_kernel_calls();
    if std::env::var(CPU_KERNELS_ENV).as_deref() == Ok("burn") {
        assert_eq!(train, KernelCalls::default(), "training step");
        assert_eq!(eval, KernelCalls::default(), "evaluation forward");
        println!("{BURN_KERNELS_RAN}");
        return;
    }
    // GoogLeNet: 57 conv + BatchNorm + ReLU layers; 4 max pools and one per inception block.
    let all = |batch_norm_train, batch_norm_eval| KernelCalls {
        conv: 57,
        batch_norm_train,
        batch_norm_eval,
        max_pool: 4 + 9,
    };
    assert_eq!(train, all(57, 0), "training step on the host kernels");
    assert_eq!(eval, all(0, 57), "evaluation forward on the host kernels");

    let name = "cpu_kernels_switch_sends_every_layer_to_burn_in_training_and_evaluation";
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CPU_KERNELS_ENV, "burn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains(BURN_KERNELS_RAN),
        "with {CPU_KERNELS_ENV}=burn: {}\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
}

/// The own-kernel calls of one training step (forward + backward) of `model` on `images`, and
/// the gradients: the input's, then each float tensor's in module order (`None`: it has none).
fn train_step<B: burn::tensor::backend::AutodiffBackend>(
    model: &ee_model::EmbeddingModel<B>,
    images: Tensor<B, 4>,
) -> (KernelCalls, Vec<Option<TensorData>>) {
    use burn::module::{Module, ModuleVisitor};
    struct Collect<'a, B: burn::tensor::backend::AutodiffBackend> {
        grads: &'a B::Gradients,
        found: Vec<Option<TensorData>>,
    }
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for Collect<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let grad = param.val().grad(self.grads);
            self.found.push(grad.map(|grad| grad.into_data()));
        }
    }
    let images = images.require_grad();
    let before = own_kernel_calls();
    let grads = model.forward(images.clone()).sum().backward();
    let calls = delta(before, own_kernel_calls());
    let mut collect = Collect::<B> {
        grads: &grads,
        found: vec![images.grad(&grads).map(|grad| grad.into_data())],
    };
    model.visit(&mut collect);
    (calls, collect.found)
}

/// `target` with each float tensor's `require_grad` flag as in `source` (`valid()` clears
/// them; BatchNorm's running statistics never have one).
fn with_require_grad_of<A, B, M, N>(source: &M, target: N) -> N
where
    A: Backend,
    B: Backend,
    M: burn::module::Module<A>,
    N: burn::module::Module<B>,
{
    use burn::module::{ModuleMapper, ModuleVisitor};
    struct Flags(Vec<bool>);
    impl<A: Backend> ModuleVisitor<A> for Flags {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            self.0.push(param.is_require_grad());
        }
    }
    struct SetFlags(std::vec::IntoIter<bool>);
    impl<B: Backend> ModuleMapper<B> for SetFlags {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.set_require_grad(self.0.next().expect("the same modules"))
        }
    }
    let mut flags = Flags(Vec::new());
    source.visit(&mut flags);
    target.map(&mut SetFlags(flags.0.into_iter()))
}

#[test]
fn balanced_checkpointing_takes_the_host_kernels_with_the_same_gradients() {
    use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
    use burn::module::AutodiffModule;
    use ee_model::{EmbeddingModel, EmbeddingModelConfig};
    type Balanced = Autodiff<Flex, BalancedCheckpointing>;
    if std::env::var(CPU_KERNELS_ENV).as_deref() == Ok("burn") {
        return; // nothing to compare: every layer runs on burn's ops
    }
    let device = Default::default();
    // One GoogLeNet, the same weights (and trainable parameters) on both backends.
    let plain = EmbeddingModelConfig::new()
        .with_embed_dim(8)
        .init::<AD>(&device)
        .unwrap();
    let balanced = with_require_grad_of(
        &plain,
        EmbeddingModel::<Balanced>::from_inner(plain.valid()),
    );
    let images = random::<Flex, 4>([2, 3, 32, 32], 41, DType::F32, &device);
    let (plain_calls, plain_grads) = train_step(&plain, Tensor::from_inner(images.clone()));
    let (balanced_calls, balanced_grads) = train_step(&balanced, Tensor::from_inner(images));

    // GoogLeNet: 57 conv + BatchNorm + ReLU layers; 4 max pools and one per inception block.
    let expected = KernelCalls {
        conv: 57,
        batch_norm_train: 57,
        batch_norm_eval: 0,
        max_pool: 4 + 9,
    };
    assert_eq!(plain_calls, expected, "Autodiff<Flex> on the host kernels");
    assert_eq!(
        balanced_calls, expected,
        "Autodiff<Flex, BalancedCheckpointing>"
    );
    assert_eq!(plain_grads.len(), balanced_grads.len());
    // The input, 57 convolution weights, 57 gammas and betas, the head's weight and bias.
    let found = plain_grads.iter().filter(|grad| grad.is_some()).count();
    assert_eq!(found, 1 + 57 * 3 + 2, "gradients found");
    for (index, (a, b)) in balanced_grads.into_iter().zip(plain_grads).enumerate() {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            (None, None) => continue,
            (a, b) => panic!("gradient {index}: {:?} vs {:?}", a.is_some(), b.is_some()),
        };
        assert_eq!(a.shape, b.shape, "gradient {index}");
        let gap = relative_gap(a, b);
        assert!(gap <= 1e-5, "gradient {index}: relative gap {gap:e}");
    }
}
