//! TLS on the real `shardmq serve` (issue 13): enforcing mode with client
//! certificates, permissive mode (TLS and plain on one port), and settings
//! that cannot work failing the start — over real sockets, with the
//! project's blocking client (rustls) and the `shardmq admin` binary.

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pull_all, req, Broker};
use shardmq::admin::client::Client;
use shardmq::protocol::codes::{request, response};
use shardmq::runtime::tls::{client_config, ClientSettings};

fn tls_config(
    verify_with: Option<&std::path::Path>,
    cert: Option<(&std::path::Path, &std::path::Path)>,
) -> Arc<rustls::ClientConfig> {
    client_config(&ClientSettings {
        verify_server: verify_with.is_some(),
        trust: verify_with.map(|p| p.to_path_buf()),
        cert: cert.map(|c| c.0.to_path_buf()),
        key: cert.map(|c| c.1.to_path_buf()),
    })
    .expect("client TLS config")
}

fn connect(addr: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Client {
    let c = Client::connect(addr)
        .and_then(|c| c.with_tls(tls))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    c.set_read_timeout(Duration::from_secs(20));
    c
}

fn send(c: &mut Client, topic: &str, qid: i32, body: &str) -> Result<shardmq::protocol::RemotingCommand, String> {
    let props = format!("KEYS\u{1}k-{}\u{2}WAIT\u{1}true\u{2}", body.len());
    c.call(common::send_v2(topic, qid.into(), body, props))
}

fn route(c: &mut Client, topic: &str) -> Result<shardmq::protocol::RemotingCommand, String> {
    c.call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.into())]))
}

/// `shardmq admin ARGS`: (success, stdout + stderr).
fn admin(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .arg("admin")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shardmq admin");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn enforcing_mode_with_client_certificates() {
    let dir = common::test_dir();
    let pki = pki::make(&dir.path().join("pki"));
    let settings = [
        "tlsServerMode=enforcing".to_string(),
        format!("tlsServerCertPath={}", pki.server_cert.display()),
        format!("tlsServerKeyPath={}", pki.server_key.display()),
        "tlsServerNeedClientAuth=require".to_string(),
        format!("tlsServerTrustCertPath={}", pki.ca.display()),
        // The broker registers with its own (enforcing, mutual) name
        // server: it verifies it and shows its own certificate.
        "tlsClientAuthServer=true".to_string(),
        format!("tlsClientTrustCertPath={}", pki.ca.display()),
        format!("tlsClientCertPath={}", pki.client_cert.display()),
        format!("tlsClientKeyPath={}", pki.client_key.display()),
        "flushDiskType=SYNC_FLUSH".to_string(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let b = Broker::start(dir.path(), 2, &settings);
    let good = tls_config(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)));

    // With our certificate and the server's verified: sends on the main
    // port and a shard port, a 1 MiB body (many TLS records, the large
    // frame path), pulls back, the route from the name server (which the
    // broker reached over mutual TLS).
    let mut c = connect(&b.addr(), Some(good.clone()));
    let r = c
        .call(req(
            request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", "TlsT".into()),
                ("readQueueNums", "2".into()),
                ("writeQueueNums", "2".into()),
                ("perm", "6".into()),
            ],
        ))
        .expect("create a topic over TLS");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    for i in 0..10 {
        let r = send(&mut c, "TlsT", i % 2, &format!("tls-{i}")).expect("send over TLS");
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let big = "x".repeat(1 << 20);
    let r = send(&mut c, "TlsT", 0, &big).expect("1 MiB over TLS");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let mut s = connect(&b.shard_addr(1), Some(good.clone()));
    let r = send(&mut s, "TlsT", 0, "via-shard-port").expect("send on a shard port");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let mut bodies: Vec<String> = Vec::new();
    for q in 0..2 {
        let mut p = common::Client(connect(&b.addr(), Some(good.clone())));
        bodies.extend(pull_all(&mut p, "TlsT", q, "*").into_iter().map(|(_, body, _)| body));
    }
    assert_eq!(bodies.len(), 12, "every message pulled back over TLS");
    assert!(
        bodies.contains(&big),
        "the 1 MiB body intact: {:?}",
        bodies.iter().map(String::len).collect::<Vec<_>>()
    );
    assert!(bodies.iter().any(|m| m == "via-shard-port"));
    let mut ns = connect(&b.namesrv_addr(), Some(good.clone()));
    let r = route(&mut ns, "TlsT").expect("route over TLS");
    assert_eq!(
        r.code,
        response::SUCCESS,
        "the broker registered over mutual TLS: {:?}",
        r.remark
    );

    // Refused: plain TCP, TLS without a client certificate, a certificate
    // of another CA. Nothing answers; nothing is stored.
    for (what, tls) in [
        ("plain TCP", None),
        ("no client certificate", Some(tls_config(None, None))),
        (
            "a client certificate of another CA",
            Some(tls_config(None, Some((&pki.stranger_cert, &pki.stranger_key)))),
        ),
    ] {
        for addr in [b.addr(), b.shard_addr(0), b.namesrv_addr()] {
            let mut c = connect(&addr, tls.clone());
            let r = send(&mut c, "TlsT", 0, "refused");
            assert!(r.is_err(), "{what} on {addr}: answered {:?}", r.map(|r| r.code));
        }
    }
    let mut c = connect(&b.addr(), Some(good.clone()));
    let mut stored = 0;
    for q in 0..2 {
        let r = c
            .call(req(
                request::GET_MAX_OFFSET,
                &[("topic", "TlsT".into()), ("queueId", q.to_string())],
            ))
            .expect("max offset");
        stored += r.ext_str("offset").and_then(|o| o.parse::<u64>().ok()).expect("offset");
    }
    assert_eq!(stored, 12, "the 12 sent over mutual TLS, nothing refused stored");

    // The admin tool: with --tls and our certificate it works; plain, it
    // fails and says so.
    let namesrv = b.namesrv_addr();
    let (cert, key, ca) = (
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
        pki.ca.display().to_string(),
    );
    let (ok, out) = admin(&[
        "--namesrv",
        &namesrv,
        "--tls-trust",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "topic",
        "route",
        "TlsT",
    ]);
    assert!(
        ok && out.contains("127.0.0.1"),
        "admin over mutual TLS shows the route: {out}"
    );
    let (ok, out) = admin(&["--namesrv", &namesrv, "topic", "route", "TlsT"]);
    assert!(
        !ok,
        "admin in plain TCP against an enforcing name server succeeded: {out}"
    );

    // A connection that never starts its handshake is closed.
    let mut raw = std::net::TcpStream::connect(b.addr()).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t0 = Instant::now();
    let mut one = [0u8; 1];
    let n = raw.read(&mut one).unwrap_or(0);
    assert_eq!(n, 0, "a silent connection gets nothing");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after {waited:?} (handshake timeout 10 s)"
    );
}

