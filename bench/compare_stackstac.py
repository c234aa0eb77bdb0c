#!/usr/bin/env python3
"""Agreement of `tilestack stack` with the stackstac peer (../shared/peer/bench_stackstac.py).

    bench/compare_stackstac.py [--work target/peer] [--bin target/release/tilestack] [--skip-peer]

Needs the peer servers up (bench/peer_setup.sh).  Runs the peer benchmark for the Oakland centroid
(`--n-random 0`, result WORK/oakland.npz), runs `tilestack stack` on the same STAC API / nginx into
WORK/ts, and compares WORK/ts/stack.safetensors with the npz:

  * identical shape, bands and dates;
  * identical NaN pattern per band and day;
  * days whose items are all EPSG:32610 (no reprojection): >= 99.9 % of the valid pixels equal;
  * days with an EPSG:32611 item (reprojected): >= 99 % of the valid pixels within 1 DN;
  * mask band pixel-exact on every day;
  * pct_nans equal to 1e-4; eo_cloud_cover equal where both are finite.

Prints a per-day table and a final PASS/FAIL line; exits 1 on FAIL.  Only 127.0.0.1 traffic.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER = os.path.normpath(os.path.join(REPO, "..", "shared", "peer"))

STAC = "http://127.0.0.1:8090"
CENTROID = (-122.33, 37.81)
BANDS = "B04,B03,B02,B08,B11"
TIME = "2019-08-01/2019-08-30"

_DT = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64}


def default_bin():
    tgt = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(tgt, "release", "tilestack")


def read_safetensors(path):
    """Direct parser: u64 LE header length, JSON header (dtype/shape/data_offsets, __metadata__), raw bytes."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        tensors[name] = np.frombuffer(buf[base + a:base + b], dtype=np.dtype(_DT[h["dtype"]]).newbyteorder("<")
                                      ).reshape(h["shape"])
    meta = {k: (json.loads(v) if isinstance(v, str) and v[:1] in '[{"0123456789-' else v) for k, v in meta.items()}
    return tensors, meta


def item_epsgs(world):
    """item id -> EPSG of its assets, from the world's item JSONs."""
    out = {}
    idir = os.path.join(world, "items")
    for fn in os.listdir(idir):
        if not fn.endswith(".json"):
            continue
        it = json.load(open(os.path.join(idir, fn)))
        p = it.get("properties", {})
        e = p.get("proj:epsg") or (int(str(p["proj:code"]).split(":")[-1]) if p.get("proj:code") else None)
        if e is None:
            for a in it.get("assets", {}).values():
                e = a.get("proj:epsg") or e
        out[it["id"]] = int(e) if e is not None else None
    return out


def run_peer(py, work, out_npz, json_path, n_random=0):
    cmd = [py, os.path.join(PEER, "bench_stackstac.py"), "--world", os.path.join(work, "world"),
           "--access-log", os.path.join(work, "run", "logs", "access.log"), "--out", out_npz,
           "--json", json_path, "--n-random", str(n_random)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def tilestack_cmd(binary, work, out, centroid=CENTROID):
    return [binary, "stack", "--stac", STAC, "--collection", "sentinel-2-l2a",
            "--centroid", f"{centroid[0]},{centroid[1]}", "--bands", BANDS, "--time", TIME,
            "--mask", os.path.join(work, "world", "ports.geojson"), "--fuse", "mean", "--out", out]


def run_tilestack(binary, work, out, centroid=CENTROID, quiet=False, wrap=(), sub="stack", extra=()):
    """Runs `tilestack SUB` (under the `wrap` command, e.g. /usr/bin/time -v) for one centroid.

    Returns (wall seconds, the elapsed seconds it printed or None, stdout, stderr)."""
    cmd = list(wrap) + tilestack_cmd(binary, work, out, centroid) + list(extra)
    cmd[len(wrap) + 1] = sub
    if not quiet:
        print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"tilestack {sub} failed for {centroid} (exit {p.returncode})")
    m = re.search(r" in ([0-9.]+) s\s*$", p.stdout.strip())
    if not quiet and sub == "stack":
        print(p.stdout.strip(), flush=True)
    return wall, (float(m.group(1)) if m else None), p.stdout, p.stderr


