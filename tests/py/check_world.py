#!/usr/bin/env python3
"""Independent check of a tilestack world with GDAL (through rasterio) and rio-cogeo.

Usage: python3 check_world.py WORLD_DIR
For every COG: `rio_cogeo.cog_validate(strict=True)` must pass; CRS, transform, shape,
nodata and dtype read by GDAL must equal the item's proj:* / raster:bands metadata;
eo:cloud_cover must equal the share of SCL 8/9/10 among valid SCL pixels as GDAL reads it.
The other collections' COGs (Sentinel-1 VV/VH, DEM, land cover) must lie on the 10 m grid
of an S2 scene in the same CRS, pixel for pixel (same transform and shape).
Prints one JSON object; exit code 1 on any failure.
"""
import glob, json, os, sys
import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_validate

world = sys.argv[1]
errors, checked, on_s2_grid = [], 0, 0
s2_grids = set()
for item_path in glob.glob(os.path.join(world, "items", "*.json")):
    item = json.load(open(item_path))
    if "B04" in item["assets"]:
        a = item["assets"]["B04"]
        s2_grids.add((a["proj:epsg"], tuple(round(v, 6) for v in a["proj:transform"]), tuple(a["proj:shape"])))
for item_path in sorted(glob.glob(os.path.join(world, "items", "*.json"))):
    item = json.load(open(item_path))
    iid = item["id"]
    for key, asset in item["assets"].items():
        path = os.path.normpath(os.path.join(os.path.dirname(item_path), asset["href"]))
        valid, errs, warns = cog_validate(path, strict=True, quiet=True)
        if not valid:
            errors.append(f"{iid}/{key}: not a valid COG: {errs + warns}")
        with rasterio.open(path) as src:
            if src.crs.to_epsg() != asset["proj:epsg"] or asset["proj:code"] != f"EPSG:{src.crs.to_epsg()}":
                errors.append(f"{iid}/{key}: crs {src.crs} vs {asset['proj:code']}")
            if [round(v, 6) for v in list(src.transform)[:6]] != [round(v, 6) for v in asset["proj:transform"]]:
                errors.append(f"{iid}/{key}: transform {list(src.transform)[:6]} vs {asset['proj:transform']}")
            if [src.height, src.width] != asset["proj:shape"]:
                errors.append(f"{iid}/{key}: shape {src.shape} vs {asset['proj:shape']}")
            rb = asset["raster:bands"][0]
            if src.nodata != rb.get("nodata") or src.dtypes[0] != rb["data_type"]:
                errors.append(f"{iid}/{key}: nodata/dtype {src.nodata}/{src.dtypes[0]} vs {rb}")
            if not src.overviews(1) and max(src.shape) > 512:
                errors.append(f"{iid}/{key}: no overviews")
            if "B04" not in item["assets"]:
                grid = (src.crs.to_epsg(), tuple(round(v, 6) for v in list(src.transform)[:6]), tuple(src.shape))
                if grid in s2_grids:
                    on_s2_grid += 1
                else:
                    errors.append(f"{iid}/{key}: grid {grid} is no S2 scene's 10 m grid")
            if key == "SCL":
                scl = src.read(1)
                valid_px = int((scl > 0).sum())
                cloud = int(np.isin(scl, (8, 9, 10)).sum())
                cc = 100.0 * cloud / max(valid_px, 1)
                if abs(cc - item["properties"]["eo:cloud_cover"]) > 1e-4:
                    errors.append(f"{iid}: eo:cloud_cover {item['properties']['eo:cloud_cover']} vs SCL {cc}")
        checked += 1
print(json.dumps({"checked": checked, "on_the_s2_grid": on_s2_grid, "errors": errors, "gdal": rasterio.__gdal_version__}))
sys.exit(1 if errors or checked == 0 else 0)
