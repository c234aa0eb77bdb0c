#!/usr/bin/env python3
"""Old against new in one run: builds the `tilestack` binary of two commits
(release), then alternates them on the same machine, the same demo world and
the same loopback server, so that a difference is the code's and not the
machine's mood.

    python3 bench/compare_commits.py                      # 879d593 vs the working tree, 5 pairs
    python3 bench/compare_commits.py --old f537428 --pairs 8
    python3 bench/compare_commits.py --old 879d593 --old f537428   # three binaries in turn
    python3 bench/compare_commits.py --outputs            # also: same bytes out?

What it measures, per round (the binaries in turn, the order rotating from
one round to the next):
  * the cold Oakland stack, `tilestack stack` in a fresh process (fresh tile
    cache, no header store): B04 B03 B02 B08 B11 + SCL cloud band, the
    terminals mask, August 2019 daily, 256 px at 10 m, around the world's
    centroid. `stack_s` is the time the command prints (request, search,
    plan, reads, warp, fusion, mask, files written); `process_s` is the
    process's wall time (start-up included); `cpu_s` its user + system CPU
    (`getrusage` of the child).
With --callgrind: one more cold stack per binary under valgrind's
callgrind, which counts instructions (the same count for the same binary
and input whatever else the machine does): the totals, their ratio, and
the functions whose own instruction counts differ most between the first
old binary and the new one (`callgrind_annotate`, symbols demangled).
With --build-only: build (or reuse) the binaries and stop.
Every run: the sha256 of each binary's last timed stack.safetensors (the
same world and request for all: equal unless the output changed).
With --outputs: `tilestack demo`'s stack.safetensors (each binary's own
embedded world, which changes with the world generator) and `tilestack
materialize --config datasets/oakland-ships.toml` (shards and index; from
the binaries that have `materialize`) from every binary, sha256 of each
file, and whether they are equal wherever written.

Builds go to target/compare/ (a worktree per commit, one shared target
folder, CARGO_TARGET_DIR when set, so dependencies build once); the working
tree is built from where it is (`--new .`). The world is generated once into target/compare/world by
the new binary and served by it for both.
"""
import argparse
import hashlib
import json
import os
import resource
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compare")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def short_name(rev):
    """`rev`'s short commit hash."""
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev], check=True,
                          capture_output=True, text=True).stdout.strip()


def worktree(name, rev, work):
    """A detached worktree of `rev` at `work`/src-`name`, made once; its path."""
    src = os.path.join(work, "src-" + name)
    if not os.path.isdir(src):
        sh(["git", "-C", ROOT, "worktree", "add", "--detach", src, rev])
    return src


def build(rev):
    """The release binary of `rev` ('.' = the working tree), copied to
    target/compare/bin/tilestack-<name>; returns its path."""
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    if rev == ".":
        src, name = ROOT, "worktree"
    else:
        name = short_name(rev)
        out = os.path.join(WORK, "bin", "tilestack-" + name)
        if os.path.exists(out):
            # a commit's binary does not change: built once, kept in target/compare/bin
            print(f"reusing {out}", flush=True)
            return out
        src = worktree(name, rev, WORK)
    toml = open(os.path.join(src, "Cargo.toml"), encoding="utf-8").read()
    features = [] if re.search(r'^default\s*=\s*\[[^\]]*"cli"', toml, re.M) else ["--features", "cli"]
    # One target folder for both (CARGO_TARGET_DIR if set): dependencies build once.
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(WORK, "target")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    sh(["cargo", "build", "--release", "--bin", "tilestack", *features], cwd=src, env=env)
    out = os.path.join(WORK, "bin", "tilestack-" + name)
    shutil.copy2(os.path.join(target, "release", "tilestack"), out)
    return out


def serve(binary, latency_ms=0):
    """The demo world (generated once into target/compare/world) served by
    `binary` on 127.0.0.1, each request `latency_ms` late: (process, STAC
    URL, world folder, centroid)."""
    world = os.path.join(WORK, "world")
    if not os.path.exists(os.path.join(world, "world.json")):
        sh([binary, "world", "--out", world])
    cmd = [binary, "serve", world, "--port", "0"]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    url = None
    for line in p.stdout:
        m = re.match(r"STAC API:\s*(\S+)", line)
        if m:
            url = m.group(1)
            break
    if not url:
        p.kill()
        sys.exit("the world server did not start")
    manifest = json.load(open(os.path.join(world, "world.json"), encoding="utf-8"))
    return p, url, world, manifest["centroid"]


def stack_once(binary, url, world, centroid, out):
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, TILESTACK_CACHE=os.path.join(out, "cache"))
    cmd = [binary, "stack", "--stac", url, "--centroid", f"{centroid[0]},{centroid[1]}",
           "--bands", "B04,B03,B02,B08,B11", "--cloud-band", "SCL",
           "--mask", os.path.join(world, "terminals.geojson"),
           "--time", "2019-08-01/2019-08-30", "--out", out]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    m = re.search(r"in ([0-9.]+) s\s*$", r.stdout.strip())
    return wall, float(m.group(1)) if m else float("nan"), cpu


