"""Real EOPF Sentinel-2 Zarr metadata as the stores publish it, from the
pydantic-zarr models EOPF-Explorer/data-model keeps of real products.

EOPF-Explorer/data-model (tests/_test_data/) records the metadata of real
EOPF sample products (no chunk data) as `pydantic_zarr` GroupSpec models:
one nested JSON tree, each node holding its `attributes` and, for an array,
its `.zarray` fields (v2) or `zarr.json` fields (v3). This script writes the
same documents under the keys a store serves them by:

- v2 (the EOPF products): a consolidated `.zmetadata`
  (`{"zarr_consolidated_format": 1, "metadata": {".zgroup": ..., "a/b/.zarray": ...}}`);
- v3 (the GeoZarr conversion): a root `zarr.json` whose
  `consolidated_metadata.metadata` maps node paths to their `zarr.json`.

Nothing is changed inside a document. The tree is trimmed to the groups a
reader of the bands needs (`--keep` prefixes) and, with `--root-attrs`, the
root attributes to the keys named (EOPF's `other_metadata` alone is ~250 KB).

Usage (the upstream files from a checkout of EOPF-Explorer/data-model at the
commit in tests/fixtures/zarr/real/PROVENANCE.md):

    python tests/py/make_real_zarr_fixtures.py v2 UPSTREAM.json OUT/.zmetadata \
        --keep measurements/reflectance --keep conditions/mask/l2a_classification \
        --root-attrs stac_discovery
    python tests/py/make_real_zarr_fixtures.py v3 UPSTREAM.json OUT/zarr.json \
        --keep measurements/reflectance
"""

import argparse
import json
import sys

ARRAY_V2_KEYS = (
    "chunks", "compressor", "dimension_separator", "dtype", "fill_value",
    "filters", "order", "shape", "zarr_format",
)


def kept(path, keep):
    """Whether the node at `path` is on the way to, or under, a kept prefix."""
    if not keep or path == "":
        return True
    return any(path == k or path.startswith(k + "/") or k.startswith(path + "/") for k in keep)


def walk(node, path, out):
    yield path, node
    for name, child in node.get("members", {}).items():
        p = f"{path}/{name}" if path else name
        yield from walk(child, p, out)


def is_array(node):
    return node.get("node_type") == "array" or "shape" in node


def v2(tree, keep, root_attrs):
    meta = {}
    for path, node in walk(tree, "", meta):
        if not kept(path, keep):
            continue
        pre = f"{path}/" if path else ""
        attrs = dict(node.get("attributes", {}))
        if path == "" and root_attrs:
            attrs = {k: v for k, v in attrs.items() if k in root_attrs}
        if is_array(node):
            meta[pre + ".zarray"] = {k: node[k] for k in ARRAY_V2_KEYS if k in node}
        else:
            meta[pre + ".zgroup"] = {"zarr_format": 2}
        meta[pre + ".zattrs"] = attrs
    return {"metadata": meta, "zarr_consolidated_format": 1}


def v3(tree, keep, root_attrs):
    docs = {}
    for path, node in walk(tree, "", docs):
        if path == "" or not kept(path, keep):
            continue
        doc = {k: v for k, v in node.items() if k != "members"}
        docs[path] = doc
    root = {k: v for k, v in tree.items() if k != "members"}
    if root_attrs:
        root["attributes"] = {k: v for k, v in root.get("attributes", {}).items() if k in root_attrs}
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": docs}
    return root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("format", choices=["v2", "v3"])
    ap.add_argument("upstream")
    ap.add_argument("out")
    ap.add_argument("--keep", action="append", default=[])
    ap.add_argument("--root-attrs", action="append", default=[])
    a = ap.parse_args()
    with open(a.upstream) as f:
        tree = json.load(f)
    doc = (v2 if a.format == "v2" else v3)(tree, a.keep, a.root_attrs)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{a.out}: {len(json.dumps(doc))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
