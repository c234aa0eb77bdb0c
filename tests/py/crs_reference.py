#!/usr/bin/env python3
"""Reference coordinates for src/geo/crs.rs, from PROJ through pyproj.

Usage: python3 tests/py/crs_reference.py > /tmp/crs.txt
Prints Rust tuples to paste into the test tables of src/geo/crs.rs
(`FORWARD`, `OSGB36_AS_PROJ4RS`, `PROJECTED`, `BBOX_AROUND`), headed by the
PROJ and pyproj versions that made them.

`cs2cs` is PROJ's command line: it gives the same numbers to its last
printed digit (checked with Debian's proj-bin, PROJ 9.1.1, `-d 10`; note
that cs2cs takes EPSG:4326 as lat lon), e.g.
    echo "37.81 -122.33" | cs2cs -d 10 EPSG:4326 EPSG:32610
    558975.9913338715  4184945.8643938098 0.0000000000

Every CRS is given to PROJ as its EPSG code (`always_xy`: lon/lat order, as
tilestack), except the two national grids whose datum differs from WGS 84:
for those PROJ would pick the best EPSG transformation it has (a grid file,
if installed), which is not what a PROJ string with `+towgs84` means. For
them the script uses the PROJ string of `crs-definitions` 0.6 (the table
tilestack's codes come from; the test asserts the crate still has this
exact string), so the reference is the same definition computed by PROJ.
"""
import math
import sys

import pyproj
from pyproj import CRS, Transformer

# The PROJ strings tilestack takes from crs-definitions 0.6 for the codes
# whose datum is not WGS 84 (a 3- or 7-parameter Helmert to WGS 84).
DEFS = {
    2056: "+proj=somerc +lat_0=46.95240555555556 +lon_0=7.439583333333333 +k_0=1 "
    "+x_0=2600000 +y_0=1200000 +ellps=bessel +towgs84=674.374,15.056,405.346,0,0,0,0 "
    "+units=m +no_defs",
    27700: "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 "
    "+datum=OSGB36 +units=m +no_defs",
}


def crs(code):
    return CRS.from_proj4(DEFS[code]) if code in DEFS else CRS.from_epsg(code)


def transformer(src, dst):
    return Transformer.from_crs(crs(src), crs(dst), always_xy=True)


# WGS 84 lon/lat -> each CRS: UTM north and south (central meridian, off it,
# both zone edges 1 and 60, high latitudes), polar stereographic north and
# south, web mercator, Swiss LV95 and British National Grid.
FORWARD = [
    (32610, [(-122.33, 37.81), (-123.0, 0.0), (-125.5, 10.0), (-120.0, 60.0), (-121.0, 83.5)]),
    (32611, [(-122.33, 37.81), (-117.0, 45.0)]),
    (32633, [(15.0, 0.000001), (12.5, 52.5), (18.0, 70.0)]),
    (32601, [(-180.0, 5.0), (-174.0, 40.0)]),
    (32660, [(179.999, 5.0), (177.0, 66.0)]),
    (32756, [(153.0, -0.000001), (151.2, -33.9), (150.0, -79.5)]),
    (32733, [(15.0, -10.0), (18.4, -33.9)]),
    (32701, [(-177.0, -45.0)]),
    (32760, [(176.0, -40.0)]),
    (3413, [(-45.0, 75.0), (30.0, 85.0), (-150.0, 65.0)]),
    (3031, [(0.0, -75.0), (120.0, -85.0), (-60.0, -65.0)]),
    (3857, [(-122.33, 37.81), (151.2, -33.9), (0.0, 0.0), (179.0, 84.0)]),
    (2056, [(8.0 + 43 / 60 + 49.79 / 3600, 46.0 + 2 / 60 + 38.87 / 3600), (7.4386, 46.9511)]),
    (27700, [(1.0 + 42 / 60 + 57.8663 / 3600, 52.0 + 39 / 60 + 28.8282 / 3600), (-0.1276, 51.5072)]),
]

# Projected -> projected (through WGS 84): the neighbouring UTM zone, as the
# warp from a zone-11 granule onto a zone-10 grid, and across the equator.
PROJECTED = [
    (32610, 32611, [(558976.0, 4184946.0), (800000.0, 5000000.0)]),
    (32611, 32610, [(223000.0, 4190000.0)]),
    (32756, 32655, [(500000.0, 9000000.0)]),
]

# proj4rs expands `+datum=OSGB36` with the 7 parameters of its own table
# (older PROJ's and proj4js's), PROJ 9 with EPSG:1314's, rounded further: the
# same points through PROJ with proj4rs's parameters spelled out.
OSGB36_AS_PROJ4RS = (
    "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 +ellps=airy "
    "+towgs84=446.448,-125.157,542.060,0.1502,0.2470,0.8421,-20.4894 +units=m +no_defs"
)

# bbox_around(lon, lat, side_m): the square of side `side_m` centred on the
# point in its UTM zone, corners taken back to degrees (west, south, east,
# north of the four corners).
BBOX_AROUND = [(-122.33, 37.81, 2816.0), (151.2, -33.9, 5120.0), (-122.999, 0.001, 1000.0)]


def utm_for(lon, lat):
    zone = min(int(math.floor((lon + 180.0) / 6.0)) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def main():
    out = sys.stdout
    out.write(f"// PROJ {pyproj.proj_version_str}, pyproj {pyproj.__version__}\n")
    out.write("// FORWARD: (epsg, lon, lat, x, y, lon of (x, y), lat of (x, y))\n")
    for code, pts in FORWARD:
        t = transformer(4326, code)
        for lon, lat in pts:
            x, y = t.transform(lon, lat, errcheck=True)
            # the reference of the inverse: PROJ's image of (x, y) in degrees
            # (the input again, but for the datum shifts' iterations)
            bl, bb = transformer(code, 4326).transform(x, y, errcheck=True)
            out.write(f"({code}, {lon!r}, {lat!r}, {x!r}, {y!r}, {bl!r}, {bb!r}),\n")
    out.write("// OSGB36_AS_PROJ4RS: (lon, lat, x, y)\n")
    t = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_proj4(OSGB36_AS_PROJ4RS), always_xy=True)
    for lon, lat in dict(FORWARD)[27700]:
        x, y = t.transform(lon, lat, errcheck=True)
        out.write(f"({lon!r}, {lat!r}, {x!r}, {y!r}),\n")
    out.write("// PROJECTED: (src, dst, x, y, x', y')\n")
    for src, dst, pts in PROJECTED:
        t = transformer(src, dst)
        for x, y in pts:
            a, b = t.transform(x, y, errcheck=True)
            out.write(f"({src}, {dst}, {x!r}, {y!r}, {a!r}, {b!r}),\n")
    out.write("// BBOX_AROUND: (lon, lat, side_m, [west, south, east, north])\n")
    for lon, lat, side in BBOX_AROUND:
        code = utm_for(lon, lat)
        fwd, inv = transformer(4326, code), transformer(code, 4326)
        x, y = fwd.transform(lon, lat, errcheck=True)
        h = side / 2
        corners = [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
        ll = [inv.transform(cx, cy, errcheck=True) for cx, cy in corners]
        b = [min(p[0] for p in ll), min(p[1] for p in ll), max(p[0] for p in ll), max(p[1] for p in ll)]
        out.write(f"({lon!r}, {lat!r}, {side!r}, [{', '.join(repr(v) for v in b)}]),\n")


if __name__ == "__main__":
    main()
