"""The 5.x gRPC Python client (rocketmq-python-client 5.1.2), unmodified,
in one process: a producer sends --count normal messages (keys n0..), one
`nack-me`, one FIFO message (message group `group-1`), one delayed by
--delay-ms and two transactional ones (tx-commit committed, tx-rollback
rolled back); then a SimpleConsumer receives with invisible time 10 s and
acks everything except `nack-me` on its first delivery, until --linger-ms
after the last delivery. JSON lines on stdout: sent, delay, received,
acked, ack-error, receive-error, poll, error, done (the same events as the Java
program `grpc` of tests/interop/java5)."""

import argparse
import json
import sys
import threading
import time

from rocketmq import (ClientConfiguration, Credentials, FilterExpression, Message, Producer,
                      SimpleConsumer, TransactionChecker, TransactionResolution)


def emit(**kv):
    sys.stdout.write(json.dumps(kv) + "\n")
    sys.stdout.flush()


def now_ms():
    return int(time.time() * 1000)


class Rollback(TransactionChecker):
    def check(self, message):
        return TransactionResolution.ROLLBACK


def message(topic, key, body, group=None, due=None):
    m = Message()
    m.topic = topic
    m.body = body.encode()
    m.tag = "TagA"
    m.keys = key
    if group:
        m.message_group = group
    if due:
        m.delivery_timestamp = due
    return m


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--endpoint", required=True)
    a.add_argument("--topic", required=True)
    a.add_argument("--group", required=True)
    a.add_argument("--count", type=int, default=5)
    a.add_argument("--delay-ms", type=int, default=3000)
    a.add_argument("--linger-ms", type=int, default=14000)
    a.add_argument("--timeout-ms", type=int, default=120000)
    o = a.parse_args()

    def watchdog():
        emit(event="error", stage="watchdog", error="timed out after %d ms" % o.timeout_ms)
        sys.stdout.flush()
        import os
        os._exit(3)

    t = threading.Timer(o.timeout_ms / 1000.0, watchdog)
    t.daemon = True
    t.start()
    cfg = ClientConfiguration(o.endpoint, Credentials(), request_timeout=5)
    producer = Producer(cfg, (o.topic,), Rollback())
    try:
        producer.startup()
        sends = [("n%d" % i, "body-%d" % i, None, None) for i in range(o.count)]
        sends.append(("nack-me", "again", None, None))
        sends.append(("fifo", "fifo", "group-1", None))
        for key, body, group, due in sends:
            r = producer.send(message(o.topic, key, body, group, due))
            emit(event="sent", key=key, id=str(r.message_id))
        # This client takes the delivery time in seconds (it fills the
        # protobuf Timestamp's seconds with it).
        due_s = (now_ms() + o.delay_ms + 999) // 1000
        emit(event="delay", dueMs=due_s * 1000)
        r = producer.send(message(o.topic, "delayed", "later", None, due_s))
        emit(event="sent", key="delayed", id=str(r.message_id))
        for key in ("tx-commit", "tx-rollback"):
            tx = producer.begin_transaction()
            r = producer.send(message(o.topic, key, key), tx)
            emit(event="sent", key=key, id=str(r.message_id))
            if key == "tx-commit":
                tx.commit()
            else:
                tx.rollback()
    except Exception as e:  # noqa: BLE001 - reported to the test
        emit(event="error", stage="send", error=repr(e))
        sys.stdout.flush()
        import os
        os._exit(1)
    consumer = SimpleConsumer(cfg, o.group, {o.topic: FilterExpression()}, await_duration=5)
    try:
        consumer.startup()
    except Exception as e:  # noqa: BLE001
        emit(event="error", stage="consumer-start", error=repr(e))
        import os
        os._exit(1)
    nacked = set()
    last = now_ms()
    while now_ms() - last < o.linger_ms:
        began = now_ms()
        try:
            msgs = consumer.receive(16, 10)
        except Exception as e:  # noqa: BLE001
            emit(event="receive-error", error=repr(e))
            time.sleep(0.2)
            continue
        # One line per receive, for the test's diagnostics on a failure.
        emit(event="poll", atMs=began, ms=now_ms() - began, n=len(msgs or []))
        for m in msgs or []:
            keys = m.keys
            if isinstance(keys, (list, tuple, set, frozenset)):
                key = sorted(keys)[0] if keys else ""
            else:
                key = keys or ""
            emit(event="received", key=key, id=str(m.message_id), tag=m.tag or "",
                 attempt=m.delivery_attempt, body=m.body.decode(), recvMs=now_ms(),
                 group=m.message_group or "")
            last = now_ms()
            if key == "nack-me" and key not in nacked:
                nacked.add(key)
                continue
            try:
                consumer.ack(m)
                emit(event="acked", key=key)
            except Exception as e:  # noqa: BLE001
                emit(event="ack-error", key=key, error=repr(e))
    emit(event="done")
    sys.stdout.flush()
    import os
    os._exit(0)  # the client's threads would keep the process alive


if __name__ == "__main__":
    main()
