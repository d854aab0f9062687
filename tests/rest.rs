//! The REST API (issue 14) end to end: `shardmq serve` with two shards and
//! its REST port on, driven by a plain HTTP client — Python `requests`,
//! scenarios in tests/http/rest_e2e.py — and checked against its own
//! OpenAPI document by schemathesis (both from PyPI, installed by
//! scripts/setup-interop.sh into target/interop/venv-http).

#[path = "interop/harness.rs"]
mod harness;

use std::process::{Command, Stdio};

use harness::*;

fn venv_bin(name: &str) -> std::path::PathBuf {
    interop_dir().join("venv-http").join("bin").join(name)
}

fn rest_broker(extra: &[(&str, &str)]) -> (Broker, String) {
    ensure_clients();
    let port = free_port().to_string();
    let mut keys = vec![("httpListenPort", port.as_str())];
    keys.extend_from_slice(extra);
    let broker = Broker::start_with("SYNC_FLUSH", &keys);
    (broker, format!("http://127.0.0.1:{port}"))
}

/// Runs one scenario of tests/http/rest_e2e.py; fails with its output.
fn scenario(name: &str, base: &str, env: &[(&str, &str)], broker: &Broker) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http/rest_e2e.py");
    let out = Command::new(venv_bin("python"))
        .arg(&script)
        .arg(name)
        .arg(base)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("ok {name}")),
        "REST scenario {name} failed:\n{text}\nbroker log:\n{}",
        broker.log_tail()
    );
}

macro_rules! rest_scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (broker, base) = rest_broker(&[]);
            scenario(stringify!($name), &base, &[], &broker);
        }
    )*};
}

rest_scenarios!(
    produce_consume,
    groups_and_delay,
    invisibility,
    dead_letters,
    broadcast,
    long_poll,
    admin,
    bad_input,
    extras
);

#[test]
fn acl_signatures_and_permissions_apply_to_rest() {
    let (ak, sk, app_ak, app_sk) = ("RestAdmin1", "rest-admin-secret-1", "RestApp001", "rest-app-secret-22");
    let topic = "RestAclTopic";
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("plain_acl.yml");
    std::fs::write(
        &acl,
        format!(
            "globalWhiteRemoteAddresses: []\naccounts:\n  - accessKey: {ak}\n    secretKey: {sk}\n    admin: true\n\
             \x20 - accessKey: {app_ak}\n    secretKey: {app_sk}\n    defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n\
             \x20   topicPerms: [{topic}=PUB|SUB]\n    groupPerms: [CG_acl=SUB]\n"
        ),
    )
    .expect("write ACL file");
    let acl_arg = acl.display().to_string();
    let (broker, base) = rest_broker(&[("aclEnable", "true"), ("aclFile", &acl_arg)]);
    scenario(
        "acl",
        &base,
        &[
            ("SHARDMQ_ADMIN_AK", ak),
            ("SHARDMQ_ADMIN_SK", sk),
            ("SHARDMQ_APP_AK", app_ak),
            ("SHARDMQ_APP_SK", app_sk),
            ("SHARDMQ_APP_TOPIC", topic),
        ],
        &broker,
    );
}

/// schemathesis generates requests from /v1/openapi.json (valid and
/// invalid ones, every method on every path) and checks each answer: no
/// 5xx, a status and content type the document declares, a body of the
/// declared schema, 405 + `Allow` for undeclared methods, and invalid
/// requests refused. Not checked: that every schema-valid request is
/// accepted (`positive_data_acceptance`): OpenAPI 3.0 cannot state this
/// API's cross-field rules (mode=broadcast needs consumer_id; a base64
/// body must be a string that decodes; names must exist).
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let (mut broker, base) = rest_broker(&[]);
    let out = Command::new(venv_bin("st"))
        .current_dir(broker.scratch("schemathesis"))
        .args(["run", &format!("{base}/v1/openapi.json"), "--url", &base])
        .args(["--max-examples", "60", "--seed", "1", "--no-color"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\nbroker log:\n{}",
        broker.log_tail()
    );
    assert!(text.contains("17/17"), "every operation tested:\n{text}");
    broker.assert_alive("schemathesis");
}
