#!/usr/bin/env python3
"""Side-by-side benchmark: tilestack vs the stackstac peer, in one run on the same world and servers.

    target/peer/venv/bin/python bench/bench_tilestack.py [--work target/peer] [--bin BIN] [--n-random 20]

Needs bench/peer_setup.sh (servers on 127.0.0.1:8089/8090).  Runs, in this order:
  1. the peer (../shared/peer/bench_stackstac.py): cold, warm, N random centroids -> WORK/bench/peer.json
  2. tilestack cold: --repeat fresh `tilestack stack` processes for the Oakland centroid, timed end to end
     (process start to files written) under /usr/bin/time -v for peak RSS; nginx access-log requests/bytes.
  3. `tilestack bench` (one process, default 1 GiB cache): time to first stack, 3 warm repeats, the same N
     random centroids as the peer (granule A inset 2 km, same seed) one at a time and, in a second process,
     2 in flight; and the physical limit of the Oakland stack measured by tilestack's own plain client:
     the intersecting internal tiles, one GET per contiguous range (fetch time), libdeflate inflate of
     those tiles on all cores and on one.
     Then the 2-in-flight process again pinned to 1 core (taskset): scaling with cores; and the warm
     stack's floor (the search alone, the load from the kept plan, one write of the output array); and a
     training loop over the random centroids through StackLoader, with and without prefetch (data wait).
  4. the physical limit again from the files (a small TIFF reader here): minimal bytes, contiguous ranges
     and zlib inflate on 2 worker processes — an independent check of step 3's tile and byte counts.
Prints a table with ratios (peer / tilestack) and writes WORK/bench/results.json.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_stackstac as cs  # noqa: E402

sys.path.insert(0, cs.PEER)
import bench_stackstac as peer  # noqa: E402  (read-only use of the peer's helpers: LogCounter, random_centroids, tile_grid)


# --------------------------------------------------------------------------- tilestack runs
def timed_stack(binary, work, out, centroid, log):
    wrap = ["/usr/bin/time", "-v"] if os.path.exists("/usr/bin/time") else []
    wall, printed, _, err = cs.run_tilestack(binary, work, out, centroid, quiet=True, wrap=wrap)
    r = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    return {"centroid": list(centroid), "wall_s": wall, "printed_s": printed,
            "peak_rss_mb": int(r.group(1)) / 1024.0 if r else None, **log.take()}


def bench_process(binary, work, centroids_file, concurrency, log, limit, cores=None):
    """One `tilestack bench` process (pinned to the first `cores` cores with taskset when given; its
    thread pools size themselves from that affinity); its JSON plus the server-side counts."""
    extra = ["--warm", "3", "--centroids-file", centroids_file, "--concurrency", str(concurrency)]
    extra += ["--limit"] if limit else []
    wrap = ["taskset", "-c", ",".join(str(c) for c in range(cores))] if cores else []
    wall, _, out, _ = cs.run_tilestack(binary, work, os.path.join(work, "bench", "ts_bench"), quiet=True,
                                       sub="bench", extra=extra, wrap=wrap)
    res = json.loads(out.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    res["server"] = log.take()
    return res


# --------------------------------------------------------------------------- tiny TIFF reader
def tiff_tiles(path):
    """IFD0 (full resolution) of a tiled (Big)TIFF: width, height, tile w/h, tile offsets and byte counts."""
    with open(path, "rb") as f:
        head = f.read(16)
        bo = "<" if head[:2] == b"II" else ">"
        ver = struct.unpack(bo + "H", head[2:4])[0]
        big = ver == 43
        ifd = struct.unpack(bo + "Q", head[8:16])[0] if big else struct.unpack(bo + "I", head[4:8])[0]
        f.seek(ifd)
        n = struct.unpack(bo + ("Q" if big else "H"), f.read(8 if big else 2))[0]
        esz = 20 if big else 12
        raw = f.read(n * esz)
        sizes = {1: 1, 3: 2, 4: 4, 16: 8, 2: 1, 7: 1}
        fmt = {1: "B", 3: "H", 4: "I", 16: "Q", 2: "B", 7: "B"}
        tags = {}
        for i in range(n):
            e = raw[i * esz:(i + 1) * esz]
            tag, typ = struct.unpack(bo + "HH", e[:4])
            cnt = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
            if tag not in (256, 257, 322, 323, 324, 325) or typ not in sizes:
                continue
            val = e[12:20] if big else e[8:12]
            nbytes = sizes[typ] * cnt
            if nbytes > len(val):
                off = struct.unpack(bo + ("Q" if big else "I"), val)[0]
                pos = f.tell()
                f.seek(off)
                val = f.read(nbytes)
                f.seek(pos)
            tags[tag] = list(struct.unpack(bo + fmt[typ] * cnt, val[:nbytes]))
    return {"width": tags[256][0], "height": tags[257][0], "tw": tags[322][0], "th": tags[323][0],
            "offsets": tags[324], "counts": tags[325]}


def asset_window(asset, item_epsg, tile_epsg, bounds, pad=1):
    """Source pixel window (c0, r0, c1, r1) covering the tile bounds, in the asset's grid."""
    import pyproj
    t = asset.get("proj:transform")
    shape = asset.get("proj:shape")
    left, bottom, right, top = bounds
    if item_epsg == tile_epsg:
        xs, ys = np.array([left, right]), np.array([bottom, top])
        pad = 0
    else:
        k = np.linspace(0, 1, 65)
        ex = np.concatenate([left + (right - left) * k, np.full(65, right), right - (right - left) * k, np.full(65, left)])
        ey = np.concatenate([np.full(65, top), top - (top - bottom) * k, np.full(65, bottom), bottom + (top - bottom) * k])
        xs, ys = pyproj.Transformer.from_crs(tile_epsg, item_epsg, always_xy=True).transform(ex, ey)
    res_x, x0, res_y, y0 = t[0], t[2], t[4], t[5]
    c0 = math.floor((min(xs) - x0) / res_x + 1e-9) - pad
    c1 = math.ceil((max(xs) - x0) / res_x - 1e-9) + pad
    r0 = math.floor((max(ys) - y0) / res_y + 1e-9) - pad
    r1 = math.ceil((min(ys) - y0) / res_y - 1e-9) + pad
    h, w = shape
    return max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)


