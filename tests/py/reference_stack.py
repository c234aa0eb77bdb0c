#!/usr/bin/env python3
"""Reference daily tile stack computed with GDAL (rasterio) for tilestack's tests.

Usage: reference_stack.py WORLD_DIR LON LAT START END BANDS OUT_PREFIX [--epsg N] [--mask FILE]
                          [--tile 256] [--res 10]

Semantics (sat-tile-stack / bench_stackstac.py): target grid = UTM zone of the centroid (or --epsg),
top-left = (ceil((x - T*res/2)/res)*res, floor((y + T*res/2)/res)*res); every item of the world in
[START, END] (UTC days, inclusive) is warped with rasterio.warp.reproject (nearest, src nodata 0 -> NaN)
onto that grid; per UTC day the NaN-mean over its items; days without items are all NaN. The mask
(GeoJSON in WGS 84) is reprojected vertex-wise and burned with rasterio.features.rasterize
(all_touched=False, burn 1, fill 0) as the last band.
Writes OUT_PREFIX.f32 (little-endian float32, [days, bands(+mask), T, T]) and OUT_PREFIX.json.
"""
import argparse, datetime as dt, glob, json, math, os, warnings
import numpy as np
import pyproj
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject

warnings.filterwarnings("ignore")
ap = argparse.ArgumentParser()
for a in ["world", "lon", "lat", "start", "end", "bands", "out"]:
    ap.add_argument(a)
ap.add_argument("--epsg", type=int)
ap.add_argument("--mask")
ap.add_argument("--tile", type=int, default=256)
ap.add_argument("--res", type=float, default=10.0)
a = ap.parse_args()
lon, lat = float(a.lon), float(a.lat)
T, res = a.tile, a.res
epsg = a.epsg or ((32600 if lat >= 0 else 32700) + min(max(int(math.floor((lon + 180) / 6)) + 1, 1), 60))
x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
left = math.ceil((x - T * res / 2) / res) * res
top = math.floor((y + T * res / 2) / res) * res
transform = Affine(res, 0, left, 0, -res, top)
bands = a.bands.split(",")
start, end = dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end)
days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

items = {}
for p in sorted(glob.glob(os.path.join(a.world, "items", "*.json"))):
    it = json.load(open(p))
    if it["collection"] != "sentinel-2-l2a":
        continue  # the world's other collections (Sentinel-1, DEM, land cover) share items/
    d = dt.datetime.fromisoformat(it["properties"]["datetime"].replace("Z", "+00:00")).date()
    if start <= d <= end:
        items.setdefault(d, []).append((it, os.path.dirname(p)))

nb = len(bands) + (1 if a.mask else 0)
out = np.full((len(days), nb, T, T), np.nan, np.float32)
for ti, d in enumerate(days):
    per = []
    for it, base in items.get(d, []):
        arr = np.full((len(bands), T, T), np.nan, np.float64)
        for bi, b in enumerate(bands):
            path = os.path.normpath(os.path.join(base, it["assets"][b]["href"]))
            with rasterio.open(path) as src:
                reproject(rasterio.band(src, 1), arr[bi], src_nodata=0, dst_nodata=np.nan,
                          dst_transform=transform, dst_crs=f"EPSG:{epsg}", resampling=Resampling.nearest)
        per.append(arr)
    if per:
        with warnings.catch_warnings():
            out[ti, : len(bands)] = np.nanmean(np.stack(per), axis=0).astype(np.float32)
if a.mask:
    fc = json.load(open(a.mask))
    tr = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    shapes = []
    for f in fc["features"]:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for poly in polys:
            rings = [[list(tr.transform(px, py)) for px, py, *_ in ring] for ring in poly]
            shapes.append(({"type": "Polygon", "coordinates": rings}, 1.0))
    m = rasterize(shapes, out_shape=(T, T), transform=transform, fill=0.0, all_touched=False, dtype="float32")
    out[:, -1] = m
out.astype("<f4").tofile(a.out + ".f32")
json.dump({"shape": list(out.shape), "days": [str(d) for d in days], "bands": bands, "epsg": epsg,
           "transform": [left, res, 0.0, top, 0.0, -res],
           "items": [[it["id"] for it, _ in items.get(d, [])] for d in days],
           "epsgs": [sorted({it["properties"]["proj:epsg"] for it, _ in items.get(d, [])}) for d in days]},
          open(a.out + ".json", "w"))
