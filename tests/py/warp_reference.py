#!/usr/bin/env python3
"""Reference source pixels for the nearest warps of src/geo/warp.rs' tests,
from GDAL's warper (`gdalwarp -r near -et 0`) through rasterio.

Usage: python3 tests/py/warp_reference.py > /tmp/warp.txt
Prints Rust tables to paste into src/geo/warp.rs' tests, with the GDAL and
rasterio versions that made them.

Each source pixel holds `row * 1000 + col` (exact in float32 here), so the
value GDAL puts in a target pixel names the source pixel it took; outside
the source GDAL leaves the target's nodata (NaN), printed as None. GDAL is
asked for the exact transformation (a WarpedVRT with `tolerance=0`, i.e.
`gdalwarp -et 0`; rasterio refuses 0, so 1e-9 px); the script prints how
many target pixels `rasterio.warp.reproject` (its default approximate
transformer, 0.125 px) sends to another source pixel.

Cases (the grids are those the Rust tests build; the script prints their
origins so the tests can assert they are the same):
  zone11_to_zone10_8x8: a 300 x 300 source at 10 m in UTM 11N (EPSG:32611),
    its upper left at the zone-11 image of (558976, 4184946) in zone 10,
    floored to 10 m, minus 1500 m east and plus 1500 m north; onto an 8 x 8
    grid at 40 m in UTM 10N around (558976, 4184946), snapped as
    `GridSpec::tile_around` (left = ceil((cx - 4*40)/40)*40, top =
    floor((cy + 4*40)/40)*40). Zone 11's grid is rotated ~3.7 degrees
    against zone 10's: source rows drift across target columns.
  zone11_to_zone10_64: the same source onto the 64 x 64 grid at 10 m around
    the same point: the source pixels of its four corners and centre.
  same_crs: a 6 x 5 source at 20 m from (499980, 4200020) onto a 16 x 16
    grid at 10 m from (499953, 4200043), both UTM 10N: the source row of
    each target row and the source column of each target column (the
    target overhangs the source on all four sides).
"""
import math
import sys

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, reproject, transform as transform_points


def source(rows, cols):
    r, c = np.mgrid[0:rows, 0:cols]
    return (r * 1000 + c).astype(np.float32)


def warp(src, src_t, src_crs, dst_t, dst_crs, width, height):
    """GDAL nearest with the exact transformer, and the number of pixels where
    reproject's default approximate one (0.125 px) picks another."""
    profile = dict(driver="GTiff", width=src.shape[1], height=src.shape[0], count=1,
                   dtype="float32", crs=src_crs, transform=src_t, nodata=float("nan"))
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(src, 1)
        with mem.open() as ds, WarpedVRT(ds, crs=dst_crs, transform=dst_t, width=width,
                                         height=height, resampling=Resampling.nearest,
                                         tolerance=1e-9, nodata=float("nan")) as vrt:
            exact = vrt.read(1)
    approx = np.full((height, width), np.nan, np.float32)
    reproject(src, approx, src_transform=src_t, src_crs=src_crs, src_nodata=float("nan"),
              dst_transform=dst_t, dst_crs=dst_crs, dst_nodata=float("nan"),
              resampling=Resampling.nearest)
    same = (exact == approx) | (np.isnan(exact) & np.isnan(approx))
    return exact, int((~same).sum())


def index(v):
    """The source (row, col) a value names, or None for NaN."""
    if math.isnan(v):
        return None
    r, c = divmod(int(v), 1000)
    assert r * 1000 + c == v
    return (r, c)


def rust(ix):
    return "None" if ix is None else f"Some({ix})"


def main():
    out = sys.stdout
    out.write(f"// GDAL {rasterio.__gdal_version__}, rasterio {rasterio.__version__}\n")
    z10, z11 = CRS.from_epsg(32610), CRS.from_epsg(32611)
    cx, cy = 558976.0, 4184946.0
    (sx,), (sy,) = transform_points(z10, z11, [cx], [cy])
    src_t = Affine(10.0, 0.0, math.floor(sx / 10) * 10 - 1500, 0.0, -10.0,
                   math.floor(sy / 10) * 10 + 1500)
    src = source(300, 300)

    res, size = 40.0, 8
    left = math.ceil((cx - size * res / 2) / res) * res
    top = math.floor((cy + size * res / 2) / res) * res
    out.write(f"// zone11_to_zone10_8x8: source origin ({src_t.c!r}, {src_t.f!r}), "
              f"target origin ({left!r}, {top!r}); [row][col] = Some((src_row, src_col))\n")
    got, moved = warp(src, src_t, z11, Affine(res, 0, left, 0, -res, top), z10, size, size)
    out.write(f"// (the 0.125 px approximation moves {moved} of {size * size})\n")
    for r in range(size):
        out.write("[" + ", ".join(rust(index(v)) for v in got[r]) + "],\n")

    res, size = 10.0, 64
    left = math.ceil((cx - size * res / 2) / res) * res
    top = math.floor((cy + size * res / 2) / res) * res
    out.write(f"// zone11_to_zone10_64: target origin ({left!r}, {top!r}); "
              "(row, col, Some((src_row, src_col)))\n")
    got, moved = warp(src, src_t, z11, Affine(res, 0, left, 0, -res, top), z10, size, size)
    out.write(f"// (the 0.125 px approximation moves {moved} of {size * size})\n")
    for r, c in [(0, 0), (0, 63), (63, 0), (63, 63), (32, 32)]:
        out.write(f"({r}, {c}, {rust(index(got[r, c]))}),\n")

    src_t = Affine(20.0, 0.0, 499980.0, 0.0, -20.0, 4200020.0)
    dst_t = Affine(10.0, 0.0, 499953.0, 0.0, -10.0, 4200043.0)
    got, moved = warp(source(6, 5), src_t, z10, dst_t, z10, 16, 16)
    assert moved == 0, moved
    ix = [[index(v) for v in row] for row in got]
    # same CRS, axis-aligned: the row depends on the target row only, the
    # column on the target column only, and both are None together
    rows = [next((p[0] for p in row if p), None) for row in ix]
    cols = [next((row[c][1] for row in ix if row[c]), None) for c in range(16)]
    for r in range(16):
        for c in range(16):
            want = (rows[r], cols[c]) if rows[r] is not None and cols[c] is not None else None
            assert ix[r][c] == want, (r, c, ix[r][c], want)
    out.write("// same_crs: source row of each target row, source column of each target column\n")
    out.write("[" + ", ".join(rust(v) for v in rows) + "]\n")
    out.write("[" + ", ".join(rust(v) for v in cols) + "]\n")


if __name__ == "__main__":
    main()
