#!/usr/bin/env python3
"""Write a small zero-shot dataset of characters rendered from the system's fonts.

Classes are characters (200 by default: Latin, digits, Greek, Cyrillic, punctuation and
symbols), instances are fonts with a little random jitter; the train and the test classes
are disjoint. The output is ee's folder format (`data.format = "folder"`):

    DIR/c000_U+0041/00.png ...    one folder per class, `<instance:02>.png`, RGB, SxS px
    DIR/split.txt                 `<class folder> <train|test>` lines (data.train_split)
    DIR/fonts.txt                 the fonts used, in their cycle order (see Instances)
    DIR/glyphs.json               what was generated (characters, fonts, options)

Fonts: every .ttf/.otf under /usr/share/fonts that draws every chosen character (the glyph
has ink and is not the font's .notdef box; one file per family and style). The set used
here comes from these Debian packages (bookworm), about 97 usable faces in all:

    apt-get update && apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf \
        fonts-urw-base35 fonts-noto-core

The dataset depends on which fonts are installed: the same packages and seed give the same
images. Fewer than --min-fonts (40) usable faces is an error that names the packages.

Rendering: black glyph on white, supersampled, then box-filtered down. The size is set per
FONT, not per glyph: the font's line box (cap height to descender, from "Hgjpy") spans 70% of
the canvas and the baseline is fixed, so lower and upper case keep their relative size and
position (o and O, x and X, ж and Ж stay different classes). Each glyph is centred
horizontally on its ink; a glyph too wide or tall for the canvas is shrunk to fit. Jitter per
image: scale x U(0.9, 1.1), rotation U(-8, 8) degrees, translation U(-3, 3) px on each axis.

Characters: a fixed list, in a fixed order, of glyphs that are visually distinct:
cross-script lookalikes appear once (Latin A, not Greek Alpha or Cyrillic A; O, not 0 or
Cyrillic O; I and 1, not l or |), and the set is closed under a left-right mirror: the
trainers flip images horizontally, so of each mirror pair (b/d, p/q, N/Cyrillic I, R/Ya,
( and ), [ and ], < and >, / and backslash, ...) only one is kept.

Instances: the usable fonts in a seeded shuffled order, cycled: instance i of class c uses
font (c * instances + i) mod n_fonts, so each class sees distinct fonts while there are at
least as many fonts as instances (fonts are reused, with other jitter, otherwise) and every
font is used about equally. The split shuffles the classes with the seed: the first half
train, the rest test.

Needs Pillow and numpy (the bench venv has them):

    target/bench-venv/bin/python xtask/baselines/font_glyphs.py --root data/glyphs
"""
import argparse
import glob
import json
import os
import shutil
import sys
import time

try:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont, ImageOps
except ImportError as error:
    print(f"font_glyphs needs Pillow and numpy ({error}); use target/bench-venv/bin/python",
          file=sys.stderr)
    sys.exit(3)

FONT_DIR = "/usr/share/fonts"
PACKAGES = ("fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf "
            "fonts-urw-base35 fonts-noto-core")
MARKER = "glyphs.json"

# The classes, in order. Left out on purpose (see the module doc): Latin l d q, digit 0,
# Greek letters that look Latin (Alpha Beta Epsilon ... omicron nu upsilon rho), Cyrillic
# letters that look Latin or Greek (A B E K M H O P C T X, Ge Pe Ef Ze El, and lower case
# a e o p c y x k g p t f ze), Cyrillic I and small i and short i (I mirrors N; the italic
# small forms look like u), capital Soft sign (like b), and the mirror partners
# ) ] } > backslash >> ...
CHARACTERS = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"              # Latin capitals (26)
    "abcefghijkmnoprstuvwxyz"                 # Latin small, without d l q (23)
    "123456789"                               # digits, without 0 (9)
    "ΓΔΘΛΞΠΣΦΨΩ"                              # Greek capitals unlike Latin (10)
    "αβγδεζηθικλμξπσςτφχψω"                   # Greek small (21)
    "БДЁЖУЦЧШЩЪЫЭЮ"                           # Cyrillic capitals unlike Latin/Greek (13)
    "бвдёжлмнцчшщъыьэюя"                      # Cyrillic small (18)
    "!\"#$%&'(*+,-./:;<=?@[^_`{~"             # ASCII punctuation, one of each mirror pair (26)
    "¡¢£¤¥§©®°±¶¿«¬÷"                         # Latin-1 symbols (15)
    "ßæÆøØœŒðþÞłŁħŋ"                          # further letters (14)
    "€‰†‡•…™"                                 # typographic symbols (7)
    "ŠŽČŘĞŐĄĘÇÑÅÉÖÜ"                          # accented capitals (14)
    "ñéçЙ"                                    # small accented, Cyrillic Short I (4)
)
# Codepoints no font draws: their rendering is the font's .notdef glyph.
NOTDEF_PROBES = ("\uffff", "\U0010ffff")
PROBE_SIZE = 48
SUPERSAMPLE = 3
LINE_BOX = 0.70          # the font's cap-top-to-descender box, as a fraction of the side
MARGIN = 2               # px a glyph (after jitter) keeps from the edges, shrunk if needed
REFERENCE = "Hgjpy"
SCALE_JITTER = 0.10
ROTATION_DEGREES = 8.0
SHIFT_PX = 3.0

