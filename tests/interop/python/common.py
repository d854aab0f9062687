"""Shared helpers for the C++-client (rocketmq-python-cvs / librocketmq 2.1.0) scenario programs.

Every program prints one JSON object per line on stdout (flushed at once) so
the Rust tests in tests/interop_cpp.rs can assert on them; human-readable
diagnostics go to stderr. A watchdog ends the process (exit code 3, event
"timeout") when --timeout-ms runs out, so no program can hang a test.
"""
import argparse
import json
import os
import sys
import threading

_out_lock = threading.Lock()

# User properties every producer sets and every consumer reads back.
USER_PROPS = ["seq", "prefix", "color", "orderKey", "orderSeq"]


def emit(**fields):
    line = json.dumps(fields, ensure_ascii=False, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(msg):
    with _out_lock:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def hard_exit(code):
    """Leave without running librocketmq's destructors (they can block or
    double-shutdown); stdout is flushed line by line already."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def base_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--namesrv", required=True, help="name server address, e.g. 127.0.0.1:9876")
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--timeout-ms", type=int, default=60000, help="hard limit for the whole program")
    p.add_argument("--log-dir", default=None,
                   help="client log directory (default: $HOME/logs; set HOME to keep logs out of the real home)")
    return p


def start_watchdog(timeout_ms, what):
    def fire():
        emit(event="timeout", what=what, timeoutMs=timeout_ms)
        log("%s: watchdog fired after %d ms" % (what, timeout_ms))
        hard_exit(3)

    t = threading.Timer(timeout_ms / 1000.0, fire)
    t.daemon = True
    t.start()
    return t


def import_client(log_dir=None):
    """Import the client; report a clear error (not a traceback) when the venv is wrong.

    librocketmq logs to /logs/rocketmq-client/ (this build) unless told
    otherwise: the push consumer ignores set_log_root_path (a no-op in the C
    API of 2.1.0) but honours $ROCKETMQ_CLIENT_LOG_DIR, so set both."""
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        os.environ["ROCKETMQ_CLIENT_LOG_DIR"] = log_dir
    try:
        from rocketmq import client, ffi  # noqa: F401
        return client, ffi
    except Exception as e:  # ImportError, OSError from dlopen
        emit(event="error", stage="import", error="cannot load rocketmq (C++ core): %s" % e)
        hard_exit(1)


def to_str(v):
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
