#!/usr/bin/env python3
"""PyTorch side of the GoogLeNet train-mode gradient-accuracy test (`tests/f32_gradients.rs`).

Builds the model of `googlenet_parity.py` (its `build_model`: torchvision's `googlenet`, random
init, seeded; transform_input on; every BatchNorm with a random affine part;
`embedding = nn.Linear(1024, 64)`),
runs it in TRAIN mode (batch statistics) with the loss `sum(l2_normalise(embedding) * R)`, and
writes under OUT (default: target/parity/googlenet_grads):

    OUT/googlenet_grads.pth         torch.save of ONE state dict: torchvision's keys (aux1.*,
                                    aux2.* and fc.* left out: our loader ignores them anyway) +
                                    embedding.weight [64, 1024], embedding.bias [64];
                                    `EmbeddingModelConfig::with_pretrained` reads it (and so
                                    turns transform_input on, as here)
    OUT/grads_b{N}_{S}px.safetensors, one per case (default: 4 x 64 px with image seed 3, the
    case of the issue that asked for this test, and 8 x 64 px with image seed 0; `@free`
    instead of a seed looks for one on which PyTorch's float32 flips no decision, see below):
        images [N, 3, S, S]         torch.manual_seed(IMAGE_SEED); randn(N, 3, S, S)
        R [N, 64]                   drawn right after the images
        loss [1], embeddings [N, 64]           float64 forward
        grad.<torchvision key>      d loss / d parameter, float64 backward, for every
                                    parameter (inceptionX.branch4.1.* as torchvision names it)
        grad.input [N, 3, S, S]     d loss / d images
        torch_f32_error.<key> [1]   PyTorch's own float32 run: max|g32 - g64| / max|g64|
        torch_f32_error_same_decisions.<key> [1]
                                    the same, with every ReLU mask and max-pool argmax of the
                                    float32 run forced to the float64 run's: the error of the
                                    arithmetic alone
        decision.<name>             the float64 forward's decisions: each BasicConv2d's ReLU
                                    mask (uint8, the layer's output shape; `conv1`,
                                    `inception3a.branch2.1`, ...) and each max pool's argmax
                                    (int32 index into the input plane, as PyTorch's
                                    `return_indices`; `maxpool1`, `inception3a.branch4.0`, ...)
      metadata: torch / torchvision versions, batch, size, seeds, threads, grad_dtype, and
      `flips` / `flips_2_threads`: the ReLU units and pool windows whose decision differs
      between PyTorch's float32 (at 1 and at 2 threads) and float64 forward, per layer.

Why both errors: a ReLU input or two max-pool candidates that lie within float32's forward
error (~5e-6 here) of each other are decided differently in float32 and float64, and ONE such
flip moves the gradients of every layer before it by 1e-3 .. 7e-2 relative (a flip in
maxpool2: conv1 6e-3, conv3 3e-2, input 2.5e-2, inception3a and later untouched). Any
float32 implementation flips one to four of the ~1.5 M decisions of a 4 x 64 px batch, a
different set for each summation order, so `torch_f32_error` is one draw of a lottery
(PyTorch's conv1 error over 30 inputs: median 3e-3, 20 % of inputs with no flip at all,
4e-5). `torch_f32_error_same_decisions` (4e-5 .. 1.3e-4) is what a correct float32 kernel
set matches whatever it flips.

The Rust test reads the decisions back: where its own float32 forward decides a unit as
float64 does, every gradient must be within a small multiple of
`torch_f32_error_same_decisions`; a unit it flips moves only the layers up to that one.

Gradients are stored as float32 by default (the float64 values rounded: 6e-8 relative, far
below any error measured here; ~23 MB per case); `--f64` keeps them float64 (45 MB per case).

Run it with a venv that has torch + torchvision + safetensors, from the workspace root:

    target/tch-venv/bin/python crates/ee-model/tests/support/googlenet_grads.py
"""
import argparse
import copy
import json
import os
import sys

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    from safetensors.torch import save_file
except ImportError as error:
    print(f"PyTorch gradient side unavailable: {error}", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from googlenet_parity import build_model  # noqa: E402  (the same model, one definition)

EMBED_DIM = 64
L2_EPSILON = 1e-10


class Decisions:
    """The functional forward's ReLUs and max pools: record them, or force recorded ones."""

    def __init__(self, force=None):
        self.force = force
        self.made = {}

    def relu(self, name, y):
        self.made[name] = (y > 0).detach()
        if self.force is not None:
            return y * self.force[name].to(y.dtype)
        return F.relu(y)

    def pool(self, name, pool, x):
        y, index = F.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding,
                                ceil_mode=pool.ceil_mode, return_indices=True)
        self.made[name] = index
        if self.force is not None:
            y = x.flatten(2).gather(2, self.force[name].flatten(2)).view_as(y)
        return y


