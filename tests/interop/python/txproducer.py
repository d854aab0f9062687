#!/usr/bin/env python3
"""C++ client transactional producer scenario (librocketmq 2.1.0, C API).

rocketmq-python-cvs 2.1.0.3's Python layer (rocketmq/client.py) has no
transactional producer (its __all__: SendStatus, Message, RecvMessage,
Producer, PushConsumer, PullConsumer), but the librocketmq.so it bundles
exports the C++ core's transaction API (include/CProducer.h of 2.1.0):
CreateTransactionProducer(group, checkCallback, userData) and
SendMessageTransaction(producer, msg, executeCallback, userData, result).
This program drives those through ctypes, with the signatures the official
rocketmq-client-python 2.0.0 binding declares for its TransactionMQProducer;
the C++ core does all the protocol work (half message with TRAN_MSG,
END_TRANSACTION, answering CHECK_TRANSACTION_STATE).

Sends --count messages (same keys/tags/bodies/properties as producer.py);
message i gets outcome outcomes[i % len] of --outcome (comma-separated):
  commit / rollback: the local transaction answers that;
  unknown-then-commit / unknown-then-rollback: UNKNOWN, and the check-back
    (broker CHECK_TRANSACTION_STATE) answers commit / rollback;
  unknown-forever: UNKNOWN, and every check answers UNKNOWN.

Output: {"event":"started"}; per message {"event":"exec",key,answer,time} and
{"event":"sent",i,key,tag,outcome,status,msgId,queueOffset,sendStartMs,
sendEndMs}; {"event":"sent_all","sent":n}; per check {"event":"check",key,
uniqKey,msgId,transactionId (the __transactionId__ property, if any),topic,n,
answer,time}. It then stays up (answering checks) until stdin reaches EOF:
{"event":"done","sent":n,"checks":m}, and leaves without ShutdownProducer
(the broker just sees the connection close).
"""
import ctypes
import sys
import threading
import time
from ctypes import POINTER, c_char_p, c_int, c_void_p

import common
from common import emit, log

OUTCOMES = ["commit", "rollback", "unknown-then-commit", "unknown-then-rollback", "unknown-forever"]
# CTransactionStatus (include/CTransactionStatus.h)
E_COMMIT, E_ROLLBACK, E_UNKNOWN = 0, 1, 2
NAMES = {E_COMMIT: "COMMIT", E_ROLLBACK: "ROLLBACK", E_UNKNOWN: "UNKNOWN"}

CHECK_CB = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
EXEC_CB = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)


