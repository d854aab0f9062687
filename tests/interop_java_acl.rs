//! ACL (issue 13) with the reference Java client, unmodified: rocketmq-client
//! 4.9.8 signing every request with rocketmq-acl's `AclClientRPCHook`
//! (tests/interop/java, program `acl`), against the real `shardmq serve`
//! with `aclEnable=true`, and `shardmq admin` with an admin account.
//!
//! One broker, one ACL file, every case in turn: a permitted account
//! produces and consumes; a wrong secret, a missing permission, a DENY, an
//! address outside the account's range and an unknown group are refused
//! with NO_PERMISSION (16) and a remark naming what is missing, and write
//! or read nothing; an account created with `shardmq admin acl update`
//! works on every shard at once; an edit of the file on disk is picked up;
//! no secret appears in the broker's log, metrics or admin output. The
//! same for the Java 5.x gRPC client, ali-ons and the C++ core, each with
//! its own signer.

#[path = "interop/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const ADMIN: (&str, &str) = ("AdminKey1", "admin-secret-XYZ1");
const APP: (&str, &str) = ("AppUser01", "app-secret-ABC2");
const FAR: (&str, &str) = ("FarAway01", "far-secret-QRS3");
const VIEWER: (&str, &str) = ("Viewer001", "viewer-secret-LMN4");
/// Only ever used with a wrong secret: its failures slow down this account
/// from 127.0.0.1 (the limiter counts per address and account), no other.
const GUESSED: (&str, &str) = ("Guessed01", "guessed-secret-UVW5");
const WRONG: &str = "not-the-secret-9";

fn acl_file(app_topics: &str) -> String {
    format!(
        "globalWhiteRemoteAddresses: []\n\
         accounts:\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    admin: true\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n\
         \x20   topicPerms: [{app_topics}]\n    groupPerms: [CG_acl=SUB]\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    whiteRemoteAddress: 10.9.*.*\n\
         \x20   defaultTopicPerm: PUB|SUB\n    defaultGroupPerm: SUB\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: PUB|SUB\n    defaultGroupPerm: SUB\n",
        ADMIN.0, ADMIN.1, APP.0, APP.1, FAR.0, FAR.1, GUESSED.0, GUESSED.1
    )
}

