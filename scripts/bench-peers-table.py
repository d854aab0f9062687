#!/usr/bin/env python3
"""summary.md for scripts/bench-peers.sh: one row per scenario and peer
(medians over the repeats), the SYNC/ASYNC ratio and allocations per request.

    scripts/bench-peers-table.py OUT_DIR
"""
import json
import pathlib
import statistics
import sys

d = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
raw = d / "raw"
PEERS = ["before", "after", "apache", "rust"]
SCENARIOS = [
    ("send-sync", "send", "single sync sends, 64 connections, SYNC_FLUSH"),
    ("send-async", "send", "single sync sends, 64 connections, ASYNC_FLUSH"),
    ("batch64", "send", "batches of 64, 8 connections, SYNC_FLUSH"),
    ("consume", "pull", "consume the backlog from the start, 16 connections (latency: per pull)"),
    ("e2e", "e2e", "open loop, SYNC_FLUSH (rate: sends; latency: send to receive)"),
]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f0(v):
    return "-" if v is None else f"{v:,.0f}"


def f1(v):
    return "-" if v is None else f"{v:.1f}"


def f2(v):
    return "-" if v is None else f"{v:.2f}"


def read_cpu(path):
    if not path.exists():
        return None
    kv = dict(p.split("=", 1) for p in path.read_text().split())
    return int(kv["cpu_ticks"]) / int(kv["clk_tck"]), kv["window_secs"]


def run_row(js, cpu, op, rate_op):
    """(msgs/s, MB/s, p50, p99, p999, cpu us/msg, errors) of one run."""
    s = json.loads(js.read_text())
    o = s["ops"].get(op)
    r = s["ops"].get(rate_op)
    if o is None or r is None:
        return None
    lat = o["latency_us"]
    cpu_us = None
    c = read_cpu(cpu)
    if c is not None:
        secs, window = c
        if window == "whole":
            n = r["messages"]
        else:
            n = r["msgs_per_sec"] * float(window)
        cpu_us = secs * 1e6 / n if n else None
    return {
        "rate": r["msgs_per_sec"],
        "mbs": r["mb_per_sec"],
        "p50": lat.get("p50"),
        "p99": lat.get("p99"),
        "p999": lat.get("p999"),
        "cpu": cpu_us,
        "errors": s.get("errors_total", 0),
        "error_kinds": s.get("errors", {}),
    }


print(f"# Peer benchmark ({d.name})\n")
mt = d / "machine.txt"
if mt.exists():
    head = mt.read_text().split("--- lscpu")[0].strip()
    print("```\n" + head + "\n```\n")
sk = d / "skipped.txt"
if sk.exists() and sk.read_text().strip():
    print("Skipped:\n")
    for line in sk.read_text().strip().splitlines():
        print(f"- {line}")
    print()

print("Medians over the repeats (runs = repeats with a result; rate range min–max). "
      "CPU µs/msg: broker processes' utime+stime over the measured window / messages.\n")
print("| scenario | peer | runs | msgs/s | range | MB/s | p50 µs | p99 µs | p999 µs | CPU µs/msg | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
medians = {}
for sc, op, desc in SCENARIOS:
    sdir = raw / sc
    if not sdir.exists():
        continue
    rate_op = "send" if op == "e2e" else op
    for peer in PEERS:
        rows = []
        for js in sorted(sdir.glob(f"{peer}-r*.json")):
            if js.name.count(".") != 1:
                continue
            r = run_row(js, js.with_suffix(".cpu"), op, rate_op)
            if r:
                rows.append(r)
        if not rows:
            if list(sdir.glob(f"{peer}-r*.out")):
                print(f"| {sc} | {peer} | 0 | failed | | | | | | | see raw/{sc}/{peer}-r*.out |")
            continue
        m = {k: med([r[k] for r in rows]) for k in ("rate", "mbs", "p50", "p99", "p999", "cpu")}
        medians[(sc, peer)] = m
        rates = [r["rate"] for r in rows]
        errs = sum(r["errors"] for r in rows)
        kinds = set()
        for r in rows:
            kinds.update(r["error_kinds"].keys())
        err = f"{errs}" + (f" ({', '.join(sorted(kinds))[:80]})" if kinds else "")
        print(f"| {sc} | {peer} | {len(rows)} | {f0(m['rate'])} | {f0(min(rates))}–{f0(max(rates))} | "
              f"{f1(m['mbs'])} | {f0(m['p50'])} | {f0(m['p99'])} | {f0(m['p999'])} | {f1(m['cpu'])} | {err} |")
print()
for sc, _, desc in SCENARIOS:
    print(f"- {sc}: {desc}")
print()

ratios = []
for peer in PEERS:
    s, a = medians.get(("send-sync", peer)), medians.get(("send-async", peer))
    if s and a and a["rate"]:
        ratios.append((peer, s["rate"], a["rate"], s["rate"] / a["rate"]))
if ratios:
    print("## SYNC_FLUSH / ASYNC_FLUSH (single sync sends, 64 connections)\n")
    print("| peer | SYNC msgs/s | ASYNC msgs/s | SYNC/ASYNC |")
    print("|---|---|---|---|")
    for peer, s, a, r in ratios:
        print(f"| {peer} | {f0(s)} | {f0(a)} | {f2(r)} |")
    print()

adir = raw / "alloc"
if adir.exists():
    print("## Heap allocations per request (shardmq built with --features alloc-count, SYNC_FLUSH)\n")
    print("| peer | run | single sends: allocs/request | batches of 64: allocs/request | allocs/message |")
    print("|---|---|---|---|---|")
    for f in sorted(adir.glob("*-r*.txt")):
        kv = dict(p.split("=", 1) for p in f.read_text().split())
        peer, run = f.stem.split("-r")
        out = []
        for kind in ("single", "batch"):
            js = adir / kv[f"{kind}_json"]
            n = int(kv[f"{kind}_allocations"])
            send = json.loads(js.read_text())["ops"].get("send") if js.exists() else None
            if send and send["requests"] and send["messages"]:
                out.append((n / send["requests"], n / send["messages"]))
            else:  # the bench failed: no successful request to divide by
                out.append((None, None))
        print(f"| {peer} | {run} | {f1(out[0][0])} | {f1(out[1][0])} | {f2(out[1][1])} (batched) |")
    print()

for sc, what in (("timers", "Scheduled delivery (TIMER_DELIVER_MS)"), ("sendback", "CONSUMER_SEND_MSG_BACK")):
    sdir = raw / sc
    if not sdir.exists():
        continue
    print(f"## {what} (`{sc}`, raw bench output per run)\n")
    for out in sorted(sdir.glob("*.out")):
        print(f"{out.stem}:\n```")
        print(out.read_text().strip())
        print("```\n")
