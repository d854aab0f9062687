#!/usr/bin/env python3
"""C++ client push consumer scenario (librocketmq 2.1.0 through rocketmq-python-cvs).

Subscribes --topic with --sub (e.g. "TagA || TagB") in CLUSTERING or
BROADCASTING mode, concurrently or --orderly (C++ ConsumeMessageOrderlyService:
LOCK_BATCH_MQ, one message at a time per queue), and prints every delivered
message as {"event":"msg",...}: topic, body, keys, tags, user props, msgId
(UNIQ_KEY when set), queueId, queueOffset, reconsumeTimes, and for the
timing scenarios recvMs (wall clock on arrival), storeMs / bornMs (the
record's timestamps) and sys (broker-set properties present on it, SYS_PROPS).

Messages tagged --ignore-tag (default "Warmup") are reported as
{"event":"ignored",...} and not counted. Stops when
  * --expect N > 0 distinct keys were received, after --linger-ms more
    (to catch duplicates / extra messages), or
  * stdin reaches EOF (the test closes it), or
  * --timeout-ms runs out (then {"event":"timeout"}, exit code 3).
On leaving it prints {"event":"done"} and, by default, exits without
ShutdownPushConsumer (see --shutdown and --commit-wait-ms).
Prints {"event":"started"} once start() returned (the C++ client has done its
first rebalance by then) and {"event":"done",...} at the end.
"""
import ctypes
import sys
import threading
import time

import common
from common import emit, log

# librocketmq 2.1.0 does not export a C function for consumeFromWhere; the
# CPushConsumer handle is the C++ DefaultMQPushConsumer itself, so call its
# (exported, non-virtual) setter directly.
_SET_CFW = "_ZN8rocketmq21DefaultMQPushConsumer19setConsumeFromWhereENS_16ConsumeFromWhereE"
_CFW = {"last": 0, "first": 4}  # CONSUME_FROM_LAST_OFFSET, CONSUME_FROM_FIRST_OFFSET (include/ConsumeType.h)
SYS_PROPS = ["RETRY_TOPIC", "ORIGIN_MESSAGE_ID", "DELAY", "TIMER_DELIVER_MS", "TIMER_DELAY_SEC", "REAL_TOPIC",
             "REAL_QID", "TRAN_MSG", "PGROUP", "__transactionId__", "TRANSACTION_CHECK_TIMES"]


