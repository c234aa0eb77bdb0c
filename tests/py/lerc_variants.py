"""LERC beyond the committed corpus: writes, with GDAL through rasterio, the
LERC layouts the decoder has paths for (every sample type GDAL writes,
Huffman-coded bytes, lossy bit-stuffing, masks from NaN (one per pixel and
one per band), RGBA whose alpha is the LERC mask, strips, planar, constant
tiles, LERC_DEFLATE/LERC_ZSTD) into a temporary folder with a MANIFEST.json,
then compares `tilestack read` with rasterio on them through
compare_read.py. Every file must match GDAL exactly (tolerance 0: both sides
decode the same lossy bytes).

    python3 tests/py/lerc_variants.py TILESTACK_BIN [--keep DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import rasterio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_geotiff_corpus as corpus  # noqa: E402

TILED = dict(tiled=True, blockxsize=32, blockysize=32)


def nan_blob(data):
    """`data` (float, [bands, h, w]) with a NaN disc in every band."""
    out = data.copy()
    yy, xx = np.mgrid[0:out.shape[1], 0:out.shape[2]]
    out[:, (yy - 40) ** 2 + (xx - 50) ** 2 < 300] = np.nan
    return out


def variants(out_dir):
    w = corpus.write
    px = corpus.pixels
    t = lambda layout, codec: dict(layout=layout, codec=codec, predictor=1)  # noqa: E731
    for dtype, seed in [("int8", 1), ("uint8", 2), ("int16", 3), ("uint16", 4),
                        ("int32", 5), ("uint32", 6), ("float32", 7), ("float64", 8)]:
        w(out_dir, f"lerc_{dtype}.tif", px(dtype, 1, seed), t("tiled", "LERC"),
          compress="lerc", **TILED)
    w(out_dir, "lerc_uint8_lossy.tif", px("uint8", 1, 9), t("tiled", "LERC"),
      compress="lerc", max_z_error=1, **TILED)
    w(out_dir, "lerc_int16_lossy_deflate.tif", px("int16", 1, 10),
      t("tiled", "LERC_DEFLATE"), compress="lerc_deflate", max_z_error=3, **TILED)
    w(out_dir, "lerc_float64_lossy_zstd.tif", px("float64", 1, 11), t("tiled", "LERC_ZSTD"),
      compress="lerc_zstd", max_z_error=0.5, **TILED)
    w(out_dir, "lerc_float32_nan_mask.tif", nan_blob(px("float32", 1, 12)),
      t("tiled", "LERC"), compress="lerc", **TILED)
    w(out_dir, "lerc_float32_3band_pixel_nan.tif", nan_blob(px("float32", 3, 13)),
      t("pixel-interleaved", "LERC"), compress="lerc", interleave="pixel", **TILED)
    partial = px("float32", 3, 14)
    partial[1, 10:30, 20:70] = np.nan  # band 2 only: one mask per band
    w(out_dir, "lerc_float32_3band_pixel_band_nan.tif", partial,
      t("pixel-interleaved", "LERC"), compress="lerc", interleave="pixel", **TILED)
    w(out_dir, "lerc_uint16_2band_planar_zstd.tif", px("uint16", 2, 15),
      t("planar", "LERC_ZSTD"), compress="lerc_zstd", interleave="band", **TILED)
    w(out_dir, "lerc_uint16_3band_pixel.tif", px("uint16", 3, 16),
      t("pixel-interleaved", "LERC"), compress="lerc", interleave="pixel", **TILED)
    w(out_dir, "lerc_uint16_striped.tif", px("uint16", 1, 17), t("striped", "LERC"),
      compress="lerc", tiled=False, blockysize=16)
    const = np.full((1, corpus.H, corpus.W), 77, dtype="int16")
    const[0, :, 64:] = px("int16", 1, 18)[0, :, 64:]
    w(out_dir, "lerc_int16_constant_tiles_nodata.tif", const, t("tiled", "LERC"),
      compress="lerc", nodata=77, **TILED)
    rgba = px("uint8", 4, 19)
    rgba[3] = 255
    rgba[3, 20:50, 30:90] = 0
    w(out_dir, "lerc_rgba_alpha_mask.tif", rgba, t("pixel-interleaved", "LERC"),
      compress="lerc", interleave="pixel", photometric="rgb", alpha="unassociated",
      **TILED)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tilestack")
    ap.add_argument("--keep", help="write the files here (kept) instead of a temp folder")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = a.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        corpus.MANIFEST.clear()
        variants(out_dir)
        with open(os.path.join(out_dir, "MANIFEST.json"), "w") as fh:
            json.dump({"generator": "tests/py/lerc_variants.py",
                       "gdal": rasterio.__gdal_version__, "files": corpus.MANIFEST}, fh,
                      indent=1)
        p = subprocess.run([sys.executable, os.path.join(HERE, "compare_read.py"),
                            a.tilestack, "--corpus", out_dir])
        return p.returncode


if __name__ == "__main__":
    sys.exit(main())
