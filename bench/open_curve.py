#!/usr/bin/env python3
"""The cost of opening a dataset as it grows: `tilestack dataset --json` on
random places over the demo world (one band, 32 px tiles, one 30-day
window), against the world served on 127.0.0.1 with 0 ms and with 100 ms
added to every request (a distant STAC API's round trip).

    python3 bench/open_curve.py                       # 1k 10k 100k 1M, 0 and 100 ms
    python3 bench/open_curve.py --places 1000 20000 --latency 0
    python3 bench/open_curve.py --bin target/release/tilestack --markdown

Per row: searches made, seconds to open (search + pick + filter), the
process's resident memory after opening and its peak, and both per sample.
Each row is a fresh process. The binary is built (release) unless --bin is
given; the world is generated once into target/compare/world (as
bench/compare_commits.py does).
"""
import argparse
import json
import os
import subprocess
import tempfile

from compare_commits import serve  # the same world, served the same way

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    subprocess.run(["cargo", "build", "--release", "--features", "cli", "--bin", "tilestack"],
                   cwd=ROOT, check=True)
    return os.path.join(target, "release", "tilestack")


def open_once(binary, url, collection, bbox, n, tmp):
    path = os.path.join(tmp, f"places-{n}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"""name = "places-{n}"
[catalog]
stac = "{url}"
collection = "{collection}"
[stack]
bands = ["B04"]
tile_size = 32
[time]
range = "2019-08-01/2019-08-30"
[sampler]
kind = "random"
bbox = {json.dumps(bbox)}
count = {n}
""")
    out = subprocess.run([binary, "dataset", "--json", "--config", path], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--places", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    ap.add_argument("--latency", type=int, nargs="+", default=[0, 100])
    ap.add_argument("--area", choices=["port", "region"], default="port",
                    help="port: places over the world's port (one search cell); region: over 10° × 10° "
                         "around it (100 cells, so 100 searches; places off the world keep no scene)")
    ap.add_argument("--markdown", action="store_true", help="print a table for BENCHMARKS.md")
    a = ap.parse_args()
    binary = a.bin or build()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for latency in a.latency:
            p, url, world, (lon, lat) = serve(binary, latency)
            try:
                manifest = json.load(open(os.path.join(world, "world.json"), encoding="utf-8"))
                # the port and its channel: well inside the world's scenes
                d = (0.03, 0.02) if a.area == "port" else (5.0, 5.0)
                bbox = [lon - d[0], lat - d[1], lon + d[0], lat + d[1]]
                for n in a.places:
                    r = open_once(binary, url, manifest["collection"], bbox, n, tmp)
                    row = {
                        "places": n, "area": a.area, "latency_ms": latency, "searches": r["searches"],
                        "scenes": r["scenes"], "kept": r["kept"], "open_s": round(r["open_s"], 3),
                        "ms_per_sample": round(r["open_s"] * 1e3 / n, 4),
                        "rss_mb": round(r["rss_kb"] / 1024, 1),
                        "peak_rss_mb": round(r["peak_rss_kb"] / 1024, 1),
                        "rss_bytes_per_sample": round(r["rss_bytes_per_candidate"] or 0),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                p.kill()
                p.wait()
    if a.markdown:
        print("\n| places | area | latency | searches | scenes | kept | open s | ms/sample | RSS MB | peak MB | B/sample |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['places']:,} | {r['area']} | {r['latency_ms']} ms | {r['searches']} | {r['scenes']} | {r['kept']:,} | "
                  f"{r['open_s']} | {r['ms_per_sample']} | {r['rss_mb']} | {r['peak_rss_mb']} | "
                  f"{r['rss_bytes_per_sample']} |")


if __name__ == "__main__":
    main()
