#!/usr/bin/env python3
"""Python's zarr and xarray read the demo world's Zarr stores (a world made
with `zarr = true`, `tilestack world --zarr`): every band of every scene is
checked against its COG read by rasterio, then a few windows are written out
for tests/it/zarr.rs to read with tilestack's ZarrReader over HTTP.

Checks, for each scene and band (exits non-zero on the first mismatch):
- GeoZarr v3 (sharded), raw through zarr: equal to the COG, pixel for pixel;
- EOPF-like v2 (consolidated), raw through zarr: the COG's count + 1000 where
  the COG is valid (BOA_ADD_OFFSET, CF add_offset -0.1), 0 (nodata) elsewhere;
- v2 through xarray (`open_zarr`, consolidated, CF decoded): reflectance
  = count x 0.0001 where valid, NaN elsewhere; the `x`/`y` coordinates are
  the COG's pixel centres (rasterio's transform);
- v3 through xarray: the raw counts again.

Usage: check_zarr_world.py WORLD_DIR OUT_JSON
"""
import json
import os
import sys

import numpy as np
import rasterio
import xarray as xr
import zarr


def split(href):
    """`../data/ID/S.zarr/a/b/c` -> (`data/ID/S.zarr`, `a/b/c`)."""
    h = href[3:] if href.startswith("../") else href
    i = h.index(".zarr/") + len(".zarr")
    return h[:i], h[i + 1:]


def window(a, col, row, w, h, nodata):
    """The window (NaN outside the array and for nodata) as a float list."""
    out = np.full((h, w), np.nan)
    H, W = a.shape
    r0, r1, c0, c1 = max(row, 0), min(row + h, H), max(col, 0), min(col + w, W)
    if r1 > r0 and c1 > c0:
        out[r0 - row:r1 - row, c0 - col:c1 - col] = a[r0:r1, c0:c1]
    out[out == nodata] = np.nan
    return [None if np.isnan(v) else float(v) for v in out.ravel()]


def main():
    world, out_path = sys.argv[1:3]
    manifest = json.load(open(os.path.join(world, "world.json")))
    cases, checked = [], 0
    for k, scene in enumerate(manifest["scenes"]):
        sid = scene["id"]
        item = lambda d: json.load(open(os.path.join(world, d, sid + ".json")))
        cog_item, v2_item, v3_item = item("items"), item("items-zarr-v2"), item("items-zarr-v3")
        for band, asset in cog_item["assets"].items():
            key = band.lower()
            with rasterio.open(os.path.join(world, asset["href"][3:])) as src:
                cog = src.read(1)
                t = src.transform
            valid = cog != 0
            # v3, sharded: the counts as in the COG
            s3, p3 = split(v3_item["assets"][key]["href"])
            v3 = zarr.open_array(os.path.join(world, s3), path=p3, mode="r")[:]
            assert v3.dtype == cog.dtype, (sid, band, v3.dtype, cog.dtype)
            assert np.array_equal(v3, cog), f"{sid} {band}: v3 differs from the COG"
            # v2, EOPF-like: counts + 1000 where valid
            s2, p2 = split(v2_item["assets"][key]["href"])
            g2 = zarr.open_group(os.path.join(world, s2), mode="r", zarr_format=2, use_consolidated=True)
            v2 = g2[p2][:]
            spectral = band != "SCL"
            want = np.where(valid, cog.astype(np.uint32) + (1000 if spectral else 0), 0)
            assert np.array_equal(v2.astype(np.uint32), want), f"{sid} {band}: v2 differs"
            # xarray, CF decoded, and the coordinates
            group, name = p2.rsplit("/", 1)
            ds = xr.open_zarr(os.path.join(world, s2), group=group, consolidated=True, zarr_format=2)
            da = ds[name]
            n = cog.shape[1]
            xs = np.array([(t * (i + 0.5, 0.5))[0] for i in range(n)])
            ys = np.array([(t * (0.5, i + 0.5))[1] for i in range(cog.shape[0])])
            assert np.array_equal(da["x"].values, xs), f"{sid} {band}: x"
            assert np.array_equal(da["y"].values, ys), f"{sid} {band}: y"
            vals = da.values
            assert np.isnan(vals[~valid]).all(), f"{sid} {band}: nodata not NaN"
            if spectral:
                assert np.allclose(vals[valid], cog[valid] * 1e-4, atol=1e-6), f"{sid} {band}: CF"
            else:
                assert np.array_equal(vals[valid], cog[valid]), f"{sid} {band}: SCL"
            g3, n3 = p3.rsplit("/", 1)
            d3 = xr.open_zarr(os.path.join(world, s3), group=g3, consolidated=False,
                              zarr_format=3, mask_and_scale=False)[n3].values
            assert np.array_equal(d3, cog), f"{sid} {band}: v3 through xarray"
            checked += 1
            if k == 0 and band in ("B04", "B11", "SCL"):
                H, W = cog.shape
                for win in ([0, 0, 100, 80], [W // 3, H // 2, 200, 150], [W - 50, H - 40, 100, 100]):
                    for store, path, raw in ((s2, p2, v2), (s3, p3, v3)):
                        cases.append({"store": store, "array": path, "window": win,
                                      "raw": window(raw.astype(np.float64), *win, 0)})
    json.dump({"checked": checked, "cases": cases}, open(out_path, "w"))
    print(f"{checked} scene bands checked, {len(cases)} windows written")


if __name__ == "__main__":
    main()