def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--sub", default="*", help='tag expression, e.g. "TagA || TagB"')
    p.add_argument("--model", choices=["clustering", "broadcasting"], default="clustering")
    p.add_argument("--orderly", action="store_true")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--linger-ms", type=int, default=2000)
    p.add_argument("--ignore-tag", default="Warmup")
    p.add_argument("--from", dest="from_where", choices=["default", "last", "first"], default="default",
                   help="consumeFromWhere for a group without offsets (default: the client's, LAST_OFFSET)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--instance", default=None, help="instance name (part of the clientId ip@instance)")
    p.add_argument("--commit-wait-ms", type=int, default=0,
                   help="before leaving, wait until this long after the last delivery so the client's "
                        "5 s offset-persist timer has committed every consumed offset")
    p.add_argument("--shutdown", action="store_true",
                   help="call ShutdownPushConsumer (final offset commit + UNREGISTER_CLIENT); this turns on "
                        "message trace (RMQ_SYS_TRACE_TOPIC), because 2.1.0 crashes in shutdown without it")
    p.add_argument("--ak", default="", help="sign every request as this ACL account")
    p.add_argument("--sk", default="", help="the ACL account's secret key")
    args = p.parse_args()
    common.start_watchdog(args.timeout_ms, "consumer")
    client, ffi = common.import_client(args.log_dir)

    model = ffi.MessageModel.BROADCASTING if args.model == "broadcasting" else ffi.MessageModel.CLUSTERING
    consumer = client.PushConsumer(args.group, orderly=args.orderly, message_model=model)
    if args.log_dir:
        consumer.set_log_root_path(args.log_dir)
    consumer.set_namesrv_addr(args.namesrv)
    if args.ak:
        # The C++ core's session credentials: AccessKey, Signature and the
        # channel in OnsChannel, on every request.
        consumer.set_session_credentials(args.ak, args.sk, "ALIYUN")
    if args.threads:
        consumer.set_thread_count(args.threads)
    if args.instance:
        consumer.set_instance_name(args.instance)
    if args.shutdown:
        # DefaultMQPushConsumerImpl::shutdown() calls shutdownMessageTraceInnerProducer()
        # unconditionally and dereferences a null producer when trace is off (SIGSEGV).
        ffi.dll.SetPushConsumerMessageTrace.argtypes = [ctypes.c_void_p, ctypes.c_int]
        ffi.dll.SetPushConsumerMessageTrace(consumer._handle, 0)  # CTraceModel OPEN = 0
    if args.from_where != "default":
        setter = getattr(ffi.dll, _SET_CFW)
        setter.argtypes = [ctypes.c_void_p, ctypes.c_int]
        setter.restype = None
        setter(consumer._handle, _CFW[args.from_where])

    lock = threading.Lock()
    seen = {}
    state = {"deliveries": 0, "complete_at": None, "last_at": None}
    finished = threading.Event()

    def on_message(msg):
        recv_ms = int(time.time() * 1000)
        tags = common.to_str(msg.tags)
        props = {}
        for name in common.USER_PROPS:
            v = common.to_str(msg.get_property(name))
            if v:
                props[name] = v
        uniq = common.to_str(msg.get_property("UNIQ_KEY"))
        rec = dict(
            topic=msg.topic,
            body=common.to_str(msg.body),
            keys=common.to_str(msg.keys),
            tags=tags,
            props=props,
            uniqKey=uniq,
            msgId=msg.id,
            queueId=msg.queue_id,
            queueOffset=msg.queue_offset,
            reconsumeTimes=msg.reconsume_times,
            recvMs=recv_ms,
            storeMs=msg.store_timestamp,
            bornMs=msg.born_timestamp,
            offsetMsgId=msg.id,
            sys={n: common.to_str(msg.get_property(n)) for n in SYS_PROPS if msg.get_property(n)},
            status="CONSUME_SUCCESS",
        )
        if args.ignore_tag and tags == args.ignore_tag:
            emit(event="ignored", **rec)
            return
        emit(event="msg", **rec)
        with lock:
            state["deliveries"] += 1
            state["last_at"] = time.monotonic()
            key = rec["keys"]
            seen[key] = seen.get(key, 0) + 1
            if args.expect > 0 and len(seen) >= args.expect and state["complete_at"] is None:
                state["complete_at"] = time.monotonic()
                emit(event="complete", distinct=len(seen))

    consumer.subscribe(args.topic, on_message, args.sub)
    try:
        consumer.start()
    except Exception as e:
        emit(event="error", stage="start", error=str(e))
        common.hard_exit(1)
    emit(event="started", model=args.model, orderly=args.orderly, sub=args.sub)

    def stdin_watch():
        try:
            while sys.stdin.read(4096):
                pass
        except Exception:
            pass
        finished.set()

    threading.Thread(target=stdin_watch, daemon=True).start()

    while not finished.is_set():
        with lock:
            done_at = state["complete_at"]
        if done_at is not None and time.monotonic() - done_at >= args.linger_ms / 1000.0:
            break
        finished.wait(0.05)

    with lock:
        last_at = state["last_at"]
    if args.commit_wait_ms and last_at is not None:
        left = args.commit_wait_ms / 1000.0 - (time.monotonic() - last_at)
        if left > 0:
            time.sleep(left)
    with lock:
        emit(event="done", distinct=len(seen), deliveries=state["deliveries"])
    if args.shutdown:
        try:
            consumer.shutdown()  # persists (commits) consumer offsets, unregisters
            emit(event="shutdown")
        except Exception as e:
            log("consumer shutdown: %r" % (e,))
    # Without --shutdown: leave abruptly (the broker sees the connection close);
    # offsets were committed by the client's 5 s timer / pull piggy-backing.
    common.hard_exit(0)


if __name__ == "__main__":
    main()
