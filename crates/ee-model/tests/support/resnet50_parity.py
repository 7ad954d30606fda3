#!/usr/bin/env python3
"""PyTorch side of the ResNet-50 parity check (the ignored test `resnet::torchvision_parity`).

Builds torchvision's `resnet50` (random init, seeded), gives every BatchNorm a random affine
part and running statistics calibrated on a batch of random images (so eval mode is not the
identity), and writes under OUT (default: target/parity/resnet50):

    OUT/resnet50.pth           torch.save(state_dict): torchvision's exact file layout,
                               fc and num_batches_tracked included
    OUT/resnet50.safetensors   the same tensors as safetensors
    OUT/io.safetensors         images [2, 3, 64, 64] (standard normal),
                               eval_features [2, 2048, 2, 2]   (model.eval(), conv1 .. layer4),
                               images_odd [1, 3, 65, 47], eval_features_odd [1, 2048, 3, 2],
                               train_features [2, 2048, 2, 2]  (model.train(): batch statistics),
                               train.<bn>.running_mean         (after that train-mode forward)

Run it with the venv that has torch + torchvision, from the workspace root:

    target/bench-venv/bin/python crates/ee-model/tests/support/resnet50_parity.py
    cargo test -p ee-model --test resnet -- --ignored torchvision_parity

`--keys FILE` instead writes torchvision's state-dict keys, shapes and dtypes, one per line
(tests/support/resnet50_keys.txt, which the ordinary tests read).
"""
import argparse
import os
import sys

try:
    import torch
    import torchvision
    from safetensors.torch import save_file
except ImportError as error:
    print(f"PyTorch parity side unavailable: {error}", file=sys.stderr)
    sys.exit(3)

# BatchNorms whose running means the test compares after the train-mode forward.
TRACKED_BNS = ["bn1", "layer1.0.downsample.1", "layer3.5.bn2", "layer4.2.bn3"]


def features(model, x):
    """torchvision's ResNet.forward up to layer4 (no avgpool, no fc)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer1(x)
    x = model.layer2(x)
    x = model.layer3(x)
    return model.layer4(x)


def write_keys(path):
    model = torchvision.models.resnet50(weights=None)
    with open(path, "w") as f:
        f.write(f"# torchvision {torchvision.__version__} resnet50().state_dict(): "
                "key, shape (comma-separated, '-' for a scalar), dtype\n")
        for key, value in model.state_dict().items():
            shape = ",".join(str(d) for d in value.shape) or "-"
            dtype = str(value.dtype).removeprefix("torch.")
            f.write(f"{key} {shape} {dtype}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="target/parity/resnet50")
    p.add_argument("--keys", help="write the key list to this file and stop")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.keys:
        write_keys(args.keys)
        return

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    model = torchvision.models.resnet50(weights=None)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch gives its statistics
        model.train()
        features(model, torch.randn(8, 3, 64, 64))
        for bn in bns:
            bn.momentum = 0.1

    os.makedirs(args.out, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(model.state_dict(), os.path.join(args.out, "resnet50.pth"))
    save_file(state, os.path.join(args.out, "resnet50.safetensors"))

    images = torch.randn(2, 3, 64, 64)
    images_odd = torch.randn(1, 3, 65, 47)
    with torch.no_grad():
        model.eval()
        eval_features = features(model, images)
        eval_features_odd = features(model, images_odd)
        model.train()
        train_features = features(model, images)
    io = {
        "images": images,
        "eval_features": eval_features.contiguous(),
        "images_odd": images_odd,
        "eval_features_odd": eval_features_odd.contiguous(),
        "train_features": train_features.contiguous(),
    }
    modules = dict(model.named_modules())
    for name in TRACKED_BNS:
        io[f"train.{name}.running_mean"] = modules[name].running_mean.detach().clone()
    save_file(io, os.path.join(args.out, "io.safetensors"))
    print(f"wrote {args.out}: eval |max| {eval_features.abs().max():.3f}, "
          f"train |max| {train_features.abs().max():.3f}")


if __name__ == "__main__":
    main()
