#!/usr/bin/env python3
"""GDAL's average and mode warps of a float32 raster, through rasterio: what
`tilestack::geo::warp` with `Resampling::Average` / `Resampling::Mode` must
give (tests/it/warp.rs).

usage: footprint_reference.py SRC ROWS COLS SRC_EPSG A,B,C,D,E,F
                              DST_EPSG A,B,C,D,E,F WIDTH HEIGHT METHOD

SRC: ROWS x COLS little-endian float32 values, row-major, NaN = nodata
(the Rust test writes it). The two GDAL geotransforms place the source and
the target grid (WIDTH x HEIGHT) in their EPSG codes. METHOD: average,
mode or bilinear. GDAL is asked for the exact transformation (a WarpedVRT with
`tolerance=1e-9`, i.e. `gdalwarp -et 0`; rasterio refuses 0), source and
target nodata NaN, working in float32, as `gdalwarp -r average|mode|bilinear`;
for bilinear with the plain 2 x 2 kernel (`XSCALE=1 YSCALE=1`; see below).

Prints one JSON object: "gdal" (the GDAL version), "values" (HEIGHT*WIDTH
values, row-major, null for NaN; float32 values printed as the doubles they
are, so they read back bit for bit) and "approx_moved" (how many target
pixels `rasterio.warp.reproject` with its default approximate transformer,
0.125 px, gives another value: how far the tool of record is from itself),
and for bilinear "autoscale_max_rel" (the largest relative difference between
GDAL's default, kernel widened by its own scale estimate, and the 2 x 2 kernel).
"""
import json
import sys

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject


def affine(gt):
    a, b, c, d, e, f = (float(x) for x in gt.split(","))
    return Affine(b, c, a, e, f, d)


def main(path, rows, cols, src_epsg, src_gt, dst_epsg, dst_gt, width, height, method):
    rows, cols, width, height = int(rows), int(cols), int(width), int(height)
    src = np.fromfile(path, dtype="<f4").reshape(rows, cols)
    src_t, dst_t = affine(src_gt), affine(dst_gt)
    src_crs, dst_crs = CRS.from_epsg(int(src_epsg)), CRS.from_epsg(int(dst_epsg))
    resampling = {"average": Resampling.average, "mode": Resampling.mode,
                  "bilinear": Resampling.bilinear}[method]
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                   crs=src_crs, transform=src_t, nodata=float("nan"))
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(src, 1)
        def exact_warp(**scale):
            with mem.open() as ds, WarpedVRT(ds, crs=dst_crs, transform=dst_t, width=width,
                                             height=height, resampling=resampling,
                                             tolerance=1e-9, src_nodata=float("nan"),
                                             nodata=float("nan"), dtype="float32",
                                             **scale) as vrt:
                return vrt.read(1)
        exact = exact_warp()
        autoscale_max_rel = 0.0
        if method == "bilinear":
            # GDAL widens its bilinear kernel where it finds the source
            # window larger than the target's (XSCALE/YSCALE < 1: a rotated
            # grid across zones, a downsample); the plain 2 x 2 kernel is
            # XSCALE = YSCALE = 1. Report how far the two are apart.
            auto = exact
            exact = exact_warp(XSCALE="1", YSCALE="1")
            both = ~np.isnan(auto) & ~np.isnan(exact)
            if both.any():
                autoscale_max_rel = float(np.max(np.abs(auto[both] - exact[both])
                                                 / np.abs(exact[both])))
    approx = np.full((height, width), np.nan, np.float32)
    reproject(src, approx, src_transform=src_t, src_crs=src_crs, src_nodata=float("nan"),
              dst_transform=dst_t, dst_crs=dst_crs, dst_nodata=float("nan"),
              resampling=resampling)
    same = (exact == approx) | (np.isnan(exact) & np.isnan(approx))
    values = [None if np.isnan(v) else float(v) for v in exact.ravel()]
    json.dump({"gdal": rasterio.__gdal_version__, "values": values,
               "approx_moved": int((~same).sum()),
               "autoscale_max_rel": autoscale_max_rel}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
