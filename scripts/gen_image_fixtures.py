#!/usr/bin/env python3
"""gen_image_fixtures.py -- reference data for glmv's image path (tests/test_image.c).

Two steps:

  python3 scripts/gen_image_fixtures.py inputs tests/fixtures/image
      Writes the small edge-case input files (PNG/JPEG/WebP/GIF/BMP, EXIF
      orientations, CMYK, 16-bit, palette, tiny and 200:1 sizes) with Pillow,
      deterministically. Run once; the files are committed.

  python3 scripts/gen_image_fixtures.py reference OUT_DIR [--bench BIN] FILES...
      On the GPU machine (transformers 5.x, torch, torchvision): for each file,
      transformers.image_utils.load_image (PIL + exif_transpose + RGB) and the
      Glm4vImageProcessor that AutoImageProcessor gives for the checkpoint's
      preprocessor_config.json (GLM4V.md §1.4). Writes OUT_DIR/expected.txt:
      grid, checksums of the decoded and resized uint8 images and of
      pixel_values, sampled rows; "synthetic" entries are generated from a
      formula that tests/test_image.c reproduces. With --bench (tests/bench_image
      built here) it also runs glmv on every file and compares whole tensors
      there (OUT_DIR/parity.txt), and times both on a 4000x3000 JPEG.

Checksum (same in C): sum over bytes b[i] of b[i] * ((i * 2654435761) mod 2^32), mod 2^64.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np


def pattern(w, h, seed=0):
    """Deterministic RGB u8 content: smooth gradients, hard edges and texture.
    tests/test_image.c has the same formula (synthetic_pixel)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 255 // max(w - 1, 1) + ((x // 16 + y // 16) % 2) * 40 + seed) % 256
    g = (y * 255 // max(h - 1, 1) + (x * y) % 37) % 256
    b = ((x + 2 * y) * 3 + ((x * 7 + y * 13) % 61) + 17 * seed) % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def checksum(a):
    b = np.ascontiguousarray(a).reshape(-1).view(np.uint8).astype(np.uint64)
    i = np.arange(b.size, dtype=np.uint64)
    k = (i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        return int(np.sum(b * k, dtype=np.uint64))


# ---------------------------------------------------------------- inputs
def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def raw_png(w, h, depth, ctype, rows):
    """A PNG written by hand (Pillow cannot write 16-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    data = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(data, 9))
            + png_chunk(b"IEND", b""))


def exif_orientation_bytes(o):
    # TIFF little-endian, IFD0 with one SHORT entry 0x0112
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, o, 0) + struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd


def make_inputs(d):
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    P = lambda n: os.path.join(d, n)
    im = lambda w, h, s=0: Image.fromarray(pattern(w, h, s))
    # sizes: tiny, 200:1 strips, odd sizes
    im(1, 1).save(P("tiny_1x1.png"))
    im(27, 27, 1).save(P("tiny_27x27.png"))
    im(20, 30, 2).save(P("tiny_20x30.png"))
    im(5600, 28, 3).save(P("strip_5600x28.png"))
    im(28, 5600, 4).save(P("strip_28x5600.png"))
    im(1000, 5, 5).save(P("strip_1000x5.png"))
    im(6, 1200, 6).save(P("strip_6x1200.png"))
    im(5628, 28, 7).save(P("strip_5628x28_toolong.png"))
    im(333, 251, 8).save(P("odd_333x251.png"))
    # PNG modes
    a = pattern(64, 48, 9)
    alpha = (np.arange(64 * 48).reshape(48, 64) * 5 % 256).astype(np.uint8)
    Image.fromarray(np.dstack([a, alpha])).save(P("rgba.png"))
    Image.fromarray(a).convert("P", palette=Image.ADAPTIVE, colors=50).save(P("palette.png"),
                                                                             transparency=3)
    Image.fromarray(a).convert("L").save(P("gray.png"))
    Image.fromarray(a).convert("LA").save(P("gray_alpha.png"))
    Image.fromarray(a).convert("1").save(P("bilevel.png"))
    g16 = (np.arange(40 * 30).reshape(30, 40) * 53 % 65536).astype(">u2")
    with open(P("gray16.png"), "wb") as f:
        f.write(raw_png(40, 30, 16, 0, [r.tobytes() for r in g16]))
    c16 = (pattern(40, 30, 10).astype(np.uint32) * 257 + np.arange(40)[None, :, None] * 3) % 65536
    c16 = c16.astype(">u2")
    with open(P("rgb16.png"), "wb") as f:
        f.write(raw_png(40, 30, 16, 2, [r.tobytes() for r in c16]))
    g4 = (np.arange(40 * 30).reshape(30, 40) % 16).astype(np.uint8)
    rows4 = [bytes((r[i] << 4) | r[i + 1] for i in range(0, 40, 2)) for r in g4]
    with open(P("gray4.png"), "wb") as f:
        f.write(raw_png(40, 30, 4, 0, rows4))
    # JPEG flavours
    b = im(333, 251, 11)
    b.save(P("jpeg_420.jpg"), quality=90)
    b.save(P("jpeg_444.jpg"), quality=90, subsampling=0)
    b.save(P("jpeg_422.jpg"), quality=90, subsampling=1)
    b.save(P("jpeg_progressive.jpg"), quality=85, progressive=True)
    b.convert("L").save(P("jpeg_gray.jpg"), quality=90)
    b.convert("CMYK").save(P("jpeg_cmyk.jpg"), quality=90)
    e = im(40, 30, 12)
    for o in range(1, 9):
        e.save(P(f"exif_{o}.jpg"), quality=92, exif=exif_orientation_bytes(o)[6:])
    # other formats
    try:
        im(70, 50, 13).save(P("lossy.webp"), quality=80)
        al2 = (np.arange(70 * 50).reshape(50, 70) * 7 % 256).astype(np.uint8)
        Image.fromarray(np.dstack([pattern(70, 50, 14), al2])).save(
            P("lossless_alpha.webp"), lossless=True)
    except Exception as ex:  # Pillow without WebP
        print("no webp:", ex)
    im(61, 47, 15).convert("P", palette=Image.ADAPTIVE, colors=64).save(P("palette.gif"))
    im(61, 47, 16).save(P("rgb24.bmp"))
    im(61, 47, 17).convert("P", palette=Image.ADAPTIVE, colors=16).save(P("palette8.bmp"))
    im(61, 47, 18).convert("1").save(P("bilevel.bmp"))
    Image.fromarray(np.dstack([pattern(61, 47, 19), alpha[:47, :61]])).save(P("rgba32.bmp"))
    # second batch: animated WebP, Adam7 PNG, 16-bit LA/RGBA, eXIf in PNG and WebP,
    # big-endian EXIF, RLE8 and 5-6-5 BMP, GIF transparency, a truncated JPEG
    frames = [im(50, 40, 30 + k) for k in range(2)]
    try:
        frames[0].save(P("anim.webp"), save_all=True, append_images=frames[1:], duration=100, quality=80)
        im(48, 36, 33).save(P("exif_3.webp"), quality=85, exif=exif_orientation_bytes(3)[6:])
    except Exception as ex:
        print("no webp:", ex)
    a7 = pattern(37, 29, 34)
    rows = []
    for (x0, y0, dx, dy) in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                             (0, 1, 1, 2)]:
        sub = a7[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows += [r.tobytes() for r in sub]
    ihdr = struct.pack(">IIBBBBB", 37, 29, 8, 2, 0, 0, 1)
    with open(P("adam7.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                png_chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows), 9)) + png_chunk(b"IEND", b""))
    la16 = np.dstack([(pattern(40, 30, 35)[..., 0].astype(np.uint32) * 257 + 77) % 65536,
                      np.full((30, 40), 30000)]).astype(">u2")
    with open(P("gray_alpha16.png"), "wb") as f:
        f.write(raw_png(40, 30, 16, 4, [r.tobytes() for r in la16]))
    rgba16 = np.dstack([pattern(40, 30, 36).astype(np.uint32) * 257 + 5, np.full((30, 40), 1234)]).astype(">u2")
    with open(P("rgba16.png"), "wb") as f:
        f.write(raw_png(40, 30, 16, 6, [r.tobytes() for r in rgba16]))
    im(40, 30, 37).save(P("exif_6.png"), exif=exif_orientation_bytes(6)[6:])
    mm = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + \
        struct.pack(">I", 0)
    im(40, 30, 38).save(P("exif_8_bigendian.jpg"), quality=92, exif=mm)
    # RLE8 BMP, bottom-up: runs and absolute blocks
    w8, h8 = 23, 9
    pal = bytes(sum(([b * 9 % 256, b * 5 % 256, b * 3 % 256, 0] for b in range(16)), []))
    body = b""
    for y in range(h8):
        body += bytes([5, y % 16, 4, (y + 3) % 16]) + bytes([0, 6]) + bytes([(y + k) % 16 for k in range(6)])
        body += bytes([8, 7]) + bytes([0, 0])  # 5+4+6+8 = 23 pixels, end of line
    body += bytes([0, 1])
    hdr = struct.pack("<IiiHHIIiiII", 40, w8, h8, 1, 8, 1, len(body), 2835, 2835, 16, 0)
    off = 14 + 40 + len(pal)
    with open(P("rle8.bmp"), "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off) + hdr + pal + body)
    # 16-bit 5-6-5 BMP with BI_BITFIELDS, top-down
    w5, h5 = 21, 11
    px = pattern(w5, h5, 39).astype(np.uint32)
    v = ((px[..., 0] >> 3) << 11) | ((px[..., 1] >> 2) << 5) | (px[..., 2] >> 3)
    stride = (w5 * 2 + 3) // 4 * 4
    data = b"".join(v[y].astype("<u2").tobytes().ljust(stride, b"\0") for y in range(h5))
    hdr = struct.pack("<IiiHHIIiiII", 40, w5, -h5, 1, 16, 3, len(data), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    off = 14 + 40 + 12
    with open(P("rgb565.bmp"), "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + hdr + masks + data)
    g = im(45, 33, 40).convert("P", palette=Image.ADAPTIVE, colors=32)
    g.save(P("transparent.gif"), transparency=5)
    with open(P("jpeg_420.jpg"), "rb") as f:
        jb = f.read()
    with open(P("truncated.jpg"), "wb") as f:
        f.write(jb[: len(jb) // 2])
    # hostile: a PNG header claiming 100000 x 100000
    with open(P("bomb_100000x100000.png"), "wb") as f:
        ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                + png_chunk(b"IEND", b""))
    print("wrote", len(os.listdir(d)), "files to", d)


# ---------------------------------------------------------------- reference
PREPROCESSOR_CONFIG = {
    "size": {"shortest_edge": 12544, "longest_edge": 9633792},
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True, "resample": 3, "patch_size": 14, "temporal_patch_size": 2,
    "merge_size": 2, "image_processor_type": "Glm4vImageProcessor",
}


def hf_resized(proc, img_chw):
    """The uint8 image the processor resizes to, through its own resize()."""
    import torch
    from transformers.image_utils import SizeDict
    sz = proc.size
    get = (lambda k: sz[k]) if isinstance(sz, dict) else (lambda k: getattr(sz, k))
    out = proc.resize(img_chw[None], size=SizeDict(shortest_edge=get("shortest_edge"),
                                                   longest_edge=get("longest_edge")),
                      resample=proc.resample, factor=proc.patch_size * proc.merge_size,
                      temporal_factor=proc.temporal_patch_size)
    assert out.dtype == torch.uint8
    return out[0]


def sample_rows(a, n=3, maxpix=48):
    """(y, x0, step, values) for rows 0, mid, last of an HxWx3 u8 image."""
    h, w = a.shape[:2]
    step = max(1, w // maxpix)
    out = []
    for y in sorted(set([0, h // 2, h - 1])):
        xs = list(range(0, w, step))[:maxpix]
        out.append((y, 0, step, a[y, xs].reshape(-1).tolist()))
    return out


def reference(outdir, files, bench=None):
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoImageProcessor
    from transformers.image_utils import load_image

    os.makedirs(outdir, exist_ok=True)
    cfgdir = tempfile.mkdtemp()
    with open(os.path.join(cfgdir, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR_CONFIG, f)
    proc = AutoImageProcessor.from_pretrained(cfgdir)
    info = [f"transformers {transformers.__version__} torch {torch.__version__}",
            f"AutoImageProcessor -> {type(proc).__module__}.{type(proc).__name__}",
            f"PIL {Image.__version__} webp {__import__('PIL.features').features.check('webp')} torch cpu capability {torch.backends.cpu.get_cpu_capability()}"
            f" threads {torch.get_num_threads()}"]
    print("\n".join(info))
    lines = ["# generated by scripts/gen_image_fixtures.py on the GPU machine"] + ["# " + s for s in info]
    parity = list(info)

    # names are DIR/FILE with DIR one of assets, variants, fix (tests/fixtures/image)
    entries = [(os.path.basename(os.path.dirname(f)) + "/" + os.path.basename(f), f, None) for f in files]
    # synthetic images (no file): formula in tests/test_image.c
    quick = os.environ.get("QUICK") == "1"  # only the files: no synthetic images, no timing
    for (w, h, s) in ([] if quick else [(4000, 3000, 21), (1280, 720, 23), (57, 4000, 24)]):
        entries.append((f"synthetic_{w}x{h}_{s}", None, (w, h, s)))

    tot = {"px": 0, "pm1": 0, "worse": 0}
    for name, path, syn in entries:
        try:
            if syn:
                arr = pattern(*syn)
                img = Image.fromarray(arr)
            else:
                img = load_image(path)
                arr = np.asarray(img)
            res = proc(images=img, return_tensors="pt")
        except Exception as ex:
            msg = str(ex).replace("\n", " ")[:120]
            lines.append(f"error {name} {msg}")
            print("error", name, msg)
            continue
        pv = res["pixel_values"].numpy()
        grid = res["image_grid_thw"][0].tolist()
        try:
            chw = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
            rs = hf_resized(proc, chw).permute(1, 2, 0).contiguous().numpy()
            assert rs.shape[0] == grid[1] * 14 and rs.shape[1] == grid[2] * 14, (name, rs.shape, grid)
        except Exception as ex:
            parity.append(f"{name}: resize reference failed: {ex}")
            print(name, "resize reference failed", ex)
            continue
        h, w = arr.shape[:2]
        lines.append(f"image {name} {w} {h} {rs.shape[1]} {rs.shape[0]} {grid[0]} {grid[1]} {grid[2]} "
                     f"{checksum(arr)} {checksum(rs)} {checksum(pv.astype(np.float32))}")
        for (y, x0, st, vals) in sample_rows(rs):
            lines.append(f"rs {name} {y} {x0} {st} {len(vals) // 3} " + " ".join(map(str, vals)))
        for r in sorted(set([0, pv.shape[0] // 2, pv.shape[0] - 1])):
            vals = pv[r, ::7]
            lines.append(f"pv {name} {r} 7 {len(vals)} " + " ".join("%.9g" % v for v in vals))
        print(name, w, h, "->", rs.shape[1], rs.shape[0], grid)
        if bench and path:
            with tempfile.TemporaryDirectory() as td:
                d, r_, p = (os.path.join(td, x) for x in ("d", "r", "p"))
                cp = subprocess.run([bench, "-n", "1", "-d", d, "-r", r_, "-p", p, path],
                                    capture_output=True, text=True)
                if cp.returncode:
                    parity.append(f"{name}: glmv error: {cp.stderr.strip()}")
                    continue
                gd = np.fromfile(d, np.uint8)
                gr = np.fromfile(r_, np.uint8)
                gp = np.fromfile(p, np.float32)
                s = f"{name}: {w}x{h}"
                if gd.size != arr.size:
                    parity.append(s + f" decoded size differs ({gd.size} vs {arr.size})")
                    continue
                dd = np.abs(gd.astype(int) - arr.reshape(-1))
                s += f" decode diff>0 {int((dd > 0).sum())} max {int(dd.max())}"
                if gr.size == rs.size:
                    rd = np.abs(gr.astype(int) - rs.reshape(-1))
                    tot["px"] += rd.size
                    tot["pm1"] += int((rd == 1).sum())
                    tot["worse"] += int((rd > 1).sum())
                    s += f" | resized ±1 {int((rd == 1).sum())}/{rd.size} >1 {int((rd > 1).sum())}"
                else:
                    s += f" | resized size differs {gr.size} vs {rs.size}"
                if gp.size == pv.size:
                    s += f" | pixel_values max|d| {float(np.abs(gp - pv.reshape(-1)).max()):.3g}"
                parity.append(s)
    with open(os.path.join(outdir, "parity.txt"), "w") as f:
        f.write("\n".join(parity) + "\n")
    parity.append(f"TOTAL resized pixels(x3) {tot['px']} ±1 {tot['pm1']} >1 {tot['worse']}")
    with open(os.path.join(outdir, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # timing on a 4000x3000 JPEG made from a photo
    big = [f for f in files if "waterview" in f and not quick]
    if big:
        jpg = os.path.join(outdir, "..", "big_4000x3000.jpg")
        jpg = os.path.join(tempfile.mkdtemp(), "big_4000x3000.jpg")
        Image.open(big[0]).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(jpg, quality=90)
        def best(fn, n=3):
            ts = []
            for _ in range(n):
                t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
            return min(ts) * 1000
        t_load = best(lambda: load_image(jpg))
        img = load_image(jpg)
        t_proc = best(lambda: proc(images=img, return_tensors="pt"))
        t_all = best(lambda: proc(images=load_image(jpg), return_tensors="pt"))
        parity.append(f"TIME HF 4000x3000 JPEG: load_image {t_load:.1f} ms, processor {t_proc:.1f} ms, "
                      f"both {t_all:.1f} ms (best of 3, torch threads {torch.get_num_threads()})")
        torch.set_num_threads(1)
        t1 = best(lambda: proc(images=img, return_tensors="pt"))
        parity.append(f"TIME HF processor with torch.set_num_threads(1): {t1:.1f} ms")
        if bench:
            for th in ("16", "4", "1"):
                cp = subprocess.run([bench, "-n", "3", "-t", th, jpg], capture_output=True, text=True)
                parity.append(f"TIME glmv threads {th}: " + (cp.stdout.strip() or cp.stderr.strip()))
            # parity on the big JPEG too
            res = proc(images=img, return_tensors="pt")
            with tempfile.TemporaryDirectory() as td:
                r_ = os.path.join(td, "r")
                p = os.path.join(td, "p")
                subprocess.run([bench, "-n", "1", "-r", r_, "-p", p, jpg], capture_output=True)
                arr = np.asarray(img)
                chw = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
                rs = hf_resized(proc, chw).permute(1, 2, 0).contiguous().numpy()
                gr = np.fromfile(r_, np.uint8)
                gp = np.fromfile(p, np.float32)
                if gr.size == rs.size:
                    rd = np.abs(gr.astype(int) - rs.reshape(-1))
                    parity.append(f"big_4000x3000.jpg: resized ±1 {int((rd == 1).sum())}/{rd.size} >1 "
                                  f"{int((rd > 1).sum())} | pixel_values max|d| "
                                  f"{float(np.abs(gp - res['pixel_values'].numpy().reshape(-1)).max()):.3g}")
    with open(os.path.join(outdir, "parity.txt"), "w") as f:
        f.write("\n".join(parity) + "\n")
    print("\n".join(parity))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "inputs":
        make_inputs(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "reference":
        args = sys.argv[3:]
        bench = None
        if args[:1] == ["--bench"]:
            bench, args = args[1], args[2:]
        reference(sys.argv[2], args, bench)
    else:
        print(__doc__)
        sys.exit(2)
