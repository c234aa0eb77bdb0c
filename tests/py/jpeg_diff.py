"""Per-pixel difference between `tilestack read` and GDAL (rasterio) on the
corpus's JPEG files: how far a JPEG decoder is from GDAL's.

Usage: python3 tests/py/jpeg_diff.py TILESTACK_BIN [--corpus DIR] [--only SUBSTR]

For each JPEG file (and each of its overviews) reads the whole image both
ways and prints the largest absolute difference in DN, the share of samples
that differ at all and by more than 1 DN, and the mean absolute difference.
A measurement, not a test: tests/py/compare_read.py holds the files to the
MANIFEST's tolerances.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_read import expected, info, tilestack_read  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tilestack")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corpus", default=os.path.join(here, "..", "fixtures", "geotiff"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.corpus, "MANIFEST.json")))
    entries = [e for e in manifest["files"]
               if e["codec"] == "JPEG" and a.only in e["file"]]
    print(f"{'file':<34} {'image':<10} {'max DN':>6} {'% != 0':>8} {'% > 1 DN':>9} "
          f"{'mean':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for e in entries:
            path = os.path.join(a.corpus, e["file"])
            try:
                meta = info(a.tilestack, path)
            except Exception as err:  # noqa: BLE001 - reported
                print(f"{e['file']:<34} info failed: {err}")
                continue
            images = [("full", 0, None, e["width"], e["height"])]
            for level, o in enumerate(i for i in meta["ifds"] if i["role"] == "overview"):
                images.append((f"overview {level}", o["ifd"], level, o["width"], o["height"]))
            bands = list(range(1, e["bands"] + 1))
            for label, ifd, level, w, h in images:
                out = os.path.join(tmp, "x.safetensors")
                try:
                    got = tilestack_read(a.tilestack, path, ifd, (0, 0, w, h), None, out)
                except Exception as err:  # noqa: BLE001 - reported
                    print(f"{e['file']:<34} {label:<10} read failed: {str(err)[-120:]}")
                    continue
                want = expected(path, level, (0, 0, w, h), bands)
                d = np.abs(got.astype("float64") - want.astype("float64"))
                d = d[~np.isnan(d)]
                print(f"{e['file']:<34} {label:<10} {d.max():>6.0f} "
                      f"{100 * (d > 0).mean():>7.3f}% {100 * (d > 1).mean():>8.3f}% "
                      f"{d.mean():>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
