#!/usr/bin/env python3
"""The `--inputs` comparison as one table: per held-out day, the ship and
pixel F1 of each run, all scored on the same days and pixels (those the
optical input or the input read on its own days observed; metrics.json's
`model_on_the_held_out_pixels_any_input_observed`).

    python3 examples/ship_detection/inputs_table.py RUN_S2/metrics.json RUN_S1/metrics.json RUN_S2S1/metrics.json

Each run must be over the same dataset config (`--config` with an input
read on its own days, e.g. datasets/oakland-ships-s1-daily.toml). The script
checks that every run scored the same truth (per day: ship pixels, pixels
counted, true ships) and refuses otherwise; it prints a Markdown table.
"""
import json
import sys


def shared(path):
    m = json.load(open(path, encoding="utf-8"))
    s = m.get("model_on_the_held_out_pixels_any_input_observed")
    if s is None:
        sys.exit(f"{path}: no shared scoring (a dataset without an input read on its own days?)")
    return m, s["inputs"], s["evaluation"]


def truth(ev):
    """Per day: (ship pixels, pixels counted, true ships)."""
    out = {}
    for day, c in ev["pixels_per_day"].items():
        ships = ev["ships_per_day"][day]
        out[day] = (c["tp"] + c["fn"], c["tp"] + c["fn"] + c["fp"] + c["tn"], ships["tp"] + ships["fn"])
    return out


def main(paths):
    if not paths:
        sys.exit(__doc__)
    runs = [shared(p) for p in paths]
    first = truth(runs[0][2])
    for p, (_, _, ev) in zip(paths[1:], runs[1:]):
        if truth(ev) != first:
            sys.exit(f"{p}: scored other days or pixels than {paths[0]}")
    names = [r[1] for r in runs]
    print("| held-out day | true ships | ship px | " + " | ".join(f"{n}: ship F1 / pixel F1" for n in names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for day in sorted(first):
        px, _, ships = first[day]
        cells = []
        for _, _, ev in runs:
            cells.append(f"{ev['ships_per_day'][day]['f1']:.3f} / {ev['pixels_per_day'][day]['f1']:.3f}")
        print(f"| {day} | {ships} | {px} | " + " | ".join(cells) + " |")
    total_ships = sum(t[2] for t in first.values())
    total_px = sum(t[0] for t in first.values())
    cells = [f"**{ev['ships']['f1']:.3f}** / {ev['pixels']['f1']:.3f}" for _, _, ev in runs]
    print(f"| all | {total_ships} | {total_px} | " + " | ".join(cells) + " |")
    cells = [f"{ev['arrivals_departures']['f1']:.3f}" for _, _, ev in runs]
    print("| arrivals/departures F1 | | | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