def main():
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--prefix", default="x")
    p.add_argument("--tags", default="TagA,TagB,TagC")
    p.add_argument("--outcome", default="commit")
    p.add_argument("--send-timeout-ms", type=int, default=5000)
    args = p.parse_args()
    outcomes = args.outcome.split(",")
    for o in outcomes:
        if o not in OUTCOMES:
            emit(event="error", stage="args", error="bad --outcome %s" % o)
            common.hard_exit(2)
    common.start_watchdog(args.timeout_ms, "txproducer")
    client, ffi = common.import_client(args.log_dir)
    dll = ffi.dll
    dll.CreateTransactionProducer.argtypes = [c_char_p, CHECK_CB, c_void_p]
    dll.CreateTransactionProducer.restype = c_void_p
    dll.SendMessageTransaction.argtypes = [c_void_p, c_void_p, EXEC_CB, c_void_p, POINTER(ffi._CSendResult)]
    dll.SendMessageTransaction.restype = c_int
    dll.GetOriginMessageKeys.argtypes = [c_void_p]
    dll.GetOriginMessageKeys.restype = c_char_p

    lock = threading.Lock()
    outcome_of = {}
    checks = {}
    current = {"outcome": None}

    def on_check(_producer, msg_ext, _data):
        try:
            key = common.to_str(dll.GetMessageKeys(msg_ext))
            with lock:
                n = checks.get(key, 0) + 1
                checks[key] = n
                outcome = outcome_of.get(key)
            if outcome in ("commit", "unknown-then-commit"):
                answer = E_COMMIT
            elif outcome in ("rollback", "unknown-then-rollback"):
                answer = E_ROLLBACK
            else:
                answer = E_UNKNOWN  # unknown-forever, or not one of ours
            emit(event="check", key=key, n=n, outcome=outcome, answer=NAMES[answer],
                 uniqKey=common.to_str(dll.GetMessageProperty(msg_ext, b"UNIQ_KEY")),
                 transactionId=common.to_str(dll.GetMessageProperty(msg_ext, b"__transactionId__")),
                 msgId=common.to_str(dll.GetMessageId(msg_ext)),
                 topic=common.to_str(dll.GetMessageTopic(msg_ext)),
                 time=int(time.time() * 1000))
            return answer
        except Exception as e:  # never let an exception cross into C++
            log("check callback: %r" % (e,))
            return E_UNKNOWN

    def on_exec(_producer, msg, _data):
        key = common.to_str(dll.GetOriginMessageKeys(msg))
        outcome = current["outcome"]
        with lock:
            outcome_of[key] = outcome
        answer = {"commit": E_COMMIT, "rollback": E_ROLLBACK}.get(outcome, E_UNKNOWN)
        emit(event="exec", key=key, answer=NAMES[answer], time=int(time.time() * 1000))
        return answer

    check_cb = CHECK_CB(on_check)
    exec_cb = EXEC_CB(on_exec)  # both kept referenced for the program's life
    handle = dll.CreateTransactionProducer(args.group.encode(), check_cb, None)
    if not handle:
        emit(event="error", stage="create", error="CreateTransactionProducer returned NULL")
        common.hard_exit(1)
    for rc, what in [
        (dll.SetProducerNameServerAddress(handle, args.namesrv.encode()), "namesrv"),
        (dll.SetProducerSendMsgTimeout(handle, args.send_timeout_ms), "timeout"),
        (dll.SetProducerLogPath(handle, (args.log_dir or ".").encode()), "log path"),
        (dll.StartProducer(handle), "start"),
    ]:
        if rc != 0:
            emit(event="error", stage="start", error="%s failed (%s): %s"
                 % (what, rc, common.to_str(dll.GetLatestErrorMessage())))
            common.hard_exit(1)
    emit(event="started", mode="transaction")

    tags = [t for t in args.tags.split(",") if t]
    sent = 0
    for i in range(args.start, args.start + args.count):
        outcome = outcomes[(i - args.start) % len(outcomes)]
        msg = client.Message(args.topic)
        key = "%s-k%d" % (args.prefix, i)
        tag = tags[i % len(tags)]
        msg.set_keys(key)
        msg.set_tags(tag)
        msg.set_body("%s body #%d ✓" % (args.prefix, i))
        msg.set_property("seq", str(i))
        msg.set_property("prefix", args.prefix)
        msg.set_property("color", "blue green")
        cres = ffi._CSendResult()
        current["outcome"] = outcome
        t0 = int(time.time() * 1000)
        rc = dll.SendMessageTransaction(handle, msg._handle, exec_cb, None, ctypes.pointer(cres))
        t1 = int(time.time() * 1000)
        if rc != 0:
            emit(event="error", stage="send", sent=sent, i=i,
                 error="SendMessageTransaction failed (%d): %s" % (rc, common.to_str(dll.GetLatestErrorMessage())))
            common.hard_exit(1)
        emit(event="sent", i=i, key=key, tag=tag, outcome=outcome, status=client.SendStatus(cres.sendStatus).name,
             msgId=cres.msgId.decode("utf-8"), queueOffset=cres.offset, sendStartMs=t0, sendEndMs=t1)
        sent += 1
    emit(event="sent_all", sent=sent)

    try:
        while sys.stdin.read(4096):
            pass
    except Exception:
        pass
    with lock:
        total = sum(checks.values())
    emit(event="done", sent=sent, checks=total)
    common.hard_exit(0)


if __name__ == "__main__":
    main()
