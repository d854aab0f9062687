//! Transactional messages through the real binary over real sockets
//! (SYNC_FLUSH, two shards): half messages invisible, END_TRANSACTION
//! commit / rollback / unknown, check-back to a producer connection,
//! rollback after transactionCheckMax, bad requests, and kill -9.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{pull_all, req, send_v2, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

struct Half {
    offset_id: String,
    commit_log_offset: i64,
    table_offset: String,
    uniq: String,
}

fn send_half(c: &mut Client, body: &str) -> Half {
    send_half_with(c, body, "")
}

fn send_half_with(c: &mut Client, body: &str, extra: &str) -> Half {
    let mut cmd = send_v2("TX", 0, body, format!("TRAN_MSG\x01true\x02PGROUP\x01PG\x02{extra}"));
    cmd.ext_fields.insert("a", "PG");
    cmd.ext_fields.insert("f", "4");
    let r = c.call(cmd);
    assert_eq!(r.code, response::SUCCESS, "half {body}: {:?}", r.remark);
    let offset_id = r.ext_str("msgId").expect("msgId").to_string();
    let id = shardmq::protocol::OffsetMessageId::decode(&offset_id).expect("offset id");
    Half {
        offset_id,
        commit_log_offset: id.commit_log_offset,
        table_offset: r.ext_str("queueOffset").expect("queueOffset").to_string(),
        uniq: r.ext_str("transactionId").expect("transactionId").to_string(),
    }
}

fn end(c: &mut Client, h: &Half, kind: i32, group: &str, from_check: bool) -> RemotingCommand {
    c.call(req(
        request::END_TRANSACTION,
        &[
            ("producerGroup", group.into()),
            ("tranStateTableOffset", h.table_offset.clone()),
            ("commitLogOffset", h.commit_log_offset.to_string()),
            ("commitOrRollback", kind.to_string()),
            ("fromTransactionCheck", from_check.to_string()),
            ("msgId", h.uniq.clone()),
            ("transactionId", h.uniq.clone()),
        ],
    ))
}

fn bodies(c: &mut Client) -> Vec<String> {
    let mut v: Vec<String> = pull_all(c, "TX", 0, "*").into_iter().map(|m| m.1).collect();
    v.sort();
    v
}

/// A producer connection of group PG (heartbeat), on which checks arrive.
fn producer(b: &Broker) -> Client {
    let mut p = Client::connect(&b.addr());
    let mut hb = req(request::HEART_BEAT, &[]);
    hb.body = bytes::Bytes::from(
        r#"{"clientID":"127.0.0.1@tx-test","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":[]}"#.to_string(),
    );
    let r = p.call(hb);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    p.set_read_timeout(Duration::from_millis(300));
    p
}