/// `shardmq admin --broker B [--access-key AK] ARGS` with the secret in
/// SHARDMQ_SECRET_KEY; (success, stdout + stderr).
fn admin(broker: &Broker, who: Option<(&str, &str)>, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(shardmq_bin());
    cmd.args(["admin", "--broker", &format!("127.0.0.1:{}", broker.ports.broker)]);
    cmd.env_remove("SHARDMQ_SECRET_KEY");
    if let Some((ak, sk)) = who {
        cmd.args(["--access-key", ak]).env("SHARDMQ_SECRET_KEY", sk);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().expect("run shardmq admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn admin_ok(broker: &Broker, args: &[&str]) -> String {
    let (ok, out) = admin(broker, Some(ADMIN), args);
    assert!(ok, "shardmq admin {args:?} as the admin account failed: {out}");
    out
}

fn java(broker: &Broker, who: (&str, &str), mode: &str, topic: &str, group: &str) -> Args {
    Client::Java
        .program("acl", broker, topic, group)
        .arg("ak", who.0)
        .arg("sk", who.1)
        .arg("mode", mode)
        .label(mode)
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Every send refused with NO_PERMISSION and a remark containing `why`.
fn assert_sends_refused(ctx: &str, events: &[Value], count: usize, why: &str) {
    assert!(of(events, "sent").is_empty(), "{ctx}: a send was accepted: {events:?}");
    let errors = of(events, "send-error");
    assert_eq!(errors.len(), count, "{ctx}: {events:?}");
    for e in errors {
        assert_eq!(e["code"], 16, "{ctx}: refused with NO_PERMISSION: {e}");
        let remark = e["error"].as_str().unwrap_or("");
        assert!(remark.contains(why), "{ctx}: the remark {remark:?} should say {why:?}");
    }
}

/// Messages stored in `topic` (sum of the queues' max offsets).
fn stored(broker: &Broker, topic: &str) -> i64 {
    stored_per_topic_status(&admin_ok(broker, &["--json", "topic", "status", topic]))
}

fn grep_secrets(what: &str, text: &str) {
    for secret in [ADMIN.1, APP.1, FAR.1, VIEWER.1, GUESSED.1, WRONG] {
        assert!(!text.contains(secret), "{what} contains the secret {secret:?}:\n{text}");
    }
}

fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn write_acl(path: &Path, text: &str) {
    // Through a rename, as editors and config tools do.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write ACL file");
    std::fs::rename(&tmp, path).expect("rename ACL file");
}

#[test]
fn java_clients_with_acl_accounts_are_checked_on_every_request() {
    let _g = serial();
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_path = dir.path().join("plain_acl.yml");
    write_acl(&acl_path, &acl_file("AclOrders=PUB|SUB, AclOther=SUB, AclDenied=DENY"));
    let metrics_port = free_port();
    let acl_arg = acl_path.display().to_string();
    let metrics_arg = metrics_port.to_string();
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("aclEnable", "true"),
            ("aclFile", &acl_arg),
            ("metricsPort", &metrics_arg),
        ],
    );

    // Admin requests: none without credentials, none from a plain account.
    let (ok, out) = admin(&broker, None, &["topic", "create", "AclOrders"]);
    assert!(
        !ok && out.contains("NO_PERMISSION (16)") && out.contains("no AccessKey"),
        "{out}"
    );
    let (ok, out) = admin(&broker, Some(APP), &["topic", "create", "AclOrders"]);
    assert!(!ok && out.contains("needs an admin account"), "{out}");
    for t in ["AclOrders", "AclOther", "AclDenied"] {
        admin_ok(&broker, &["topic", "create", t]);
    }

    // A permitted account produces and consumes.
    let sent = java(&broker, APP, "produce", "AclOrders", "PG_acl")
        .arg("count", 5)
        .run();
    let sent = of(&sent, "sent").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(sent.len(), 5, "[java acl] the permitted account's sends: {sent:?}");
    let got = java(&broker, APP, "consume", "AclOrders", "CG_acl")
        .arg("count", 5)
        .run();
    let mut keys: Vec<String> = of(&got, "received")
        .iter()
        .map(|e| e["key"].as_str().unwrap_or("").to_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        (0..5).map(|i| format!("acl-k{i}")).collect::<Vec<_>>(),
        "[java acl] the permitted account pulls every message once: {got:?}"
    );
    for e in of(&got, "received") {
        let i = e["key"].as_str().unwrap_or("").trim_start_matches("acl-k").to_owned();
        assert_eq!(e["body"], format!("acl body #{i}"));
    }

    // Refusals: nothing written.
    let ev = java(&broker, (GUESSED.0, WRONG), "produce", "AclOrders", "PG_acl")
        .arg("count", 2)
        .run();
    assert_sends_refused("[java acl] wrong secret", &ev, 2, "check signature failed");
    let ev = java(&broker, APP, "produce", "AclOther", "PG_acl")
        .arg("count", 2)
        .run();
    assert_sends_refused("[java acl] SUB only", &ev, 2, "no PUB permission on topic:AclOther");
    let ev = java(&broker, APP, "produce", "AclDenied", "PG_acl")
        .arg("count", 2)
        .run();
    assert_sends_refused("[java acl] DENY", &ev, 2, "no PUB permission on topic:AclDenied");
    let ev = java(&broker, FAR, "produce", "AclOrders", "PG_acl")
        .arg("count", 2)
        .run();
    assert_sends_refused(
        "[java acl] outside whiteRemoteAddress",
        &ev,
        2,
        "may not connect from 127.0.0.1",
    );
    assert_eq!(stored(&broker, "AclOrders"), 5, "refused sends stored nothing");
    assert_eq!(stored(&broker, "AclOther"), 0);
    assert_eq!(stored(&broker, "AclDenied"), 0);

    // Refusals: nothing read. The wrong secret's later pulls may be
    // answered unchecked: that account failed too often from here.
    for (ctx, who, group, why) in [
        (
            "group without permission",
            APP,
            "CG_other",
            "no SUB permission on group:CG_other",
        ),
        ("wrong secret", (GUESSED.0, WRONG), "CG_acl", "check signature failed"),
    ] {
        let ev = java(&broker, who, "consume", "AclOrders", group)
            .arg("count", 5)
            .arg("wait-ms", 3000)
            .run();
        assert!(
            of(&ev, "received").is_empty(),
            "[java acl] {ctx}: read messages: {ev:?}"
        );
        let errors = of(&ev, "pull-error");
        assert!(!errors.is_empty(), "[java acl] {ctx}: {ev:?}");
        for e in &errors {
            assert_eq!(e["code"], 16, "[java acl] {ctx}: {e}");
            let remark = e["error"].as_str().unwrap_or("");
            assert!(
                remark.contains(why) || remark.contains("too many failed authentications"),
                "[java acl] {ctx}: {e}"
            );
        }
        assert!(
            errors.iter().any(|e| e["error"].as_str().unwrap_or("").contains(why)),
            "[java acl] {ctx}: {ev:?}"
        );
    }

    // An account made with the admin tool is known to every shard at once;
    // viewing a message by id checks the message's own topic.
    admin_ok(
        &broker,
        &[
            "acl",
            "update",
            VIEWER.0,
            "--secret",
            VIEWER.1,
            "--topic-perms",
            "AclOther=SUB",
        ],
    );
    let id = sent[0]["offsetMsgId"].as_str().expect("offsetMsgId").to_owned();
    let ev = java(&broker, APP, "view", "AclOrders", "CG_acl")
        .arg("msg-id", &id)
        .run();
    assert_eq!(of(&ev, "viewed").len(), 1, "[java acl] view by id, permitted: {ev:?}");
    assert_eq!(of(&ev, "viewed")[0]["key"], "acl-k0");
    let ev = java(&broker, VIEWER, "view", "AclOrders", "CG_acl")
        .arg("msg-id", &id)
        .run();
    let e = of(&ev, "view-error");
    assert!(
        e.len() == 1 && e[0]["code"] == 16 && e[0]["error"].as_str().unwrap_or("").contains("AclOrders"),
        "[java acl] a message of a topic the account may not read is not shown: {ev:?}"
    );
    let ev = java(&broker, VIEWER, "produce", "AclOther", "PG_acl")
        .arg("count", 1)
        .run();
    assert_sends_refused(
        "[java acl] new account, SUB only",
        &ev,
        1,
        "no PUB permission on topic:AclOther",
    );

    // The file edited on disk is reloaded: AclOther becomes writable.
    write_acl(
        &acl_path,
        &acl_file("AclOrders=PUB|SUB, AclOther=PUB|SUB, AclDenied=DENY"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ev = java(&broker, APP, "produce", "AclOther", "PG_acl")
            .arg("count", 1)
            .run();
        if of(&ev, "sent").len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[java acl] the edited ACL file was not reloaded: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The reload replaced the file's accounts: the one added by the admin
    // tool (saved into the file before the edit) is gone with the rewrite.
    let shown = admin_ok(&broker, &["--json", "acl", "show"]);
    let v: Value = serde_json::from_str(&shown).expect("acl show JSON");
    let keys: Vec<&str> = v["plainAccessConfigs"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["accessKey"].as_str())
        .collect();
    assert_eq!(keys, [ADMIN.0, APP.0, FAR.0, GUESSED.0], "{shown}");

    // The audit log: admin changes with their account, refusals.
    let store = broker.store_dir().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let out = admin_ok(&broker, &["--json", "audit", "--store", &store]);
        let events: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let seen = |request: &str, key: &str, resource: &str, result: &str| {
            events.iter().any(|e| {
                e["request"] == request && e["accessKey"] == key && e["resource"] == resource && e["result"] == result
            })
        };
        if seen("UPDATE_AND_CREATE_TOPIC", ADMIN.0, "topic:AclOrders", "ok")
            // `topic create` reads the topics first: refused there.
            && seen("GET_ALL_TOPIC_CONFIG", APP.0, "", "refused")
            && seen("UPDATE_AND_CREATE_ACL_CONFIG", ADMIN.0, "account:Viewer001", "ok")
            && seen("SEND_MESSAGE_V2", GUESSED.0, "topic:AclOrders", "refused")
        {
            break out;
        }
        assert!(Instant::now() < deadline, "the audit log lacks events:\n{out}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let (ok, filtered) = admin(
        &broker,
        None,
        &["--json", "audit", "--store", &store, "--account", GUESSED.0],
    );
    assert!(ok && filtered.lines().count() >= 2, "{filtered}");
    assert!(filtered.lines().all(|l| l.contains(GUESSED.0)), "{filtered}");

    // No secret anywhere we print.
    grep_secrets("the audit log", &audit);
    grep_secrets("acl show --json", &shown);
    grep_secrets("acl show", &admin_ok(&broker, &["acl", "show"]));
    grep_secrets("/metrics", &metrics(metrics_port));
    let log = std::fs::read_to_string(broker.log_path()).expect("broker log");
    assert!(
        log.contains("ACL: refused SEND_MESSAGE") && log.contains("check signature failed"),
        "failed authentications are logged:\n{}",
        broker.log_tail()
    );
    grep_secrets("the broker log", &log);
}

/// A run of a Java 5.x gRPC program that may end in an error event: its
/// events, whatever its exit.
fn java5_events(args: Args) -> Vec<Value> {
    let mut p = args.spawn();
    p.close_stdin();
    p.wait_exit(PROC_TIMEOUT);
    p.events()
}

/// The Java 5.x gRPC client (rocketmq-client-java, `StaticSessionCredentialsProvider`)
/// signs each call's `authorization` header: a permitted account sends,
/// receives and acks; a wrong secret, a topic it may only read and a group
/// it may not use are refused, and nothing is stored or delivered.
#[test]
fn java_grpc_clients_with_acl_accounts_are_checked_on_every_call() {
    let _g = serial();
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_path = dir.path().join("plain_acl.yml");
    write_acl(&acl_path, &acl_file("AclOrders=PUB|SUB, AclOther=SUB"));
    let (access, shard_base) = (free_port(), Ports::pick().shards);
    let (acl_arg, access_arg, base_arg) = (
        acl_path.display().to_string(),
        access.to_string(),
        shard_base.to_string(),
    );
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("aclEnable", "true"),
            ("aclFile", &acl_arg),
            ("grpcListenPort", &access_arg),
            ("grpcShardPortBase", &base_arg),
        ],
    );
    let endpoint = format!("127.0.0.1:{access}");
    for t in ["AclOrders", "AclOther"] {
        admin_ok(&broker, &["topic", "create", t]);
    }
    let send = |who: (&str, &str), topic: &str, count: usize| {
        Client::Java5
            .program("grpc-send", &broker, topic, "")
            .arg("endpoint", &endpoint)
            .arg("prefix", "g")
            .arg("count", count)
            .arg("ak", who.0)
            .arg("sk", who.1)
            .label("acl")
    };
    let consume = |who: (&str, &str), group: &str, timeout_ms: u64| {
        Client::Java5
            .program("grpc-simple", &broker, "AclOrders", group)
            .arg("endpoint", &endpoint)
            .arg("ak", who.0)
            .arg("sk", who.1)
            .arg("until-acked", 3)
            .arg("linger-ms", 500)
            .arg("timeout-ms", timeout_ms)
            .label("acl")
    };

    let ev = send(APP, "AclOrders", 3).run();
    assert_eq!(
        of(&ev, "sent").len(),
        3,
        "[java5 gRPC acl] the permitted account's sends: {ev:?}"
    );
    let ev = consume(APP, "CG_acl", 40_000).run();
    let mut acked: Vec<&str> = of(&ev, "acked").iter().filter_map(|e| e["key"].as_str()).collect();
    acked.sort();
    assert_eq!(
        acked,
        ["g-0", "g-1", "g-2"],
        "[java5 gRPC acl] received and acked: {ev:?}"
    );

    let refused = |ctx: &str, ev: &[Value], why: &str| {
        assert!(
            of(ev, "sent").is_empty() && of(ev, "received").is_empty(),
            "{ctx}: {ev:?}"
        );
        let text = serde_json::to_string(ev).unwrap_or_default();
        assert!(
            text.contains(why),
            "{ctx}: the client's error should say {why:?}: {ev:?}"
        );
    };
    let ev = java5_events(send((GUESSED.0, WRONG), "AclOrders", 1));
    refused("[java5 gRPC acl] wrong secret", &ev, "check signature failed");
    let ev = java5_events(send(APP, "AclOther", 1));
    refused("[java5 gRPC acl] SUB only", &ev, "no PUB permission on topic:AclOther");
    let ev = java5_events(consume(APP, "CG_other", 12_000));
    refused(
        "[java5 gRPC acl] group without permission",
        &ev,
        "no SUB permission on group:CG_other",
    );
    assert_eq!(stored(&broker, "AclOther"), 0, "refused sends stored nothing");
    assert_eq!(stored(&broker, "AclOrders"), 3);
    let log = std::fs::read_to_string(broker.log_path()).expect("broker log");
    grep_secrets("the broker log", &log);
}

/// ali-ons (Node.js, `accessKeyId`/`accessKeySecret`: its own signer, with
/// `OnsChannel`) produces and consumes with a permitted account; its sends
/// with a wrong secret or to a topic it may only read are refused.
#[test]
fn alions_with_acl_accounts_is_checked_on_every_request() {
    remoting_client_with_acl(Client::AliOns);
}

/// The C++ core (rocketmq-client-cpp 2.x through its Python binding,
/// `set_session_credentials`: its own signer) as ali-ons above.
#[test]
fn cpp_with_acl_accounts_is_checked_on_every_request() {
    remoting_client_with_acl(Client::Cpp);
}

fn remoting_client_with_acl(client: Client) {
    let ctx = format!("[{} acl]", client.name());
    let _g = serial();
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_path = dir.path().join("plain_acl.yml");
    write_acl(&acl_path, &acl_file("AclOrders=PUB|SUB, AclOther=SUB"));
    let acl_arg = acl_path.display().to_string();
    let broker = Broker::start_with("SYNC_FLUSH", &[("aclEnable", "true"), ("aclFile", &acl_arg)]);
    for t in ["AclOrders", "AclOther"] {
        admin_ok(&broker, &["topic", "create", t]);
    }
    let produce = |who: (&str, &str), topic: &str| {
        client
            .program("producer", &broker, topic, "PG_acl")
            .arg("ak", who.0)
            .arg("sk", who.1)
            .arg("prefix", "n")
            .arg("count", 3)
            .label("acl")
    };
    let sent = sent_of(&produce(APP, "AclOrders").run());
    assert_eq!(sent.len(), 3, "{ctx} the permitted account's sends");
    // It runs until stdin closes (or --expect and --linger-ms are met).
    let mut consumer = client
        .program("consumer", &broker, "AclOrders", "CG_acl")
        .arg("ak", APP.0)
        .arg("sk", APP.1)
        .arg("from", "first")
        .arg("expect", 3)
        .arg("linger-ms", 500)
        .label("acl")
        .spawn();
    consumer.wait_event("done", Duration::from_secs(40));
    consumer.stop();
    assert_exactly_once(&ctx, &sent, &recv_of(&consumer.events()));
    // These clients report a refused send without the broker's remark
    // (ali-ons: "Send [4] times, still failed"): what was refused shows in
    // the store and, for a failed authentication, in the broker's log.
    for (case, who, topic) in [
        ("wrong secret", (GUESSED.0, WRONG), "AclOrders"),
        ("SUB only", APP, "AclOther"),
    ] {
        let mut p = produce(who, topic).spawn();
        p.close_stdin();
        p.wait_exit(PROC_TIMEOUT);
        let ev = p.events();
        assert!(sent_of(&ev).is_empty(), "{ctx} {case}: a send was accepted: {ev:?}");
        assert!(
            ev.iter().any(|e| e["event"] == "error" && e["stage"] == "send"),
            "{ctx} {case}: the send fails: {ev:?}"
        );
    }
    let log = std::fs::read_to_string(broker.log_path()).expect("broker log");
    assert!(
        log.contains("ACL: check signature failed for accessKey=Guessed01"),
        "{ctx} the wrong secret is logged:\n{}",
        broker.log_tail()
    );
    assert_eq!(stored(&broker, "AclOrders"), 3);
    assert_eq!(stored(&broker, "AclOther"), 0);
    grep_secrets("the broker log", &log);
}
