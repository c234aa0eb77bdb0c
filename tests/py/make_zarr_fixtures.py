#!/usr/bin/env python3
"""Writes the Zarr fixtures of tests/it/zarr.rs and src/zarr/ with Python's zarr
and numcodecs (the tools of record), and the windows they read.

    python3 tests/py/make_zarr_fixtures.py        # rewrites tests/fixtures/zarr/

What it writes (all small; deterministic, seeded):
  eopf_v2.zarr/     an EOPF-like Zarr v2 product: consolidated .zmetadata, the CRS
                    only in the root attributes (stac_discovery.properties.proj:epsg),
                    uint16 bands with CF scale_factor/add_offset, x/y int64 arrays of
                    pixel centres (y descending), Blosc lz4/zstd/zlib with byte- and
                    bit-shuffle, a chunk never written (fill value), zstd and gzip
                    compressors, a big-endian array, a 3-D cube, "/" chunk keys.
  geozarr_v3.zarr/  a GeoZarr-like Zarr v3 store: sharding_indexed (index at the
                    end with crc32c, and at the start), Blosc-zstd and zstd inner
                    chunks, inner chunks never written, a spatial_ref variable with
                    GeoTransform, proj:code attributes, x/y coordinates, a gzip array.
  hostile/          stores that must fail with an error naming store and array.
  blosc/            Blosc buffers (.blosc) and what they decode to (.raw).
  expected.json     windows read by zarr (raw values) and xarray (CF-decoded).
"""

import json
import pathlib
import shutil

import numcodecs
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "zarr"
EPSG = 32610
X0, Y0, RES = 399960.0, 4200000.0, 10.0
H, W = 190, 250
NO_WRITE = {"write_empty_chunks": False}


