#!/usr/bin/env python3
"""GDAL's average warp of a COG read from an overview, through rasterio: what
a tilestack stack with `resampling = "average"` must give when its grid is at
least twice as coarse as the COG (tests/it/stack.rs).

usage: overview_reference.py COG DST_EPSG A,B,C,D,E,F WIDTH HEIGHT

COG: a single-band GeoTIFF with overviews and nodata. The target grid is
WIDTH x HEIGHT in DST_EPSG, placed by the GDAL geotransform A..F.

The overview is the one `gdalwarp` (-ovr AUTO, its default) reads: the
coarsest whose decimation factor is not above the target's
(`gdalwarp_lib.cpp`: the loop stops at the level whose factor is below the
target ratio and the next one's above it, or within 0.1 of it). tilestack's
rule (`stack::plan::pick_overview`) is the coarsest overview whose pixels are
not coarser than the target's.

GDAL is asked for the exact transformation (WarpedVRT, tolerance 1e-9),
average resampling, source nodata from the file, target nodata NaN, float32.
Prints one JSON object: "gdal", "factor" (the decimation factor read; 1 =
full resolution), "overview_level" (rasterio's index, null for full
resolution), "values" (row-major, null for NaN) and "full_resolution" (the
same warp from the full resolution, to show the overview mattered).
"""
import json
import sys

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT


def affine(gt):
    a, b, c, d, e, f = (float(x) for x in gt.split(","))
    return Affine(b, c, a, e, f, d)


def warp(path, level, crs, transform, width, height):
    kw = {} if level is None else {"overview_level": level}
    with rasterio.open(path, **kw) as ds, WarpedVRT(
            ds, crs=crs, transform=transform, width=width, height=height,
            resampling=Resampling.average, tolerance=1e-9, nodata=float("nan"),
            dtype="float32") as vrt:
        return vrt.read(1)


def main(path, dst_epsg, dst_gt, width, height):
    width, height = int(width), int(height)
    t = affine(dst_gt)
    crs = CRS.from_epsg(int(dst_epsg))
    with rasterio.open(path) as ds:
        full = ds.width
        res = ds.transform.a
        factors = [full / w for w in
                   (rasterio.open(path, overview_level=i).width
                    for i in range(len(ds.overviews(1))))]
    target = abs(t.a) / res
    level, factor = None, 1.0
    for i, f in enumerate(factors):
        if f <= target * (1 + 1e-9):
            level, factor = i, f
    values = warp(path, level, crs, t, width, height)
    full_res = warp(path, None, crs, t, width, height)
    out = lambda a: [None if np.isnan(v) else float(v) for v in a.ravel()]
    json.dump({"gdal": rasterio.__gdal_version__, "factor": factor, "overview_level": level,
               "values": out(values), "full_resolution": out(full_res)}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
