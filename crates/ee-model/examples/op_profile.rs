use burn::backend::{Autodiff, Flex};
use burn::nn::BatchNormConfig;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::{Distribution, Tensor};
use std::time::Instant;
type AD = Autodiff<Flex>;
fn t<F: FnMut()>(name: &str, mut f: F) {
    f();
    let s = Instant::now();
    for _ in 0..3 {
        f();
    }
    println!("{name}: {:.1} ms", s.elapsed().as_secs_f64() * 1000.0 / 3.0);
}
fn main() {
    let d = Default::default();
    let shape = [64, 192, 16, 16];
    let x = Tensor::<Flex, 4>::random(shape, Distribution::Default, &d);
    let bn = BatchNormConfig::new(192).init::<AD>(&d);
    let xa = Tensor::<AD, 4>::random(shape, Distribution::Default, &d).require_grad();
    t("bn train fwd", || {
        let _ = bn.forward(xa.clone()).into_data();
    });
    t("bn train fwd+bwd", || {
        let y = bn.forward(xa.clone());
        let g = y.sum().backward();
        let _ = xa.grad(&g);
    });
    t("relu fwd", || {
        let _ = relu(x.clone()).into_data();
    });
    t("relu fwd+bwd", || {
        let y = relu(xa.clone());
        let g = y.sum().backward();
        let _ = xa.grad(&g);
    });
    t("maxpool3s2 fwd", || {
        let _ = max_pool2d(x.clone(), [3, 3], [2, 2], [0, 0], [1, 1], true).into_data();
    });
    t("maxpool3s1p1 fwd+bwd", || {
        let y = max_pool2d(xa.clone(), [3, 3], [1, 1], [1, 1], [1, 1], true);
        let g = y.sum().backward();
        let _ = xa.grad(&g);
    });
    t("cat4 fwd+bwd", || {
        let y = Tensor::cat(vec![xa.clone(), xa.clone(), xa.clone(), xa.clone()], 1);
        let g = y.sum().backward();
        let _ = xa.grad(&g);
    });
    t("sum bwd only baseline", || {
        let g = xa.clone().sum().backward();
        let _ = xa.grad(&g);
    });
}
