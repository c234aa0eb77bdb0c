#!/usr/bin/env python3
"""tilestack's pure-Rust LERC decoder (src/cog/lerc.rs) against Esri's C++
LERC library (Debian's liblerc, the library GDAL links), on the same LERC
chunks, in one run.

    python3 bench/lerc_vs_cpp.py                 # 7 rounds, 0.5 s per file per round
    python3 bench/lerc_vs_cpp.py --rounds 11 --min-seconds 1
    python3 bench/lerc_vs_cpp.py --rust-bin PATH   # a lerc_blobs already built

What it does:
  1. installs liblerc-dev and libzstd-dev with apt-get when their headers are
     missing, and compiles bench/lerc_decode.c with gcc -O2 (-lLerc -lz -lzstd);
  2. builds bench/decode-harness's lerc_blobs (release; CARGO_TARGET_DIR
     is honoured);
  3. writes the chunks, exactly as stored in the TIFF, of every LERC file of
     the corpus (tests/fixtures/geotiff/codec_lerc_*.tif: 120x90 px in 32 px
     tiles) and of three larger files it generates with GDAL through
     rasterio (512x512 in 256 px tiles: float32 lossless LERC, uint16
     LERC_ZSTD with MAX_Z_ERROR=1, 3-band uint8 pixel-interleaved
     LERC_DEFLATE) into target/lerc-vs-cpp/blobs/ with a manifest; tile
     offsets and sizes come from GDAL's BLOCK_OFFSET/BLOCK_SIZE metadata;
  4. runs the two harnesses in turn (C++ then Rust, then Rust then C++, ...),
     each a fresh process decoding every file's chunks pass after pass for
     --min-seconds, and prints per file the median Mpixel/s of each and
     their ratio.

What is timed, per chunk, on both sides: the outer compression undone
(LERC_DEFLATE: inflate — zlib's `uncompress` in C, libdeflate in tilestack;
LERC_ZSTD: libzstd on both), the blob's header read, the LERC decode with
its validity mask. The C side (what GDAL's libtiff LERC codec does:
lerc_getBlobInfo, then lerc_decode) writes the native sample type into one
buffer reused for every chunk; tilestack's decoder returns a fresh Vec<f32>
per chunk (the reader's tile format), so conversion and allocation are in
its figure. The C side also reports the outer decompression alone
(`:outer` rows) so its share can be seen.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "lerc-vs-cpp")
CORPUS = os.path.join(ROOT, "tests", "fixtures", "geotiff")
OUTER = {"LERC": 0, "LERC_DEFLATE": 1, "LERC_ZSTD": 2}


def ensure_lerc():
    if not (os.path.exists("/usr/include/Lerc_c_api.h") and os.path.exists("/usr/include/zstd.h")):
        subprocess.run(["apt-get", "install", "-y", "liblerc-dev", "libzstd-dev"], check=True)
    exe = os.path.join(WORK, "lerc_decode")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(ROOT, "bench", "lerc_decode.c"),
                    "-lLerc", "-lz", "-lzstd"], check=True)
    return exe


def build_rust():
    """bench/decode-harness's lerc_blobs (release), with this tree's Cargo.lock."""
    harness = os.path.join(ROOT, "bench", "decode-harness")
    shutil.copy2(os.path.join(ROOT, "Cargo.lock"), os.path.join(harness, "Cargo.lock"))
    out = subprocess.run(["cargo", "build", "--release", "--bin", "lerc_blobs", "--message-format=json"],
                         cwd=harness, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "lerc_blobs" and m.get("executable"):
            return m["executable"]
    sys.exit("cargo did not report the lerc_blobs executable")


def generate(folder):
    """Three 512x512 LERC files in 256 px tiles, from a smooth field plus noise."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(30)
    y, x = np.mgrid[0:512, 0:512] / 512.0
    field = 800 + 300 * np.sin(6 * x) * np.cos(4 * y) + 50 * x * y
    cases = [
        ("gen_lerc_float32_512", "float32", 1, (field + rng.normal(0, 2, field.shape))[None], dict(compress="lerc")),
        ("gen_lerc_zstd_uint16_512", "uint16", 1, (field * 10 + rng.normal(0, 20, field.shape))[None],
         dict(compress="lerc_zstd", max_z_error=1)),
        ("gen_lerc_deflate_rgb_uint8_512", "uint8", 3,
         np.stack([field / 5 + rng.normal(0, 3, field.shape) + 10 * k for k in range(3)]),
         dict(compress="lerc_deflate", interleave="pixel")),
    ]
    paths = []
    for name, dtype, bands, data, opts in cases:
        p = os.path.join(folder, name + ".tif")
        if not os.path.exists(p):
            with rasterio.open(p, "w", driver="GTiff", width=512, height=512, count=bands, dtype=dtype,
                               tiled=True, blockxsize=256, blockysize=256,
                               crs="EPSG:32610", transform=from_origin(565000, 4185000, 10, 10), **opts) as ds:
                ds.write(np.clip(data, 0, np.iinfo(dtype).max if dtype != "float32" else None).astype(dtype))
        paths.append(p)
    return paths