def callgrind(binary, url, world, centroid, tag):
    """One cold stack under callgrind: (total instructions, {function: self
    instructions})."""
    out = os.path.join(WORK, "cg-" + tag)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    data = os.path.join(out, "callgrind.out")
    env = dict(os.environ, TILESTACK_CACHE=os.path.join(out, "cache"))
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + data, binary, "stack",
           "--stac", url, "--centroid", f"{centroid[0]},{centroid[1]}",
           "--bands", "B04,B03,B02,B08,B11", "--cloud-band", "SCL",
           "--mask", os.path.join(world, "terminals.geojson"),
           "--time", "2019-08-01/2019-08-30", "--out", os.path.join(out, "stack")]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", data],
                          check=True, capture_output=True, text=True).stdout
    total, funcs = None, {}
    for line in text.splitlines():
        m = re.match(r"\s*([0-9,]+)(?: \([^)]*\))?\s+(PROGRAM TOTALS|\S.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if m.group(2) == "PROGRAM TOTALS":
            total = n
        else:
            # "file:function [object]": the function, without the object
            name = re.sub(r"\s*\[[^\]]*\]$", "", m.group(2))
            name = name.split(":", 1)[1] if name.startswith(("???:", "/")) and ":" in name else name
            funcs[name] = funcs.get(name, 0) + n
    return total, funcs


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def outputs(binary, tag):
    """sha256 of every file `demo` and `materialize` write, by relative path;
    for the shard files also with the dataset's config hash blanked (the hash
    covers the config's parsed values since the stage redesign, so it differs
    from 0.1's while the samples' bytes do not)."""
    base = os.path.join(WORK, "out-" + tag)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    sh([binary, "demo", "--out", os.path.join(base, "demo")], stdout=subprocess.DEVNULL, cwd=ROOT)
    got = {}
    for d in ("demo/stack.safetensors",):
        got[d] = sha256(os.path.join(base, d))
    # `materialize` is younger than some commits compared (879d593 has none)
    has = subprocess.run([binary, "materialize", "--help"], capture_output=True).returncode == 0
    if not has:
        return got
    sh([binary, "materialize", "--config", os.path.join(ROOT, "datasets", "oakland-ships.toml"),
        "--out", os.path.join(base, "shards")], stdout=subprocess.DEVNULL, cwd=ROOT)
    shards = os.path.join(base, "shards")
    index = os.path.join(shards, "index.json")
    config_hash = json.load(open(index, encoding="utf-8")).get("config_hash") if os.path.exists(index) else None
    for f in sorted(os.listdir(shards)):
        got["shards/" + f] = sha256(os.path.join(shards, f))
        if config_hash:
            data = open(os.path.join(shards, f), "rb").read().replace(config_hash.encode(), b"H" * 64)
            got["shards/" + f + " (config hash blanked)"] = hashlib.sha256(data).hexdigest()
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", action="append", help="a commit to compare (repeatable; default 879d593)")
    ap.add_argument("--new", default=".")
    ap.add_argument("--pairs", type=int, default=5, help="rounds (each runs every binary once)")
    ap.add_argument("--outputs", action="store_true")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions (valgrind)")
    ap.add_argument("--build-only", action="store_true")
    a = ap.parse_args()
    olds = a.old or ["879d593"]
    bins = [(rev, build(rev)) for rev in olds] + [("new", build(a.new))]
    if a.build_only:
        return
    new = bins[-1][1]
    server, url, world, centroid = serve(new)
    try:
        rows = []
        for i in range(a.pairs):
            k = i % len(bins)
            row = {}
            for tag, b in bins[k:] + bins[:k]:
                wall, printed, cpu = stack_once(b, url, world, centroid, os.path.join(WORK, "run-" + tag))
                row[tag] = (printed, wall, cpu)
            rows.append(row)
            print(f"round {i + 1}: " + ", ".join(
                f"{t} stack {row[t][0]:.3f} s (process {row[t][1]:.3f} s, CPU {row[t][2]:.3f} s)" for t, _ in bins), flush=True)
        tags = [t for t, _ in bins]
        med = {t: (statistics.median(r[t][0] for r in rows), statistics.median(r[t][1] for r in rows))
               for t in tags}
        result = {
            "binaries": dict(bins), "rounds": a.pairs,
            "stack_s": {t: [r[t][0] for r in rows] for t in tags},
            "process_s": {t: [r[t][1] for r in rows] for t in tags},
            "cpu_s": {t: [r[t][2] for r in rows] for t in tags},
            "median_cpu_s": {t: statistics.median(r[t][2] for r in rows) for t in tags},
            "median_stack_s": {t: med[t][0] for t in tags},
            "median_process_s": {t: med[t][1] for t in tags},
            "new_over_old_stack": {t: med["new"][0] / med[t][0] for t in olds},
            "new_over_old_process": {t: med["new"][1] / med[t][1] for t in olds},
            "binary_mb": {t: os.path.getsize(b) / 1e6 for t, b in bins},
            # the last timed stack of each binary: the same world and request,
            # so the same bytes unless the code's output changed
            "stack_sha256_same_world": {t: sha256(os.path.join(WORK, "run-" + t, "stack.safetensors"))
                                        for t in tags},
        }
        if a.callgrind:
            counted = {t: callgrind(b, url, world, centroid, t) for t, b in bins}
            first, (new_total, new_funcs) = olds[0], counted["new"]
            old_total, old_funcs = counted[first]
            diffs = sorted(((new_funcs.get(f, 0) - old_funcs.get(f, 0), f)
                            for f in set(old_funcs) | set(new_funcs)), key=lambda d: -abs(d[0]))
            result["instructions"] = {t: c[0] for t, c in counted.items()}
            result["new_over_old_instructions"] = {t: new_total / counted[t][0] for t in olds}
            result["instruction_diffs_vs_" + first] = [
                {"function": f, "old": old_funcs.get(f, 0), "new": new_funcs.get(f, 0), "diff": d}
                for d, f in diffs[:25]]
        if a.outputs:
            # every binary's files; "same": equal wherever a binary wrote the file
            got = {t: outputs(b, t) for t, b in bins}
            keys = sorted(set().union(*got.values()))
            result["outputs"] = {k: {**{t: got[t].get(k) for t in tags},
                                     "same": len({got[t][k] for t in tags if k in got[t]}) == 1}
                                 for k in keys}
        print(json.dumps(result, indent=1))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
