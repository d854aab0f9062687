//! Alert rules on the real `shardmq serve` (2 shards): a consumer group
//! stops, its backlog crosses the threshold for 2 periods, and a webhook
//! (an HTTP server in this test) receives exactly one "firing" — after the
//! broker retried the first POST, which the server refused; the consumer
//! resumes and exactly one "resolved" arrives. The same state shows in
//! `shardmq admin alert status`, in Prometheus, and as messages in
//! RMQ_SYS_ALERTS. Rules are added, listed and removed with the admin
//! tool; bad rules are refused with the reason.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http_get, max_offset, pull_all, req, send_v2, Broker, Client};
use serde_json::Value;
use shardmq::protocol::codes::{request, response};

const TOPIC: &str = "Watched";
const GROUP: &str = "g-alert";

/// Bodies of POSTs answered 200, and how many were refused first.
#[derive(Default)]
struct Hook {
    accepted: Vec<Value>,
    refused: usize,
}

/// An HTTP server that refuses (503) its first `refuse_first` POSTs and
/// records the rest.
fn webhook_server(refuse_first: usize) -> (u16, Arc<Mutex<Hook>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hook = Arc::new(Mutex::new(Hook::default()));
    let h = hook.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let Ok(n) = s.read(&mut chunk) else { break (0, 0) };
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            if head_end == 0 {
                continue;
            }
            while buf.len() < head_end + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
            let mut g = h.lock().expect("lock");
            let status = if g.refused < refuse_first {
                g.refused += 1;
                "503 Service Unavailable"
            } else {
                g.accepted.push(body);
                "200 OK"
            };
            drop(g);
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, hook)
}

