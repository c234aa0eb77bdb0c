#!/usr/bin/env python3
"""What the dry runs of tests/it/dry_run.rs must report, from GDAL (rasterio)
and PROJ (pyproj) reading the small demo world's files: the numbers that
test asserts, derived without tilestack.

Usage: python3 tests/py/dry_run_reference.py WORLD_DIR
WORLD_DIR is the small test world, `target/test-worlds/oakland-small-*`
(written by the first integration test that asks for it).

For each dry run of the tests (target grid: 256 x 256 at 10 m in UTM 10N
from (557700, 4186220), or 64 x 64 at 40 m from (557720, 4186200), as the
tests assert) the script
  - takes the world's items (items/*.json) whose UTC day is one of the
    request's and whose footprint (the item geometry) meets the grid's
    WGS 84 bbox (its four corners through PROJ): what the STAC search
    answers; per day, their number;
  - for each item and band, opens data/ID/BAND.tif with GDAL and takes the
    level a read at the target resolution uses (the coarsest of GDAL's
    overviews whose pixels are not coarser than the target's; IFD 0 is full
    resolution, overview i is IFD i + 1), the grid's bounds in that level's
    pixels widened to whole pixels plus one on each side and cut to the
    image (the read window), the tiles it meets (GDAL's block size) and
    their bytes from GDAL's TIFF metadata (`BLOCK_OFFSET_x_y`,
    `BLOCK_SIZE_x_y`), merged into requests where two are less than 1024
    bytes apart (tilestack's default coalesce gap);
  - counts each file's header as one request of its first 8192 bytes (or
    the whole file when shorter): tilestack's first header read, enough
    when every IFD lies before the first tile, which the script checks
    (every level's first tile offset is within those bytes).
Prints per case the items per day, each read as a Rust tuple (sorted by
item and band), and the totals.
"""
import datetime as dt
import glob
import json
import math
import os
import sys

import rasterio
from pyproj import Transformer
from rasterio.warp import transform_bounds

GAP = 1024
READAHEAD = 8192


def items(world):
    """The Sentinel-2 items (the manifest's scenes; items/ also holds the
    other sensors')."""
    with open(os.path.join(world, "world.json")) as f:
        s2 = {s["id"] for s in json.load(f)["scenes"]}
    out = []
    for p in sorted(glob.glob(os.path.join(world, "items", "*.json"))):
        with open(p) as f:
            it = json.load(f)
        if it["id"] in s2:
            out.append(it)
    return out


def block(ds, key, ovr):
    """GDAL's TIFF metadata item of band 1 (of overview `ovr`), as int."""
    v = ds.get_tag_item(key, "TIFF", bidx=1, ovr=ovr)
    return None if v is None else int(v)


def level(ds, res):
    """The overview (None = full resolution) a read at `res` metres uses:
    the coarsest level whose pixels are not coarser than `res`."""
    best, best_res = None, ds.res[0]
    for i, f in enumerate(ds.overviews(1)):
        r = ds.res[0] * f
        if r <= res + 1e-9 and r > best_res:
            best, best_res = i, r
    return best, best_res


