"""Opens tilestack shards the way a Python user does — one line of
safetensors + numpy — and checks them against the Rust side.

usage: check_shard.py SHARD_DIR REF_DIR

SHARD_DIR holds `index.json` (the header), its table (`index.samples.bin`,
one numpy record per sample; `index.meta.jsonl`, one JSON line per sample)
and the shards `tilestack materialize` wrote;
REF_DIR holds, per sample k that loaded, `k.safetensors`: the sample's
stack as the Rust ShardSet read it back (`TileStack::write_safetensors`:
tensors `data`, `eo_cloud_cover`, `pct_nans`, `tile_cloud_fraction`).
Every sample of every shard is checked: shapes against the index, data
and metadata bit for bit against the reference (NaN included), layers 0/1,
checksums; each record read both by its row's offset and as a line.
Prints `ok N` for N samples checked.
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
                assert set(np.unique(lab)) <= {0, 1}, k
            if n_masks:
                msk = tensors[k + "/masks"]
                assert msk.dtype == np.uint8 and msk.shape == (n_masks, h, w), (k, msk.shape)
            assert len(e["days"]) == t, k
            checked += 1
    assert checked > 0, "no sample checked"
    print("ok", checked)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