assert len(CHARACTERS) == len(set(CHARACTERS)) == 200, len(CHARACTERS)


def class_name(index, ch):
    return f"c{index:03d}_U+{ord(ch):04X}"


def load(path, size):
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def draws_all(font, chars):
    """Whether `font` draws every char: ink, and not the .notdef glyph."""
    notdef = [font.getmask(c) for c in NOTDEF_PROBES]
    notdef = [(m.size, bytes(m)) for m in notdef]
    for ch in chars:
        mask = font.getmask(ch)
        if mask.getbbox() is None or (mask.size, bytes(mask)) in notdef:
            return False
    return True


def usable_fonts(chars):
    """(path, "Family Style") of the fonts that draw all `chars`, one per name, by path."""
    paths = sorted(p for p in glob.glob(os.path.join(FONT_DIR, "**", "*"), recursive=True)
                   if p.lower().endswith((".ttf", ".otf")) and os.path.isfile(p))
    fonts, seen = [], set()
    for path in paths:
        try:
            font = load(path, PROBE_SIZE)
        except OSError:
            continue
        name = " ".join(n for n in font.getname() if n)
        if name in seen or not draws_all(font, chars):
            continue
        seen.add(name)
        fonts.append((path, name))
    return fonts


class Renderer:
    """Draws characters of one font at the size that puts its line box at LINE_BOX."""

    def __init__(self, path, side):
        self.side = side * SUPERSAMPLE
        probe = load(path, 100)
        _, top, _, bottom = probe.getbbox(REFERENCE, anchor="ls")
        self.font = load(path, max(4, round(100 * LINE_BOX * self.side / (bottom - top))))
        _, top, _, bottom = self.font.getbbox(REFERENCE, anchor="ls")
        self.line_mid = (top + bottom) / 2  # baseline-relative centre of the line box

    def render(self, ch, scale, degrees, shift_x, shift_y):
        left, top, right, bottom = self.font.getbbox(ch, anchor="ls")
        pad = 4
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        glyph = Image.new("L", (w, h), 255)
        ox, oy = pad - left, pad - top  # the baseline origin inside `glyph`
        ImageDraw.Draw(glyph).text((ox, oy), ch, font=self.font, fill=0, anchor="ls")
        ink = ImageOps.invert(glyph).getbbox()
        if ink is None:
            raise ValueError(f"{self.font.getname()} drew no ink for {ch!r}")
        # The point of `glyph` that goes to the canvas centre: the ink's horizontal middle,
        # the line box's vertical middle.
        cx = (ink[0] + ink[2]) / 2
        cy = oy + self.line_mid
        # Shrink a glyph that would leave the canvas (minus MARGIN px) once jittered: wide
        # ones such as the per-mille sign, accented capitals.
        a = np.deg2rad(degrees)
        shift = (shift_x * SUPERSAMPLE, shift_y * SUPERSAMPLE)
        half = self.side / 2 - MARGIN * SUPERSAMPLE
        for px in (ink[0] - cx, ink[2] - cx):
            for py in (ink[1] - cy, ink[3] - cy):
                # where the corner lands, relative to the canvas centre: t + scale R^T p
                rotated = (np.cos(a) * px - np.sin(a) * py, np.sin(a) * px + np.cos(a) * py)
                for r, t in zip(rotated, shift):
                    if abs(r) * scale > 1e-9:
                        room = half - t if r > 0 else half + t
                        scale = min(scale, room / abs(r))
        # Output pixel o samples glyph point centre + R (o - c - t) / scale, with
        # R = [[cos a, sin a], [-sin a, cos a]]: the inverse of the corner mapping above.
        cos, sin = np.cos(a) / scale, np.sin(a) / scale
        c = self.side / 2
        tx, ty = c + shift[0], c + shift[1]
        data = (cos, sin, cx - cos * tx - sin * ty,
                -sin, cos, cy + sin * tx - cos * ty)
        big = glyph.transform((self.side, self.side), Image.Transform.AFFINE, data,
                              resample=Image.Resampling.BICUBIC, fillcolor=255)
        return big.reduce(SUPERSAMPLE).convert("RGB")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="output folder (created)")
    p.add_argument("--classes", type=int, default=200,
                   help=f"number of classes, the first N of the fixed list (<= {len(CHARACTERS)})")
    p.add_argument("--instances", type=int, default=38, help="images per class")
    p.add_argument("--size", type=int, default=64, help="side of the images in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-fonts", type=int, default=40,
                   help="fewest usable font faces accepted (default 40)")
    args = p.parse_args()
    if not 2 <= args.classes <= len(CHARACTERS):
        p.error(f"--classes must be in 2..={len(CHARACTERS)}")
    if args.instances < 1 or args.size < 16 or args.min_fonts < 1:
        p.error("need --instances >= 1, --size >= 16 and --min-fonts >= 1")
    return args


