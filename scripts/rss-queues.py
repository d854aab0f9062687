#!/usr/bin/env python3
"""RSS of a running broker per 1 000 queues and per parked long poll
(bench/RESULTS.md, "Memory budgets").

Usage: scripts/rss-queues.py PID HOST:PORT [QUEUES] [PULLS]

Creates QUEUES queues (topics of 100 queues), then sends one 1 KiB message
to each, commits one consumer offset on each, and finally parks PULLS
long-poll pulls (20 s) spread over 16 connections; prints the broker's
VmRSS after each step and the cost per queue / per parked pull.
"""
import json
import socket
import struct
import sys
import time

OPAQUE = [0]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def frame(code, ext, body=b""):
    OPAQUE[0] += 1
    header = json.dumps({"code": code, "language": "JAVA", "version": 0, "opaque": OPAQUE[0],
                         "flag": 0, "extFields": {k: str(v) for k, v in ext.items()}}).encode()
    return struct.pack(">II", 4 + len(header) + len(body), len(header)) + header + body


def read_reply(s):
    def exact(n):
        got = b""
        while len(got) < n:
            chunk = s.recv(n - len(got))
            if not chunk:
                raise SystemExit("connection closed")
            got += chunk
        return got
    n = struct.unpack(">I", exact(4))[0]
    data = exact(n)
    hlen = struct.unpack(">I", data[:4])[0] & 0xFFFFFF
    return json.loads(data[4:4 + hlen])


def call(s, code, ext, body=b""):
    s.sendall(frame(code, ext, body))
    h = read_reply(s)
    if h["code"] != 0:
        raise SystemExit(f"code {code}: {h['code']} {h.get('remark')}")
    return h


def main():
    pid, addr = sys.argv[1], sys.argv[2]
    queues = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    pulls = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    topics = [(f"RssQ{i}", min(100, queues - i * 100)) for i in range((queues + 99) // 100)]
    base = rss_kib(pid)
    print(f"baseline: {base} KiB")
    for t, n in topics:
        call(s, 17, {"topic": t, "readQueueNums": n, "writeQueueNums": n, "perm": 6})
    time.sleep(1)
    created = rss_kib(pid)
    print(f"{queues} queues created: {created} KiB, {(created - base) * 1024 // queues} B per queue")
    body = b"x" * 1024
    for t, n in topics:
        for q in range(n):
            call(s, 310, {"a": "pg", "b": t, "c": "TBW102", "d": 4, "e": q, "f": 0,
                          "g": int(time.time() * 1000), "h": 0, "i": ""}, body)
    time.sleep(1)
    sent = rss_kib(pid)
    print(f"one message on each: {sent} KiB, {(sent - base) * 1024 // queues} B per queue")
    for t, n in topics:
        for q in range(n):
            call(s, 15, {"consumerGroup": "rss", "topic": t, "queueId": q, "commitOffset": 1})
    time.sleep(1)
    committed = rss_kib(pid)
    print(f"one offset on each: {committed} KiB, {(committed - base) * 1024 // queues} B per queue")
    conns = [socket.create_connection((host, int(port)), timeout=30) for _ in range(16)]
    for i in range(pulls):
        t, n = topics[(i // 100) % len(topics)]
        q = i % n
        conns[i % 16].sendall(frame(11, {
            "consumerGroup": "rss", "topic": t, "queueId": q, "queueOffset": 1, "maxMsgNums": 32,
            "sysFlag": 2 | 4, "commitOffset": 0, "suspendTimeoutMillis": 20000,
            "subscription": "*", "subVersion": 0}))
    time.sleep(2)
    parked = rss_kib(pid)
    print(f"{pulls} parked long polls: {parked} KiB, {(parked - committed) * 1024 // max(pulls, 1)} B per pull")


if __name__ == "__main__":
    main()
