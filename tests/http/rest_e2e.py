"""End-to-end checks of shardmq's REST API with a plain HTTP client
(Python `requests`), run by tests/rest.rs against a live broker.

Usage: rest_e2e.py SCENARIO BASE_URL   (BASE_URL like http://127.0.0.1:8082)

Each scenario raises AssertionError (exit status 1, with the reason) on the
first wrong answer and prints `ok SCENARIO` at the end. ACL scenarios read
the accounts from the environment (SHARDMQ_ADMIN_AK/SK, SHARDMQ_APP_AK/SK).
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid

import requests

BASE = ""
S = requests.Session()
JSON = {"content-type": "application/json"}


def url(path):
    return BASE + path


def call(method, path, body=None, headers=None, params=None, expect=200, raw=None):
    h = dict(JSON)
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    r = S.request(method, url(path), data=data, headers=h, params=params, timeout=60)
    assert r.status_code == expect, f"{method} {path}: HTTP {r.status_code}, wanted {expect}: {r.text[:500]}"
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()
    return r.text


def error_of(method, path, status, code, **kw):
    """The request fails with HTTP `status` and the documented error body."""
    e = call(method, path, expect=status, **kw)
    err = e.get("error")
    assert isinstance(err, dict), f"{method} {path}: no error object: {e}"
    assert err.get("code") == code, f"{method} {path}: code {err.get('code')}, wanted {code}: {e}"
    assert isinstance(err.get("rocketmq_code"), int) and isinstance(err.get("message"), str) and err["message"], e
    return err


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def create_topic(name, queues=4):
    t = call("POST", "/v1/topics", {"name": name, "queues": queues}, expect=201)
    assert t["name"] == name and t["read_queues"] == queues, t
    return name


def produce(topic, messages):
    r = call("POST", f"/v1/topics/{topic}/messages", {"messages": messages})
    assert len(r["results"]) == len(messages), r
    return r["results"]


def receive(topic, group, **params):
    return call("GET", f"/v1/topics/{topic}/groups/{group}/messages", params=params)["messages"]


def ack(topic, group, acks, params=None):
    r = call("POST", f"/v1/topics/{topic}/groups/{group}/ack", {"acks": acks}, params=params)
    assert len(r["results"]) == len(acks), r
    return r["results"]


def drain(topic, group, want, deadline_s=20, **params):
    """Receives (and acks) until `want` messages came or the deadline."""
    got = []
    end = time.time() + deadline_s
    while len(got) < want and time.time() < end:
        batch = receive(topic, group, max=8, wait=2000, **params)
        if batch:
            cid = {"consumer_id": params["consumer_id"]} if "consumer_id" in params else None
            res = ack(topic, group, [{"handle": m["handle"], "status": "success"} for m in batch], cid)
            assert all(x["result"] == "ok" for x in res), res
        got.extend(batch)
    return got


# ---------------------------------------------------------------- scenarios


def produce_consume():
    topic = create_topic(unique("RestPC"))
    msgs = []
    for i in range(20):
        m = {"body": f"text-{i}", "tags": "even" if i % 2 == 0 else "odd", "keys": [f"k{i}", "common"],
             "attributes": {"seq": str(i), "origin": "rest"}}
        msgs.append(m)
    msgs.append({"body": base64.b64encode(b"\x00\xffbin").decode(), "body_encoding": "base64", "keys": "binkey"})
    msgs.append({"body": {"json": [1, 2, 3]}})
    sent = produce(topic, msgs)
    single = call("POST", f"/v1/topics/{topic}/messages", {"body": "single"})["results"]
    assert len(single) == 1
    sent += single
    ids = [r["message_id"] for r in sent]
    assert len(set(ids)) == len(ids), "message ids repeat"
    queues = {r["queue_id"] for r in sent}
    assert all(0 <= q < 4 for q in queues), sent
    status = call("GET", f"/v1/topics/{topic}")
    assert status["messages"] == 23, status
    assert sum(q["messages"] for q in status["queues"]) == 23, status

    for group in (unique("GA"), unique("GB")):
        got = drain(topic, group, 23)
        assert sorted(m["message_id"] for m in got) == sorted(ids), f"{group}: every message once"
        by_id = {m["message_id"]: m for m in got}
        for i in range(20):
            m = by_id[ids[i]]
            assert m["body"] == f"text-{i}" and m["body_encoding"] == "text", m
            assert m["tags"] == ("even" if i % 2 == 0 else "odd"), m
            assert m["keys"] == [f"k{i}", "common"], m
            assert m["attributes"] == {"seq": str(i), "origin": "rest"}, m
            assert m["topic"] == topic and m["reconsume_times"] == 0, m
            assert m["invisible_until_ms"] > m["store_time_ms"], m
        b = by_id[ids[20]]
        assert b["body_encoding"] == "base64" and base64.b64decode(b["body"]) == b"\x00\xffbin", b
        assert json.loads(by_id[ids[21]]["body"]) == {"json": [1, 2, 3]}
        assert receive(topic, group, max=32) == [], "nothing left after acks"
        prog = call("GET", f"/v1/groups/{group}", params={"topic": topic})
        assert prog["lag"] == 0 and len(prog["queues"]) == 4, prog
        assert sum(q["consumer_offset"] for q in prog["queues"]) == 23, prog

    # A tag filter: only `even` messages reach this group.
    g = unique("GT")
    got = drain(topic, g, 10, tags="even")
    assert len(got) == 10 and all(m["tags"] == "even" for m in got), [m["tags"] for m in got]
    # encoding=base64 gives every body in base64.
    g = unique("GE")
    m = receive(topic, g, max=1, encoding="base64")[0]
    assert m["body_encoding"] == "base64" and base64.b64decode(m["body"]), m


def groups_and_delay():
    topic = create_topic(unique("RestGd"), queues=4)
    msgs = [{"body": f"A{i}", "message_group": "A"} for i in range(5)]
    msgs += [{"body": f"B{i}", "message_group": "B"} for i in range(5)]
    msgs += [{"body": "later", "delay_seconds": 3}]
    msgs += [{"body": f"p{i}"} for i in range(5)]
    t0 = time.time()
    res = produce(topic, msgs)
    for g in ("A", "B"):
        rs = [r for m, r in zip(msgs, res) if m.get("message_group") == g]
        assert len({r["queue_id"] for r in rs}) == 1, f"group {g} on one queue: {rs}"
        offs = [r["queue_offset"] for r in rs]
        assert offs == sorted(offs) and len(set(offs)) == 5, f"group {g} stored in order: {offs}"
    plain = res[11:]
    assert len({r["queue_id"] for r in plain}) == 1, "a request's plain messages share a queue (one batch)"
    group = unique("GG")
    got = drain(topic, group, 15, deadline_s=10)
    assert len(got) == 15 and "later" not in [m["body"] for m in got], [m["body"] for m in got]
    for g in ("A", "B"):
        mine = sorted((m for m in got if m["body"].startswith(g)), key=lambda m: m["queue_offset"])
        assert [m["body"] for m in mine] == [f"{g}{i}" for i in range(5)], mine
    late = []
    while not late and time.time() - t0 < 20:
        late = receive(topic, group, max=4, wait=5000)
    assert [m["body"] for m in late] == ["later"], late
    assert time.time() - t0 >= 2.9, f"delayed message came after {time.time() - t0:.1f} s"


def invisibility():
    topic = create_topic(unique("RestInv"), queues=2)
    group = unique("GI")
    mid = produce(topic, [{"body": "come-back"}])[0]["message_id"]
    first = receive(topic, group, max=1, invisible=10000)
    t0 = time.time()
    assert [m["message_id"] for m in first] == [mid], first
    assert receive(topic, group, max=1) == [], "invisible while its time runs"
    again = []
    while not again and time.time() - t0 < 25:
        again = receive(topic, group, max=1, wait=5000, invisible=10000)
    waited = time.time() - t0
    assert again and again[0]["message_id"] == mid, "not acked: it comes back"
    assert waited >= 9.5, f"came back after {waited:.1f} s, before its 10 s invisible time"
    assert again[0]["reconsume_times"] == 1, again
    stale = ack(topic, group, [{"handle": first[0]["handle"]}])[0]
    assert stale["result"] == "stale_handle", stale
    ok = ack(topic, group, [{"handle": again[0]["handle"], "status": "success"}])[0]
    assert ok["result"] == "ok", ok
    assert receive(topic, group, max=1, wait=1500) == [], "acked: gone"

    # redeliver: back no sooner than its delay.
    mid = produce(topic, [{"body": "later"}])[0]["message_id"]
    m = receive(topic, group, max=1, wait=3000)[0]
    assert m["message_id"] == mid
    t1 = time.time()
    r = ack(topic, group, [{"handle": m["handle"], "status": "redeliver", "delay_seconds": 3}])[0]
    assert r["result"] == "ok", r
    back = []
    while not back and time.time() - t1 < 15:
        back = receive(topic, group, max=1, wait=5000)
    assert back and back[0]["message_id"] == mid, "redelivered"
    assert time.time() - t1 >= 2.9, f"redelivered after {time.time() - t1:.1f} s < 3 s"
    # fail: back after the first back-off step (1 s), one more attempt.
    t2 = time.time()
    r = ack(topic, group, [{"handle": back[0]["handle"], "status": "fail"}])[0]
    assert r["result"] == "ok", r
    failed = receive(topic, group, max=1, wait=10000)
    assert failed and failed[0]["message_id"] == mid, "failed: comes back"
    assert time.time() - t2 >= 0.9, "fail waits its back-off"
    assert failed[0]["reconsume_times"] == back[0]["reconsume_times"] + 1, failed
    ack(topic, group, [{"handle": failed[0]["handle"]}])

    # auto_ack: delivered once, never again.
    mid = produce(topic, [{"body": "once"}])[0]["message_id"]
    got = receive(topic, group, max=5, wait=3000, auto_ack="true")
    assert [m["message_id"] for m in got] == [mid], got
    assert receive(topic, group, max=5, wait=1000) == []


def dead_letters():
    topic = create_topic(unique("RestDlq"), queues=2)
    group = unique("GD")
    g = call("POST", "/v1/groups", {"name": group, "retry_max_times": 1}, expect=201)
    assert g["retry_max_times"] == 1, g
    call("POST", "/v1/groups", {"name": group, "retry_max_times": 1}, expect=200)
    mid = produce(topic, [{"body": "poison", "keys": ["bad"], "attributes": {"why": "test"}}])[0]["message_id"]
    deliveries = 0
    end = time.time() + 30
    while time.time() < end:
        got = receive(topic, group, max=1, wait=3000)
        if got:
            deliveries += 1
            ack(topic, group, [{"handle": got[0]["handle"], "status": "fail"}])
        dead = call("GET", f"/v1/groups/{group}/dlq")["messages"]
        if dead:
            break
    assert deliveries == 2, f"delivered {deliveries} times; retryMaxTimes 1 means 2"
    assert len(dead) == 1, dead
    d = dead[0]
    assert d["message_id"] == mid and d["origin_topic"] == topic and d["body"] == "poison", d
    assert d["keys"] == ["bad"] and d["attributes"].get("why") == "test", d
    # The DLQ is a topic a group can consume.
    dlq_topic = "%25DLQ%25" + group
    reader = receive(dlq_topic, unique("GR"), max=4, wait=3000)
    assert [m["message_id"] for m in reader] == [mid], reader
    # Resend to the origin: the group gets it again, same id.
    r = call("POST", f"/v1/groups/{group}/dlq/resend", {"message_ids": [mid, "no-such-id"]})
    assert [x["message_id"] for x in r["resent"]] == [mid] and r["not_found"] == ["no-such-id"], r
    back = receive(topic, group, max=1, wait=5000)
    assert back and back[0]["message_id"] == mid and back[0]["body"] == "poison", back
    ack(topic, group, [{"handle": back[0]["handle"]}])


def broadcast():
    topic = create_topic(unique("RestBc"), queues=4)
    group = unique("GBc")
    old = [r["message_id"] for r in produce(topic, [{"body": f"old-{i}"} for i in range(5)])]
    # c-late starts at the end; c-all and c-two from the start.
    assert receive(topic, group, mode="broadcast", consumer_id="clate", **{"from": "latest"}) == []
    new = [r["message_id"] for r in produce(topic, [{"body": f"new-{i}"} for i in range(3)])]
    for cid, want in (("call", old + new), ("ctwo", old + new), ("clate", new)):
        got = drain(topic, group, len(want), mode="broadcast", consumer_id=cid)
        assert sorted(m["message_id"] for m in got) == sorted(want), f"{cid}: {len(got)} of {len(want)}"
    # Positions are kept: nothing new for anyone.
    for cid in ("call", "ctwo", "clate"):
        assert receive(topic, group, mode="broadcast", consumer_id=cid, max=8) == [], cid
    # from=earliest starts again from the first message.
    first = receive(topic, group, max=3, mode="broadcast", consumer_id="ctwo", **{"from": "earliest"})
    assert len(first) == 3, first
    ack(topic, group, [{"handle": m["handle"]} for m in first], {"consumer_id": "ctwo"})
    got = first + drain(topic, group, 5, mode="broadcast", consumer_id="ctwo")
    assert sorted(m["message_id"] for m in got) == sorted(old + new), len(got)
    error_of("GET", f"/v1/topics/{topic}/groups/{group}/messages", 400, "bad_request", params={"mode": "broadcast"})


def long_poll():
    topic = create_topic(unique("RestLp"), queues=4)
    group = unique("GL")
    t0 = time.time()
    assert receive(topic, group, wait=1000) == []
    assert time.time() - t0 >= 0.9, "wait=1000 waits"

    def later():
        time.sleep(1.0)
        produce(topic, [{"body": "wake"}])

    th = threading.Thread(target=later)
    t1 = time.time()
    th.start()
    got = receive(topic, group, wait=15000)
    th.join()
    took = time.time() - t1
    assert [m["body"] for m in got] == ["wake"], got
    assert took < 6, f"a waiting receive took {took:.1f} s to see a new message"


def admin():
    t = unique("RestAdm")
    create_topic(t, queues=3)
    error_of("POST", "/v1/topics", 409, "conflict", body={"name": t})
    names = [x["name"] for x in call("GET", "/v1/topics")["topics"]]
    assert t in names and "TBW102" in names, names
    kinds = {x["name"]: x["kind"] for x in call("GET", "/v1/topics")["topics"]}
    assert kinds[t] == "normal" and kinds["TBW102"] == "system", kinds
    # Reset a group to the start: it consumes again.
    group = unique("GR")
    ids = [r["message_id"] for r in produce(t, [{"body": f"r{i}"} for i in range(6)])]
    assert len(drain(t, group, 6)) == 6
    r = call("POST", f"/v1/groups/{group}/reset", {"topic": t, "timestamp": 0})
    assert r["topic"] == t and len(r["queues"]) == 3 and all(q["offset"] == 0 for q in r["queues"]), r
    again = drain(t, group, 6)
    assert sorted(m["message_id"] for m in again) == sorted(ids), "reset: consumed again"
    g = unique("GC")
    call("POST", "/v1/groups", {"name": g, "orderly": True}, expect=201)
    groups = {x["name"]: x for x in call("GET", "/v1/groups")["groups"]}
    assert groups[g]["orderly"] is True and groups[g]["retry_max_times"] == 16, groups[g]
    r = call("DELETE", f"/v1/topics/{t}")
    assert r == {"name": t, "deleted": True}, r
    error_of("GET", f"/v1/topics/{t}", 404, "topic_not_found")
    error_of("DELETE", f"/v1/topics/{t}", 404, "topic_not_found")


def bad_input():
    t = create_topic(unique("RestBad"), queues=2)
    p = f"/v1/topics/{t}/messages"
    error_of("POST", p, 400, "bad_json", raw="{not json")
    error_of("POST", p, 400, "bad_json", raw=b"\xff\xfe")
    error_of("POST", p, 400, "bad_json", body={"messages": []})
    error_of("POST", p, 400, "bad_json", body={"body": ""})
    error_of("POST", p, 400, "bad_json", body={"body": "x", "attributes": {"TAGS": "reserved"}})
    error_of("POST", p, 400, "bad_json", body={"body": "%%", "body_encoding": "base64"})
    error_of("POST", p, 400, "bad_json", body={"body": "x", "delay_seconds": -1})
    error_of("POST", p, 415, "unsupported_media_type", raw="body=x", headers={"content-type": "text/plain"})
    big = {"body": "x" * (600 * 1024)}
    error_of("POST", p, 413, "payload_too_large", body=big)
    error_of("POST", p, 413, "payload_too_large", body={"messages": [{"body": "m"}] * 65})
    error_of("POST", "/v1/topics/NoSuchTopicRest/messages", 404, "topic_not_found", body={"body": "x"})
    error_of("GET", "/v1/topics/NoSuchTopicRest/groups/g/messages", 404, "topic_not_found")
    error_of("GET", "/v1/nothing/here", 404, "not_found")
    r = S.put(url(p), data="{}", headers=JSON, timeout=10)
    assert r.status_code == 405 and r.headers.get("allow") == "POST", (r.status_code, r.headers)
    assert r.json()["error"]["code"] == "method_not_allowed"
    g = f"/v1/topics/{t}/groups/gx/messages"
    for params in ({"max": 0}, {"max": 33}, {"invisible": 5000}, {"wait": 30001}, {"mode": "x"}, {"from": "x"}, {"auto_ack": "maybe"}):
        error_of("GET", g, 400, "bad_request", params=params)
    error_of("GET", f"/v1/topics/{t}/groups/bad%20group/messages", 400, "bad_request")
    a = f"/v1/topics/{t}/groups/gx/ack"
    r = ack(t, "gx", [{"handle": "nonsense"}, {"handle": "r1.0.0.0.1.0", "status": "bogus"}, {"handle": "r1.99.0.0.1.0"}])
    assert [x["result"] for x in r] == ["invalid_handle", "bad_json", "invalid_handle"], r
    assert ack(t, "gx", [{"handle": "r1.0.0.0.1.0"}])[0]["result"] == "stale_handle"
    error_of("POST", a, 400, "bad_json", body={"acks": [{"status": "success"}]})
    error_of("POST", "/v1/topics", 400, "bad_request", body={"name": "bad name"})
    error_of("POST", "/v1/topics", 400, "bad_json", body={"name": "Fine", "queues": 0})
    error_of("POST", "/v1/groups/g/reset", 400, "bad_json", body={"topic": t})
    # The broker still serves after all that.
    assert produce(t, [{"body": "still-fine"}])


def extras():
    spec = call("GET", "/v1/openapi.json")
    assert spec["openapi"].startswith("3.") and "/v1/topics/{topic}/messages" in spec["paths"], list(spec)
    m = S.get(url("/metrics"), timeout=10)
    assert m.status_code == 200 and "shardmq_" in m.text, m.text[:200]


def sign(ak, sk):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sig = hmac.new(sk.encode(), now.encode(), hashlib.sha1).hexdigest().upper()
    return {"x-mq-date-time": now,
            "authorization": f"MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={sig}"}


def acl():
    admin = (os.environ["SHARDMQ_ADMIN_AK"], os.environ["SHARDMQ_ADMIN_SK"])
    app = (os.environ["SHARDMQ_APP_AK"], os.environ["SHARDMQ_APP_SK"])
    topic = os.environ["SHARDMQ_APP_TOPIC"]
    error_of("GET", "/v1/topics", 401, "unauthorized")
    error_of("GET", "/v1/topics", 401, "unauthorized", headers=sign(admin[0], "wrong-secret"))
    error_of("POST", "/v1/topics", 403, "forbidden", body={"name": "AppMayNot"}, headers=sign(*app))
    call("POST", "/v1/topics", {"name": topic, "queues": 2}, headers=sign(*admin), expect=201)
    assert topic in [t["name"] for t in call("GET", "/v1/topics", headers=sign(*admin))["topics"]]
    error_of("POST", f"/v1/topics/{topic}/messages", 401, "unauthorized", body={"body": "anon"})
    r = call("POST", f"/v1/topics/{topic}/messages", {"body": "signed"}, headers=sign(*app))
    mid = r["results"][0]["message_id"]
    error_of("GET", f"/v1/topics/{topic}/groups/CG_rest/messages", 403, "forbidden", headers=sign(*app))
    got = call("GET", f"/v1/topics/{topic}/groups/CG_acl/messages", params={"wait": 3000}, headers=sign(*app))
    assert [m["message_id"] for m in got["messages"]] == [mid], got
    h = got["messages"][0]["handle"]
    r = call("POST", f"/v1/topics/{topic}/groups/CG_acl/ack", {"acks": [{"handle": h}]}, headers=sign(*app))
    assert r["results"][0]["result"] == "ok", r


SCENARIOS = {f.__name__: f for f in (produce_consume, groups_and_delay, invisibility, dead_letters, broadcast, long_poll, admin,
                                       bad_input, extras, acl)}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: rest_e2e.py {{{'|'.join(SCENARIOS)}}} BASE_URL")
    BASE = sys.argv[2].rstrip("/")
    SCENARIOS[sys.argv[1]]()
    print(f"ok {sys.argv[1]}")