_BLOBS = []


def _inflate_share(k):
    """Worker k of 2 inflates every second tile of _BLOBS (inherited by fork: no pickling of the data)."""
    return _inflate(_BLOBS[k::2])


def _inflate(blobs):
    n = 0
    for b in blobs:
        n += len(zlib.decompress(b))
    return n


def physical_limit(work, item_ids, bands, centroid):
    world = os.path.join(work, "world")
    epsg, bounds = peer.tile_grid(centroid[0], centroid[1], 256, 10.0)
    total_bytes, total_ranges, total_ranges8, n_tiles, n_windows, span_bytes = 0, 0, 0, 0, 0, 0
    blobs = []
    for iid in item_ids:
        it = json.load(open(os.path.join(world, "items", iid + ".json")))
        p = it["properties"]
        for band in bands:
            a = it["assets"][band]
            ie = a.get("proj:epsg") or p.get("proj:epsg") or int(str(p.get("proj:code")).split(":")[-1])
            a = {**p, **a}
            c0, r0, c1, r1 = asset_window(a, int(ie), epsg, bounds)
            if c1 <= c0 or r1 <= r0:
                continue
            path = os.path.join(world, a["href"].split("127.0.0.1:8089/", 1)[-1]) if a["href"].startswith("http") \
                else os.path.join(world, "items", a["href"])
            tt = tiff_tiles(path)
            across = math.ceil(tt["width"] / tt["tw"])
            sel = [(tt["offsets"][ty * across + tx], tt["counts"][ty * across + tx])
                   for ty in range(r0 // tt["th"], (r1 - 1) // tt["th"] + 1)
                   for tx in range(c0 // tt["tw"], (c1 - 1) // tt["tw"] + 1)]
            sel = sorted(s for s in sel if s[1] > 0)
            n_windows += 1
            ranges, ranges8, end = 0, 0, None
            for off, cnt in sel:
                ranges += end != off
                # GDAL's COG layout puts a 4-byte size leader/trailer around each tile: a reader can
                # merge tiles separated by <= 8 bytes at the cost of those bytes.
                ranges8 += end is None or off - end > 8
                end = off + cnt
            total_ranges += ranges
            span_bytes += sel[-1][0] + sel[-1][1] - sel[0][0] if sel else 0
            total_ranges8 += ranges8
            n_tiles += len(sel)
            total_bytes += sum(c for _, c in sel)
            with open(path, "rb") as f:
                for off, cnt in sel:
                    f.seek(off)
                    blobs.append(f.read(cnt))
    raw = sum(len(zlib.decompress(b)) for b in blobs)
    _BLOBS[:] = blobs
    times = []
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(abs, [0, 0])  # workers started
        for _ in range(3):
            t0 = time.perf_counter()
            pool.map(_inflate_share, [0, 1], chunksize=1)
            times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    _inflate(blobs)
    t1 = time.perf_counter() - t0
    return {"item_band_windows": n_windows, "tiles": n_tiles, "compressed_bytes": total_bytes,
            "contiguous_ranges": total_ranges, "ranges_merging_8_byte_gaps": total_ranges8,
            "bytes_one_range_per_window": span_bytes, "inflated_bytes": raw, "inflate_s_2workers_min": min(times),
            "inflate_s_2workers_all": times, "inflate_s_1core": t1}


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=os.path.join(cs.REPO, "target", "peer"))
    ap.add_argument("--bin", default=cs.default_bin())
    ap.add_argument("--python", default=None)
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="tilestack cold stacks of the Oakland centroid")
    ap.add_argument("--seed", type=int, default=20190801)
    ap.add_argument("--skip-peer", action="store_true", help="reuse WORK/bench/peer.json")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    binary = os.path.abspath(a.bin)
    py = a.python or os.path.join(work, "venv", "bin", "python")
    bdir = os.path.join(work, "bench")
    os.makedirs(bdir, exist_ok=True)
    access = os.path.join(work, "run", "logs", "access.log")
    res = {"machine": {"cores": os.cpu_count(), "note": "nginx, STAC API and client share the cores"},
           "binary": binary}

    # 1. the peer
    pj = os.path.join(bdir, "peer.json")
    if not (a.skip_peer and os.path.exists(pj)):
        cs.run_peer(py, work, os.path.join(bdir, "peer_oakland.npz"), pj, n_random=a.n_random)
    pr = json.load(open(pj))
    res["peer"] = {k: pr[k] for k in ("versions", "centroid_runs", "peak_rss_mb")}
    res["peer"]["random"] = {k: v for k, v in pr.get("random", {}).items() if k != "per_tile"}

    # 2. tilestack cold
    log = peer.LogCounter(access)
    cold = []
    for i in range(a.repeat):
        r = timed_stack(binary, work, os.path.join(bdir, "ts_cold"), cs.CENTROID, log)
        cold.append(r)
        print(f"tilestack cold {i + 1}: wall {r['wall_s']:.3f} s, printed {r['printed_s']} s, "
              f"{r['requests']} requests, {r['bytes']} bytes, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    res["tilestack_cold"] = cold
    # headers persisted by a first process (--header-cache), then a fresh process reads only tiles
    hdir = os.path.join(bdir, "headers")
    shutil.rmtree(hdir, ignore_errors=True)
    extra = ["--header-cache", hdir]
    for k in ("fill", "use"):
        wall, _, _, _ = cs.run_tilestack(binary, work, os.path.join(bdir, "ts_cold"), quiet=True, extra=extra)
        res[f"tilestack_header_cache_{k}"] = {"wall_s": wall, **log.take()}
    hc = res["tilestack_header_cache_use"]
    print(f"tilestack cold with headers from an earlier process: wall {hc['wall_s']:.3f} s, "
          f"{hc['requests']} requests, {hc['bytes']} bytes", flush=True)

    # 3. tilestack bench: first stack, warm, random (1 and 2 in flight), limit
    cents = peer.random_centroids(os.path.join(work, "world"), a.n_random, a.seed, "A")
    cfile = os.path.join(bdir, "centroids.txt")
    with open(cfile, "w") as f:
        f.writelines(f"{lon},{lat}\n" for lon, lat in cents)
    log.take()
    for conc in (1, 2):
        b = bench_process(binary, work, cfile, conc, log, limit=conc == 1)
        res[f"tilestack_bench_c{conc}"] = b
        rb = b["random"]
        print(f"tilestack bench (concurrency {conc}): first stack {b['first_stack_s']:.3f} s, warm "
              f"{min(b['warm_s']):.3f} s ({b['warm_requests']} requests), random {rb['n']} stacks in "
              f"{rb['total_s']:.2f} s = {rb['stacks_per_s']:.3f} stacks/s, peak RSS {b['peak_rss_mb']:.0f} MB",
              flush=True)

    # 3b. scaling with cores: the 2-in-flight process again, pinned to fewer cores (the servers stay unpinned)
    ncores = os.cpu_count() or 1
    res["scaling"] = {str(ncores): {k: b[k] for k in ("first_build_s", "warm_s")} | {"random": b["random"]}}
    if shutil.which("taskset"):
        for k in sorted({1, ncores // 2} - {0, ncores}):
            bk = bench_process(binary, work, cfile, 2, log, limit=False, cores=k)
            res["scaling"][str(k)] = {x: bk[x] for x in ("first_build_s", "warm_s", "random")}
            print(f"tilestack bench on {k} core(s): first build {bk['first_build_s']:.3f} s, warm "
                  f"{min(bk['warm_s']):.3f} s, random {bk['random']['stacks_per_s']:.3f} stacks/s", flush=True)

    # 4. physical limit (Oakland tile, the items the peer used)
    ref = np.load(os.path.join(bdir, "peer_oakland.npz"))
    ids = sorted({i for s in ref["item_ids_per_day"] for i in str(s).split(",") if i})
    res["physical_limit"] = physical_limit(work, ids, cs.BANDS.split(","), cs.CENTROID)
    res["physical_limit"]["items"] = len(ids)

    with open(os.path.join(bdir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    report(res)


def report(res):
    pc, pw = res["peer"]["centroid_runs"]["cold"], res["peer"]["centroid_runs"]["warm"]
    prn = res["peer"]["random"]
    cold = res["tilestack_cold"]
    b1, b2 = res["tilestack_bench_c1"], res["tilestack_bench_c2"]
    lim = b1["limit"]
    pl = res["physical_limit"]
    med = statistics.median([c["wall_s"] for c in cold])
    rss = max(c["peak_rss_mb"] or 0 for c in cold)
    ts_req, ts_bytes = cold[0]["requests"], cold[0]["bytes"]
    warm = min(b1["warm_s"] + b2["warm_s"])
    n = b1["random"]["n"]
    r1, r2 = b1["random"], b2["random"]
    rows = [
        ("Oakland cold stack, s (fresh process, end to end; tilestack: median of %d)" % len(cold),
         f"{pc['wall_s']:.3f}", f"{med:.3f}", pc["wall_s"] / med),
        ("Oakland cold stack, s, in process (peer: after its imports; tilestack: `first_build_s`, best of 2)",
         f"{pc['wall_s']:.3f}", f"{min(b1['first_build_s'], b2['first_build_s']):.3f}",
         pc["wall_s"] / min(b1["first_build_s"], b2["first_build_s"])),
        ("time to first stack, s (process start → stack in memory)", "—",
         f"{min(b1['first_stack_s'], b2['first_stack_s']):.3f}", None),
        ("Oakland warm stack, s (same process; tilestack: best of 6 repeats)", f"{pw['wall_s']:.3f}",
         f"{warm:.3f} ({b1['warm_requests'] + b2['warm_requests']} requests)", pw["wall_s"] / warm),
        (f"tile-stacks/s, {n} random centroids, one at a time", f"{prn['tile_stacks_per_s']:.3f}",
         f"{r1['stacks_per_s']:.3f}", r1["stacks_per_s"] / prn["tile_stacks_per_s"]),
        (f"tile-stacks/s, {n} random centroids, 2 in flight", f"{prn['tile_stacks_per_s']:.3f}",
         f"{r2['stacks_per_s']:.3f}", r2["stacks_per_s"] / prn["tile_stacks_per_s"]),
        ("median per random stack, s (one at a time)", f"{prn['median_s']:.3f}", f"{r1['median_s']:.3f}",
         prn["median_s"] / r1["median_s"]),
        ("HTTP requests, Oakland cold (nginx)", f"{pc['requests']}", f"{ts_req}", pc["requests"] / max(ts_req, 1)),
        ("HTTP bytes, Oakland cold (nginx)", f"{pc['bytes']:,}", f"{ts_bytes:,}", pc["bytes"] / max(ts_bytes, 1)),
        ("HTTP requests / wall s, cold fresh process, `--header-cache` filled by an earlier process", "—",
         f"{res['tilestack_header_cache_use']['requests']} / {res['tilestack_header_cache_use']['wall_s']:.3f}",
         None),
        (f"HTTP requests, {n} random (client count)", f"{prn['requests']}", f"{r1['requests']}",
         prn["requests"] / max(r1["requests"], 1)),
        (f"HTTP bytes, {n} random (client count)", f"{prn['bytes']:,}", f"{r1['bytes']:,}",
         prn["bytes"] / max(r1["bytes"], 1)),
        ("peak RSS, MB (peer: after cold / whole run; tilestack: cold process / bench process)",
         f"{pc['peak_rss_mb']:.0f} / {res['peer']['peak_rss_mb']:.0f}",
         f"{rss:.0f} / {max(b1['peak_rss_mb'], b2['peak_rss_mb']):.0f}", pc["peak_rss_mb"] / rss),
    ]
    # The ratio column is tilestack's advantage: peer ÷ tilestack for times, counts and memory,
    # tilestack ÷ peer for rates; > 1 means tilestack is better.
    print("\n| figure | stackstac peer | tilestack | tilestack's advantage | better |\n|---|---|---|---|---|")
    for name, p, t, r in rows:
        better = "—" if r is None or r == 1 else ("tilestack" if r > 1 else "peer")
        print(f"| {name} | {p} | {t} | {'—' if r is None else f'{r:.2f}×'} | {better} |")
    sc = res.get("scaling", {})
    if len(sc) > 1:
        top = max(sc, key=int)
        print(f"\nscaling with cores (tilestack bench, 2 stacks in flight; the servers use all {top} cores):")
        print("| cores | first build, s | warm, s | random tile-stacks/s | vs 1 core |\n|---|---|---|---|---|")
        base = sc.get("1", {}).get("random", {}).get("stacks_per_s")
        for k in sorted(sc, key=int):
            v = sc[k]
            rate = v["random"]["stacks_per_s"]
            print(f"| {k} | {v['first_build_s']:.3f} | {min(v['warm_s']):.3f} | {rate:.3f} | "
                  f"{rate / base:.2f}× |" if base else f"| {k} | … | … | {rate:.3f} | — |")
    wf = b1.get("warm_floor")
    if wf:
        print(f"\nwarm stack split (tilestack bench, best of 3): search alone {wf['search_s'] * 1e3:.1f} ms, load "
              f"from the kept plan {wf['load_s'] * 1e3:.1f} ms, writing a {wf['output_bytes'] / 1e6:.0f} MB output "
              f"array once on all cores {wf['output_write_s'] * 1e3:.1f} ms; floor (search + one write) "
              f"{(wf['search_s'] + wf['output_write_s']) * 1e3:.1f} ms = "
              f"{pw['wall_s'] / (wf['search_s'] + wf['output_write_s']):.0f}× the peer's warm stack at best")
    first_build = b1["first_build_s"]
    print(f"\nphysical limit of the Oakland stack (tilestack bench, {lim['cores']} cores):")
    print(f"  {lim['tiles']} internal tiles, {lim['bytes']:,} compressed bytes in {lim['ranges_strict']} strictly "
          f"contiguous ranges, {lim['ranges']} when merged as the client merges them (gaps < 1 KiB); "
          f"{lim['inflated_bytes']:,} bytes inflated")
    print(f"  plain client fetch of exactly those ranges: {lim['fetch_s']:.3f} s; libdeflate inflate: "
          f"{lim['inflate_all_cores_s']:.3f} s on all cores, {lim['inflate_one_core_s']:.3f} s on one; "
          f"tilestack's whole-tile decode (inflate + predictor): {lim['decode_all_cores_s']:.3f} s")
    print(f"  tilestack cold build (in process, after start-up) {first_build:.3f} s = "
          f"{first_build / lim['inflate_all_cores_s']:.2f}× the inflate limit; bytes {ts_bytes / lim['bytes']:.3f}× "
          f"minimal; tile requests {ts_req - lim['ranges']} over the {lim['ranges']} ranges are header reads")
    if "fetch_inflate_s" in lim:
        load = b1["first_load_s"]
        print(f"  plain client fetching those ranges and inflating each as it lands (overlapped, same cores): "
              f"{lim['fetch_inflate_s']:.3f} s; tilestack's cold load from the plan (after search + plan "
              f"{b1['first_search_plan_s']:.3f} s) {load:.3f} s = {load / lim['fetch_inflate_s']:.2f}× that")
    print(f"  check from the files (Python): {pl['tiles']} tiles, {pl['compressed_bytes']:,} bytes, "
          f"{pl['contiguous_ranges']} contiguous ranges ({pl['ranges_merging_8_byte_gaps']} merging 8-byte gaps); "
          f"zlib inflate {pl['inflate_s_2workers_min']:.3f} s on 2 workers, {pl['inflate_s_1core']:.3f} s on 1 core")


if __name__ == "__main__":
    main()
