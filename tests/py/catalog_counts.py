#!/usr/bin/env python3
"""Counts of the real catalog items in tests/fixtures/stac, from their JSON
alone (no tilestack): the numbers tests/it/geoparquet.rs asserts.

Usage: python3 tests/py/catalog_counts.py
Prints per fixture file: items, band names, band names that make a scene.

Band names of an item: its asset keys, and the `name` and `common_name` of
every entry of an asset's `eo:bands` (STAC 1.0) or `bands` (STAC 1.1),
without duplicates, less any empty or with a space or comma (what
`BandName::new` refuses).

A name makes a scene unless (tilestack's documented rules, the two that
apply to these files):
  - it finds an asset without `proj:transform` or `proj:shape` (on the asset
    or the item): metadata, thumbnails, previews; or
  - it is no asset key and no band `name`, and it is the `common_name` of
    several single-band GeoTIFF assets at the same pixel size: Sentinel-2's
    `rededge` (B05, B06, B07 and on Planetary Computer B8A), an error
    naming them.
"""
import json
import os

DIR = os.path.join(os.path.dirname(__file__), "..", "fixtures", "stac")
FILES = [
    "pc-sentinel-2-l2a.json",
    "es-sentinel-2-l2a.json",
    "es-sentinel-2-c1-l2a.json",
    "pc-landsat-c2-l2.json",
    "pc-sentinel-1-rtc.json",
]


def bands_of(asset):
    return asset.get("eo:bands", []) + asset.get("bands", [])


def valid(name):
    return bool(name) and not any(c.isspace() or c == "," for c in name)


def names(item):
    out = set(item["assets"])
    for a in item["assets"].values():
        for b in bands_of(a):
            for k in ("name", "common_name"):
                if isinstance(b.get(k), str):
                    out.add(b[k])
    return sorted(n for n in out if valid(n))


def raster(item, asset):
    has = lambda k: k in asset or k in item["properties"]
    return has("proj:transform") and has("proj:shape")


def makes_scene(item, name):
    assets = item["assets"]
    if name in assets:
        return raster(item, assets[name])
    single = {k: a for k, a in assets.items() if len(bands_of(a)) == 1}
    by_name = [k for k, a in single.items() if bands_of(a)[0].get("name") == name]
    if by_name:
        return any(raster(item, assets[k]) for k in by_name)
    by_common = [k for k, a in single.items() if bands_of(a)[0].get("common_name") == name]
    tiffs = [k for k in by_common if "tiff" in assets[k].get("type", "")]
    pixel = {abs((assets[k].get("proj:transform") or item["properties"]["proj:transform"])[0])
             for k in tiffs}
    tied = len(tiffs) > 1 and len(pixel) == 1
    return bool(by_common) and not tied and any(raster(item, assets[k]) for k in by_common)


def main():
    for f in FILES:
        with open(os.path.join(DIR, f)) as fh:
            items = json.load(fh)["features"]
        n = [names(it) for it in items]
        ok = sum(makes_scene(it, b) for it, bs in zip(items, n) for b in bs)
        print(f"{f}: {len(items)} items, {sum(map(len, n))} band names, {ok} make a scene")


if __name__ == "__main__":
    main()
