"""Writes the fuzz targets' seed inputs into fuzz/corpus/NAME/ as `seed-*`:
small GeoTIFFs written by GDAL through rasterio in the layouts, sample types,
predictors and codecs users bring; STAC items from the committed real
fixtures (tests/fixtures/stac/); the repository's GeoJSON and dataset TOMLs.
libFuzzer grows the corpus from them; `cargo fuzz cmin` renames what it
keeps, so run this again after it. `seed-tiny.toml` (dataset_toml) and
`seed-index-v2.json` (shard_index: the `index.json` header that `tilestack
materialize --config fuzz/corpus/dataset_toml/seed-tiny.toml` writes) are
committed as they are; `seed-index.json` is the same set in the earlier
format (entries inline), which `ShardIndex::from_json` refuses naming it.

    python3 fuzz/make_seeds.py
    python3 fuzz/make_seeds.py --tiff-only lerc   # only the TIFF seeds so named
    python3 fuzz/make_seeds.py --zarr-only        # only the Zarr seeds (zarr_store)
"""
import json
import pathlib
import shutil

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def tiffs(only=""):
    out = CORPUS / "tiff"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    cases = [
        ("u16-deflate-pred2-tiled", "uint16", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", predictor=2)),
        ("u8-lzw-striped", "uint8", 1, dict(tiled=False, compress="lzw")),
        ("u8-3band-pixel", "uint8", 3, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", interleave="pixel")),
        ("u8-3band-planar", "uint8", 3, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", interleave="band")),
        ("f32-pred3", "float32", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", predictor=3)),
        ("i16-none-bigtiff", "int16", 1, dict(tiled=True, blockxsize=16, blockysize=16, BIGTIFF="YES")),
        ("u16-zstd", "uint16", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="zstd")),
        ("u8-packbits", "uint8", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="packbits")),
        ("u8-jpeg", "uint8", 3, dict(tiled=True, blockxsize=16, blockysize=16, compress="jpeg", photometric="ycbcr")),
        ("f64-none", "float64", 1, dict(tiled=True, blockxsize=16, blockysize=16)),
        ("f32-lerc", "float32", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="lerc")),
        ("u8-3band-lerc-zstd", "uint8", 3, dict(tiled=True, blockxsize=16, blockysize=16, compress="lerc_zstd", interleave="pixel")),
        ("u16-lerc-deflate-lossy", "uint16", 1, dict(tiled=True, blockxsize=16, blockysize=16, compress="lerc_deflate", max_z_error=2)),
        ("i8-lerc-striped", "int8", 1, dict(tiled=False, compress="lerc")),
        # issue 30: the JPEG decoder (RGBA: 4 components, no colour
        # conversion; greyscale strips, the last one short) and CMYK as RGBA
        ("u8-rgba-jpeg", "uint8", 4, dict(tiled=True, blockxsize=16, blockysize=16, compress="jpeg", photometric="rgb", alpha="YES")),
        ("u8-jpeg-grey-striped", "uint8", 1, dict(tiled=False, blockysize=16, compress="jpeg")),
        ("i8-cmyk", "int8", 4, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate", photometric="cmyk")),
        # YCbCr JPEG strips (4:2:0 MCUs cut by a short last strip), RGB JPEG
        # without the YCbCr conversion, and 4-band JPEG (GDAL makes the
        # fourth band alpha) in 32 px tiles with an overview (added last:
        # the seeds above keep their data)
        ("u8-jpeg-ycbcr-striped", "uint8", 3, dict(tiled=False, blockysize=16, compress="jpeg", photometric="ycbcr")),
        ("u8-3band-jpeg-rgb", "uint8", 3, dict(tiled=True, blockxsize=16, blockysize=16, compress="jpeg", photometric="rgb")),
        ("u8-4band-jpeg-overview", "uint8", 4, dict(tiled=True, blockxsize=32, blockysize=32, compress="jpeg", jpeg_quality=60)),
    ]
    for name, dtype, bands, opts in cases:
        data = (rng.random((bands, 40, 40)) * 200).astype(dtype)
        if only not in name:
            continue  # (its data drawn all the same: the same seeds either way)
        path = out / f"seed-{name}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=40, height=40, count=bands, dtype=dtype,
            crs="EPSG:32610", transform=from_origin(565000, 4185000, 10, 10), nodata=0, **opts,
        ) as ds:
            ds.write(data)
            if name.startswith("u16-deflate") or name.endswith("-overview"):
                ds.build_overviews([2], rasterio.enums.Resampling.nearest)


def stac():
    out = CORPUS / "stac_item"
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted((ROOT / "tests" / "fixtures" / "stac").glob("*.json")):
        doc = json.loads(f.read_text())
        feats = doc.get("features", doc if isinstance(doc, list) else [doc])
        for i, item in enumerate(feats[:2]):
            (out / f"seed-{f.stem}-{i}.json").write_text(json.dumps(item))


def text_seeds():
    g = CORPUS / "geojson_mask"
    g.mkdir(parents=True, exist_ok=True)
    for f in sorted(ROOT.glob("datasets/**/*.geojson"))[:4]:
        shutil.copy(f, g / f"seed-{f.name}")
    t = CORPUS / "dataset_toml"
    t.mkdir(parents=True, exist_ok=True)
    for f in sorted(ROOT.glob("datasets/*.toml")):
        shutil.copy(f, t / f"seed-{f.name}")


def zarr_seeds():
    """zarr_store: each fixture array's metadata document, a NUL, and its
    first stored object (v2 chunk `0.0`, v3 shard `c/0/0`), hostile ones too."""
    out = CORPUS / "zarr_store"
    out.mkdir(parents=True, exist_ok=True)
    fx = ROOT / "tests" / "fixtures" / "zarr"
    docs = sorted(fx.glob("**/.zarray")) + sorted(fx.glob("**/zarr.json"))
    for d in docs:
        arr = d.parent
        if d.name == "zarr.json" and json.loads(d.read_text()).get("node_type") != "array":
            continue
        obj = next((p for p in (arr / "0.0", arr / "0", arr / "c" / "0" / "0", arr / "c" / "0") if p.is_file()), None)
        body = d.read_bytes() + b"\0" + (obj.read_bytes()[:65536] if obj else b"")
        name = str(arr.relative_to(fx)).replace("/", "-").replace(".zarr", "")
        (out / f"seed-{name}").write_bytes(body)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--tiff-only"]:
        tiffs(sys.argv[2])
    elif sys.argv[1:2] == ["--zarr-only"]:
        zarr_seeds()
    else:
        tiffs()
        stac()
        text_seeds()
        zarr_seeds()