def meets(poly, box):
    """Whether polygon ring `poly` [(lon, lat)] and `box` (w, s, e, n) meet."""
    w, s, e, n = box
    inside_box = lambda p: w <= p[0] <= e and s <= p[1] <= n
    if any(inside_box(p) for p in poly):
        return True

    def inside_poly(x, y):
        hit = False
        for (x1, y1), (x2, y2) in zip(poly, poly[1:]):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                hit = not hit
        return hit

    corners = [(w, s), (e, s), (e, n), (w, n)]
    if any(inside_poly(*c) for c in corners):
        return True

    def crosses(a, b, c, d):
        o = lambda p, q, r: (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
        return o(a, b, c) * o(a, b, d) < 0 and o(c, d, a) * o(c, d, b) < 0

    edges = list(zip(corners, corners[1:] + corners[:1]))
    return any(crosses(p, q, c, d) for p, q in zip(poly, poly[1:]) for c, d in edges)


def case(world, days, bands, x0, y0, size, res):
    bounds = (x0, y0 - size * res, x0 + size * res, y0)
    to_ll = Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    ll = [to_ll.transform(x, y) for x, y in
          [(bounds[0], bounds[1]), (bounds[2], bounds[1]), (bounds[2], bounds[3]), (bounds[0], bounds[3])]]
    box = (min(p[0] for p in ll), min(p[1] for p in ll), max(p[0] for p in ll), max(p[1] for p in ll))
    per_day = {d: [] for d in days}
    reads, seen = [], set()
    tiles = nbytes = nreq = hreq = hbytes = 0
    for it in items(world):
        t = dt.datetime.fromisoformat(it["properties"]["datetime"].replace("Z", "+00:00"))
        d = t.astimezone(dt.timezone.utc).date()
        if d not in per_day:
            continue
        assert it["geometry"]["type"] == "Polygon", it["id"]
        if not meets([tuple(p) for p in it["geometry"]["coordinates"][0]], box):
            continue
        per_day[d].append(it["id"])
        for band in bands:
            href = os.path.join(world, "data", it["id"], f"{band}.tif")
            with rasterio.open(href) as ds:
                b = transform_bounds("EPSG:32610", ds.crs, *bounds, densify_pts=16)
                ovr, r = level(ds, res)
                t0 = ds.transform
                c0, c1 = (b[0] - t0.c) / r, (b[2] - t0.c) / r
                r0, r1 = (t0.f - b[3]) / r, (t0.f - b[1]) / r
                f = round(r / ds.res[0])
                w, h = math.ceil(ds.width / f), math.ceil(ds.height / f)
                col0, row0 = max(math.floor(c0) - 1, 0), max(math.floor(r0) - 1, 0)
                col1, row1 = min(math.ceil(c1) + 1, w), min(math.ceil(r1) + 1, h)
                assert col0 < col1 and row0 < row1, (href, "the footprint meets the grid")
                bh, bw = ds.block_shapes[0]
                xy = [(x, y) for y in range(row0 // bh, (row1 - 1) // bh + 1)
                      for x in range(col0 // bw, (col1 - 1) // bw + 1)]
                ranges = []
                for x, y in xy:
                    if (href, ovr, x, y) in seen:
                        continue
                    seen.add((href, ovr, x, y))
                    off = block(ds, f"BLOCK_OFFSET_{x}_{y}", ovr)
                    ranges.append((off, off + block(ds, f"BLOCK_SIZE_{x}_{y}", ovr)))
                merged = []
                for a, z in sorted(ranges):
                    if merged and (a < merged[-1][1] or a - merged[-1][1] < GAP):
                        merged[-1][1] = max(merged[-1][1], z)
                    else:
                        merged.append([a, z])
                levels = [None] + list(range(len(ds.overviews(1))))
                first = min(block(ds, "BLOCK_OFFSET_0_0", o) for o in levels)
                size_ = os.path.getsize(href)
                assert first <= min(READAHEAD, size_), (href, first)
            reads.append(dict(item=it["id"], band=band, ifd=0 if ovr is None else ovr + 1,
                              window=(col0, row0, col1 - col0, row1 - row0), tiles=len(xy),
                              bytes=sum(z - a for a, z in merged), requests=len(merged)))
            tiles += len(ranges)
            nbytes += reads[-1]["bytes"]
            nreq += len(merged)
            hreq += 1
            hbytes += min(READAHEAD, size_)
    return per_day, reads, tiles, nbytes, nreq, hreq, hbytes


def short(item_id):
    """`0803 T10SFG` for S2A_MSIL2A_20190803T185924_R013_T10SFG_20190803T000000."""
    parts = item_id.split("_")
    return f"{parts[2][4:8]} {parts[4]}"


def main():
    world = sys.argv[1]
    aug = lambda d: dt.date(2019, 8, d)
    cases = [
        ("dry_run_predicts_the_build", range(1, 13), ["B04", "B11", "SCL"], 557700.0, 4186220.0, 256, 10.0),
        ("coarse_dry_runs", range(1, 4), ["B04"], None, None, 64, 40.0),
        ("the_cli_prints", range(1, 6), ["B04", "B03"], 557700.0, 4186220.0, 256, 10.0),
    ]
    for name, days, bands, x0, y0, size, res in cases:
        if x0 is None:
            # tile_around((558976.0..., 4184946.0...), 64, 40 m): the tests assert it
            cx, cy = 558975.9913338715, 4184945.86439381
            x0 = math.ceil((cx - size * res / 2) / res) * res
            y0 = math.floor((cy + size * res / 2) / res) * res
        per_day, reads, tiles, nbytes, nreq, hreq, hbytes = case(
            world, [aug(d) for d in days], bands, x0, y0, size, res)
        print(f"// {name}: grid ({x0}, {y0}), {size} px at {res} m")
        print(f"// items per day {[len(v) for v in per_day.values()]}")
        print("// (item, band, ifd, [col_off, row_off, width, height], tiles, bytes, requests)")
        for r in sorted(reads, key=lambda r: (short(r["item"]), r["band"])):
            w = ", ".join(str(v) for v in r["window"])
            print(f'("{short(r["item"])}", "{r["band"]}", {r["ifd"]}, [{w}], '
                  f'{r["tiles"]}, {r["bytes"]}, {r["requests"]}),')
        print(f"// tiles {tiles}, pixel bytes {nbytes}, pixel requests {nreq}, "
              f"header requests {hreq}, header bytes {hbytes}")

if __name__ == "__main__":
    main()
