#!/usr/bin/env python3
"""gen_data.py -- synthetic visual questions with verifiable answers for the glmv demo model.

Each sample is a small image (112..336 px per side, any aspect ratio) of flat shapes or a seven-segment
digit string on a plain or gradient background, one question of five types (count, colour, position,
size, digits), a short reasoning text and the answer, in GLM-4.1V's output format
`<think>REASONING</think><answer>ANSWER</answer>`. Everything follows from an integer seed, so the
held-out set is reproducible:  python3 scripts/demo/gen_data.py --eval DIR [--per-type 50]
writes DIR/NNN.png, DIR/answers.tsv (file, type, question, answer, think) and DIR/items.jsonl (the
same for `glmv eval`); --preset picks the object sizes (v1: the first checkpoint's set; v2: larger).
Needs numpy and Pillow only.
"""
import argparse
import json
import os
import re

import numpy as np
from PIL import Image, ImageDraw

QTYPES = ["count", "colour", "position", "size", "digits"]
COLOURS = {
    "red": (215, 35, 35),
    "green": (30, 160, 60),
    "blue": (35, 75, 215),
    "yellow": (240, 210, 30),
    "purple": (135, 55, 175),
    "orange": (245, 135, 25),
}
SHAPES = ["circle", "square", "triangle", "diamond"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds"}
EVAL_SEED_BASE = 900_000_000  # training seeds stay below this
# Size presets. v1 made the first checkpoint and its held-out set; v2 draws larger shapes and digits
# (at least about 2 patches across), which a tiny ViT learns much faster; v3 (the second recipe's) keeps
# v2's digits and lets shapes be a little smaller, down to the sizes in the shipped example image.
PRESETS = {
    "v1": {"shape_min": 9.0, "shape_min_frac": 0.06, "shape_max_frac": 0.20, "digit_min": 24, "digit_lo": 28},
    "v2": {"shape_min": 13.0, "shape_min_frac": 0.08, "shape_max_frac": 0.22, "digit_min": 38, "digit_lo": 40},
    "v3": {"shape_min": 10.0, "shape_min_frac": 0.07, "shape_max_frac": 0.22, "digit_min": 34, "digit_lo": 36},
}
DEFAULT_PRESET = "v3"
EXAMPLE_SEED = 800_000_445    # models/demo/example.png: "How many shapes are there?" -> 4
MIN_SIDE, MAX_SIDE = 112, 336


def _background(rng, w, h):
    """Light or dark low-saturation background, flat or a two-colour linear gradient (compresses well)."""
    light = rng.random() < 0.75
    def tone():
        g = rng.integers(175, 250) if light else rng.integers(25, 80)
        tint = rng.integers(-18, 19, size=3)
        return np.clip(g + tint, 0, 255).astype(np.float32)
    c0 = tone()
    kind = rng.integers(0, 3)
    if kind == 0:
        arr = np.broadcast_to(c0, (h, w, 3)).copy()
    else:
        c1 = tone()
        t = np.linspace(0.0, 1.0, w if kind == 1 else h, dtype=np.float32)
        ramp = c0[None, :] * (1 - t[:, None]) + c1[None, :] * t[:, None]
        arr = np.broadcast_to(ramp[None, :, :], (h, w, 3)) if kind == 1 else \
            np.broadcast_to(ramp[:, None, :], (h, w, 3))
    return Image.fromarray(np.ascontiguousarray(arr).round().astype(np.uint8), "RGB"), light


def _jitter(rng, rgb):
    return tuple(int(v) for v in np.clip(np.array(rgb) + rng.integers(-12, 13, size=3), 0, 255))


def _draw_shape(d, kind, cx, cy, s, fill):
    if kind == "circle":
        d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif kind == "square":
        a = s * 0.86
        d.rectangle([cx - a, cy - a, cx + a, cy + a], fill=fill)
    elif kind == "triangle":
        d.polygon([(cx, cy - s), (cx + s * 0.95, cy + s * 0.8), (cx - s * 0.95, cy + s * 0.8)], fill=fill)
    else:  # diamond
        d.polygon([(cx, cy - s), (cx + s * 0.8, cy), (cx, cy + s), (cx - s * 0.8, cy)], fill=fill)


def _place(rng, w, h, sizes, tries=400):
    """Centres for shapes of half-extents `sizes`, not overlapping, inside the image; None if no fit."""
    out = []
    for s in sizes:
        for _ in range(tries):
            cx = rng.uniform(s + 3, w - s - 3)
            cy = rng.uniform(s + 3, h - s - 3)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (s + t + 5) ** 2 for x, y, t in out):
                out.append((cx, cy, s))
                break
        else:
            return None
    return out


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _listing(objs):
    """'I see 3 shapes: a red circle, a blue square and a green triangle.' (left to right)"""
    objs = sorted(objs, key=lambda o: o["x"])
    names = [f"{_article(o['colour'])} {o['colour']} {o['shape']}" for o in objs]
    n = len(objs)
    body = names[0] if n == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"I see {n} shape{'s' if n != 1 else ''}: {body}."


