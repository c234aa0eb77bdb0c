"""Reference window reads for tests/it/cog.rs: GDAL (via rasterio) is the tool of record.

Usage: python3 read_window.py '[["path.tif", ifd, col, row, width, height], ...]'
Prints a JSON list with, per request, the window as a list of rows
(band 1; `ifd` 0 = full resolution, k = overview k; pixels outside the
image are GDAL's boundless fill, 0). Values are GDAL's raw samples: nodata
is NOT masked here, the Rust side compares NaN against nodata.
"""

import json
import sys

import rasterio
from rasterio.windows import Window


def main() -> None:
    out = []
    for path, ifd, col, row, w, h in json.loads(sys.argv[1]):
        kwargs = {"overview_level": ifd - 1} if ifd > 0 else {}
        with rasterio.open(path, **kwargs) as ds:
            a = ds.read(1, window=Window(col, row, w, h), boundless=True, fill_value=0)
        out.append(a.astype("float64").tolist())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