#[test]
fn permissive_mode_serves_plain_and_tls_on_one_port() {
    let dir = common::test_dir();
    let pki = pki::make(&dir.path().join("pki"));
    let settings = [
        "tlsServerMode=permissive".to_string(),
        format!("tlsServerCertPath={}", pki.server_cert.display()),
        format!("tlsServerKeyPath={}", pki.server_key.display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let b = Broker::start(dir.path(), 1, &settings);
    b.create_topic("Mixed", 1);
    let tls = tls_config(Some(&pki.ca), None);
    for (i, (addr, t)) in [
        (b.addr(), None),
        (b.addr(), Some(tls.clone())),
        (b.shard_addr(0), None),
        (b.shard_addr(0), Some(tls.clone())),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = connect(&addr, t.clone());
        let r =
            send(&mut c, "Mixed", 0, &format!("m{i}")).unwrap_or_else(|e| panic!("{addr} tls={}: {e}", t.is_some()));
        assert_eq!(r.code, response::SUCCESS);
        let mut ns = connect(&b.namesrv_addr(), t.clone());
        assert_eq!(route(&mut ns, "Mixed").expect("route").code, response::SUCCESS);
    }
    let mut p = common::Client(connect(&b.addr(), Some(tls.clone())));
    assert_eq!(pull_all(&mut p, "Mixed", 0, "*").len(), 4);

    // A client that checks the server against a CA that did not sign it
    // refuses the server.
    let mut c = connect(&b.addr(), Some(tls_config(Some(&pki.other_ca), None)));
    let e = send(&mut c, "Mixed", 0, "untrusted").expect_err("an untrusted server");
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // The admin tool in both ways.
    let namesrv = b.namesrv_addr();
    for extra in [&[][..], &["--tls"][..]] {
        let mut args = vec!["--namesrv", &namesrv];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["topic", "route", "Mixed"]);
        let (ok, out) = admin(&args);
        assert!(ok, "admin {extra:?}: {out}");
    }

    // A raw TLS-looking first byte followed by garbage: refused, and the
    // broker still serves.
    let mut raw = std::net::TcpStream::connect(b.addr()).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).unwrap();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if Instant::now() < deadline => continue, // the alert
            Ok(_) => panic!("not closed"),
        }
    }
    let mut c = connect(&b.addr(), None);
    assert_eq!(
        send(&mut c, "Mixed", 0, "after").expect("still serving").code,
        response::SUCCESS
    );
}

