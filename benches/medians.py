#!/usr/bin/env python3
"""Prints the median time per iteration of every criterion benchmark under target/criterion
(the latest run, `new/`), optionally only those whose id starts with one of the arguments.

    python3 benches/medians.py hit/ concurrent/

Criterion's own `time:` line is the mean-based slope estimate; BENCHMARKS.md records medians,
read from each benchmark's `new/estimates.json`.
"""
import json
import os
import sys


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main():
    root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    prefixes = sys.argv[1:]
    rows = []
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        full_id = bench["full_id"]
        if prefixes and not any(full_id.startswith(p) for p in prefixes):
            continue
        with open(os.path.join(dirpath, "estimates.json")) as f:
            median = json.load(f)["median"]
        ci = median["confidence_interval"]
        rows.append((full_id, median["point_estimate"], ci["lower_bound"], ci["upper_bound"]))
    rows.sort()
    width = max((len(r[0]) for r in rows), default=10)
    for full_id, point, low, high in rows:
        print(f"{full_id:<{width}}  median {fmt(point):>10}   95% CI [{fmt(low)}, {fmt(high)}]")


if __name__ == "__main__":
    main()
