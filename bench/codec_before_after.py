#!/usr/bin/env python3
"""Tile decode per codec, an older commit against this tree, in one run.

    python3 bench/codec_before_after.py                   # bd9ff82 vs the working tree, 7 rounds
    python3 bench/codec_before_after.py --old bd9ff82 --rounds 9 --min-seconds 1
    python3 bench/codec_before_after.py --old-bin OLD --new-bin NEW   # binaries already built

bd9ff82 is main just before issue 30's work (the parent of 3165a03, the
pure-Rust LERC decoder; the libjpeg-exact JPEG decoder c933d1d came after).

What it does:
  1. builds bench/decode-harness's `codec_decode` (release) twice: in this
     tree, and in a detached worktree of --old under target/codec-compare/
     into which it copies the harness (the harness uses only API both
     have: CogReader::header, IfdInfo::tile_range, cog::decode_tile); each
     build uses its tree's Cargo.lock, one target folder for both
     (CARGO_TARGET_DIR when set), so dependencies build once;
  2. writes one 1024x1024 GeoTIFF per codec with GDAL through rasterio
     (target/codec-compare/files/, 256 px tiles, so each tile is a 256²
     window): a smooth field plus noise, uint16 for DEFLATE, ZSTD, LZW
     (predictor 2), LZMA and none, uint8 for PackBits, 3-band uint8 for
     WebP (lossy) and JPEG (YCbCr, quality 90, like NAIP), float32 for LERC;
  3. runs the two binaries in turn (order rotating per round), each a fresh
     process that reads all 16 tiles of each file into memory and then
     times `decode_tile` on them, one after another on one thread, pass
     after pass for --min-seconds: the decode of a 256² tile (decompress,
     predictor, colour conversion, the samples as f32), no fetch, no
     process start-up;
  4. prints per codec the median microseconds per 256² tile of each, and
     new / old. A commit that refuses a file (LERC before it was built in)
     shows the error instead.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "codec-compare")
HARNESS = os.path.join("bench", "decode-harness")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_commits import sh, short_name, worktree  # noqa: E402  (one worktree rule for both)


def build(rev):
    """`codec_decode` of `rev` ('.' = this tree), copied to target/codec-compare/bin/."""
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    if rev == ".":
        src, name = ROOT, "worktree"
    else:
        name = short_name(rev)
        src = worktree(name, rev, WORK)
        # the harness as it is in this tree (the old commit has none)
        shutil.rmtree(os.path.join(src, HARNESS), ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, HARNESS), os.path.join(src, HARNESS),
                        ignore=shutil.ignore_patterns("target", "Cargo.lock"))
    harness = os.path.join(src, HARNESS)
    shutil.copy2(os.path.join(src, "Cargo.lock"), os.path.join(harness, "Cargo.lock"))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(WORK, "target")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    sh(["cargo", "build", "--release", "--bin", "codec_decode"], cwd=harness, env=env)
    out = os.path.join(WORK, "bin", "codec_decode-" + name)
    shutil.copy2(os.path.join(target, "release", "codec_decode"), out)
    return out


CASES = [
    # name, dtype, bands, creation options
    ("deflate_u16_pred2", "uint16", 1, dict(compress="deflate", predictor=2)),
    ("zstd_u16_pred2", "uint16", 1, dict(compress="zstd", predictor=2)),
    ("lzw_u16_pred2", "uint16", 1, dict(compress="lzw", predictor=2)),
    ("packbits_u8", "uint8", 1, dict(compress="packbits")),
    ("none_u16", "uint16", 1, dict()),
    ("lzma_u16", "uint16", 1, dict(compress="lzma")),
    ("webp_rgb_u8", "uint8", 3, dict(compress="webp", interleave="pixel", webp_level=75)),
    ("jpeg_ycbcr_u8", "uint8", 3, dict(compress="jpeg", photometric="ycbcr", jpeg_quality=90)),
    ("lerc_f32", "float32", 1, dict(compress="lerc")),
]


def generate():
    folder = os.path.join(WORK, "files")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(30)
    y, x = np.mgrid[0:1024, 0:1024] / 1024.0
    field = 0.5 + 0.3 * np.sin(9 * x) * np.cos(7 * y) + 0.1 * x * y
    paths = []
    for name, dtype, bands, opts in CASES:
        p = os.path.join(folder, name + ".tif")
        paths.append(p)
        if os.path.exists(p):
            continue
        scale = {"uint8": 200, "uint16": 3000, "float32": 3000}[dtype]
        data = np.stack([field * scale * (1 + 0.1 * k) + rng.normal(0, scale / 100, field.shape)
                         for k in range(bands)])
        if dtype != "float32":
            data = np.clip(data, 0, np.iinfo(dtype).max)
        with rasterio.open(p, "w", driver="GTiff", width=1024, height=1024, count=bands, dtype=dtype,
                           tiled=True, blockxsize=256, blockysize=256, crs="EPSG:32610",
                           transform=from_origin(565000, 4185000, 10, 10), **opts) as ds:
            ds.write(data.astype(dtype))
    return paths


def run(binary, files, min_s):
    out = subprocess.run([binary, "--min-seconds", str(min_s), *files], check=True,
                         capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        f = line.split(maxsplit=2)
        res[f[0]] = line.split(" ERROR ", 1)[1] if f[1] == "ERROR" else float(line.split()[4])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", default="bd9ff82")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--old-bin", help="--old's codec_decode already built (skips its build)")
    ap.add_argument("--new-bin", help="this tree's codec_decode already built (skips its build)")
    a = ap.parse_args()
    bins = {"old": a.old_bin or build(a.old), "new": a.new_bin or build(".")}
    files = generate()
    runs = {"old": [], "new": []}
    for r in range(a.rounds):
        for k in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            runs[k].append(run(bins[k], files, a.min_seconds))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    print(f"\n{a.rounds} rounds, {a.min_seconds} s per file per round; "
          "median microseconds per 256² tile (decode_tile, one thread)")
    print(f"| codec (file) | {a.old} | this tree | new / old |")
    print("|---|---|---|---|")
    for name, *_ in CASES:
        cell = {}
        for k in ("old", "new"):
            v = [x[name] for x in runs[k]]
            cell[k] = statistics.median(v) if all(isinstance(x, float) for x in v) else v[0]
        o, n = cell["old"], cell["new"]
        if isinstance(o, float) and isinstance(n, float):
            print(f"| `{name}` | {o:.0f} | {n:.0f} | **{n / o:.3f}** |")
        else:
            fmt = lambda c: f"{c:.0f}" if isinstance(c, float) else f"refused: {c[:90]}"
            print(f"| `{name}` | {fmt(o)} | {fmt(n)} | — |")


if __name__ == "__main__":
    main()
