#!/usr/bin/env python3
"""PyTorch side of the step-by-step training parity check (`cargo xtask parity-train`).

Builds torchvision's GoogLeNet (its own init) + a Linear head (MXNet Xavier), saves the
initial weights, a few fixed preprocessed batches, and after every optimiser step the
loss, every parameter and every BatchNorm running statistic, so that our trainer's step
can be run on the same weights and batches and compared step by step:

    OUT/backbone_0.safetensors   the backbone, torchvision keys (BatchNorm statistics too)
    OUT/head_0.safetensors       head.weight [D, 1024] (torch layout), head.bias
    OUT/batches.safetensors      images [steps, B, 3, S, S], labels [steps, B] (int64)
    OUT/backbone_K / head_K      the same after step K (1-based)
    OUT/run.json                 the settings and the loss of every step

The step: train-mode forward, Embedding Expansion + HPHN (train_step.py's loss, tie rule
included), backward of the summed loss, then the backbone group at lr * base_lr_mult
and the head group at lr, with Adam (coupled L2 weight decay, as the reference) or
AdamW (decoupled).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
    from safetensors.torch import save_file
    from train_step import BACKBONE_LAYERS, EmbeddingNet, ee_hphn_loss
except ImportError as error:
    print(f"PyTorch parity side unavailable: {error}", file=sys.stderr)
    sys.exit(3)


def save_state(model, out, step):
    """Writes the torchvision-keyed backbone and the head after `step` steps."""
    tensors = {}
    for key, value in model.backbone.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        # The backbone is a Sequential: "3.conv.weight" is torchvision's
        # "conv3.conv.weight" (BACKBONE_LAYERS names the entries in order).
        index, rest = key.split(".", 1)
        name = f"{BACKBONE_LAYERS[int(index)]}.{rest}"
        tensors[name] = value.detach().float().contiguous()
    save_file(tensors, os.path.join(out, f"backbone_{step}.safetensors"))
    head = {"head.weight": model.head.weight.detach().float().contiguous(),
            "head.bias": model.head.bias.detach().float().contiguous()}
    save_file(head, os.path.join(out, f"head_{step}.safetensors"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--n-inner-pts", type=int, default=2)
    p.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--epsilon", type=float, default=1e-8)
    p.add_argument("--base-lr-mult", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--float64", action="store_true",
                   help="train in float64 (saved as float32): a control for how far "
                   "float32 noise alone moves the steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    model = EmbeddingNet(args.embed_dim)
    model.train()
    save_state(model, args.out, 0)
    shape = (args.steps, args.batch, 3, args.image_size, args.image_size)
    images = torch.randn(shape)
    if args.float64:
        model.double()
    labels = (torch.arange(args.batch) // args.instances).repeat(args.steps, 1)
    save_file({"images": images, "labels": labels},
              os.path.join(args.out, "batches.safetensors"))

    optimizer_class = {"adam": torch.optim.Adam,
                       "adamw": torch.optim.AdamW}[args.optimizer]
    hyper = dict(betas=(0.9, 0.999), eps=args.epsilon,
                 weight_decay=args.weight_decay)
    optimizer = optimizer_class([
        {"params": model.backbone.parameters(),
         "lr": args.lr * args.base_lr_mult, **hyper},
        {"params": model.head.parameters(), "lr": args.lr, **hyper},
    ])
    losses = []
    for step in range(args.steps):
        optimizer.zero_grad()
        batch = images[step].double() if args.float64 else images[step]
        loss = ee_hphn_loss(model(batch), args.instances, args.n_inner_pts)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        save_state(model, args.out, step + 1)
        print(f"step {step + 1}: loss {losses[-1]:.6f}")
    settings = vars(args) | {"losses": losses, "torch": torch.__version__}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(settings, f, indent=1)


if __name__ == "__main__":
    main()
