#!/usr/bin/env python3
"""PyTorch side of the GoogLeNet parity test (`model::googlenet_matches_torchvision`).

Builds a PyTorch embedding model the way one is trained elsewhere (pytorch-metric-learning
style): torchvision's `googlenet` (random init, seeded; transform_input on, as with its ImageNet
weights) plus `embedding = nn.Linear(1024, 64)`, gives every BatchNorm a random affine part and
running statistics calibrated on random images (so eval mode is not the identity), and writes
under OUT (default: target/parity/googlenet):

    OUT/googlenet_embedding.pth   torch.save of ONE state dict: torchvision's keys (aux and fc
                                  included, as torchvision has them) + embedding.weight [64, 1024]
                                  and embedding.bias [64]
    OUT/io.safetensors            images [2, 3, 64, 64] (standard normal),
                                  eval_features [2, 1024, 2, 2]   (model.eval(), conv1 .. inception5b),
                                  eval_embeddings [2, 64]         (avg pool -> embedding -> L2),
                                  train_features [2, 1024, 2, 2]  (model.train(): batch statistics),
                                  train.<bn>.running_mean, .running_var (after that train-mode
                                  forward: PyTorch's update, unbiased variance),
                                  train.<bn>.running_var_before, train.<bn>.count (values per
                                  channel the BatchNorm saw)

Run it with a venv that has torch + torchvision + safetensors, from the workspace root:

    target/tch-venv/bin/python crates/ee-model/tests/support/googlenet_parity.py
    cargo test -p ee-model --test model googlenet_matches_torchvision

`cargo xtask test --backend tch` (and so CI) writes it first and requires the test to run.
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
TRACKED_BNS = ["conv1.bn", "inception3a.branch4.1.bn", "inception5b.branch2.1.bn"]


def features(model, x):
    """torchvision's GoogLeNet.forward up to inception5b (no avgpool, dropout or fc)."""
    x = model._transform_input(x)
    x = model.maxpool1(model.conv1(x))
    x = model.maxpool2(model.conv3(model.conv2(x)))
    x = model.maxpool3(model.inception3b(model.inception3a(x)))
    x = model.inception4a(x)
    x = model.inception4b(x)
    x = model.inception4c(x)
    x = model.inception4d(x)
    x = model.maxpool4(model.inception4e(x))
    return model.inception5b(model.inception5a(x))


def embed(model, embedding, x):
    pooled = features(model, x).mean(dim=(2, 3))
    e = embedding(pooled)
    return e / torch.sqrt((e * e).sum(dim=1, keepdim=True) + 1e-10)


def build_model(seed):
    """(GoogLeNet, embedding Linear) of this fixture: torchvision's random init from `seed`,
    every BatchNorm with a random affine part and running statistics of one train-mode
    forward of 8 random images. googlenet_grads.py builds its model with this too."""
    torch.manual_seed(seed)
    model = torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=True, transform_input=True
    )
    embedding = torch.nn.Linear(1024, 64)
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
    return model, embedding


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="target/parity/googlenet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(2)
    model, embedding = build_model(args.seed)

    os.makedirs(args.out, exist_ok=True)
    state = dict(model.state_dict())
    for key, value in embedding.state_dict().items():
        state[f"embedding.{key}"] = value
    torch.save(state, os.path.join(args.out, "googlenet_embedding.pth"))

    images = torch.randn(2, 3, 64, 64)
    modules = dict(model.named_modules())
    before = {name: modules[name].running_var.detach().clone() for name in TRACKED_BNS}
    counts = {}
    hooks = [
        modules[name].register_forward_hook(
            lambda m, inputs, out, name=name: counts.__setitem__(
                name, inputs[0].numel() // inputs[0].shape[1]
            )
        )
        for name in TRACKED_BNS
    ]
    with torch.no_grad():
        model.eval()
        eval_features = features(model, images)
        eval_embeddings = embed(model, embedding, images)
        model.train()
        train_features = features(model, images)
    for hook in hooks:
        hook.remove()
    io = {
        "images": images,
        "eval_features": eval_features.contiguous(),
        "eval_embeddings": eval_embeddings.contiguous(),
        "train_features": train_features.contiguous(),
    }
    for name in TRACKED_BNS:
        io[f"train.{name}.running_mean"] = modules[name].running_mean.detach().clone()
        io[f"train.{name}.running_var"] = modules[name].running_var.detach().clone()
        io[f"train.{name}.running_var_before"] = before[name]
        io[f"train.{name}.count"] = torch.tensor([float(counts[name])])
    save_file(io, os.path.join(args.out, "io.safetensors"))
    print(f"wrote {args.out}: torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"eval |max| {eval_features.abs().max():.3f}, train |max| {train_features.abs().max():.3f}")


if __name__ == "__main__":
    main()
