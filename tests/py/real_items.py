"""Helpers for tests/it/real_items.rs: GDAL (via rasterio) writes what the
demo world's writer cannot, and computes the reference the stack is checked
against, independently of tilestack.

    python3 real_items.py f32-cog RAW.f32 OUT.tif WIDTH HEIGHT EPSG X0 Y0 RES NODATA
        A float32 COG (DEFLATE, predictor 3, 64 px tiles, nodata NODATA) of the
        little-endian row-major samples in RAW.f32, top-left corner (X0, Y0),
        square north-up pixels of RES.

    python3 real_items.py qa-cloud-fraction STACK.safetensors QA_BAND BITS QA1.tif [QA2.tif ...]
        Landsat Collection 2 QA_PIXEL cloud fraction, per day: QA<k>.tif (the
        scene of day k of the stack's days that have one, in order) warped by
        GDAL onto the stack's grid with nearest neighbour, then numpy bit
        ops: a pixel is valid when bit 0 (fill) is clear, cloudy when any of
        BITS (comma-separated bit numbers) is set; fraction = cloudy / valid.
        Prints JSON {"fractions": [...], "qa_equal": bool}: qa_equal says
        whether the stack's own QA_BAND equals GDAL's warp, pixel for pixel.
"""

import json
import struct
import sys

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin
from rasterio.warp import Resampling, reproject


def f32_cog(raw, out, width, height, epsg, x0, y0, res, nodata):
    a = np.fromfile(raw, dtype="<f4").reshape(int(height), int(width))
    profile = dict(
        driver="COG",
        width=int(width),
        height=int(height),
        count=1,
        dtype="float32",
        crs=CRS.from_epsg(int(epsg)),
        transform=from_origin(float(x0), float(y0), float(res), float(res)),
        nodata=float(nodata),
        compress="deflate",
        predictor=3,
        blocksize=64,
    )
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(a, 1)


def read_stack(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    meta = head["__metadata__"]
    d = head["data"]
    lo, hi = d["data_offsets"]
    data = np.frombuffer(body[lo:hi], dtype="<f4").reshape(d["shape"])
    return data, meta


def qa_cloud_fraction(stack, qa_band, bits, qa_files):
    data, meta = read_stack(stack)
    bands = json.loads(meta["bands"])
    b = bands.index(qa_band)
    t, _, h, w = data.shape
    gdal6 = json.loads(meta["transform"])
    dst_transform = Affine.from_gdal(*gdal6)
    dst_crs = CRS.from_epsg(json.loads(meta["epsg"]))
    mask = 0
    for bit in bits.split(","):
        mask |= 1 << int(bit)
    # the days that have a scene: the stack's qa band is not all NaN there
    days = [k for k in range(t) if np.isfinite(data[k, b]).any()]
    if len(days) != len(qa_files):
        raise SystemExit(f"{len(days)} days with data, {len(qa_files)} QA files")
    fractions = [None] * t
    qa_equal = True
    for k, path in zip(days, qa_files):
        with rasterio.open(path) as src:
            dst = np.full((h, w), 1, dtype="uint16")  # fill: bit 0 set
            reproject(
                source=rasterio.band(src, 1),
                destination=dst,
                dst_transform=dst_transform,
                dst_crs=dst_crs,
                src_nodata=1,
                dst_nodata=1,
                resampling=Resampling.nearest,
            )
        valid = (dst & 1) == 0
        cloudy = valid & ((dst & mask) != 0)
        fractions[k] = float(cloudy.sum()) / float(valid.sum()) if valid.any() else None
        mine = data[k, b]
        expect = np.where(valid, dst.astype("float32"), np.nan)
        same = np.array_equal(np.isnan(mine), np.isnan(expect)) and np.array_equal(
            mine[valid], expect[valid]
        )
        qa_equal = qa_equal and bool(same)
    json.dump({"fractions": fractions, "qa_equal": qa_equal}, sys.stdout)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "f32-cog":
        f32_cog(*args)
    elif cmd == "qa-cloud-fraction":
        qa_cloud_fraction(args[0], args[1], args[2], args[3:])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
