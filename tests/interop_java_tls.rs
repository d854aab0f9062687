//! TLS (issue 13) with the reference Java clients, unmodified: rocketmq-client
//! 4.9.8 switched to TLS with its own system properties (`tls.enable`,
//! `tls.test.mode.enable`, `tls.client.*`, as RocketMQ documents them), and
//! rocketmq-client-java 5.x over gRPC with `enableSsl(true)`.
//!
//! * Enforcing mode with client certificates required: the Java client
//!   with its certificate (and the server's verified against the CA)
//!   produces and consumes exactly once through the name server and the
//!   broker; without TLS, or with TLS and no certificate, it gets nothing
//!   through and nothing is stored.
//! * Permissive mode: a plain Java producer and a TLS Java consumer on the
//!   same ports; the 5.x gRPC client sends and receives over TLS.

#[path = "interop/harness.rs"]
mod harness;
#[path = "common/pki.rs"]
mod pki;

use harness::*;
use serde_json::Value;

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The 4.x client over TLS, verifying the server against `ca` and showing
/// `cert`/`key` when given (`tls.test.mode.enable=false` makes it read the
/// `tls.client.*` properties; in test mode it trusts anything and shows
/// nothing).
fn java_tls(args: Args, ca: Option<&std::path::Path>, cert: Option<(&std::path::Path, &std::path::Path)>) -> Args {
    let mut a = args.jvm("tls.enable", true);
    if ca.is_none() && cert.is_none() {
        return a;
    }
    a = a.jvm("tls.test.mode.enable", false);
    if let Some(ca) = ca {
        a = a
            .jvm("tls.client.authServer", true)
            .jvm("tls.client.trustCertPath", ca.display());
    }
    if let Some((c, k)) = cert {
        a = a
            .jvm("tls.client.certPath", c.display())
            .jvm("tls.client.keyPath", k.display());
    }
    a
}

/// Consumes until `expect` distinct messages arrive; their receipts.
fn consume(args: Args, expect: usize, ctx: &str) -> Vec<Recv> {
    let mut p = args.arg("expect", expect).arg("linger-ms", 2000).spawn();
    p.wait_exit(PROC_TIMEOUT);
    let recv = recv_of(&p.events());
    assert!(
        !p.events_of("done").is_empty() && p.events_of("timeout").is_empty(),
        "{ctx}: the consumer got {} of {expect}\n{}",
        recv.len(),
        p.report()
    );
    p.assert_no_error();
    recv
}

/// A program that is expected to fail: its events, whatever its exit.
fn events_of_failing(args: Args) -> Vec<Value> {
    let mut p = args.spawn();
    p.close_stdin();
    p.wait_exit(PROC_TIMEOUT);
    p.events()
}

fn max_offset_sum(broker: &Broker, topic: &str, tls: &[&str]) -> i64 {
    let mut cmd = std::process::Command::new(shardmq_bin());
    cmd.args([
        "admin",
        "--json",
        "--broker",
        &format!("127.0.0.1:{}", broker.ports.broker),
    ]);
    cmd.args(tls);
    let out = cmd.args(["topic", "status", topic]).output().expect("shardmq admin");
    assert!(
        out.status.success(),
        "topic status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stored_per_topic_status(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn java_client_over_mutual_tls_on_an_enforcing_broker() {
    let _g = serial();
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let (cert, key, ca) = (
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string(),
        pki.ca.display().to_string(),
    );
    let (ccert, ckey) = (
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("tlsServerMode", "enforcing"),
            ("tlsServerCertPath", &cert),
            ("tlsServerKeyPath", &key),
            ("tlsServerNeedClientAuth", "require"),
            ("tlsServerTrustCertPath", &ca),
            ("tlsClientCertPath", &ccert),
            ("tlsClientKeyPath", &ckey),
        ],
    );
    let mine = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let topic = "TlsJava";
    let sent = produce_with(
        java_tls(Client::Java.producer(&broker, topic, "PG_tls"), Some(&pki.ca), mine),
        "t",
        0,
        20,
    );
    let recv = consume(
        java_tls(Client::Java.consumer(&broker, topic, "CG_tls"), Some(&pki.ca), mine),
        20,
        "[java tls] mutual TLS consume",
    );
    assert_exactly_once("[java tls] mutual TLS", &sent, &recv);
    assert_intact(Client::Java, topic, &sent, &recv);

    // Refused: plain TCP; TLS without a client certificate.
    for (what, args) in [
        ("plain TCP", Client::Java.producer(&broker, topic, "PG_plain")),
        (
            "TLS without a client certificate",
            java_tls(Client::Java.producer(&broker, topic, "PG_nocert"), None, None),
        ),
    ] {
        let ev = events_of_failing(
            args.arg("prefix", "refused")
                .arg("count", 2)
                .arg("send-timeout-ms", 3000)
                .arg("timeout-ms", 30_000)
                .label("refused"),
        );
        assert!(
            of(&ev, "sent").is_empty(),
            "[java tls] {what}: a send went through: {ev:?}"
        );
        assert!(
            !of(&ev, "error").is_empty(),
            "[java tls] {what}: the client reports an error: {ev:?}"
        );
    }
    let stored = max_offset_sum(
        &broker,
        topic,
        &["--tls-trust", &ca, "--tls-cert", &ccert, "--tls-key", &ckey],
    );
    assert_eq!(stored, 20, "[java tls] only the 20 sent over mutual TLS are stored");
}

#[test]
fn java_clients_plain_and_tls_on_a_permissive_broker_and_grpc_over_tls() {
    let _g = serial();
    ensure_clients();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::make(dir.path());
    let (cert, key) = (
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string(),
    );
    let (access, shard_base) = (free_port(), Ports::pick().shards);
    let (access_arg, base_arg) = (access.to_string(), shard_base.to_string());
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("tlsServerMode", "permissive"),
            ("tlsServerCertPath", &cert),
            ("tlsServerKeyPath", &key),
            ("grpcListenPort", &access_arg),
            ("grpcShardPortBase", &base_arg),
        ],
    );
    // 4.x: a plain producer, a TLS consumer (test mode: trusts the
    // self-made certificate, as RocketMQ's default client does).
    let topic = "TlsMixed";
    let sent = produce_with(Client::Java.producer(&broker, topic, "PG_mixed"), "p", 0, 20);
    let recv = consume(
        java_tls(Client::Java.consumer(&broker, topic, "CG_mixed"), None, None),
        20,
        "[java tls] permissive consume",
    );
    assert_exactly_once("[java tls] plain producer, TLS consumer", &sent, &recv);

    // 5.x gRPC with enableSsl(true), the client's default.
    let endpoint = format!("127.0.0.1:{access}");
    let ev = Client::Java5
        .program("grpc-send", &broker, topic, "")
        .arg("endpoint", &endpoint)
        .arg("prefix", "g")
        .arg("count", 3)
        .arg("ssl", "true")
        .label("tls")
        .run();
    assert_eq!(of(&ev, "sent").len(), 3, "[java5 gRPC tls] sends: {ev:?}");
    let ev = Client::Java5
        .program("grpc-simple", &broker, topic, "CG_grpc_tls")
        .arg("endpoint", &endpoint)
        .arg("ssl", "true")
        .arg("until-acked", 23)
        .arg("linger-ms", 500)
        .arg("timeout-ms", 40_000)
        .label("tls")
        .run();
    let acked: std::collections::BTreeSet<&str> = of(&ev, "acked").iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(
        acked.len(),
        23,
        "[java5 gRPC tls] all 23 received and acked over TLS: {ev:?}"
    );
}