def prepare_root(root):
    """Creates `root`, or clears a previous output of this script there."""
    if os.path.isdir(root) and os.listdir(root):
        if not os.path.isfile(os.path.join(root, MARKER)):
            sys.exit(f"error: {root} is not empty and was not written by font_glyphs.py "
                     f"(no {MARKER}); choose another --root")
        for entry in os.listdir(root):
            path = os.path.join(root, entry)
            if os.path.isdir(path) and entry.startswith("c") and "_U+" in entry:
                shutil.rmtree(path)
            elif entry in ("split.txt", "fonts.txt", MARKER):
                os.remove(path)
    os.makedirs(root, exist_ok=True)


def main():
    args = parse_args()
    start = time.perf_counter()
    chars = CHARACTERS[:args.classes]
    fonts = usable_fonts(chars)
    if len(fonts) < args.min_fonts:
        sys.exit(
            f"error: only {len(fonts)} font faces under {FONT_DIR} draw all {len(chars)} "
            f"characters; need at least {args.min_fonts} (--min-fonts). Install Debian's "
            f"font packages:\n  apt-get update && apt-get install -y {PACKAGES}")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(fonts))
    fonts = [fonts[i] for i in order]
    if len(fonts) < args.instances:
        print(f"note: {len(fonts)} fonts for {args.instances} instances: fonts repeat "
              "within a class, with other jitter", file=sys.stderr)

    prepare_root(args.root)
    renderers = {}
    names = [class_name(i, ch) for i, ch in enumerate(chars)]
    for c, (name, ch) in enumerate(zip(names, chars)):
        folder = os.path.join(args.root, name)
        os.makedirs(folder)
        for i in range(args.instances):
            f = (c * args.instances + i) % len(fonts)
            if f not in renderers:
                renderers[f] = Renderer(fonts[f][0], args.size)
            jitter = np.random.default_rng([args.seed, c, i])
            scale, degrees, sx, sy = (
                1.0 + jitter.uniform(-SCALE_JITTER, SCALE_JITTER),
                jitter.uniform(-ROTATION_DEGREES, ROTATION_DEGREES),
                jitter.uniform(-SHIFT_PX, SHIFT_PX), jitter.uniform(-SHIFT_PX, SHIFT_PX))
            image = renderers[f].render(ch, scale, degrees, sx, sy)
            image.save(os.path.join(folder, f"{i:02d}.png"))

    split_rng = np.random.default_rng([args.seed, 1 << 20])
    shuffled = [names[i] for i in split_rng.permutation(len(names))]
    n_train = len(names) // 2
    train = set(shuffled[:n_train])
    with open(os.path.join(args.root, "split.txt"), "w") as out:
        out.write("# <class folder> <train|test>, written by font_glyphs.py\n")
        for name in names:
            out.write(f"{name} {'train' if name in train else 'test'}\n")
    used = sorted({(c * args.instances + i) % len(fonts)
                   for c in range(len(names)) for i in range(args.instances)})
    with open(os.path.join(args.root, "fonts.txt"), "w") as out:
        for f in used:
            out.write(f"{fonts[f][1]}\t{fonts[f][0]}\n")
    with open(os.path.join(args.root, MARKER), "w") as out:
        json.dump({
            "classes": [{"folder": n, "char": ch, "split": "train" if n in train else "test"}
                        for n, ch in zip(names, chars)],
            "instances": args.instances, "size": args.size, "seed": args.seed,
            "fonts": [{"name": fonts[f][1], "path": fonts[f][0]} for f in used],
        }, out, ensure_ascii=False, indent=1)

    seconds = time.perf_counter() - start
    print(f"wrote {len(names)} classes x {args.instances} instances = "
          f"{len(names) * args.instances} images of {args.size}x{args.size} px to {args.root} "
          f"in {seconds:.1f} s")
    print(f"split: {n_train} train classes, {len(names) - n_train} test classes "
          f"({n_train * args.instances} / {(len(names) - n_train) * args.instances} images)")
    print(f"{len(used)} of {len(fonts)} usable font faces used:")
    for f in used:
        print(f"  {fonts[f][1]}  ({os.path.basename(fonts[f][0])})")


if __name__ == "__main__":
    main()
