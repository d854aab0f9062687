#!/usr/bin/env python3
"""RSS of a running broker with N idle connections (bench/RESULTS.md).

Usage: scripts/rss-connections.py PID HOST:PORT [N]

Opens N connections that send nothing, then one GET_ALL_TOPIC_CONFIG on
each, then closes them, printing the broker's VmRSS after each step. Start
the broker with maxConnectionsPerAddress >= N and `ulimit -n` above N.
"""
import json
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def call(s):
    header = json.dumps({"code": 21, "language": "JAVA", "version": 0, "opaque": 1,
                         "flag": 0, "extFields": {}}).encode()
    s.sendall(struct.pack(">II", 4 + len(header), len(header)) + header)
    n = struct.unpack(">I", s.recv(4))[0]
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            raise SystemExit("connection closed")
        got += chunk


def main():
    pid, addr = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    host, port = addr.rsplit(":", 1)
    base = rss_kib(pid)
    print(f"baseline: {base} KiB")
    socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(n)]
    time.sleep(2)
    idle = rss_kib(pid)
    print(f"{n} idle connections: {idle} KiB, {(idle - base) * 1024 // n} B each")
    for s in socks:
        call(s)
    time.sleep(1)
    used = rss_kib(pid)
    print(f"after one request each: {used} KiB, {(used - base) * 1024 // n} B each")
    for s in socks:
        s.close()
    time.sleep(2)
    print(f"after closing them: {rss_kib(pid)} KiB")


if __name__ == "__main__":
    main()