fn admin(b: &Broker, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--timeout", "15", "--broker", &b.addr()])
        .args(args)
        .output()
        .expect("run shardmq admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "admin {args:?} panicked: {text}");
    (out.status.success(), text)
}

fn status(b: &Broker) -> Value {
    let (ok, out) = admin(b, &["--json", "alert", "status"]);
    assert!(ok, "alert status: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("alert status: {e}: {out}"))
}

fn statuses(hook: &Mutex<Hook>, status: &str) -> usize {
    let g = hook.lock().expect("lock");
    g.accepted.iter().filter(|b| b["status"] == status).count()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

fn commit_all(c: &mut Client, to_max: bool) {
    for q in 0..4u32 {
        let offset = if to_max { max_offset(c, TOPIC, q) } else { 0 };
        let r = c.call(req(
            request::UPDATE_CONSUMER_OFFSET,
            &[
                ("consumerGroup", GROUP.into()),
                ("topic", TOPIC.into()),
                ("queueId", q.to_string()),
                ("commitOffset", offset.to_string()),
            ],
        ));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
}

fn send(c: &mut Client, n: usize) {
    for i in 0..n {
        let r = c.call(send_v2(TOPIC, (i % 4) as i64, "x", "KEYS\x01k\x02".into()));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
}

#[test]
fn a_backlog_alert_fires_once_and_resolves_once() {
    let (port, hook) = webhook_server(1);
    let url = format!("http://127.0.0.1:{port}/hook");
    let dir = common::test_dir();
    let webhook_conf = format!("alertWebhookUrl={url}");
    let mut b = Broker::start(dir.path(), 2, &[webhook_conf.as_str()]);
    b.create_topic(TOPIC, 4);
    let mut c = Client::connect(&b.addr());

    // Bad rules are refused with the reason; nothing is saved.
    let (ok, out) = admin(
        &b,
        &[
            "alert",
            "add",
            "--name",
            "x",
            "--metric",
            "groupBacklog",
            "--threshold",
            "1",
        ],
    );
    assert!(!ok && out.contains("needs a group"), "{out}");
    let (ok, out) = admin(
        &b,
        &["alert", "add", "--name", "x", "--metric", "nope", "--threshold", "1"],
    );
    assert!(!ok && out.contains("unknown metric"), "{out}");
    let mut bad = shardmq::protocol::RemotingCommand::new_request(shardmq::broker::alerts::ALERT_UPDATE);
    bad.body = bytes::Bytes::from_static(br#"{"name":"x","metric":"diskUsedPercent","threshold":-3}"#);
    let r = c.call(bad);
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.unwrap_or_default().contains("threshold"));

    let (ok, out) = admin(
        &b,
        &[
            "alert",
            "add",
            "--name",
            "backlog",
            "--metric",
            "groupBacklog",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--threshold",
            "20",
            "--periods",
            "2",
            "--period-secs",
            "1",
            "--severity",
            "critical",
            "--notify-topic",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = admin(
        &b,
        &[
            "alert",
            "add",
            "--name",
            "disk",
            "--metric",
            "diskUsedPercent",
            "--threshold",
            "101",
            "--period-secs",
            "1",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = admin(&b, &["--json", "alert", "list"]);
    assert!(ok, "{out}");
    let rules: Value = serde_json::from_str(&out).expect("list json");
    assert_eq!(rules["rules"].as_array().map(Vec::len), Some(2), "{out}");
    assert!(dir.path().join("data/config/alertRules.json").exists());

    // The group consumes everything, then stops: 10 messages of backlog
    // stay below the threshold.
    commit_all(&mut c, false);
    send(&mut c, 10);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.lock().expect("lock").accepted.len(), 0);
    let s = status(&b);
    let backlog = &s["rules"].as_array().expect("rules")[0];
    assert_eq!(backlog["value"], 10.0, "{s}");
    assert_eq!(backlog["firing"], false);

    // 40: fires after 2 periods — once, although the first POST was
    // refused (retried after 1 s) and the backlog stays.
    send(&mut c, 30);
    wait_for("one firing notification", 20, || statuses(&hook, "firing") == 1);
    let fired = hook.lock().expect("lock").accepted[0].clone();
    assert_eq!(fired["alert"], "backlog");
    assert_eq!(fired["severity"], "critical");
    assert_eq!(fired["value"], 40.0);
    assert_eq!(fired["threshold"], 20.0);
    assert_eq!(
        hook.lock().expect("lock").refused,
        1,
        "the first POST was refused and retried"
    );
    let s = status(&b);
    assert_eq!(s["rules"][0]["firing"], true, "{s}");
    assert!(s["webhooks"]["failedAttempts"].as_u64() >= Some(1), "{s}");
    let (_, metrics) = http_get(b.metrics_port, "/metrics");
    assert!(
        metrics.contains("shardmq_alert_firing{alert=\"backlog\",metric=\"groupBacklog\",severity=\"critical\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardmq_alert_value{alert=\"backlog\"} 40"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(statuses(&hook, "firing"), 1, "no repeat without repeatSecs");

    // The consumer catches up: resolved, once.
    commit_all(&mut c, true);
    wait_for("one resolved notification", 20, || statuses(&hook, "resolved") == 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(statuses(&hook, "resolved"), 1);
    assert_eq!(statuses(&hook, "firing"), 1);
    assert_eq!(status(&b)["rules"][0]["firing"], false);
    // The disk rule (threshold 101 %) never fired.
    assert!(hook
        .lock()
        .expect("lock")
        .accepted
        .iter()
        .all(|n| n["alert"] == "backlog"));

    // notifyTopic: both notifications are messages in RMQ_SYS_ALERTS.
    let mut tags = Vec::new();
    for (_, body, props) in pull_all(&mut c, "RMQ_SYS_ALERTS", 0, "*") {
        let v: Value = serde_json::from_str(&body).expect("alert message body");
        assert_eq!(v["alert"], "backlog");
        assert!(props.contains("KEYS\u{1}backlog"), "{props}");
        tags.push(v["status"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(tags, ["firing", "resolved"]);

    // Removing a rule; the file is read back after a restart.
    let (ok, out) = admin(&b, &["alert", "rm", "disk"]);
    assert!(ok, "{out}");
    let (ok, out) = admin(&b, &["alert", "rm", "disk"]);
    assert!(!ok && out.contains("no alert rule named disk"), "{out}");
    b.stop();
    b.spawn();
    let (ok, out) = admin(&b, &["--json", "alert", "list"]);
    assert!(ok, "{out}");
    let rules: Value = serde_json::from_str(&out).expect("list json");
    let names: Vec<&str> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["backlog"]);
    b.stop();
}
