#!/usr/bin/env python3
"""PIL + torchvision baseline of the image pipeline, on one thread.

Times, over the JPEGs of --dir: (a) PIL decode to RGB; (b) decode + the reference's
train transform (METHOD.md section 8: p = 0.5 resize to S x S, else resize to
round(1.125 S) and a random S x S crop; horizontal flip p = 0.5; to a float tensor;
ImageNet mean/std) with torchvision. Prints one JSON line with images/s of both,
as crates/ee-data/benches/decode_transform.rs does for ee-data.
"""
import argparse
import glob
import json
import os
import random
import sys
import time

try:
    import torch
    from PIL import Image
    from torchvision import transforms
except ImportError as error:
    print(f"PIL/torchvision baseline unavailable: {error}", file=sys.stderr)
    sys.exit(3)


def train_transform(size):
    """The reference's train transform, bilinear, aspect ratio not kept."""
    big = round(1.125 * size)
    return transforms.Compose([
        transforms.RandomChoice([
            transforms.Resize((size, size)),
            transforms.Compose([transforms.Resize((big, big)),
                                transforms.RandomCrop(size)]),
        ]),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--size", type=int, default=227)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    random.seed(0)
    torch.manual_seed(0)
    files = sorted(glob.glob(os.path.join(args.dir, "*.jpg")))
    if not files:
        sys.exit(f"no .jpg files in {args.dir}")
    for f in files:  # warm the page cache
        with open(f, "rb") as handle:
            handle.read()

    start = time.perf_counter()
    for _ in range(args.rounds):
        for f in files:
            Image.open(f).convert("RGB")
    decode = time.perf_counter() - start

    transform = train_transform(args.size)
    start = time.perf_counter()
    for _ in range(args.rounds):
        for f in files:
            transform(Image.open(f).convert("RGB"))
    full = time.perf_counter() - start
    n = len(files) * args.rounds
    print(json.dumps({
        "framework": "PIL + torchvision", "images": len(files),
        "size": args.size, "decode_images_per_second": round(n / decode, 1),
        "pipeline_images_per_second": round(n / full, 1),
    }))


if __name__ == "__main__":
    main()
