"""Reads every file of tilestack's GeoTIFF corpus with `tilestack read` and
with rasterio (GDAL, the tool of record) and compares them.

Usage: python3 tests/py/compare_read.py TILESTACK_BIN [--corpus DIR] [--only SUBSTR]
                                        [--refused CODEC ...]

Per file, several reads: the whole image, an interior window across tile
boundaries, an edge window reaching past the image (pixels outside it are
NaN), a band selection in another order (`--bands 4,1`) for multi-band
files, and each overview (`--ifd N`, N from `tilestack info --json`).
GDAL's side is `read()` (raw samples: scale/offset not applied) with every
pixel its mask calls invalid (nodata, internal mask) as NaN; sparse blocks
read as GDAL reads them (nodata, else 0). Lossless files must match
bit-exactly, lossy ones within the MANIFEST's `tolerance` (largest absolute
difference) and `mean_tolerance` (mean absolute difference) where given.

`--refused CODEC`: the binary was built without that codec (WebP without
tilestack's `webp` feature): each file of that codec must instead be refused,
exit 1 with a message naming the file and the codec. LERC is always decoded.

Prints a table; exits 1 naming every mismatch (and every failed read).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.windows import Window
from safetensors.numpy import load_file


def expected(path, overview_level, window, bands):
    """GDAL's read of `window` (col, row, w, h), [bands, h, w] f32, NaN where
    the mask is 0 or outside the image."""
    col, row, w, h = window
    kwargs = {} if overview_level is None else {"overview_level": overview_level}
    with rasterio.open(path, **kwargs) as ds:
        out = np.full((len(bands), h, w), np.nan, dtype="float32")
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + w, ds.width), min(row + h, ds.height)
        if c1 <= c0 or r1 <= r0:
            return out
        win = Window(c0, r0, c1 - c0, r1 - r0)
        data = ds.read(bands, window=win).astype("float32")
        mask = ds.read_masks(bands, window=win)
        data[mask == 0] = np.nan
        out[:, r0 - row:r1 - row, c0 - col:c1 - col] = data
        return out


def tilestack_read(binary, path, ifd, window, bands, out):
    cmd = [binary, "read", path, "--window", ",".join(map(str, window)), "--ifd", str(ifd),
           "--out", out]
    if bands is not None:
        cmd += ["--bands", ",".join(map(str, bands))]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-400:]}")
    return load_file(out)["data"]


def info(binary, path):
    p = subprocess.run([binary, "info", path, "--json"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"info exit {p.returncode}: {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout)


def cases(entry, meta):
    """(label, ifd, overview_level, window, bands or None) for one file."""
    w, h, n = entry["width"], entry["height"], entry["bands"]
    out = [
        ("full", 0, None, (0, 0, w, h), None),
        ("interior", 0, None, (w // 4 + 3, h // 4 + 1, w // 2, h // 2), None),
        ("edge", 0, None, (w - 25, h - 17, 40, 30), None),
    ]
    if n >= 2:
        sel = [n, 1] if n > 2 else [2]
        out.append((f"bands {','.join(map(str, sel))}", 0, None,
                    (w // 3, h // 5, w // 2, h // 2), sel))
    overviews = [i for i in meta["ifds"] if i["role"] == "overview"]
    for level, o in enumerate(overviews):
        ow, oh = o["width"], o["height"]
        out.append((f"overview {level} full", o["ifd"], level, (0, 0, ow, oh), None))
        if level == 0:
            out.append((f"overview {level} edge", o["ifd"], level,
                        (ow - 10, oh - 7, 20, 20), [n] if n > 1 else None))
    return out


def refused(binary, path, entry, codec, tmp):
    """The row of a file whose codec this binary does not decode."""
    out = os.path.join(tmp, f"{entry['file']}.refused.safetensors")
    cmd = [binary, "read", path, "--window", "0,0,8,8", "--out", out]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    err = p.stderr.strip()
    ok = p.returncode == 1 and entry["file"] in err and codec in err
    note = err.splitlines()[-1][-160:] if err else f"exit {p.returncode}, no message"
    return [(entry["file"], "refused", "ok" if ok else "FAIL", note)]


def check(binary, corpus, entry, tmp, refuse):
    path = os.path.join(corpus, entry["file"])
    tol = float(entry.get("tolerance", 0))
    for codec in refuse:
        if entry["codec"].split("_")[0] == codec:
            return refused(binary, path, entry, codec, tmp)
    rows = []
    try:
        meta = info(binary, path)
    except Exception as e:  # noqa: BLE001 - reported as a mismatch
        return [(entry["file"], "info", "FAIL", str(e))]
    for k, (label, ifd, level, window, bands) in enumerate(cases(entry, meta)):
        out = os.path.join(tmp, f"{entry['file']}.{k}.safetensors")
        sel = bands if bands is not None else list(range(1, entry["bands"] + 1))
        try:
            got = tilestack_read(binary, path, ifd, window, bands, out)
        except Exception as e:  # noqa: BLE001
            rows.append((entry["file"], label, "FAIL", str(e)))
            continue
        want = expected(path, level, window, sel)
        if got.shape != want.shape:
            rows.append((entry["file"], label, "FAIL",
                         f"shape {got.shape}, GDAL {want.shape}"))
            continue
        gnan, wnan = np.isnan(got), np.isnan(want)
        if not np.array_equal(gnan, wnan):
            rows.append((entry["file"], label, "FAIL",
                         f"NaN at {int((gnan & ~wnan).sum())} px GDAL has values, "
                         f"values at {int((~gnan & wnan).sum())} px GDAL has NaN"))
            continue
        both = ~gnan
        diff = np.abs(got[both].astype("float64") - want[both].astype("float64"))
        worst = float(diff.max()) if diff.size else 0.0
        mean = float(diff.mean()) if diff.size else 0.0
        mean_tol = entry.get("mean_tolerance")
        if tol == 0:
            ok = np.array_equal(got[both], want[both])
        else:
            ok = worst <= tol and (mean_tol is None or mean <= mean_tol)
        status = "ok" if ok else "FAIL"
        note = f"max |diff| {worst:g}" + (f" (tolerance {tol:g})" if tol else " (exact)")
        if mean_tol is not None:
            note += f", mean {mean:.3f} (tolerance {mean_tol:g})"
        if not ok:
            note += f", {int((diff > tol).sum())} px over"
        rows.append((entry["file"], label, status, note))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tilestack")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corpus", default=os.path.join(here, "..", "fixtures", "geotiff"))
    ap.add_argument("--only", default="")
    ap.add_argument("--refused", nargs="*", default=[])
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.corpus, "MANIFEST.json")))
    entries = [e for e in manifest["files"] if a.only in e["file"]]
    if not entries:
        print("no corpus file matches", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda e: check(a.tilestack, a.corpus, e, tmp, a.refused),
                                 entries))
    rows = [r for rs in results for r in rs]
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'read':<20} {'':<4}  detail")
    for f, label, status, note in rows:
        print(f"{f:<{width}}  {label:<20} {status:<4}  {note}")
    bad = [r for r in rows if r[2] != "ok"]
    print(f"\n{len(entries)} files, {len(rows)} reads, {len(rows) - len(bad)} match GDAL, "
          f"{len(bad)} mismatch")
    for f, label, _, note in bad:
        print(f"MISMATCH {f} [{label}]: {note}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