def extract(paths, blobs):
    """The chunks of each file as stored, and manifest.tsv."""
    shutil.rmtree(blobs, ignore_errors=True)
    os.makedirs(blobs)
    lines = []
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        os.makedirs(os.path.join(blobs, name))
        with rasterio.open(p) as ds, open(p, "rb") as f:
            data = f.read()
            comp = ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"]
            assert ds.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE") == "PIXEL" or ds.count == 1, p
            bh, bw = ds.block_shapes[0]
            across, down = -(-ds.width // bw), -(-ds.height // bh)
            i = 0
            for ty in range(down):
                for tx in range(across):
                    off = int(ds.get_tag_item(f"BLOCK_OFFSET_{tx}_{ty}", "TIFF", bidx=1))
                    size = int(ds.get_tag_item(f"BLOCK_SIZE_{tx}_{ty}", "TIFF", bidx=1))
                    with open(os.path.join(blobs, name, f"{i}.bin"), "wb") as out:
                        out.write(data[off:off + size])
                    i += 1
            lines.append(f"{name} {OUTER[comp]} {bw} {bh} {ds.count} {ds.dtypes[0]} {i}")
    with open(os.path.join(blobs, "manifest.tsv"), "w") as m:
        m.write("\n".join(lines) + "\n")
    return [l.split()[0] for l in lines], {l.split()[0]: l for l in lines}


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {f[0]: float(f[4]) for f in (l.split() for l in out.splitlines()) if len(f) == 5}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--rust-bin", help="a lerc_blobs binary already built (skips the cargo build)")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    c_exe = ensure_lerc()
    rust_exe = a.rust_bin or build_rust()
    corpus = sorted(os.path.join(CORPUS, f) for f in os.listdir(CORPUS) if f.startswith("codec_lerc_"))
    blobs = os.path.join(WORK, "blobs")
    names, manifest = extract(corpus + generate(os.path.join(WORK, "generated")), blobs)
    runs = {"c": [], "rust": []}
    cmds = {"c": [c_exe, blobs, str(a.min_seconds)], "rust": [rust_exe, blobs, str(a.min_seconds)]}
    for r in range(a.rounds):
        order = ["c", "rust"] if r % 2 == 0 else ["rust", "c"]
        for k in order:
            runs[k].append(run(cmds[k]))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)

    def med(k, key):
        return statistics.median(x[key] for x in runs[k])

    print(f"\n{a.rounds} rounds, {a.min_seconds} s per file per round; median Mpixel/s")
    print("| file | chunks | tilestack (Rust) | liblerc (C++) | Rust / C++ | C++ outer inflate/zstd alone |")
    print("|---|---|---|---|---|---|")
    for n in names:
        _, outer, w, h, s, dt, tiles = manifest[n].split()
        ours, theirs = med("rust", n), med("c", n)
        o = f"{med('c', n + ':outer'):.0f}" if outer != "0" else "—"
        print(f"| `{n}` | {tiles} × {w}×{h}×{s} {dt} | {ours:.1f} | {theirs:.1f} | **{ours / theirs:.2f}** | {o} |")


if __name__ == "__main__":
    main()
