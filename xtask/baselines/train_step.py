#!/usr/bin/env python3
"""PyTorch baseline: time one training step of GoogLeNet + EE + HPHN triplet.

The Rust trainer's step is benchmarked against this script on the same shapes
and thread count. The loss follows the project's METHOD.md (sections 1-5):
Embedding Expansion with L2-normalised synthetic points, HPHN triplet with a
hinge, margin 1e-5 and SUM reduction, and the reference's tie rule (a max or
min passes the full gradient to every element equal to the result). Model and
optimiser follow section 6. One step is zero_grad, forward of a fixed random
batch, loss, backward, Adam step and reading the loss back; data loading is
not part of it.
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch import nn
except ImportError as error:
    print(f"PyTorch baseline unavailable: {error}", file=sys.stderr)
    sys.exit(3)

MARGIN = 1e-5
BACKBONE_LAYERS = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2",
    "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
    "maxpool4", "inception5a", "inception5b",
)


def pick(d, dim, largest, split_ties=False):
    """Max (largest) or min of `d` along `dim`, with the reference's tie rule.

    The value is exactly the max/min and its gradient reaches every element
    equal to it in full. `split_ties` shares the gradient evenly among them
    instead: the true derivative when the tied elements are identical
    functions, as synthetic twins are (used only by --check-loss).
    """
    with torch.no_grad():
        if largest:
            value = d.amax(dim, keepdim=True)
        else:
            value = d.amin(dim, keepdim=True)
        weight = (d == value).to(d.dtype)
        if split_ties:
            weight = weight / weight.sum(dim, keepdim=True)
    # The second term is zero in the forward pass; its gradient is `weight`.
    return value.squeeze(dim) + (weight * (d - d.detach())).sum(dim)


def ee_hphn_loss(x, instances, n_inner_pts, split_ties=False):
    """Summed HPHN triplet loss of embeddings `x` [B, D], expanded with EE."""
    b = x.shape[0]
    if instances % 2 or b % instances:
        raise ValueError(
            f"batch {b} must hold whole classes of K={instances} consecutive "
            "rows, K even (METHOD.md section 1)")
    rows = torch.arange(b, device=x.device)
    labels = rows // instances
    # Section 2: s_t(i) = (t x_p(i) + (n+1-t) x_i) / (n+1), L2-normalised;
    # the partner p(i) is i+1 for even i and i-1 for odd i.
    partner = rows ^ 1
    points = [x]
    for t in range(1, n_inner_pts + 1):
        s = (t * x[partner] + (n_inner_pts + 1 - t) * x) / (n_inner_pts + 1)
        points.append(s / torch.sqrt((s * s).sum(1, keepdim=True) + 1e-10))
    z = torch.cat(points)
    z_labels = labels.repeat(n_inner_pts + 1)
    # Section 3: distances; the squared distance is clipped to [1e-12, 1e12].
    sq = (z * z).sum(1)
    squared = sq[:, None] + sq[None, :] - 2 * z @ z.t()
    dist = squared.clamp(1e-12, 1e12).sqrt()
    positive = z_labels[:, None] == z_labels[None, :]
    # Section 4: hardest positive among original points only. Non-positives
    # are set to 0, below every positive (a row's own distance is 1e-6).
    originals = dist[:b, :b].masked_fill(~positive[:b, :b], 0.0)
    d_ap = pick(originals, 1, True, split_ties)
    # Hardest negative of every expanded row; positives take the row maximum.
    row_max = pick(dist, 1, True, split_ties)
    negatives = torch.where(positive, row_max[:, None], dist)
    m = pick(negatives, 1, False, split_ties)
    # Anchor i: hardest over itself and its synthetic points (rows g*B + i).
    d_an = pick(m.view(n_inner_pts + 1, b), 0, False, split_ties)
    return F.relu(d_ap - d_an + MARGIN).sum()


def check_loss(n_inner_pts, seed, eps=1e-6, tolerance=1e-6):
    """Checks the tie rule, then autograd against central differences.

    Finite differences see the true derivative, in which a tied pair of
    identical synthetic points counts once; the tie rule counts it twice. So
    the pass criterion uses the split-tie gradient, and the tie-rule
    difference is printed for information.
    """
    v = torch.tensor([1.0, 3.0, 3.0, 2.0], dtype=torch.float64,
                     requires_grad=True)
    pick(v, 0, True).backward()
    ok = v.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    print(f"tie rule: gradient of max([1, 3, 3, 2]) = {v.grad.tolist()}")
    gen = torch.Generator().manual_seed(seed)
    x0 = F.normalize(torch.randn(8, 4, dtype=torch.float64, generator=gen),
                     dim=1)
    for n in sorted({0, n_inner_pts}):
        fd = torch.zeros_like(x0)
        for idx in range(x0.numel()):
            step = torch.zeros(x0.numel(), dtype=x0.dtype)
            step[idx] = eps
            step = step.view_as(x0)
            up = ee_hphn_loss(x0 + step, 2, n).item()
            down = ee_hphn_loss(x0 - step, 2, n).item()
            fd.view(-1)[idx] = (up - down) / (2 * eps)
        diffs = []
        for split in (True, False):
            x = x0.clone().requires_grad_(True)
            ee_hphn_loss(x, 2, n, split_ties=split).backward()
            diffs.append((x.grad - fd).abs().max().item())
        ok = ok and diffs[0] <= tolerance
        print(f"n_inner_pts={n}: max |autograd - finite difference| = "
              f"{diffs[0]:.3e} with ties split, {diffs[1]:.3e} with the "
              "tie rule")
    print("loss check " + ("passed" if ok else "FAILED"))
    return ok


class EmbeddingNet(nn.Module):
    """GoogLeNet conv1 .. inception5b -> average pool -> Linear -> L2 norm."""

    def __init__(self, embed_dim):
        super().__init__()
        googlenet = torchvision.models.googlenet(
            weights=None, aux_logits=False, init_weights=True,
            transform_input=False)
        self.backbone = nn.Sequential(
            *(getattr(googlenet, name) for name in BACKBONE_LAYERS))
        self.head = nn.Linear(1024, embed_dim)
        # MXNet Xavier(rnd_type='uniform', factor_type='avg', magnitude=2):
        # U(-scale, scale), scale = sqrt(2 / ((fan_in + fan_out) / 2)).
        scale = (2.0 / ((1024 + embed_dim) / 2.0)) ** 0.5
        nn.init.uniform_(self.head.weight, -scale, scale)
        nn.init.zeros_(self.head.bias)

    def forward(self, images):
        x = self.head(self.backbone(images).mean(dim=(2, 3)))
        return x / torch.sqrt((x * x).sum(1, keepdim=True) + 1e-10)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--n-inner-pts", type=int, default=2)
    p.add_argument("--mode", choices=("train", "embed"), default="train")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N (the GPU check times the step on CUDA)")
    p.add_argument("--json", metavar="PATH", help="also write the result")
    p.add_argument("--check-loss", action="store_true",
                   help="only check the loss gradient, then exit")
    args = p.parse_args()
    if args.instances % 2 or args.batch % args.instances:
        p.error("--batch must be a multiple of --instances, which is even")
    if args.steps < 1 or args.warmup < 0 or args.n_inner_pts < 0:
        p.error("need --steps >= 1, --warmup >= 0 and --n-inner-pts >= 0")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    if args.check_loss:
        sys.exit(0 if check_loss(args.n_inner_pts, args.seed) else 1)

    device = torch.device(args.device)
    model = EmbeddingNet(args.embed_dim).to(device)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size).to(device)
    # PyTorch Adam's weight_decay is coupled L2 (added to the gradient), as
    # in the reference; the backbone's lr multiplier is 1.
    hyper = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)
    optimizer = torch.optim.Adam([
        {"params": model.backbone.parameters(), **hyper},
        {"params": model.head.parameters(), **hyper},
    ])

    def train_step():
        optimizer.zero_grad()
        loss = ee_hphn_loss(model(images), args.instances, args.n_inner_pts)
        loss.backward()
        optimizer.step()
        return loss.item()

    def embed_step():
        with torch.no_grad():
            return model(images)

    # train(): BatchNorm uses batch statistics; eval(): running statistics.
    model.train(args.mode == "train")
    step = train_step if args.mode == "train" else embed_step
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)

    median = statistics.median(times)
    line = json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "device": str(device),
        "threads": args.threads, "mode": args.mode,
        "image_size": args.image_size, "batch": args.batch,
        "instances": args.instances, "embed_dim": args.embed_dim,
        "n_inner_pts": args.n_inner_pts, "step_seconds": times,
        "median_seconds": median, "images_per_second": args.batch / median,
        "final_loss": result if args.mode == "train" else None,
    })
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
