#!/usr/bin/env python3
"""C++ client producer scenario (librocketmq 2.1.0 through rocketmq-python-cvs).

Sends --count messages numbered --start .. --start+count-1. Message i has
  key   = <prefix>-k<i>
  tag   = tags[i % len(tags)]
  body  = "<prefix> body #<i> ✓"   (UTF-8)
  props = seq=<i>, prefix=<prefix>, color="blue green"
          (+ orderKey=<prefix>-o<i % orderKeys>, orderSeq=<i // orderKeys> in --mode orderly)

Modes: sync (SendMessageSync), oneway (SendMessageOneway), batch
(SendBatchMessage, --batch-size per batch), orderly
(SendMessageOrderlyByShardingKey with the orderKey: C++ picks queue
std::hash<string>(key) % queueCount).

--mode continuous (failover tests): sends messages start.. one at a time with
SendMessageSync, --interval-ms apart, until --count were tried or stdin
reaches EOF. A send that fails is reported as
{"event":"send_failed","i","key","error","sendStartMs","sendEndMs"} and the
next message follows; a send that returns is a "sent" event. (The C++ core
retries a failed send itself, on another broker, up to 5 times in all; the
C API does not tell how often it did.)

--delay-level L sets msg.set_delay_time_level(L) (property DELAY). Every
sync "sent" event has sendStartMs / sendEndMs (wall clock around the send).

Output (JSON lines): {"event":"started"}, one {"event":"sent",...} per
message (sync/orderly carry status, msgId = UNIQ_KEY and queueOffset; the C
API does not report the queue id), {"event":"batch_sent",...} per batch,
{"event":"done","sent":n}; on failure {"event":"error",...} and exit code 1.
"""
import ctypes
import sys
import threading
import time

import common
from common import emit, log


def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--prefix", default="m")
    p.add_argument("--tags", default="TagA,TagB,TagC", help="comma-separated, cycled by message number")
    p.add_argument("--mode", choices=["sync", "oneway", "batch", "orderly", "continuous"], default="sync")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--order-keys", type=int, default=4)
    p.add_argument("--send-timeout-ms", type=int, default=5000)
    p.add_argument("--delay-level", type=int, default=0)
    p.add_argument("--interval-ms", type=int, default=0, help="--mode continuous: pause between sends")
    p.add_argument("--ak", default="", help="sign every request as this ACL account")
    p.add_argument("--sk", default="", help="the ACL account's secret key")
    args = p.parse_args()
    common.start_watchdog(args.timeout_ms, "producer")
    client, ffi = common.import_client(args.log_dir)

    tags = [t for t in args.tags.split(",") if t]
    producer = client.Producer(args.group, timeout=args.send_timeout_ms)
    if args.log_dir:
        producer.set_log_root_path(args.log_dir)
    producer.set_namesrv_addr(args.namesrv)
    if args.ak:
        # The C++ core's session credentials: AccessKey, Signature and the
        # channel in OnsChannel, on every request.
        producer.set_session_credentials(args.ak, args.sk, "ALIYUN")
    try:
        producer.start()
    except Exception as e:
        emit(event="error", stage="start", error=str(e))
        common.hard_exit(1)
    emit(event="started", mode=args.mode)

    def build(i):
        msg = client.Message(args.topic)
        key = "%s-k%d" % (args.prefix, i)
        tag = tags[i % len(tags)]
        msg.set_keys(key)
        msg.set_tags(tag)
        msg.set_body("%s body #%d ✓" % (args.prefix, i))
        msg.set_property("seq", str(i))
        msg.set_property("prefix", args.prefix)
        msg.set_property("color", "blue green")
        if args.delay_level > 0:
            msg.set_delay_time_level(args.delay_level)
        info = {"i": i, "key": key, "tag": tag}
        if args.mode == "orderly":
            okey = "%s-o%d" % (args.prefix, i % args.order_keys)
            oseq = i // args.order_keys
            msg.set_property("orderKey", okey)
            msg.set_property("orderSeq", str(oseq))
            info.update(orderKey=okey, orderSeq=oseq)
        return msg, info

    if args.mode == "orderly":
        ffi.dll.SendMessageOrderlyByShardingKey.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ffi._CSendResult)]
        ffi.dll.SendMessageOrderlyByShardingKey.restype = ctypes.c_int

    sent = 0
    idx = list(range(args.start, args.start + args.count))
    if args.mode == "continuous":
        eof = threading.Event()

        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except Exception:
                pass
            eof.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        for i in idx:
            if eof.is_set():
                break
            msg, info = build(i)
            t0 = int(time.time() * 1000)
            try:
                res = producer.send_sync(msg)
            except Exception as e:
                emit(event="send_failed", error="%s: %s" % (type(e).__name__, e), sendStartMs=t0,
                     sendEndMs=int(time.time() * 1000), **info)
            else:
                emit(event="sent", msgId=res.msg_id, queueOffset=res.offset, status=res.status.name,
                     sendStartMs=t0, sendEndMs=int(time.time() * 1000), **info)
                sent += 1
            if args.interval_ms > 0:
                time.sleep(args.interval_ms / 1000.0)
        idx = []  # nothing left for the modes below
    try:
        if args.mode == "batch":
            for b in range(0, len(idx), args.batch_size):
                chunk = idx[b:b + args.batch_size]
                built = [build(i) for i in chunk]
                res = producer.send_batch([m for m, _ in built])
                emit(event="batch_sent", first=chunk[0], count=len(chunk), msgId=res.msg_id,
                     queueOffset=res.offset, status=res.status.name)
                for _, info in built:
                    emit(event="sent", batch=True, **info)
                    sent += 1
        else:
            for i in idx:
                msg, info = build(i)
                if args.mode == "sync":
                    t0 = int(time.time() * 1000)
                    res = producer.send_sync(msg)
                    t1 = int(time.time() * 1000)
                    emit(event="sent", msgId=res.msg_id, queueOffset=res.offset, status=res.status.name,
                         sendStartMs=t0, sendEndMs=t1, **info)
                elif args.mode == "oneway":
                    producer.send_oneway(msg)
                    emit(event="sent", oneway=True, **info)
                else:
                    cres = ffi._CSendResult()
                    rc = ffi.dll.SendMessageOrderlyByShardingKey(
                        producer._handle, msg._handle, info["orderKey"].encode(), ctypes.pointer(cres))
                    if rc != 0:
                        err = ffi.dll.GetLatestErrorMessage()
                        raise RuntimeError("SendMessageOrderlyByShardingKey failed (%d): %s" % (rc, common.to_str(err)))
                    emit(event="sent", msgId=cres.msgId.decode("utf-8"), queueOffset=cres.offset,
                         status=client.SendStatus(cres.sendStatus).name, **info)
                sent += 1
    except Exception as e:
        emit(event="error", stage="send", sent=sent, error="%s: %s" % (type(e).__name__, e))
        log("send failed after %d messages: %r" % (sent, e))
        common.hard_exit(1)

    if args.mode == "oneway":
        # Oneway requests are only queued on the socket; give them time to leave
        # before shutdown closes the connection.
        time.sleep(1.0)
    try:
        producer.shutdown()
    except Exception as e:
        log("producer shutdown: %r" % (e,))
    emit(event="done", sent=sent)
    common.hard_exit(0)


if __name__ == "__main__":
    main()
