#!/usr/bin/env python3
"""PyTorch trainer of the reference recipe on a folder dataset, for comparison with `ee train`.

The same recipe as configs/glyphs.toml (data from font_glyphs.py), with the model and the
loss imported from train_step.py: GoogLeNet from scratch (torchvision's init), conv1 ..
inception5b -> global average pool -> Linear(1024, 128) (MXNet Xavier, magnitude 2, zero
bias) -> L2 normalise; Embedding Expansion + HPHN triplet (margin 1e-5, summed, the
reference's tie rule); Adam lr 1e-4, eps 1e-8, coupled weight decay 5e-4, backbone and head
as two parameter groups, lr multiplier 1, no decay. BatchNorm in training mode while training.

Data (METHOD.md sections 7 and 8): batches of P = 8 classes x K = 8 instances from the
reference's sampler, an epoch being K x (training classes) samples with the incomplete last
batch dropped (100 classes: 800 samples, 12 batches); train transform at S = 64: with p 0.5
resize to SxS, else resize to round(1.125 S) and crop SxS at a uniformly random offset; flip
left-right with p 0.5 (unless --no-flip); ImageNet mean/std. Test: resize to SxS. Resizes are
bilinear without anti-aliasing (as OpenCV's INTER_LINEAR and ee's), aspect not kept, on 8-bit
images. By default every image is first resized to round(1.125 S) and kept in memory, as ee
does with `data.cache_images = true`, so the resize-to-S branch and the test transform resize
from that copy (--no-cache: from the file's own size).

The folder format is ee's: DIR/<class>/<image>.{png,jpg,jpeg}, class folders sorted by name
and numbered from 0, and DIR/split.txt of `<class folder> <train|test>` lines (blank lines
and lines starting with # skipped; classes it does not name left out).

Evaluation at the --eval-at steps (0: before the first step): embeddings of every test image
in eval mode, Recall@K for K = 1, 2, 4, 8 over squared euclidean distances, the query itself
excluded, ties broken by the lower index. One line per evaluation; --json writes
{"framework": "pytorch", "n_inner_pts", "flip", "evals": [{"step", "recall@1", ...}],
"losses": [[step, loss], ...], "seconds", ...}. The loss is trained as the SUM over the
anchors and logged, as `ee train` logs it, as the mean per anchor.

Randomness (sampler, augmentation, initialisation) is seeded by --seed but is not the Rust
trainer's stream: compare the two as curves, not number for number.

    target/bench-venv/bin/python xtask/baselines/train_zero_shot.py --root data/glyphs \\
        --steps 504 --eval-at 0,252,504 --n-inner-pts 2 --threads 2 --json runs/glyphs_torch.json
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import EmbeddingNet, ee_hphn_loss  # noqa: E402  (exits 3 without torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
RECALL_K = (1, 2, 4, 8)


def read_folder(root, split_name):
    """(train, test) lists of (path, label): ee's folder format with a split file."""
    classes = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
    position = {name: i for i, name in enumerate(classes)}
    side = {}
    split_path = os.path.join(root, split_name)
    with open(split_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2 or fields[1] not in ("train", "test"):
                sys.exit(f"{split_path}:{number}: expected `<class folder> <train|test>`")
            if fields[0] not in position:
                sys.exit(f"{split_path}:{number}: no class folder {fields[0]!r} in {root}")
            if fields[0] in side:
                sys.exit(f"{split_path}:{number}: class {fields[0]!r} is listed twice")
            side[fields[0]] = fields[1]
    train, test = [], []
    for name in classes:
        if name not in side:
            continue
        folder = os.path.join(root, name)
        images = sorted(p for p in os.listdir(folder)
                        if p.lower().endswith(IMAGE_EXTENSIONS)
                        and os.path.isfile(os.path.join(folder, p)))
        if not images:
            sys.exit(f"{folder}: class folder has no images (.jpg, .jpeg, .png)")
        target = train if side[name] == "train" else test
        target.extend((os.path.join(folder, p), position[name]) for p in images)
    if not train or not test:
        sys.exit(f"{split_path}: needs train and test classes")
    return train, test


def resize_u8(image, side):
    """Bilinear resize of a uint8 [3, h, w] image to [3, side, side], no anti-aliasing."""
    if image.shape[1] == side and image.shape[2] == side:
        return image
    out = F.interpolate(image[None].float(), size=(side, side), mode="bilinear",
                        align_corners=False, antialias=False)[0]
    return out.round().clamp(0, 255).to(torch.uint8)


def load_images(items, cache_side):
    images = []
    for path, _ in items:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
        image = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
        images.append(resize_u8(image, cache_side) if cache_side else image)
    return images


def normalise(image_u8):
    return (image_u8.float() / 255.0 - MEAN) / STD


def train_transform(image, size, flip, rng):
    """METHOD.md section 8; draws the coin, the crop's x then y, then the flip coin."""
    if rng.random() < 0.5:
        out = resize_u8(image, size)
    else:
        enlarged = round(1.125 * size)
        span = enlarged - size
        x, y = round(rng.random() * span), round(rng.random() * span)
        out = resize_u8(image, enlarged)[:, y:y + size, x:x + size]
    if rng.random() < 0.5 and flip:
        out = out.flip(2)
    return normalise(out)


def sampler_epoch(labels, batch, k, seed, epoch):
    """The batches of one epoch (METHOD.md section 7), as ee-data's sampler builds them."""
    rng = np.random.default_rng([seed, 0x5A3D, epoch])
    classes = np.unique(np.asarray(labels))
    class_of = np.searchsorted(classes, np.asarray(labels))
    members = [np.flatnonzero(class_of == c) for c in range(len(classes))]
    epoch_size = k * len(classes)
    batches_per_epoch = (-(-epoch_size // k) * k) // batch
    out, in_batch, batch_classes = [], set(), []
    while True:
        for item in rng.permutation(len(labels)):
            c = class_of[item]
            if c in in_batch:
                continue
            in_batch.add(c)
            batch_classes.append(c)
            out.append(int(item))
            group = members[c]
            if len(group) >= k - 1:
                out.extend(int(group[j]) for j in rng.choice(len(group), k - 1, replace=False))
            else:
                out.extend(int(group[j]) for j in rng.integers(0, len(group), k - 1))
            if len(out) >= epoch_size:
                return [out[i * batch:(i + 1) * batch] for i in range(batches_per_epoch)]
            if len(out) % batch == 0:
                in_batch.clear()
                batch_classes.clear()


def recall_at_k(embeddings, labels, ks):
    """Recall@K, query excluded, squared euclidean, ties by the lower index."""
    x = embeddings.double()
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * x @ x.t()
    d.fill_diagonal_(float("inf"))
    order = torch.sort(d, dim=1, stable=True).indices[:, :max(ks)]
    hits = labels[order] == labels[:, None]
    return {f"recall@{k}": hits[:, :k].any(1).double().mean().item() for k in ks}


def evaluate(model, images, labels, size, batch):
    model.eval()
    with torch.no_grad():
        chunks = []
        for i in range(0, len(images), batch):
            x = torch.stack([normalise(resize_u8(im, size)) for im in images[i:i + batch]])
            chunks.append(model(x))
    model.train()
    return recall_at_k(torch.cat(chunks), labels, RECALL_K)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="dataset folder (font_glyphs.py --root)")
    p.add_argument("--split", default="split.txt", help="split file in --root")
    p.add_argument("--steps", type=int, default=504)
    p.add_argument("--eval-at", default="0,252,504",
                   help="comma-separated steps to evaluate after (0 = before training)")
    p.add_argument("--n-inner-pts", type=int, default=2)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                   help="random horizontal flip (default on, as ee train)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="keep images resized to round(1.125 S), as ee's cache_images (default on)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--eval-batch", type=int, default=128)
    p.add_argument("--log-every", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results")
    args = p.parse_args()
    try:
        args.eval_at = sorted({int(s) for s in args.eval_at.split(",") if s.strip()})
    except ValueError:
        p.error("--eval-at must be comma-separated integers")
    if args.steps < 0 or any(s < 0 or s > args.steps for s in args.eval_at):
        p.error("--eval-at steps must lie in 0..=--steps")
    if args.instances % 2 or args.batch % args.instances or args.batch // args.instances < 2:
        p.error("--batch must be a multiple (>= 2x) of --instances, which is even")
    if args.n_inner_pts < 0 or args.threads < 1 or args.image_size < 32:
        p.error("need --n-inner-pts >= 0, --threads >= 1 and --image-size >= 32")
    return args


def main():
    args = parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    train, test = read_folder(args.root, args.split)
    cache_side = round(1.125 * args.image_size) if args.cache else None
    train_images = load_images(train, cache_side)
    test_images = load_images(test, cache_side)
    train_labels = [label for _, label in train]
    test_labels = torch.tensor([label for _, label in test])
    n_classes = len(set(train_labels))
    if n_classes < args.batch // args.instances:
        sys.exit(f"{n_classes} training classes: fewer than the {args.batch // args.instances} "
                 "classes of a batch")
    batches_per_epoch = (args.instances * n_classes) // args.batch
    print(f"{len(train)} train images ({n_classes} classes), {len(test)} test images "
          f"({len(set(test_labels.tolist()))} classes); {batches_per_epoch} batches of "
          f"{args.batch} ({args.batch // args.instances} classes x {args.instances}) per "
          f"epoch; n_inner_pts {args.n_inner_pts}, flip {args.flip}, "
          f"{args.threads} threads; loaded in {time.perf_counter() - start:.1f} s", flush=True)

    model = EmbeddingNet(args.embed_dim)
    model.train()
    hyper = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)
    optimizer = torch.optim.Adam([
        {"params": model.backbone.parameters(), **hyper},
        {"params": model.head.parameters(), **hyper},
    ])

    evals, losses = [], []
    train_seconds = 0.0

    def run_eval(step):
        t = time.perf_counter()
        recalls = evaluate(model, test_images, test_labels, args.image_size, args.eval_batch)
        entry = {"step": step, **recalls, "eval_seconds": time.perf_counter() - t,
                 "train_seconds": train_seconds}
        evals.append(entry)
        print(f"eval at step {step}: " + "  ".join(
            f"R@{k} {recalls[f'recall@{k}']:.4f}" for k in RECALL_K)
            + f"  ({entry['eval_seconds']:.1f} s; {train_seconds:.1f} s of training so far)",
            flush=True)

    step, epoch = 0, 0
    if 0 in args.eval_at:
        run_eval(0)
    while step < args.steps:
        for batch in sampler_epoch(train_labels, args.batch, args.instances, args.seed, epoch):
            if step >= args.steps:
                break
            t = time.perf_counter()
            rng = np.random.default_rng([args.seed, 0xA06, step])
            images = torch.stack([train_transform(train_images[i], args.image_size,
                                                  args.flip, rng) for i in batch])
            optimizer.zero_grad()
            loss = ee_hphn_loss(model(images), args.instances, args.n_inner_pts)
            loss.backward()
            optimizer.step()
            value = loss.item() / args.batch  # logged as ee does: the mean per anchor
            train_seconds += time.perf_counter() - t
            step += 1
            losses.append([step, value])
            if step % args.log_every == 0 or step == args.steps:
                print(f"step {step}/{args.steps} (epoch {epoch + 1}): loss {value:.4f} "
                      f"(mean per anchor), {train_seconds / step:.2f} s/step", flush=True)
            if step in args.eval_at and step > 0:
                run_eval(step)
        epoch += 1

    seconds = time.perf_counter() - start
    result = {
        "framework": "pytorch", "torch": torch.__version__, "root": args.root,
        "n_inner_pts": args.n_inner_pts, "flip": args.flip, "cache": args.cache,
        "steps": args.steps, "threads": args.threads, "seed": args.seed,
        "image_size": args.image_size, "batch": args.batch, "instances": args.instances,
        "embed_dim": args.embed_dim, "train_images": len(train), "test_images": len(test),
        "batches_per_epoch": batches_per_epoch, "evals": evals, "losses": losses,
        "train_seconds": train_seconds, "seconds": seconds,
    }
    print(f"done: {step} steps in {seconds:.1f} s ({train_seconds:.1f} s training)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f)
            f.write("\n")


if __name__ == "__main__":
    main()
