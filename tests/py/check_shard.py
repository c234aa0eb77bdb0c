"""Opens tilestack shards the way a Python user does — one line of
safetensors + numpy — and checks them against the Rust side.

usage: check_shard.py SHARD_DIR REF_DIR

SHARD_DIR holds `index.json` (the header), its table (`index.samples.bin`,
one numpy record per sample; `index.meta.jsonl`, one JSON line per sample)
and the shards `tilestack materialize` wrote;
REF_DIR holds, per sample k that loaded, `k.safetensors`: the sample's
stack as the Rust ShardSet read it back (`TileStack::write_safetensors`:
tensors `data`, `eo_cloud_cover`, `pct_nans`, `tile_cloud_fraction`) and,
for a dataset of several inputs, `k.NAME.safetensors` per input after the
first (the same four tensors of that input).
Every sample of every shard is checked: shapes against the index, data
and metadata bit for bit against the reference (NaN included), layers 0/1,
checksums; each record read both by its row's offset and as a line.
The region's tensors are checked to tile it exactly (no gap, no overlap).
Prints `ok N` for N samples checked (`ok N (inputs a, b)` with inputs).
"""
import json
import os
import sys
import zlib

import numpy as np
from safetensors.numpy import load_file


def main(shard_dir, ref_dir):
    index = json.load(open(os.path.join(shard_dir, "index.json")))
    table = index["table"]
    # the index in one line: a structured array, one record per sample
    rows = np.fromfile(os.path.join(shard_dir, table["rows"]), dtype=[tuple(c) for c in table["columns"]])
    assert rows.dtype.itemsize == table["row_bytes"] and len(rows) == index["samples"], rows.dtype
    assert (rows["index"] == np.arange(len(rows))).all()
    blob = open(os.path.join(shard_dir, table["meta"]), "rb").read()
    lines = [json.loads(l) for l in blob.splitlines()]  # or: line k is sample k
    assert len(blob) == table["meta_bytes"] and len(lines) == len(rows)
    entries = []
    for r, line in zip(rows, lines):
        o, n = int(r["meta_offset"]), int(r["meta_length"])
        assert json.loads(blob[o:o + n]) == line, int(r["index"])
        e = dict(line, index=int(r["index"]), shard=int(r["shard"]), offset=int(r["offset"]),
                 length=int(r["length"]), crc32=int(r["crc32"]))
        assert bool(r["failed"]) == (e["error"] is not None), e["index"]
        assert int(r["steps"]) == len(e["days"]), e["index"]
        assert str(r["start"]) <= str(r["end"]), e["index"]
        if e["days"]:
            assert str(r["start"]) <= e["days"][0] and e["days"][-1] <= str(r["end"]), e["index"]
        entries.append(e)
    t, c, h, w = index["shape"]
    n_labels, n_masks = len(index["labels"]), len(index["masks"])
    inputs = index.get("inputs", [])
    checked = 0
    for shard in index["shards"]:
        path = os.path.join(shard_dir, shard["file"])
        assert os.path.getsize(path) == shard["bytes"], path
        tensors = load_file(path)  # the one line a user writes
        raw = open(path, "rb").read()
        for e in entries:
            if e["shard"] != shard["shard"]:
                continue
            k = "%06d" % e["index"]
            if e["error"] is not None:
                assert k + "/data" not in tensors, k
                continue
            data = tensors[k + "/data"]
            assert data.dtype == np.float32 and data.shape == (t, c, h, w), (k, data.shape)
            assert e["offset"] % 64 == 0, (k, e["offset"])
            region = raw[e["offset"]:e["offset"] + e["length"]]
            assert zlib.crc32(region) == e["crc32"], (k, "checksum")
            ref = load_file(os.path.join(ref_dir, "%d.safetensors" % e["index"]))
            assert np.array_equal(data.view(np.uint32), ref["data"].view(np.uint32)), (k, "data")
            for m in ("eo_cloud_cover", "pct_nans", "tile_cloud_fraction"):
                got = tensors[k + "/" + m]
                assert got.shape == (t,), (k, m, got.shape)
                assert np.array_equal(got.view(np.uint32), ref[m].view(np.uint32)), (k, m)
                # the index's JSON copy: null where NaN
                js = np.array([np.nan if v is None else v for v in e[m]], dtype=np.float32)
                assert np.array_equal(np.isnan(js), np.isnan(got)), (k, m, "nan pattern")
                assert np.allclose(js[~np.isnan(js)], got[~np.isnan(got)], rtol=0, atol=0), (k, m)
            if n_labels:
                lab = tensors[k + "/labels"]
                assert lab.dtype == np.uint8 and lab.shape == (n_labels, t, h, w), (k, lab.shape)
                for j, layer in enumerate(index["config"].get("labels", [])):
                    if "file" in layer:  # GeoJSON: 0/1; a raster's classes are any u8
                        assert set(np.unique(lab[j])) <= {0, 1}, (k, layer["name"])
            if n_masks:
                msk = tensors[k + "/masks"]
                assert msk.dtype == np.uint8 and msk.shape == (n_masks, h, w), (k, msk.shape)
            assert len(e.get("inputs", [])) == len(inputs), k
            for layout, rec in zip(inputs, e.get("inputs", [])):
                name, shape = layout["name"], tuple(layout["shape"])
                assert rec["name"] == name and len(rec["days"]) == shape[0], (k, name)
                pre = k + "/inputs/" + name + "/"
                got = tensors[pre + "data"]
                assert got.dtype == np.float32 and got.shape == shape, (k, name, got.shape)
                ref = load_file(os.path.join(ref_dir, "%d.%s.safetensors" % (e["index"], name)))
                assert np.array_equal(got.view(np.uint32), ref["data"].view(np.uint32)), (k, name)
                for m in ("eo_cloud_cover", "pct_nans", "tile_cloud_fraction"):
                    v = tensors[pre + m]
                    assert v.shape == (shape[0],), (k, name, m)
                    assert np.array_equal(v.view(np.uint32), ref[m].view(np.uint32)), (k, name, m)
                has = tensors[pre + "has_data"]
                assert has.dtype == np.uint8 and has.shape == (shape[0],), (k, name)
                # a step has data exactly when a scene filled it
                assert [bool(x) for x in has] == [len(i) > 0 for i in rec["items"]], (k, name)
                # no data: every pixel NaN
                for ti in np.flatnonzero(has == 0):
                    assert np.isnan(got[ti]).all(), (k, name, int(ti))
            # the region's tensors tile it exactly, in the order written
            header_len = 8 + int.from_bytes(raw[:8], "little")
            spans = sorted(
                (header_len + v["data_offsets"][0], header_len + v["data_offsets"][1])
                for key, v in header_of(raw).items()
                if key.startswith(k + "/") and not key.endswith("/_pad")
            )
            assert spans[0][0] == e["offset"] and spans[-1][1] == e["offset"] + e["length"], (k, spans)
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), (k, "gap or overlap")
            assert len(e["days"]) == t, k
            checked += 1
    assert checked > 0, "no sample checked"
    if inputs:
        print("ok %d (inputs %s)" % (checked, ", ".join(i["name"] for i in inputs)))
    else:
        print("ok", checked)


def header_of(raw):
    n = int.from_bytes(raw[:8], "little")
    h = json.loads(raw[8:8 + n])
    h.pop("__metadata__", None)
    return h


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
