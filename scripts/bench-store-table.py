#!/usr/bin/env python3
"""Summarises a bench-store.sh output directory as Markdown tables.

Per configuration: the median over repeats and, for throughput, the
min..max range. Nothing is rounded up: figures are printed as measured."""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1]
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)[:-5]
    if name.startswith("fio-"):
        continue
    key = re.sub(r"-r\d+$", "", name)
    runs.setdefault(key, []).append(json.load(open(path)))


def med(rs, f):
    return statistics.median(f(r) for r in rs)


def rng(rs, f, fmt):
    v = [f(r) for r in rs]
    return f"{fmt.format(min(v))}..{fmt.format(max(v))}"


def others(r):
    # Files written before "online_cpus" existed scaled machine_busy_cores by
    # 1 instead of the CPU count (the pinned thread's available_parallelism).
    if "online_cpus" in r or "machine_busy_cores" not in r:
        return r.get("other_processes_cpu_cores", 0)
    return max(0.0, r["machine_busy_cores"] * os.cpu_count() - r["process_cpu_cores"])


def row(key, rs):
    p = rs[0]["params"]
    return (
        f"| {p['record_size']} | {p['flush']} | {p['appenders']} | {p['segment_size'] >> 20} MiB "
        f"| {'zero' if p['pre_zero'] else 'falloc'} | {len(rs)} "
        f"| {med(rs, lambda r: r['appends_per_sec']):.0f} ({rng(rs, lambda r: r['appends_per_sec'], '{:.0f}')}) "
        f"| {med(rs, lambda r: r['body_mib_per_sec']):.1f} ({rng(rs, lambda r: r['body_mib_per_sec'], '{:.1f}')}) "
        f"| {med(rs, lambda r: r['latency_us']['p50']):.1f} | {med(rs, lambda r: r['latency_us']['p99']):.1f} "
        f"| {med(rs, lambda r: r['latency_us']['p999']):.1f} | {max(r['latency_us']['max'] for r in rs):.1f} "
        f"| {sum(r['busy'] for r in rs)} | {sum(sum(r['errors'].values()) for r in rs)} "
        f"| {med(rs, lambda r: r['flush_rounds'] / r['measured_secs']):.0f} "
        f"| {med(rs, lambda r: r['fdatasync_us']['p50'] or 0):.0f} "
        f"| {med(rs, lambda r: r['process_cpu_cores']):.2f} "
        f"| {max(others(r) for r in rs):.2f} |"
    )


head = (
    "| body B | flush | appenders | segment | prep | runs | appends/s median (min..max) "
    "| body MiB/s median (min..max) | p50 us | p99 us | p999 us | max us (worst run) | busy (sum) "
    "| errors (sum) | fdatasync/s | fdatasync p50 us | CPU cores | others' CPU (max) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)
print("## Store appends\n")
print(head)
for key in sorted(runs, key=lambda k: (not k.startswith("store"), k.split("-")[1].zfill(9), k)):
    if key.startswith("store"):
        print(row(key, runs[key]))
print("\n## Pre-zero vs fallocate-only (SYNC, 1 KiB, 16 appenders)\n")
print(head)
for key in sorted(runs):
    if key.startswith("prezero"):
        print(row(key, runs[key]))

fios = sorted(glob.glob(os.path.join(out, "fio-*.json")))
if fios:
    print("\n## fio (same disk, same run)\n")
    print("| job | MiB/s | IOPS | clat p50 us | clat p99 us | sync p50 us | sync p99 us |")
    print("|---|---|---|---|---|---|---|")
    for path in fios:
        j = json.load(open(path))["jobs"][0]
        w = j["write"]
        lat = w.get("clat_ns", {}).get("percentile", {})
        sync = j.get("sync", {}).get("lat_ns", {}).get("percentile", {})
        s50 = f"{sync['50.000000'] / 1e3:.1f}" if sync else "-"
        s99 = f"{sync['99.000000'] / 1e3:.1f}" if sync else "-"
        print(
            f"| {os.path.basename(path)[4:-5]} | {w['bw_bytes'] / 2**20:.1f} | {w['iops']:.0f} "
            f"| {lat.get('50.000000', 0) / 1e3:.1f} | {lat.get('99.000000', 0) / 1e3:.1f} | {s50} | {s99} |"
        )