#[test]
fn settings_that_cannot_work_fail_the_start_naming_them() {
    let dir = common::test_dir();
    let pki = pki::make(&dir.path().join("pki"));
    let cases = [
        (
            vec!["tlsServerMode=enforcing".to_string()],
            "tlsServerCertPath is not set",
        ),
        (
            vec![
                "tlsServerMode=permissive".to_string(),
                format!("tlsServerCertPath={}", pki.server_cert.display()),
                format!("tlsServerKeyPath={}", pki.client_key.display()),
            ],
            "tlsServerKeyPath",
        ),
        (
            vec![
                "tlsServerMode=enforcing".to_string(),
                format!("tlsServerCertPath={}", pki.server_cert.display()),
                format!("tlsServerKeyPath={}", pki.server_key.display()),
                "tlsServerNeedClientAuth=require".to_string(),
            ],
            "tlsServerTrustCertPath",
        ),
        (
            vec!["tlsServerMode=strict".to_string()],
            "disabled, permissive or enforcing",
        ),
    ];
    for (i, (settings, why)) in cases.into_iter().enumerate() {
        let sub = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let mut b = Broker {
            child: None,
            dir: sub.clone(),
            port: common::free_port_block(2),
            namesrv_port: common::free_port_block(0),
            metrics_port: common::free_port_block(0),
            shard_base: common::free_port_block(2),
            shards: 1,
            ha_base: common::free_port_block(1),
            extra: settings.clone(),
            log: sub.join("broker.log"),
            netns: None,
        };
        let log = b.try_spawn().expect_err("a start with unusable TLS settings");
        assert!(log.contains(why), "{settings:?}: the error should name {why:?}:\n{log}");
    }
}

/// Replication over mutual TLS: an enforcing SYNC_MASTER takes its slave's
/// shard connections only with TLS and a certificate of its CA; the slave
/// (tlsEnable, its own certificate) replicates, and SYNC_MASTER sends are
/// acknowledged. A slave without TLS is never taken in sync.
#[test]
fn a_slave_replicates_over_mutual_tls_from_an_enforcing_master() {
    let dir = common::test_dir();
    let pki = pki::make(&dir.path().join("pki"));
    let client_side = [
        "tlsClientAuthServer=true".to_string(),
        format!("tlsClientTrustCertPath={}", pki.ca.display()),
        format!("tlsClientCertPath={}", pki.client_cert.display()),
        format!("tlsClientKeyPath={}", pki.client_key.display()),
    ];
    let mut master_settings = vec![
        "tlsServerMode=enforcing".to_string(),
        format!("tlsServerCertPath={}", pki.server_cert.display()),
        format!("tlsServerKeyPath={}", pki.server_key.display()),
        "tlsServerNeedClientAuth=require".to_string(),
        format!("tlsServerTrustCertPath={}", pki.ca.display()),
        "flushDiskType=SYNC_FLUSH".to_string(),
        "brokerName=tls-ha".to_string(),
        "brokerRole=SYNC_MASTER".to_string(),
        "syncFlushTimeout=1000".to_string(),
    ];
    master_settings.extend(client_side.iter().cloned());
    let ms: Vec<&str> = master_settings.iter().map(String::as_str).collect();
    let mdir = dir.path().join("master");
    std::fs::create_dir_all(&mdir).unwrap();
    let m = Broker::start(&mdir, 2, &ms);
    let good = tls_config(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)));
    let mut c = connect(&m.addr(), Some(good.clone()));
    let r = c
        .call(req(
            request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", "TlsHa".into()),
                ("readQueueNums", "2".into()),
                ("writeQueueNums", "2".into()),
            ],
        ))
        .expect("create a topic over TLS");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    let slave = |name: &str, tls: bool| {
        let mut s = vec![
            "brokerName=tls-ha".to_string(),
            "brokerRole=SLAVE".to_string(),
            "brokerId=1".to_string(),
            "flushDiskType=SYNC_FLUSH".to_string(),
            format!("haMasterAddress=127.0.0.1:{}", m.ha_base),
            format!("tlsEnable={tls}"),
        ];
        if tls {
            s.extend(client_side.iter().cloned());
        }
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let refs: Vec<&str> = s.iter().map(String::as_str).collect();
        Broker::start(&d, 2, &refs)
    };

    // A plain slave never gets in: sends stay SLAVE_NOT_AVAILABLE.
    let plain = slave("plain", false);
    std::thread::sleep(Duration::from_secs(2));
    let r = send(&mut c, "TlsHa", 0, "no-slave").expect("send");
    assert_eq!(r.code, response::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
    drop(plain);

    let _s = slave("tls", true);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = send(&mut c, "TlsHa", 1, "over-tls").expect("send");
        if r.code == response::SUCCESS {
            break;
        }
        assert_eq!(r.code, response::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
        assert!(Instant::now() < deadline, "the TLS slave never got in sync");
        std::thread::sleep(Duration::from_millis(200));
    }
}
