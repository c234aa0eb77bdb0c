#!/usr/bin/env python3
"""Cold and warm Oakland stack in one process (`tilestack bench --warm 5`),
an older commit's binary against this tree's, alternating on one served
world: BENCHMARKS.md's "Unchanged by issue 28" stack figures.

    python3 bench/warm_vs_commit.py --old bd9ff82 --rounds 10

Binaries and world come from bench/compare_commits.py (built once into
target/compare/, the world served by this tree's binary). Prints, per
binary, the median first (cold) stack and the median of each round's best
warm stack, and their ratios new/old.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_commits import WORK, build, serve  # noqa: E402  (the same binaries and world)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", default="bd9ff82")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    bins = {"old": build(a.old), "new": build(".")}
    server, url, _world, centroid = serve(bins["new"])
    try:
        got = {t: {"first": [], "warm": []} for t in bins}
        for r in range(a.rounds):
            for t in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                env = dict(os.environ, TILESTACK_CACHE=os.path.join(WORK, f"warm-{t}", "cache"))
                subprocess.run(["rm", "-rf", os.path.join(WORK, f"warm-{t}")], check=True)
                out = subprocess.run(
                    [bins[t], "bench", "--stac", url, "--centroid", f"{centroid[0]},{centroid[1]}",
                     "--bands", "B04,B03,B02,B08,B11", "--time", "2019-08-01/2019-08-30", "--warm", "5"],
                    check=True, capture_output=True, text=True, env=env).stdout
                j = json.loads(out)
                got[t]["first"].append(j["first_stack_s"])
                got[t]["warm"].append(min(j["warm_s"]))
        med = {t: {k: statistics.median(v) for k, v in got[t].items()} for t in bins}
        print(json.dumps({"old": a.old, "rounds": a.rounds, "median_s": med,
                          "new_over_old": {k: med["new"][k] / med["old"][k] for k in ("first", "warm")}},
                         indent=1))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