/// CHECK_TRANSACTION_STATE requests read within `within`: msgId → count.
fn checks(p: &mut Client, within: Duration) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(cmd) = p.recv() {
            if cmd.code == request::CHECK_TRANSACTION_STATE {
                assert!(cmd.is_oneway(), "checks are oneway");
                assert_eq!(cmd.ext_str("topic"), Some("TX"), "the real topic");
                assert!(cmd.ext_str("tranStateTableOffset").is_some());
                assert!(cmd.ext_str("commitLogOffset").is_some());
                assert!(!cmd.body.is_empty(), "the half message is attached");
                *seen.entry(cmd.ext_str("msgId").unwrap_or("").to_string()).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[test]
fn commit_rollback_check_back_and_kill9() {
    let dir = common::test_dir();
    let mut b = Broker::start(
        dir.path(),
        2,
        &[
            "flushDiskType=SYNC_FLUSH",
            "transactionTimeOut=1000",
            "transactionCheckInterval=700",
            "transactionCheckMax=3",
        ],
    );
    b.create_topic("TX", 2);
    let mut p = producer(&b);
    let mut c = Client::connect(&b.addr());

    let a = send_half(&mut c, "A");
    let rb = send_half(&mut c, "B");
    let uc = send_half(&mut c, "C");
    let d = send_half(&mut c, "D");
    // F asks for 3 s of immunity: not checked before, no check used up.
    let f = send_half_with(&mut c, "F", "CHECK_IMMUNITY_TIME_IN_SECONDS\x013\x02");
    assert!(bodies(&mut c).is_empty(), "half messages are invisible");

    assert_eq!(end(&mut c, &a, 8, "PG", false).code, response::SUCCESS);
    assert_eq!(end(&mut c, &rb, 12, "PG", false).code, response::SUCCESS);
    assert_eq!(
        end(&mut c, &uc, 0, "PG", false).code,
        response::SUCCESS,
        "unknown: nothing yet"
    );
    assert_eq!(bodies(&mut c), vec!["A"]);
    // Resolved once only.
    let r = end(&mut c, &a, 8, "PG", false);
    assert_eq!(r.code, response::ILLEGAL_OPERATION, "{:?}", r.remark);
    let r = end(&mut c, &rb, 8, "PG", false);
    assert_eq!(r.code, response::ILLEGAL_OPERATION, "{:?}", r.remark);
    // Bad requests.
    let r = end(&mut c, &uc, 8, "OTHER", false);
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    assert!(
        r.remark.as_deref().unwrap_or("").contains("producer group"),
        "{:?}",
        r.remark
    );
    let wrong = Half {
        table_offset: "77".into(),
        offset_id: uc.offset_id.clone(),
        commit_log_offset: uc.commit_log_offset,
        uniq: uc.uniq.clone(),
    };
    let r = end(&mut c, &wrong, 8, "PG", false);
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    let nowhere = Half {
        commit_log_offset: 123_456_789,
        ..wrong
    };
    let r = end(&mut c, &nowhere, 8, "PG", false);
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    assert!(
        r.remark.as_deref().unwrap_or("").contains("half message"),
        "{:?}",
        r.remark
    );
    let r = end(&mut c, &uc, 5, "PG", false);
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);

    // C and D are unknown: checked after the timeout, every interval.
    let seen = checks(&mut p, Duration::from_millis(2500));
    assert!(seen.get(&uc.uniq).copied().unwrap_or(0) >= 1, "C was checked: {seen:?}");
    assert!(seen.get(&d.uniq).copied().unwrap_or(0) >= 1, "D was checked: {seen:?}");
    assert!(
        !seen.contains_key(&a.uniq) && !seen.contains_key(&rb.uniq),
        "resolved ones are not checked"
    );
    // `shardmq admin transactions` lists C and D, checked at least once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args([
            "admin",
            "--namesrv",
            &b.namesrv_addr(),
            "--json",
            "transactions",
            "--group",
            "PG",
        ])
        .output()
        .expect("admin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["open"], 3, "C, D and F: {v}");
    let txs = v["transactions"].as_array().expect("list");
    assert_eq!(txs.len(), 3, "{v}");
    assert!(txs.iter().all(|t| t["ageMs"].as_i64().unwrap_or(0) >= 1000), "{v}");
    let checked = txs.iter().filter(|t| t["checks"].as_u64().unwrap_or(0) >= 1).count();
    assert!(checked >= 2, "C and D were checked: {v}");
    // The check's answer commits C.
    assert_eq!(end(&mut c, &uc, 8, "PG", true).code, response::SUCCESS);
    assert_eq!(bodies(&mut c), vec!["A", "C"]);

    // D is never answered: rolled back after 3 checks, never delivered.
    let more = checks(&mut p, Duration::from_millis(3000));
    let total = seen.get(&d.uniq).copied().unwrap_or(0) + more.get(&d.uniq).copied().unwrap_or(0);
    assert_eq!(total, 3, "D checked transactionCheckMax times: {seen:?} then {more:?}");
    // F: immunity used up none of its checks, it gets all 3 after it.
    let last = checks(&mut p, Duration::from_millis(2000));
    let f_total = [&seen, &more, &last]
        .iter()
        .map(|m| m.get(&f.uniq).copied().unwrap_or(0))
        .sum::<u32>();
    assert_eq!(
        f_total, 3,
        "F checked transactionCheckMax times after its immunity: {more:?} {last:?}"
    );
    let r = end(&mut c, &d, 8, "PG", false);
    assert_eq!(r.code, response::ILLEGAL_OPERATION, "D was rolled back: {:?}", r.remark);

    // A half open across kill -9, committed after the restart; resolutions
    // survive it.
    let e = send_half(&mut c, "E");
    drop(c);
    drop(p);
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = end(&mut c, &e, 8, "PG", false);
        if r.code == response::SUCCESS {
            break;
        }
        assert_eq!(
            r.code,
            response::SYSTEM_BUSY,
            "only 'still loading' may delay it: {:?}",
            r.remark
        );
        assert!(Instant::now() < deadline, "transactions never finished loading");
        std::thread::sleep(Duration::from_millis(100));
    }
    for h in [&a, &rb, &uc, &d, &e, &f] {
        let r = end(&mut c, h, 8, "PG", false);
        assert_eq!(
            r.code,
            response::ILLEGAL_OPERATION,
            "resolved before the restart: {:?}",
            r.remark
        );
    }
    assert_eq!(
        bodies(&mut c),
        vec!["A", "C", "E"],
        "each committed message exactly once"
    );
}

#[test]
fn open_transactions_are_bounded_with_system_busy() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 1, &["flushDiskType=SYNC_FLUSH", "transactionMaxOpen=2"]);
    b.create_topic("TX", 1);
    let mut c = Client::connect(&b.addr());
    let first = send_half(&mut c, "1");
    send_half(&mut c, "2");
    // The two are known to the shard once scanned (at most a tick).
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let mut cmd = send_v2("TX", 0, "3", "TRAN_MSG\x01true\x02PGROUP\x01PG\x02".into());
        cmd.ext_fields.insert("f", "4");
        let r = c.call(cmd);
        if r.code == response::SYSTEM_BUSY {
            break r;
        }
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        assert!(Instant::now() < deadline, "a third open transaction was never refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        refused.remark.as_deref().unwrap_or("").contains("transactionMaxOpen"),
        "{:?}",
        refused.remark
    );
    // Ordinary sends are not affected.
    assert_eq!(c.call(send_v2("TX", 0, "plain", String::new())).code, response::SUCCESS);
    // Resolving frees room (once the resolution is forgotten below the
    // low-water mark, at the next state save).
    assert_eq!(end(&mut c, &first, 12, "PG", false).code, response::SUCCESS);
}
