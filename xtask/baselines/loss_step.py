#!/usr/bin/env python3
"""PyTorch baseline of ee-loss: time forward + backward of EE + HPHN triplet alone.

`cargo xtask bench loss` runs this script and ee-loss's `loss_step` benchmark with
the same arguments and thread count. The loss is `ee_hphn_loss` of train_step.py
(METHOD.md sections 1-5; labels: K = --instances consecutive rows per class). The
embeddings are fixed: --inputs (f32 [batch, dim] .npy, as the xtask writes it so
that both sides see the same rows) or L2-normalised torch.randn with seed 0.

One step: a leaf copy of the embeddings that requires grad, the loss, backward,
and reading the gradient's sum back. --warmup untimed steps, then the median of
--steps timed ones. Prints one JSON line with the last step's loss.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    import torch.nn.functional as F
    from train_step import ee_hphn_loss
except ImportError as error:
    print(f"PyTorch baseline unavailable: {error}", file=sys.stderr)
    sys.exit(3)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--instances", type=int, default=32)
    p.add_argument("--n-inner", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--inputs", metavar="X.npy",
                   help="f32 [batch, dim] embeddings (default: seeded randn)")
    args = p.parse_args()
    if args.instances % 2 or args.instances < 2 or args.batch % args.instances:
        p.error("--batch must be a multiple of --instances, which is even")
    if args.steps < 1 or args.warmup < 0 or args.n_inner < 0:
        p.error("need --steps >= 1, --warmup >= 0 and --n-inner >= 0")
    return args


def embeddings(args):
    if args.inputs is None:
        torch.manual_seed(0)
        return F.normalize(torch.randn(args.batch, args.dim), dim=1)
    import numpy as np
    x = np.load(args.inputs)
    if x.shape != (args.batch, args.dim):
        sys.exit(f"{args.inputs} holds {x.shape}, not [{args.batch}, {args.dim}]")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    x = embeddings(args)

    def step():
        x2 = x.detach().requires_grad_()
        loss = ee_hphn_loss(x2, args.instances, args.n_inner)
        loss.backward()
        x2.grad.sum().item()
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)

    print(json.dumps({
        "framework": "pytorch", "torch_version": torch.__version__,
        "batch": args.batch, "dim": args.dim, "instances": args.instances,
        "n_inner_pts": args.n_inner, "threads": args.threads,
        "inputs": args.inputs, "step_seconds": times,
        "median_seconds": statistics.median(times), "loss": loss,
    }))


if __name__ == "__main__":
    main()
