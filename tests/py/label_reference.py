#!/usr/bin/env python3
"""Reference class indexes of a raster label layer, from GDAL's warper
(nearest neighbour, exact transformer) through rasterio: what
`[[labels]] raster = …` with `classes = […]` must give on a sample's grid.

usage: label_reference.py COG EPSG A,B,C,D,E,F WIDTH HEIGHT CODES [IGNORE]

COG: the label raster (band 1 holds the product codes). EPSG and the GDAL
geotransform A..F, WIDTH, HEIGHT: the sample's grid. CODES: comma-separated
product codes in class order (code -> its position); any other code, the
raster's nodata and pixels outside it -> IGNORE (default 255).
Prints one JSON list of HEIGHT*WIDTH class indexes, row-major.
"""
import json
import sys

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT


def main(path, epsg, gt, width, height, codes, ignore=255):
    a, b, c, d, e, f = (float(x) for x in gt.split(","))
    transform = Affine(b, c, a, e, f, d)
    codes = [float(x) for x in codes.split(",")]
    width, height, ignore = int(width), int(height), int(ignore)
    with rasterio.open(path) as src:
        with WarpedVRT(src, crs=CRS.from_epsg(int(epsg)), transform=transform, width=width,
                       height=height, resampling=Resampling.nearest, tolerance=1e-9,
                       src_nodata=src.nodata, nodata=np.nan, dtype="float32") as vrt:
            v = vrt.read(1)
    out = np.full(v.shape, ignore, dtype=np.int64)
    for k, code in enumerate(codes):
        out[v == code] = k
    print(json.dumps(out.ravel().tolist()))


if __name__ == "__main__":
    main(*sys.argv[1:])