def band(seed, h=H, w=W, zero_chunk=None):
    """uint16 digital counts: a smooth field plus noise, a nodata (0) strip,
    and optionally one whole chunk of zeros (never written: fill value)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    v = 1000 + 20 * xx + 7 * yy + rng.randint(0, 16, size=(h, w))
    v = v.astype(np.uint16)
    v[5:9, 100:140] = 0  # nodata pixels inside a written chunk
    if zero_chunk is not None:
        (r0, r1), (c0, c1) = zero_chunk
        v[r0:r1, c0:c1] = 0
    return v


def centres(n, start, step):
    return (start + step / 2 + step * np.arange(n)).astype(np.int64)


def write_coords(group, h, w, res, zarr_format):
    kw = {"compressors": None}
    if zarr_format == 2:
        xattrs = {"_ARRAY_DIMENSIONS": ["x"]}
        yattrs = {"_ARRAY_DIMENSIONS": ["y"]}
        dx = dy = {}
    else:
        xattrs, yattrs = {}, {}
        dx, dy = {"dimension_names": ["x"]}, {"dimension_names": ["y"]}
    x = group.create_array("x", shape=(w,), chunks=(w,), dtype="int64", attributes=xattrs, **dx, **kw)
    x[:] = centres(w, X0, res)
    y = group.create_array("y", shape=(h,), chunks=(h,), dtype="int64", attributes=yattrs, **dy, **kw)
    y[:] = centres(h, Y0, -res)


def make_v2():
    path = OUT / "eopf_v2.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update(
        {
            "stac_discovery": {
                "type": "Feature",
                "id": "S2A_MSIL2A_FIXTURE",
                "properties": {"proj:epsg": EPSG, "product:type": "S02MSIL2A"},
            },
            "other_metadata": {},
        }
    )
    cf = {"scale_factor": 0.0001, "add_offset": -0.1, "units": "digital_counts"}
    r10 = root.create_group("measurements/reflectance/r10m")
    write_coords(r10, H, W, RES, 2)
    dims = {"_ARRAY_DIMENSIONS": ["y", "x"]}
    b04 = r10.create_array(
        "b04", shape=(H, W), chunks=(64, 64), dtype="<u2", fill_value=0,
        compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
        attributes={**dims, **cf, "long_name": "BOA reflectance B04"}, config=NO_WRITE,
    )
    # chunk (1, 2) (rows 64..128, cols 128..192) is all zero: never written
    b04[:] = band(4, zero_chunk=((64, 128), (128, 192)))
    b08 = r10.create_array(
        "b08", shape=(H, W), chunks=(64, 64), dtype="<u2", fill_value=0,
        compressors=numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE),
        attributes={**dims, **cf}, config=NO_WRITE,
    )
    b08[:] = band(8)
    r20 = root.create_group("measurements/reflectance/r20m")
    write_coords(r20, H // 2, W // 2, 2 * RES, 2)
    b05 = r20.create_array(
        "b05", shape=(H // 2, W // 2), chunks=(32, 32), dtype="<u2", fill_value=0,
        compressors=numcodecs.Blosc(cname="zlib", clevel=4, shuffle=numcodecs.Blosc.NOSHUFFLE),
        attributes={**dims, **cf}, config=NO_WRITE,
    )
    b05[:] = band(5, H // 2, W // 2)
    extra = root.create_group("measurements/extra")
    write_coords(extra, H, W, RES, 2)
    aot = extra.create_array(
        "aot_f32", shape=(H, W), chunks=(50, 70), dtype="<f4", fill_value=float("nan"),
        compressors=numcodecs.GZip(level=5), attributes=dims, config=NO_WRITE,
    )
    a = band(11).astype(np.float32) / 7.0
    a[0:50, 0:70] = np.nan  # a chunk of NaN: never written
    aot[:] = a
    be = extra.create_array(
        "wvp_be_i2", shape=(H, W), chunks=(64, 100), dtype=">i2", fill_value=-1,
        compressors=numcodecs.Zstd(level=3), attributes={**dims, "_FillValue": -1}, config=NO_WRITE,
    )
    be[:] = (band(12).astype(np.int32) - 3000).astype(np.int16)
    cube = extra.create_array(
        "cube", shape=(3, H, W), chunks=(2, 64, 64), dtype="<u2", fill_value=0,
        compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
        attributes={"_ARRAY_DIMENSIONS": ["band", "y", "x"]}, config=NO_WRITE,
    )
    cube[:] = np.stack([band(20), band(21), band(22)])
    cond = root.create_group("conditions/mask/l2a_classification/r10m")
    write_coords(cond, H, W, RES, 2)
    scl = cond.create_array(
        "scl", shape=(H, W), chunks=(64, 64), dtype="|u1", fill_value=0,
        compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
        chunk_key_encoding={"name": "v2", "separator": "/"},
        attributes={**dims, "flag_values": list(range(12))},
    )
    scl[:] = (band(30) % 12).astype(np.uint8)
    zarr.consolidate_metadata(str(path), zarr_format=2)
    return path


def make_v3():
    path = OUT / "geozarr_v3.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs.update({"proj:code": f"EPSG:{EPSG}", "title": "GeoZarr-like fixture"})
    r10 = root.create_group("measurements/reflectance/r10m")
    r10.attrs.update({"proj:code": f"EPSG:{EPSG}"})
    write_coords(r10, H, W, RES, 3)
    sref = r10.create_array("spatial_ref", shape=(), dtype="int64", fill_value=0, compressors=None)
    sref.attrs.update(
        {
            "GeoTransform": f"{X0} {RES} 0.0 {Y0} 0.0 {-RES}",
            "crs_wkt": f'PROJCS["WGS 84 / UTM zone 10N",AUTHORITY["EPSG","{EPSG}"]]',
            "proj:code": f"EPSG:{EPSG}",
        }
    )
    sref[()] = 0
    cf = {"scale_factor": 0.0001, "add_offset": -0.1, "_FillValue": 0, "grid_mapping": "spatial_ref"}
    b04 = r10.create_array(
        "b04", shape=(H, W), shards=(128, 128), chunks=(32, 32), dtype="uint16", fill_value=0,
        compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"),
        dimension_names=["y", "x"], attributes=cf, config=NO_WRITE,
    )
    # inner chunk rows 64..96, cols 96..128 (in shard (0, 0)) and the whole of
    # shard (1, 1) are zero: not written (index entries of all ones, no file)
    b04[:] = band(104, zero_chunk=((64, 96), (96, 128)))
    v = b04[:]
    v[128:190, 128:250] = 0
    b04[:] = v
    b08 = r10.create_array(
        "b08", shape=(H, W), shards=(64, 128), chunks=(32, 64), dtype="uint16", fill_value=0,
        serializer="auto", compressors=ZstdCodec(level=3),
        dimension_names=["y", "x"], attributes=cf, config=NO_WRITE,
    )
    b08[:] = band(108)
    r20 = root.create_group("measurements/reflectance/r20m")
    r20.attrs.update({"proj:code": f"EPSG:{EPSG}"})
    aot = r20.create_array(
        "aot", shape=(H // 2, W // 2), chunks=(32, 32), dtype="float32", fill_value=float("nan"),
        compressors=GzipCodec(level=5), dimension_names=["y", "x"],
        attributes={"spatial:transform": [2 * RES, 0.0, X0, 0.0, -2 * RES, Y0], "proj:code": f"EPSG:{EPSG}"},
    )
    aot[:] = band(120, H // 2, W // 2).astype(np.float32) / 3.0
    # index at the start of each shard
    r60 = root.create_group("measurements/reflectance/r60m")
    write_coords(r60, 60, 80, 30.0, 3)
    from zarr.codecs import ShardingCodec
    b01 = r60.create_array(
        "b01", shape=(60, 80), chunks=(64, 64), dtype="uint16", fill_value=0,
        serializer=ShardingCodec(
            chunk_shape=(16, 16),
            codecs=[BytesCodec(endian="little"), BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
            index_location="start",
        ),
        compressors=None, dimension_names=["y", "x"],
    )
    b01[:] = band(101, 60, 80)
    nogeo = root.create_group("noref")
    n = nogeo.create_array("band", shape=(20, 20), chunks=(20, 20), dtype="uint16", fill_value=0)
    n[:] = 1
    return path


def make_hostile():
    """Each store breaks one thing; the test asserts the error names it."""
    out = OUT / "hostile"
    rng = np.random.RandomState(7)
    data = rng.randint(1, 5000, size=(40, 40)).astype(np.uint16)

    def v2(name, **kw):
        root = zarr.open_group(str(out / name), mode="w", zarr_format=2)
        a = root.create_array(
            "band", shape=(40, 40), chunks=(20, 20), dtype="<u2", fill_value=0,
            compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1), **kw,
        )
        a[:] = data
        return out / name / "band"

    def edit_json(p, f):
        doc = json.loads(p.read_text())
        f(doc)
        p.write_text(json.dumps(doc, indent=2))

    # a chunk cut short
    a = v2("truncated_chunk.zarr")
    c = a / "0.1"
    c.write_bytes(c.read_bytes()[:40])
    # broken JSON
    a = v2("broken_json.zarr")
    (a / ".zarray").write_text('{"zarr_format": 2, "shape": [40, 40], "chunks": [20,')
    # chunk grid that does not match the shape
    a = v2("grid_mismatch.zarr")
    edit_json(a / ".zarray", lambda d: d.update(chunks=[20]))
    # declared sizes past any limit
    a = v2("huge.zarr")
    edit_json(a / ".zarray", lambda d: d.update(shape=[2**40, 2**40], chunks=[2**31, 2**31]))
    # a codec nobody knows
    a = v2("unknown_codec_v2.zarr")
    edit_json(a / ".zarray", lambda d: d.update(compressor={"id": "lzma_fancy", "level": 3}))
    # an unknown dtype
    a = v2("unknown_dtype.zarr")
    edit_json(a / ".zarray", lambda d: d.update(dtype="<c16"))

    def v3(name, **kw):
        root = zarr.open_group(str(out / name), mode="w", zarr_format=3)
        a = root.create_array(
            "band", shape=(40, 40), shards=(40, 40), chunks=(20, 20), dtype="uint16", fill_value=0,
            compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"), **kw,
        )
        a[:] = data
        return out / name / "band"

    # a shard index entry pointing past the end of the shard (checksum valid)
    a = v3("bad_shard_index.zarr")
    shard = a / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    n = 4
    index_len = 16 * n + 4
    index = bytearray(raw[-index_len:-4])
    size = len(raw)
    index[16:24] = (size + 1000).to_bytes(8, "little")  # inner chunk (0, 1): offset past the end
    crc = bytes(np.asarray(numcodecs.CRC32C().encode(bytes(index))).tobytes())[-4:]
    raw[-index_len:] = bytes(index) + crc
    shard.write_bytes(bytes(raw))
    # a shard index whose checksum does not match
    a = v3("bad_shard_crc.zarr")
    shard = a / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    # a v3 codec nobody knows
    a = v3("unknown_codec_v3.zarr")
    edit_json(a / "zarr.json", lambda d: d["codecs"][0]["configuration"]["codecs"].append(
        {"name": "lzma_fancy", "configuration": {}}))
    # a shard whose inner chunks do not tile it
    a = v3("shard_grid_mismatch.zarr")
    edit_json(a / "zarr.json", lambda d: d["codecs"][0]["configuration"].update(chunk_shape=[15, 20]))


def make_blosc_vectors():
    """Blosc buffers with several blocks (forced small blocksize) and a leftover block."""
    out = OUT / "blosc"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(3)
    base = (1000 + np.cumsum(rng.randint(-3, 4, size=3001))).astype(np.uint16)
    cases = []
    for cname in ["lz4", "zstd", "zlib", "lz4hc"]:
        for shuffle, sname in [(0, "noshuffle"), (1, "shuffle"), (2, "bitshuffle")]:
            for dtype in ["u2", "u1", "f4"]:
                raw = base.astype(dtype).tobytes() if dtype != "f4" else (base.astype("f4") / 3).tobytes()
                codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, blocksize=1024)
                enc = codec.encode(np.frombuffer(raw, dtype=dtype))
                name = f"{cname}_{sname}_{dtype}"
                (out / f"{name}.blosc").write_bytes(enc)
                (out / f"{name}.raw").write_bytes(raw)
                cases.append(name)
    # incompressible: stored (memcpyed)
    raw = rng.bytes(700)
    enc = numcodecs.Blosc(cname="lz4", clevel=0, shuffle=0).encode(np.frombuffer(raw, dtype="u1"))
    (out / "memcpy_u1.blosc").write_bytes(enc)
    (out / "memcpy_u1.raw").write_bytes(raw)
    cases.append("memcpy_u1")
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


def nan_to_none(a):
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in a]


def window(arr, col, row, w, h, slice_=None, nodata=None):
    """The window as tilestack reads it: raw values, NaN outside the array and
    where the value is the nodata value."""
    full = np.full((h, w), np.nan)
    data = arr[:] if slice_ is None else arr[slice_]
    hh, ww = data.shape
    r1, c1 = min(row + h, hh), min(col + w, ww)
    if r1 > row and c1 > col:
        part = data[row:r1, col:c1].astype(np.float64)
        if nodata is not None:
            part[part == nodata] = np.nan
        full[: r1 - row, : c1 - col] = part
    return full


def make_expected(v2_path, v3_path):
    cases = []

    def add(store, group, name, win, nodata, slice_=None, xr_var=None, fmt=2):
        g = zarr.open_group(str(store), mode="r")
        arr = g[f"{group}/{name}"]
        col, row, w, h = win
        raw = window(arr, col, row, w, h, slice_, nodata)
        case = {
            "store": store.name,
            "array": f"{group}/{name}",
            "window": list(win),
            "slice": slice_,
            "nodata": nodata,
            "raw": nan_to_none(raw.ravel().tolist()),
        }
        if xr_var:
            ds = xr.open_zarr(str(store), group=group, consolidated=(fmt == 2), zarr_format=fmt)
            da = ds[name]
            hh, ww = da.shape
            dec = np.full((h, w), np.nan)
            r1, c1 = min(row + h, hh), min(col + w, ww)
            dec[: r1 - row, : c1 - col] = da.values[row:r1, col:c1]
            case["cf_decoded_dtype"] = str(da.dtype)
            case["cf_decoded"] = nan_to_none([round(v, 7) for v in dec.ravel().astype(np.float64).tolist()])
        cases.append(case)

    r10 = "measurements/reflectance/r10m"
    # inside one chunk; across four chunks; over the edge; over the never-written chunk
    for win in [(10, 3, 20, 12), (50, 50, 30, 28), (230, 170, 40, 30), (120, 60, 80, 70)]:
        add(v2_path, r10, "b04", win, 0, xr_var=True)
    add(v2_path, r10, "b08", (40, 100, 60, 50), 0, xr_var=True)
    add(v2_path, "measurements/reflectance/r20m", "b05", (20, 20, 60, 40), 0, xr_var=True)
    add(v2_path, "measurements/extra", "aot_f32", (60, 40, 30, 30), None)
    add(v2_path, "measurements/extra", "wvp_be_i2", (90, 50, 40, 40), -1)
    add(v2_path, "measurements/extra", "cube", (60, 60, 20, 20), 0, slice_=2)
    add(v2_path, "conditions/mask/l2a_classification/r10m", "scl", (60, 60, 20, 20), 0)
    for win in [(10, 3, 20, 12), (90, 50, 60, 60), (100, 120, 60, 70), (200, 150, 60, 60)]:
        add(v3_path, r10, "b04", win, 0, xr_var=True, fmt=3)
    add(v3_path, r10, "b08", (50, 40, 100, 60), 0)
    add(v3_path, "measurements/reflectance/r20m", "aot", (10, 10, 50, 40), None)
    add(v3_path, "measurements/reflectance/r60m", "b01", (5, 5, 70, 50), None)
    (OUT / "expected.json").write_text(json.dumps({"cases": cases}) + "\n")


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    v2 = make_v2()
    v3 = make_v3()
    make_hostile()
    make_blosc_vectors()
    make_expected(v2, v3)
    print(f"wrote {OUT} (zarr {zarr.__version__}, numcodecs {numcodecs.__version__}, xarray {xr.__version__})")


if __name__ == "__main__":
    main()