def basic(d, name, m, x):
    """torchvision's BasicConv2d: conv, BatchNorm (train: batch statistics), ReLU."""
    y = m.bn(m.conv(x))
    return d.relu(name, y)


def inception(d, name, m, x):
    b1 = basic(d, f"{name}.branch1", m.branch1, x)
    b2 = basic(d, f"{name}.branch2.1", m.branch2[1], basic(d, f"{name}.branch2.0", m.branch2[0], x))
    b3 = basic(d, f"{name}.branch3.1", m.branch3[1], basic(d, f"{name}.branch3.0", m.branch3[0], x))
    b4 = basic(d, f"{name}.branch4.1", m.branch4[1], d.pool(f"{name}.branch4.0", m.branch4[0], x))
    return torch.cat([b1, b2, b3, b4], 1)


def features(d, model, x):
    """torchvision's GoogLeNet.forward up to inception5b, op for op, with named decisions."""
    x = model._transform_input(x)
    x = d.pool("maxpool1", model.maxpool1, basic(d, "conv1", model.conv1, x))
    x = basic(d, "conv3", model.conv3, basic(d, "conv2", model.conv2, x))
    x = d.pool("maxpool2", model.maxpool2, x)
    x = inception(d, "inception3b", model.inception3b, inception(d, "inception3a", model.inception3a, x))
    x = d.pool("maxpool3", model.maxpool3, x)
    for block in ["4a", "4b", "4c", "4d", "4e"]:
        x = inception(d, f"inception{block}", getattr(model, f"inception{block}"), x)
    x = d.pool("maxpool4", model.maxpool4, x)
    return inception(d, "inception5b", model.inception5b, inception(d, "inception5a", model.inception5a, x))


def embed(d, model, embedding, x):
    e = embedding(features(d, model, x).mean(dim=(2, 3)))
    return e / torch.sqrt((e * e).sum(dim=1, keepdim=True) + L2_EPSILON)


def gradients(model, embedding, images, r, dtype, force=None):
    """(loss, embeddings, {key: grad as float64}, decisions) of one train-mode step."""
    model = copy.deepcopy(model).to(dtype).train()
    embedding = copy.deepcopy(embedding).to(dtype)
    x = images.to(dtype).clone().requires_grad_(True)
    d = Decisions(force)
    out = embed(d, model, embedding, x)
    loss = (out * r.to(dtype)).sum()
    loss.backward()
    grads = {k: p.grad.detach().double() for k, p in model.named_parameters() if p.grad is not None}
    for k, p in embedding.named_parameters():
        grads[f"embedding.{k}"] = p.grad.detach().double()
    grads["input"] = x.grad.detach().double()
    return loss.detach().double(), out.detach().double(), grads, d.made


def relative_error(approx, truth):
    return ((approx - truth).abs().max() / truth.abs().max()).item()


def check_functional_forward(model, images):
    """The functional forward is torchvision's own (eval mode, float64: the same numbers)."""
    m = copy.deepcopy(model).double().eval()
    x = images.double()
    with torch.no_grad():
        ours = features(Decisions(), m, x)
        ref = m.maxpool2(m.conv3(m.conv2(m.maxpool1(m.conv1(m._transform_input(x))))))
        ref = m.maxpool3(m.inception3b(m.inception3a(ref)))
        ref = m.maxpool4(m.inception4e(m.inception4d(m.inception4c(m.inception4b(m.inception4a(ref))))))
        ref = m.inception5b(m.inception5a(ref))
    assert torch.equal(ours, ref), "functional forward differs from torchvision's"


def flips(made, truth):
    """{decision name: how many of its units differ from the float64 run's}, nonzero only."""
    counts = {name: int((made[name] != truth[name]).sum()) for name in truth}
    return {name: n for name, n in counts.items() if n}


def native_flips(model, embedding, images, r, truth, threads):
    """The decisions PyTorch's float32 step gets wrong at `threads` threads."""
    torch.set_num_threads(threads)
    try:
        made = gradients(model, embedding, images, r, torch.float32)[3]
    finally:
        torch.set_num_threads(1)
    return flips(made, truth)


