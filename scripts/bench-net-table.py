#!/usr/bin/env python3
"""Markdown table of the shardmq-bench network summaries in a directory."""
import json, pathlib, sys

d = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
print("| run | op | msgs/s | MB/s | p50 µs | p90 µs | p99 µs | p999 µs | max µs | errors | broker RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(d.glob("*.json")):
    s = json.loads(f.read_text())
    rss = "-"
    out = f.with_suffix(".out")
    if out.exists():
        for line in out.read_text().splitlines():
            if line.startswith("broker RSS KiB:"):
                v = line.split(":")[1].strip()
                rss = f"{int(v) / 1024:.0f}" if v.isdigit() else "-"
    errs = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"
    for op, o in s["ops"].items():
        l = o["latency_us"]
        fmt = lambda v: "-" if v is None else f"{v:.0f}"
        rate = "-" if op == "e2e" else f"{o['msgs_per_sec']:.0f}"
        mbs = "-" if op == "e2e" else f"{o['mb_per_sec']:.1f}"
        print(f"| {f.stem} | {op} | {rate} | {mbs} | {fmt(l['p50'])} | {fmt(l['p90'])} | {fmt(l['p99'])} | {fmt(l['p999'])} | {fmt(l['max'])} | {errs} | {rss} |")
