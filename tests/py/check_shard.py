"""Opens tilestack shards the way a Python user does — one line of
safetensors + numpy — and checks them against the Rust side.

usage: check_shard.py SHARD_DIR REF_DIR

SHARD_DIR holds `index.json` and the shards `tilestack materialize` wrote;
REF_DIR holds, per sample k that loaded, `k.safetensors`: the sample's
stack as the Rust ShardSet read it back (`TileStack::write_safetensors`:
tensors `data`, `eo_cloud_cover`, `pct_nans`, `tile_cloud_fraction`).
Every sample of every shard is checked: shapes against the index, data
and metadata bit for bit against the reference (NaN included), layers 0/1,
checksums. Prints `ok N` for N samples checked.
"""
import json
import os
import sys
import zlib

import numpy as np
from safetensors.numpy import load_file


def main(shard_dir, ref_dir):
    index = json.load(open(os.path.join(shard_dir, "index.json")))
    t, c, h, w = index["shape"]
    n_labels, n_masks = len(index["labels"]), len(index["masks"])
    checked = 0
    for shard in index["shards"]:
        path = os.path.join(shard_dir, shard["file"])
        assert os.path.getsize(path) == shard["bytes"], path
        tensors = load_file(path)  # the one line a user writes
        raw = open(path, "rb").read()
        for e in index["entries"]:
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