def draw(batch, size, seed):
    torch.manual_seed(seed)
    images = torch.randn(batch, 3, size, size)
    return images, torch.randn(batch, EMBED_DIM)


def choose_seed(model, embedding, batch, size, spec, first_seed):
    """The case's image seed: the one given (`@N`), or with `@free` the first seed from
    `first_seed` on whose float32 run PyTorch decides every unit as float64 does, at one
    thread and at two."""
    if spec != "free":
        return int(spec)
    for seed in range(first_seed, first_seed + 100):
        images, r = draw(batch, size, seed)
        truth = gradients(model, embedding, images, r, torch.float64)[3]
        one = native_flips(model, embedding, images, r, truth, 1)
        two = native_flips(model, embedding, images, r, truth, 2)
        print(f"  {batch}x{size}px seed {seed}: PyTorch f32 flips {one or 'none'} (1 thread), "
              f"{two or 'none'} (2 threads)")
        if not one and not two:
            return seed
    sys.exit(f"no seed in {first_seed}..{first_seed + 99} without float32 decision flips")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="target/parity/googlenet_grads")
    p.add_argument("--seed", type=int, default=0, help="weight seed (googlenet_parity.py's)")
    p.add_argument("--cases", default="4x64@3,8x64@0",
                   help="BATCHxSIZE@SEED, comma-separated; SEED `free`: the first image seed "
                        "from --first-free-seed on without PyTorch float32 decision flips")
    p.add_argument("--first-free-seed", type=int, default=0)
    p.add_argument("--f64", action="store_true", help="store the gradients as float64")
    args = p.parse_args()

    torch.set_num_threads(1)  # PyTorch's float32 errors below are for one thread
    model, embedding = build_model(args.seed)
    os.makedirs(args.out, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith(("aux1.", "aux2.", "fc."))}
    for key, value in embedding.state_dict().items():
        state[f"embedding.{key}"] = value
    torch.save(state, os.path.join(args.out, "googlenet_grads.pth"))

    store = torch.float64 if args.f64 else torch.float32
    for case in args.cases.split(","):
        shape, _, spec = case.lower().partition("@")
        batch, size = (int(v) for v in shape.split("x"))
        seed = choose_seed(model, embedding, batch, size, spec or "free", args.first_free_seed)
        images, r = draw(batch, size, seed)
        check_functional_forward(model, images)
        loss, out, truth, decided = gradients(model, embedding, images, r, torch.float64)
        _, _, native, native_decided = gradients(model, embedding, images, r, torch.float32)
        _, _, forced, _ = gradients(model, embedding, images, r, torch.float32, force=decided)
        flipped = flips(native_decided, decided)
        flipped_two = native_flips(model, embedding, images, r, decided, 2)
        io = {"images": images, "R": r, "loss": loss.reshape(1).float(),
              "embeddings": out.float()}
        for name, made in decided.items():
            # ReLU masks as 0 / 1, pool argmaxes as indices into the input plane.
            io[f"decision.{name}"] = made.to(torch.uint8 if made.dtype == torch.bool
                                             else torch.int32).contiguous()
        errors = {}
        for key, g in truth.items():
            io[f"grad.{key}"] = g.to(store).contiguous()
            errors[key] = (relative_error(native[key], g), relative_error(forced[key], g))
            io[f"torch_f32_error.{key}"] = torch.tensor([errors[key][0]], dtype=torch.float32)
            io[f"torch_f32_error_same_decisions.{key}"] = torch.tensor(
                [errors[key][1]], dtype=torch.float32)
        metadata = {
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "batch": str(batch), "size": str(size), "weight_seed": str(args.seed),
            "image_seed": str(seed), "threads": "1",
            "grad_dtype": str(store).removeprefix("torch."),
            "error": "max|g32 - g64| / max|g64|, PyTorch float32 vs float64, train mode",
            "flips": json.dumps(flipped), "flips_2_threads": json.dumps(flipped_two),
        }
        path = os.path.join(args.out, f"grads_b{batch}_{size}px.safetensors")
        save_file(io, path, metadata=metadata)
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, image seed {seed}, "
              f"loss {loss.item():.6f}, PyTorch f32/f64 decision flips {flipped or 'none'} "
              f"(1 thread), {flipped_two or 'none'} (2 threads)")
        print(f"  {'key':42s} {'torch f32':>10s} {'same decisions':>15s}")
        for key, (e, f) in errors.items():
            print(f"  {key:42s} {e:10.2e} {f:15.2e}")
    print(f"wrote {args.out}: torch {torch.__version__}, torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main()
