//! Where an eval-mode GoogLeNet forward spends its time on the CPU backend, by kind of layer
//! (the stem, 1x1 / 3x3 conv blocks with their BatchNorm and ReLU, pools, concatenations):
//!
//! ```text
//! cargo run --release -p ee-model --example layer_profile -- [IMAGE_SIZE=227] [BATCH=16]
//! ```
//! `EE_CPU_KERNELS=burn` profiles burn's own kernels instead of ee-model's host kernels.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use ee_model::{GoogLeNetConfig, Inception};

type B = Flex;

/// Seconds per kind of layer.
#[derive(Default)]
struct Profile(BTreeMap<&'static str, f64>);

impl Profile {
    fn time<T>(&mut self, kind: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = f();
        *self.0.entry(kind).or_default() += start.elapsed().as_secs_f64();
        result
    }

    fn inception(&mut self, block: &Inception<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.time("conv 1x1 + BN + ReLU", || block.branch1.forward(x.clone()));
        let r2 = self.time("conv 1x1 + BN + ReLU", || {
            block.branch2[0].forward(x.clone())
        });
        let b2 = self.time("conv 3x3 + BN + ReLU", || block.branch2[1].forward(r2));
        let r3 = self.time("conv 1x1 + BN + ReLU", || {
            block.branch3[0].forward(x.clone())
        });
        let b3 = self.time("conv 3x3 + BN + ReLU", || block.branch3[1].forward(r3));
        let pooled = self.time("max pool 3x3/1", || block.pool.forward(x));
        let b4 = self.time("conv 1x1 + BN + ReLU", || block.branch4[0].forward(pooled));
        self.time("concat", || Tensor::cat(vec![b1, b2, b3, b4], 1))
    }
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |s| s.parse().expect("a whole number"))
    };
    let (size, batch) = (arg(1, 227), arg(2, 16));
    let device = Default::default();
    let net = GoogLeNetConfig::new()
        .init::<B>(&device)
        .expect("valid config");
    let images = Tensor::<B, 4>::random([batch, 3, size, size], Distribution::Default, &device);
    let mut profile = Profile::default();
    let mut total = 0.0;
    for run in 0..3 {
        // The first run warms up and is not counted.
        let p = &mut profile;
        if run == 1 {
            *p = Profile::default();
        }
        let start = Instant::now();
        let x = p.time("conv1 7x7/2 + BN + ReLU", || {
            net.conv1.forward(images.clone())
        });
        let x = p.time("max pool 3x3/2", || net.maxpool1.forward(x));
        let x = p.time("conv 1x1 + BN + ReLU", || net.conv2.forward(x));
        let x = p.time("conv 3x3 + BN + ReLU", || net.conv3.forward(x));
        let x = p.time("max pool 3x3/2", || net.maxpool2.forward(x));
        let x = p.inception(&net.inception3a, x);
        let x = p.inception(&net.inception3b, x);
        let x = p.time("max pool 3x3/2", || net.maxpool3.forward(x));
        let mut x = x;
        for block in [
            &net.inception4a,
            &net.inception4b,
            &net.inception4c,
            &net.inception4d,
            &net.inception4e,
        ] {
            x = p.inception(block, x);
        }
        let x = p.time("max pool 2x2/2", || net.maxpool4.forward(x));
        let x = p.inception(&net.inception5a, x);
        let _ = p.inception(&net.inception5b, x).into_data();
        if run > 0 {
            total += start.elapsed().as_secs_f64();
        }
    }
    println!(
        "eval forward, {size} px, batch {batch}: {:.3} s per run",
        total / 2.0
    );
    for (kind, seconds) in &profile.0 {
        println!("  {kind:<26} {:.3} s", seconds / 2.0);
    }
}