def compare(ts_path, npz_path, world, eq_frac=0.999, dn1_frac=0.99):
    tens, meta = read_safetensors(ts_path)
    ref = np.load(npz_path)
    a = np.asarray(tens["data"], np.float32)
    b = np.asarray(ref["data"], np.float32)
    ok = True
    fails = []

    def fail(msg):
        nonlocal ok
        ok = False
        fails.append(msg)

    print(f"\ntilestack {ts_path}: shape {list(a.shape)} bands {meta.get('bands')} epsg {meta.get('epsg')}")
    print(f"stackstac {npz_path}: shape {list(b.shape)} bands {list(ref['bands'])} epsg {int(ref['epsg'])}")
    if a.shape != b.shape:
        fail(f"shape differs: tilestack {list(a.shape)} vs stackstac {list(b.shape)}")
        print("FAIL:", fails[-1])
        return False, {"fails": fails}
    dates_ts = [str(d) for d in meta.get("dates", [])]
    dates_ref = [str(d) for d in ref["time"]]
    if dates_ts != dates_ref:
        fail(f"dates differ: tilestack {dates_ts[:3]}..{dates_ts[-1:]} vs stackstac {dates_ref[:3]}..{dates_ref[-1:]}")
    bands_ref = [str(x) for x in ref["bands"]]
    if list(meta.get("bands", [])) != bands_ref:
        fail(f"bands differ: tilestack {meta.get('bands')} vs stackstac {bands_ref}")
    if int(meta.get("epsg", -1)) != int(ref["epsg"]):
        fail(f"epsg differs: {meta.get('epsg')} vs {int(ref['epsg'])}")
    tr = meta.get("transform")
    if tr and (float(tr[0]) != float(ref["x"][0]) or float(tr[3]) != float(ref["y"][0])):
        fail(f"tile origin differs: tilestack ({tr[0]}, {tr[3]}) vs stackstac ({ref['x'][0]}, {ref['y'][0]})")

    epsg_of = item_epsgs(world)
    ids_ref = [s.split(",") if s else [] for s in ref["item_ids_per_day"]]
    ids_ts = meta.get("items") or [[] for _ in dates_ref]
    nb = a.shape[1] - 1 if bands_ref[-1] == "mask" else a.shape[1]
    pn_ts = np.asarray(tens["pct_nans"], np.float64)
    pn_ref = np.asarray(ref["pct_nans"], np.float64)
    cc_ts = np.asarray(tens["eo_cloud_cover"], np.float64)
    cc_ref = np.asarray(ref["eo_cloud_cover"], np.float64)
    npx = a.shape[2] * a.shape[3]

    hdr = (f"{'day':<10} {'items':>5} {'crs':<11} {'nan=':>4} {'min %eq':>8} {'min %<=1':>8} {'max|d|':>8} "
           f"{'ndiff':>6} {'pct_nans ts/ss':>19} {'cloud ts/ss':>15} {'mask':>4}  verdict")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    details = []
    per_day = []
    for t, day in enumerate(dates_ref):
        ids = ids_ref[t]
        if sorted(ids) != sorted(ids_ts[t] if t < len(ids_ts) else []):
            fail(f"{day}: items differ: tilestack {ids_ts[t] if t < len(ids_ts) else None} vs stackstac {ids}")
        epsgs = sorted({epsg_of.get(i) for i in ids})
        reproj = any(e is not None and e != int(ref["epsg"]) for e in epsgs)
        crs = "+".join(str(e) for e in epsgs) if epsgs else "-"
        day_ok = True
        nan_equal = True
        min_eq, min_dn1, maxd, ndiff = 1.0, 1.0, 0.0, 0
        for bi in range(nb):
            x, y = a[t, bi], b[t, bi]
            nx, ny = np.isnan(x), np.isnan(y)
            if not np.array_equal(nx, ny):
                nan_equal = day_ok = False
                only_ts, only_ss = int((nx & ~ny).sum()), int((~nx & ny).sum())
                details.append(f"{day} {bands_ref[bi]}: NaN pattern differs: {only_ts} px NaN only in tilestack, "
                               f"{only_ss} px NaN only in stackstac")
            both = ~nx & ~ny
            nv = int(both.sum())
            if nv == 0:
                continue
            d = np.abs(x[both].astype(np.float64) - y[both].astype(np.float64))
            feq = float((d == 0).sum()) / nv
            f1 = float((d <= 1.0).sum()) / nv
            min_eq, min_dn1 = min(min_eq, feq), min(min_dn1, f1)
            maxd = max(maxd, float(d.max()))
            ndiff += int((d != 0).sum())
            need_ok = (f1 >= dn1_frac) if reproj else (feq >= eq_frac)
            if not need_ok:
                day_ok = False
            if (d != 0).any():
                rows, cols = np.nonzero(both)
                k = np.nonzero(d != 0)[0]
                ex = ", ".join(f"(r{rows[i]},c{cols[i]}: ts {x[rows[i], cols[i]]:g} ss {y[rows[i], cols[i]]:g})"
                               for i in k[:3])
                details.append(f"{day} {bands_ref[bi]}{' [reprojected]' if reproj else ''}: {int((d != 0).sum())}/{nv} "
                               f"px differ ({100 * (1 - feq):.3f} %), {int((d > 1).sum())} by > 1 DN, max {d.max():g} DN"
                               f"; e.g. {ex}")
        mask_ok = True
        if nb < a.shape[1]:
            mx, my = a[t, nb], b[t, nb]
            if not np.array_equal(mx, my):
                mask_ok = day_ok = False
                details.append(f"{day} mask: {int((mx != my).sum())} px differ (tilestack {int(np.nansum(mx))} "
                               f"in-mask px, stackstac {int(np.nansum(my))})")
        pn_ok = abs(pn_ts[t] - pn_ref[t]) <= 1e-4
        if not pn_ok:
            day_ok = False
            details.append(f"{day} pct_nans: tilestack {pn_ts[t]:.6f} vs stackstac {pn_ref[t]:.6f}")
        cc_ok = True
        if np.isfinite(cc_ts[t]) and np.isfinite(cc_ref[t]):
            cc_ok = abs(cc_ts[t] - cc_ref[t]) <= 1e-4 * max(1.0, abs(cc_ref[t]))
        elif np.isfinite(cc_ts[t]) != np.isfinite(cc_ref[t]):
            details.append(f"{day} eo_cloud_cover: tilestack {cc_ts[t]} vs stackstac {cc_ref[t]} (one side NaN; not graded)")
        if not cc_ok:
            day_ok = False
            details.append(f"{day} eo_cloud_cover: tilestack {cc_ts[t]} vs stackstac {cc_ref[t]}")
        if not day_ok:
            fail(f"{day}: see details")
        empty = np.isnan(b[t, :nb]).all()
        verdict = ("ok" if day_ok else "FAIL") + (" (empty)" if empty else "") + (" (reproj)" if reproj else "")
        f = lambda v: "nan" if not np.isfinite(v) else f"{v:.4f}"
        print(f"{day:<10} {len(ids):>5} {crs:<11} {'yes' if nan_equal else 'NO':>4} {100 * min_eq:>8.3f} "
              f"{100 * min_dn1:>8.3f} {maxd:>8.0f} {ndiff:>6} {f(pn_ts[t]):>9}/{f(pn_ref[t]):<9} "
              f"{f(cc_ts[t]):>7}/{f(cc_ref[t]):<7} {'ok' if mask_ok else 'NO':>4}  {verdict}")
        per_day.append({"day": day, "items": ids, "epsgs": epsgs, "reprojected": reproj, "nan_pattern_equal": nan_equal,
                        "min_frac_equal": min_eq, "min_frac_within_1dn": min_dn1, "max_abs_diff": maxd,
                        "n_pixels_differing": ndiff, "mask_equal": mask_ok, "pct_nans_ok": pn_ok, "cloud_ok": cc_ok,
                        "ok": day_ok})
    if details:
        print("\ndetails:")
        for d in details:
            print("  " + d)
    n_data = sum(1 for p in per_day if p["items"])
    print(f"\n{n_data} days with data, {sum(p['reprojected'] for p in per_day)} with an EPSG:32611 item; "
          f"{sum(p['n_pixels_differing'] for p in per_day)} band-pixels differ in total over {nb} bands")
    return ok, {"fails": fails, "per_day": per_day, "details": details}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=os.path.join(REPO, "target", "peer"), help="WORK_DIR of bench/peer_setup.sh")
    ap.add_argument("--bin", default=default_bin(), help="tilestack binary (default $CARGO_TARGET_DIR or target/release)")
    ap.add_argument("--python", default=None, help="python for the peer (default WORK/venv/bin/python)")
    ap.add_argument("--skip-peer", action="store_true", help="reuse WORK/oakland.npz")
    ap.add_argument("--json", default=None, help="write the comparison report here")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    py = a.python or os.path.join(work, "venv", "bin", "python")
    npz = os.path.join(work, "oakland.npz")
    if not a.skip_peer or not os.path.exists(npz):
        run_peer(py, work, npz, os.path.join(work, "oakland_peer.json"), n_random=0)
    out = os.path.join(work, "ts")
    wall, printed, _, _ = run_tilestack(os.path.abspath(a.bin), work, out)
    print(f"tilestack wall {wall:.2f} s (printed {printed} s)")
    ok, rep = compare(os.path.join(out, "stack.safetensors"), npz, os.path.join(work, "world"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ok": ok, **rep}, f, indent=1, default=str)
    if ok:
        print("PASS: tilestack agrees with stackstac (shape, dates, NaN pattern, values, mask, pct_nans, cloud cover)")
    else:
        print(f"FAIL: {len(rep['fails'])} check(s) failed: " + "; ".join(rep["fails"][:8]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
