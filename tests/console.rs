//! The web console (issue 14) in a real browser: playwright-core (npm,
//! tests/console/package-lock.json) drives Debian's chromium headless
//! against `shardmq serve` with traffic (sends, a consuming group with a
//! backlog, a dead letter, a firing alert rule). The numbers each page shows
//! are compared with what `shardmq admin … --json` prints; a dead letter is
//! resent through the page and consumed again. Screenshots of every page go
//! to target/console/ (and target/console/acl/ for the signed-in run).

#[path = "interop/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::{json, Value};

const TOPIC: &str = "ConsoleOrders";
const GROUP: &str = "ConsoleReaders";
const DLQ_GROUP: &str = "ConsoleDlq";

/// The REST API as a client sees it: JSON in and out, signed with `keys`
/// when given (ACL on).
struct Rest {
    base: String,
    keys: Option<(&'static str, &'static str)>,
}

impl Rest {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(30));
        if let Some((ak, sk)) = self.keys {
            let now = time_stamp();
            let sig = shardmq::acl::grpc_signature::sign(sk, &now);
            req = req.set("x-mq-date-time", &now).set(
                "authorization",
                &format!("MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={sig}"),
            );
        }
        let r = match body {
            Some(b) => req.set("content-type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        match r {
            Ok(r) => serde_json::from_str(&r.into_string().expect("answer")).expect("JSON answer"),
            Err(ureq::Error::Status(code, r)) => {
                panic!("{method} {path}: HTTP {code}: {}", r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn receive(&self, topic: &str, group: &str, query: &str) -> Vec<Value> {
        self.call(
            "GET",
            &format!("/v1/topics/{topic}/groups/{group}/messages?{query}"),
            None,
        )["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn ack(&self, topic: &str, group: &str, msgs: &[Value], status: &str) {
        let acks: Vec<Value> = msgs
            .iter()
            .map(|m| json!({"handle": m["handle"], "status": status}))
            .collect();
        let r = self.call(
            "POST",
            &format!("/v1/topics/{topic}/groups/{group}/ack"),
            Some(json!({ "acks": acks })),
        );
        for x in r["results"].as_array().expect("results") {
            assert_eq!(x["result"], "ok", "{x}");
        }
    }
}

/// `yyyyMMddTHHmmssZ` now (UTC), the signed header's format.
fn time_stamp() -> String {
    shardmq::acl::grpc_signature::format_date_time(now_ms())
}

/// `shardmq admin --json ARGS` against the broker; its JSON output.
fn admin_json(broker: &Broker, keys: Option<(&str, &str)>, args: &[&str]) -> Value {
    let mut cmd = Command::new(shardmq_bin());
    cmd.args(["admin", "--namesrv", &broker.namesrv(), "--json"]);
    cmd.env_remove("SHARDMQ_SECRET_KEY");
    if let Some((ak, sk)) = keys {
        cmd.args(["--access-key", ak]).env("SHARDMQ_SECRET_KEY", sk);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().expect("run shardmq admin");
    assert!(
        out.status.success(),
        "shardmq admin {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shardmq admin {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Sends, a group with a backlog, a dead letter and a firing alert rule.
fn traffic(rest: &Rest, broker: &Broker, keys: Option<(&str, &str)>) {
    rest.call("POST", "/v1/topics", Some(json!({"name": TOPIC, "queues": 4})));
    rest.call(
        "POST",
        "/v1/groups",
        Some(json!({"name": DLQ_GROUP, "retry_max_times": 0})),
    );
    let msgs: Vec<Value> = (0..40)
        .map(|i| json!({"body": format!("order {i} for customer {}", i % 5), "keys": [format!("customer-{}", i % 5)], "tags": "order"}))
        .collect();
    rest.call(
        "POST",
        &format!("/v1/topics/{TOPIC}/messages"),
        Some(json!({ "messages": msgs })),
    );
    // ConsoleReaders consumes 15 of the 40: a backlog of 25.
    let mut consumed = 0;
    while consumed < 15 {
        let got = rest.receive(TOPIC, GROUP, &format!("max={}&wait=2000", (15 - consumed).min(32)));
        rest.ack(TOPIC, GROUP, &got, "success");
        consumed += got.len();
    }
    // One message fails for ConsoleDlq (retryMaxTimes 0): its next delivery
    // goes to %DLQ%ConsoleDlq.
    let first = rest.receive(TOPIC, DLQ_GROUP, "max=1&wait=2000");
    assert_eq!(first.len(), 1);
    rest.ack(TOPIC, DLQ_GROUP, &first, "fail");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dead = rest.call("GET", &format!("/v1/groups/{DLQ_GROUP}/dlq"), None);
        if dead["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter after 30 s");
        // Popping makes the due re-delivery go to the DLQ instead.
        let again = rest.receive(TOPIC, DLQ_GROUP, "max=1&wait=1500");
        assert!(
            again.iter().all(|m| m["message_id"] != first[0]["message_id"]),
            "delivered again instead of dead-lettered"
        );
        if !again.is_empty() {
            // Another message of the topic: give it back at once.
            rest.ack(TOPIC, DLQ_GROUP, &again, "success");
        }
    }
    let add = [
        "alert",
        "add",
        "--name",
        "readers-behind",
        "--metric",
        "groupBacklog",
        "--group",
        GROUP,
        "--threshold",
        "4",
        "--period-secs",
        "1",
    ];
    admin_json(broker, keys, &add);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = admin_json(broker, keys, &["alert", "status"]);
        let firing = st
            .as_array()
            .or_else(|| st["rules"].as_array())
            .is_some_and(|a| a.iter().any(|r| r["name"] == "readers-behind" && r["firing"] == true));
        if firing {
            break;
        }
        assert!(Instant::now() < deadline, "the alert rule did not fire: {st}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs tests/console/console.mjs; what the pages showed.
fn browse(base: &str, shots: &PathBuf, login: Option<(&str, &str)>) -> Value {
    let dir = interop_dir().join("console");
    // ESM resolves packages from the script's folder: run it beside node_modules.
    let script = dir.join("console.mjs");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console.mjs"),
        &script,
    )
    .expect("copy console.mjs");
    let spec = json!({
        "topic": TOPIC, "group": GROUP, "dlqGroup": DLQ_GROUP, "key": "customer-3",
        "alert": "readers-behind", "login": login.map(|(a, s)| vec![a, s]),
    });
    let out = Command::new("node")
        .current_dir(&dir)
        .arg(&script)
        .arg(base)
        .arg(shots)
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report from console.mjs: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success(),
        "console.mjs failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

fn shots_dir(sub: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("console")
        .join(sub);
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// What `shardmq admin` says once the traffic is done (before the console
/// resends anything): sends, topic messages, group lag, messages of key
/// customer-3, dead letters, whether the alert fires.
fn expected(broker: &Broker, keys: Option<(&str, &str)>) -> Value {
    let stats = admin_json(broker, keys, &["stats"]);
    let sends: u64 = stats["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["counters"]["sends"].as_u64().unwrap_or(0))
        .sum();
    let status = admin_json(broker, keys, &["topic", "status", TOPIC]);
    let total: i64 = status["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["maxOffset"].as_i64().unwrap_or(0) - q["minOffset"].as_i64().unwrap_or(0))
        .sum();
    let progress = admin_json(broker, keys, &["consumer-progress", GROUP, "--topic", TOPIC]);
    let found = admin_json(broker, keys, &["message", "by-key", TOPIC, "customer-3"]);
    let dead = admin_json(broker, keys, &["dlq", "list", "--group", DLQ_GROUP]);
    let alerts = admin_json(broker, keys, &["alert", "status"]);
    let firing = alerts["rules"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r["name"] == "readers-behind" && r["firing"] == true));
    json!({
        "sends": sends, "topicMessages": total, "lag": progress["diffTotal"],
        "found": found.as_array().map(Vec::len), "dead": dead.as_array().map(Vec::len), "firing": firing,
    })
}

/// The pages' numbers against `shardmq admin`'s.
fn check_numbers(report: &Value, cli: &Value) {
    assert_eq!(cli["topicMessages"], 40, "{cli}");
    assert_eq!(cli["lag"], 25, "{cli}");
    assert_eq!(cli["found"], 8, "{cli}");
    assert_eq!(cli["dead"], 1, "{cli}");
    assert_eq!(cli["firing"], true, "{cli}");
    assert_eq!(report["shards"], 2, "{report}");
    assert_eq!(report["sendsTotal"], cli["sends"], "cluster page sends: {report}");
    assert!(report["histograms"].as_u64().unwrap_or(0) >= 2, "{report}");
    assert_eq!(report["topicMessages"], cli["topicMessages"], "topics page: {report}");
    assert_eq!(report["topicDetailMessages"], cli["topicMessages"], "{report}");
    assert_eq!(report["groupLag"], cli["lag"], "groups page: {report}");
    assert_eq!(report["groupDetailLag"], cli["lag"], "{report}");
    assert_eq!(report["lagChart"], true, "{report}");
    assert_eq!(report["found"], cli["found"], "messages page: {report}");
    let bodies = report["foundBodies"].as_array().expect("bodies");
    assert!(
        bodies
            .iter()
            .all(|b| b.as_str().is_some_and(|b| b.ends_with("customer 3"))),
        "{report}"
    );
    assert_eq!(report["dlqCount"], cli["dead"], "dead letters page: {report}");
    assert_eq!(report["alertState"], "FIRING", "alerts page: {report}");
    assert_eq!(report["errors"], json!([]), "browser errors: {report}");
}

/// The resent dead letter is consumed again from its topic.
fn resent_comes_back(rest: &Rest, report: &Value) {
    let id = report["resendId"].as_str().expect("a dead letter was picked");
    assert!(
        report["resendResult"]
            .as_str()
            .is_some_and(|r| r.contains(id) && r.contains(TOPIC)),
        "{report}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = rest.receive(TOPIC, DLQ_GROUP, "max=32&wait=2000");
        let hit = got.iter().any(|m| m["message_id"] == id);
        if !got.is_empty() {
            rest.ack(TOPIC, DLQ_GROUP, &got, "success");
        }
        if hit {
            return;
        }
        assert!(Instant::now() < deadline, "the resent message {id} never came back");
    }
}

#[test]
fn console_pages_show_what_the_admin_cli_shows_and_resend_a_dead_letter() {
    ensure_clients();
    let port = free_port().to_string();
    let broker = Broker::start_with("SYNC_FLUSH", &[("httpListenPort", &port)]);
    let rest = Rest {
        base: format!("http://127.0.0.1:{port}"),
        keys: None,
    };
    traffic(&rest, &broker, None);
    let cli = expected(&broker, None);
    let shots = shots_dir("");
    let report = browse(&rest.base, &shots, None);
    check_numbers(&report, &cli);
    assert_eq!(report["canResend"], true, "ACL off: the console may change things");
    resent_comes_back(&rest, &report);
    for page in ["cluster", "topics", "groups", "group", "messages", "dlq", "alerts"] {
        let p = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is missing or empty", p.display());
    }
}

#[test]
fn with_acl_the_console_signs_in_and_is_read_only_for_accounts_that_are_not_admins() {
    const ADMIN: (&str, &str) = ("ConsoleAdm1", "console-admin-secret-1");
    const VIEWER: (&str, &str) = ("ConsoleView", "console-viewer-secret-2");
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("plain_acl.yml");
    std::fs::write(
        &acl,
        format!(
            "globalWhiteRemoteAddresses: []\naccounts:\n  - accessKey: {}\n    secretKey: {}\n    admin: true\n\
             \x20 - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: SUB\n    defaultGroupPerm: SUB\n",
            ADMIN.0, ADMIN.1, VIEWER.0, VIEWER.1
        ),
    )
    .expect("write ACL file");
    let port = free_port().to_string();
    let acl_arg = acl.display().to_string();
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[("httpListenPort", &port), ("aclEnable", "true"), ("aclFile", &acl_arg)],
    );
    let rest = Rest {
        base: format!("http://127.0.0.1:{port}"),
        keys: Some(ADMIN),
    };
    traffic(&rest, &broker, Some(ADMIN));
    let cli = expected(&broker, Some(ADMIN));

    let viewer = browse(&rest.base, &shots_dir("acl-viewer"), Some(VIEWER));
    assert!(
        viewer["session"]
            .as_str()
            .is_some_and(|s| s.contains("ConsoleView (read-only)")),
        "{viewer}"
    );
    assert_eq!(viewer["canResend"], false, "a viewer gets no resend button: {viewer}");
    check_numbers(&viewer, &cli);

    let admin = browse(&rest.base, &shots_dir("acl-admin"), Some(ADMIN));
    assert!(
        admin["session"]
            .as_str()
            .is_some_and(|s| s.contains("ConsoleAdm1 (admin)")),
        "{admin}"
    );
    assert_eq!(admin["canResend"], true, "{admin}");
    check_numbers(&admin, &cli);
    resent_comes_back(&rest, &admin);
    // The API refuses a viewer's resend too (not just the page).
    let now = time_stamp();
    let sig = shardmq::acl::grpc_signature::sign(VIEWER.1, &now);
    let r = ureq::post(&format!("{}/v1/groups/{DLQ_GROUP}/dlq/resend", rest.base))
        .set("x-mq-date-time", &now)
        .set(
            "authorization",
            &format!(
                "MQv2-HMAC-SHA1 Credential={}, SignedHeaders=x-mq-date-time, Signature={sig}",
                VIEWER.0
            ),
        )
        .set("content-type", "application/json")
        .send_string(r#"{"all": true}"#);
    match r {
        Err(ureq::Error::Status(403, r)) => {
            let body: Value = serde_json::from_str(&r.into_string().expect("answer")).expect("JSON error");
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
        }
        other => panic!("a viewer's resend was not refused with 403: {other:?}"),
    }
}