def _shapes_scene(rng, w, h, n, unique_types, size_ratio=None, P=PRESETS["v1"]):
    m = min(w, h)
    lo = max(P["shape_min"], P["shape_min_frac"] * m)
    hi = max(lo + 3.0, P["shape_max_frac"] * m)
    hi = min(hi, lo + (hi - lo) * (1.0 if n <= 3 else 0.6))
    for _ in range(50):
        if size_ratio:
            small = rng.uniform(lo, hi / size_ratio)
            big = rng.uniform(small * size_ratio, hi)
            sizes = [big, small] + [rng.uniform(lo, hi) for _ in range(n - 2)]
        else:
            sizes = [rng.uniform(lo, hi) for _ in range(n)]
        pos = _place(rng, w, h, sizes)
        if pos:
            break
    else:
        return None
    types = list(rng.permutation(SHAPES)[:n]) if unique_types else [SHAPES[i] for i in rng.integers(0, 4, n)]
    names = list(COLOURS)
    objs = []
    for (cx, cy, s), t in zip(pos, types):
        c = names[rng.integers(0, len(names))]
        objs.append({"shape": str(t), "colour": c, "x": cx, "y": cy, "s": s})
    return objs


SEGS = {  # seven-segment: a b c d e f g
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc",
    "5": "afgcd", "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


def _draw_digit(d, ch, x, y, dw, dh, t, fill):
    hh = dh / 2
    seg = {
        "a": (x, y, x + dw, y + t), "g": (x, y + hh - t / 2, x + dw, y + hh + t / 2),
        "d": (x, y + dh - t, x + dw, y + dh),
        "f": (x, y, x + t, y + hh), "b": (x + dw - t, y, x + dw, y + hh),
        "e": (x, y + hh, x + t, y + dh), "c": (x + dw - t, y + hh, x + dw, y + dh),
    }
    for k in SEGS[ch]:
        d.rectangle(seg[k], fill=fill)


def _lum(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


QUESTIONS = {
    "count": ["How many shapes are there?", "How many shapes are in the image?", "Count the shapes."],
    "count_type": ["How many {p} are there?", "How many {p} are in the image?"],
    "colour": ["What colour is the {s}?", "What is the colour of the {s}?"],
    "lr": ["Is the {a} to the left or to the right of the {b}?"],
    "ab": ["Is the {a} above or below the {b}?"],
    "size": ["Which is bigger, the {a} or the {b}?", "Which shape is larger, the {a} or the {b}?"],
    "digits": ["What number is written in the image?", "Read the digits in the image."],
}


def _pick(rng, key):
    opts = QUESTIONS[key]
    return opts[rng.integers(0, len(opts))]


def make_sample(seed, qtype=None, preset=DEFAULT_PRESET):
    """-> dict(image=PIL.Image, type, question, think, answer) for an integer seed."""
    P = PRESETS[preset]
    rng = np.random.default_rng(seed)
    if qtype is None:
        qtype = QTYPES[rng.integers(0, len(QTYPES))]
    while True:
        w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
        img, light = _background(rng, w, h)
        d = ImageDraw.Draw(img)
        if qtype == "digits":
            s = _digits(rng, img, d, w, h, light, P)
            if s:
                return {"image": img, "type": qtype, **s}
            continue
        if qtype == "count":
            n = int(rng.integers(1, 7))
            objs = _shapes_scene(rng, w, h, n, unique_types=False, P=P)
        elif qtype == "colour":
            objs = _shapes_scene(rng, w, h, int(rng.integers(1, 5)), unique_types=True, P=P)
        elif qtype == "position":
            objs = _shapes_scene(rng, w, h, int(rng.integers(2, 4)), unique_types=True, P=P)
        else:
            objs = _shapes_scene(rng, w, h, int(rng.integers(2, 4)), unique_types=True, size_ratio=1.7, P=P)
        if not objs:
            continue
        q = _question(rng, qtype, objs, w, h)
        if not q:
            continue
        for o in objs:
            _draw_shape(d, o["shape"], o["x"], o["y"], o["s"], _jitter(rng, COLOURS[o["colour"]]))
        return {"image": img, "type": qtype, **q}


def _question(rng, qtype, objs, w, h):
    listing = _listing(objs)
    if qtype == "count":
        if rng.random() < 0.6:
            n = len(objs)
            return {"question": _pick(rng, "count"), "think": f"{listing} So there {'is' if n == 1 else 'are'} {n} shape{'s' if n != 1 else ''}.",
                    "answer": str(n)}
        t = SHAPES[rng.integers(0, 4)]
        k = sum(o["shape"] == t for o in objs)
        return {"question": _pick(rng, "count_type").format(p=PLURAL[t]),
                "think": f"{listing} {k} of them {'is a' if k == 1 else 'are'} {t if k == 1 else PLURAL[t]}.",
                "answer": str(k)}
    if qtype == "colour":
        o = objs[rng.integers(0, len(objs))]
        return {"question": _pick(rng, "colour").format(s=o["shape"]),
                "think": f"{listing} The {o['shape']} is {o['colour']}.", "answer": o["colour"]}
    if qtype == "position":
        i, j = rng.permutation(len(objs))[:2]
        a, b = objs[i], objs[j]
        na, nb = f"{a['colour']} {a['shape']}", f"{b['colour']} {b['shape']}"
        horiz = rng.random() < 0.5
        if horiz:
            if abs(a["x"] - b["x"]) < 0.2 * w:
                return None
            ans = "left" if a["x"] < b["x"] else "right"
            rel = f"on the {ans} of"
            q = _pick(rng, "lr")
        else:
            if abs(a["y"] - b["y"]) < 0.2 * h:
                return None
            ans = "above" if a["y"] < b["y"] else "below"
            rel = ans
            q = _pick(rng, "ab")
        return {"question": q.format(a=na, b=nb), "think": f"{listing} The {na} is {rel} the {nb}.", "answer": ans}
    # size: objs[0] is the big one, objs[1] the small one
    big, small = objs[0], objs[1]
    a, b = (big, small) if rng.random() < 0.5 else (small, big)
    return {"question": _pick(rng, "size").format(a=a["shape"], b=b["shape"]),
            "think": f"{listing} The {big['shape']} is bigger than the {small['shape']}.", "answer": big["shape"]}


def _digits(rng, img, d, w, h, light, P=PRESETS["v1"]):
    n = int(rng.integers(2, 6))
    text = "".join(str(v) for v in rng.integers(0, 10, n))
    dh = rng.uniform(P["digit_lo"], max(P["digit_lo"] + 2, min(0.6 * h, 80)))
    dw = dh * rng.uniform(0.45, 0.6)
    gap = dw * rng.uniform(0.3, 0.5)
    total = n * dw + (n - 1) * gap
    if total > 0.92 * w:
        scale = 0.92 * w / total
        dw, gap, dh = dw * scale, gap * scale, dh * scale
        total = 0.92 * w
    if dh < P["digit_min"]:
        return None
    t = max(3.0, dw * rng.uniform(0.16, 0.24))
    x0 = rng.uniform(0.04 * w, w - total - 0.04 * w + 1e-3)
    y0 = rng.uniform(0.04 * h, max(0.04 * h + 1e-3, h - dh - 0.04 * h))
    bgs = [img.getpixel((int(min(w - 1, x0 + f * total)), int(min(h - 1, y0 + dh / 2)))) for f in (0, 0.5, 1)]
    palette = list(COLOURS.values()) + [(20, 20, 20), (245, 245, 245)]
    for _ in range(20):
        col = palette[rng.integers(0, len(palette))]
        if min(abs(_lum(col) - _lum(bg)) for bg in bgs) > 75:
            break
    else:
        return None
    col = _jitter(rng, col)
    x = x0
    for ch in text:
        _draw_digit(d, ch, x, y0, dw, dh, t, col)
        x += dw + gap
    return {"question": _pick(rng, "digits"), "think": f"The image shows the digits {' '.join(text)}.",
            "answer": text}


def target_text(s):
    return f"<think>{s['think']}</think><answer>{s['answer']}</answer>"


def tokenizer_corpus(n=20000, seed=123):
    """Question and reasoning texts for BPE training; digit runs are split so that no digit-digit merge is
    learnt and every digit stays one token (numbers are then spelt digit by digit)."""
    out = []
    for i in range(n):
        s = make_sample(seed * 1_000_003 + i)
        for t in (s["question"], s["think"], s["answer"]):
            out.append(re.sub(r"(\d)(?=\d)", r"\1 ", t))
    return out


def write_eval(outdir, per_type, seed_base=EVAL_SEED_BASE, preset=DEFAULT_PRESET):
    os.makedirs(outdir, exist_ok=True)
    rows = []
    k = 0
    for i in range(per_type):
        for qt in QTYPES:
            s = make_sample(seed_base + k, qt, preset)
            name = f"{k:03d}.png"
            s["image"].save(os.path.join(outdir, name), optimize=True)
            rows.append((name, qt, s["question"], s["answer"], s["think"]))
            k += 1
    with open(os.path.join(outdir, "answers.tsv"), "w") as f:
        f.write("file\ttype\tquestion\tanswer\tthink\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    write_items(outdir, rows)
    return rows


# how `glmv eval` matches each type's answer: counts as numbers, digits as text (a leading
# zero is part of what is written), words exactly
MATCH = {"count": "number", "digits": "exact", "colour": "exact", "position": "exact", "size": "exact"}


def write_items(outdir, rows):
    """The held-out set as `glmv eval` reads it: DIR/items.jsonl, one JSON object per line."""
    with open(os.path.join(outdir, "items.jsonl"), "w") as f:
        for name, qt, question, answer, _think in rows:
            item = {"id": name.rsplit(".", 1)[0], "category": qt, "images": [name],
                    "question": question, "answer": answer, "match": MATCH[qt]}
            f.write(json.dumps(item) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", metavar="DIR", help="write the held-out set (PNGs, answers.tsv, items.jsonl) to DIR")
    ap.add_argument("--per-type", type=int, default=50)
    ap.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE)
    ap.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    ap.add_argument("--example", metavar="PNG", help="write the shipped example image")
    ap.add_argument("--show", type=int, default=0, help="print N training samples")
    a = ap.parse_args()
    if a.eval:
        rows = write_eval(a.eval, a.per_type, a.seed_base, a.preset)
        print(f"wrote {len(rows)} samples to {a.eval}")
    if a.example:
        s = make_sample(EXAMPLE_SEED, "count", "v1")
        s["image"].save(a.example, optimize=True)
        print(a.example, s["question"], target_text(s))
    for i in range(a.show):
        s = make_sample(i, None, a.preset)
        print(s["image"].size, s["type"], "|", s["question"], "|", target_text(s))


if __name__ == "__main__":
    main()
