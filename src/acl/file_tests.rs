use super::*;
use crate::acl::resources::Resource;
use proptest::prelude::*;

/// Apache RocketMQ 4.9.8's `distribution/conf/plain_acl.yml`, as shipped.
const APACHE_SAMPLE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      # the group should convert to retry topic
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    # if it is admin, it could access all resources
    admin: true
";

fn parse_ok(text: &str) -> Document {
    match parse(text, "test.yml") {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn parse_err(text: &str) -> AclError {
    match parse(text, "test.yml") {
        Ok(_) => panic!("parsed: {text}"),
        Err(e) => e,
    }
}

#[test]
fn apache_sample_reads_as_apache_reads_it() {
    let d = parse_ok(APACHE_SAMPLE);
    let white: Vec<&str> = d.global_white.iter().map(AddressPattern::as_str).collect();
    assert_eq!(white, ["10.10.103.*", "192.168.0.*"]);
    assert_eq!(d.accounts.len(), 2);
    let a = &d.accounts[0];
    assert_eq!(a.access_key(), "RocketMQ");
    // `secretKey: 12345678` is a YAML integer; its text is the key.
    assert_eq!(a.secret().expose(), "12345678");
    assert!(a.spec().white_remote_address.is_none());
    assert!(!a.is_admin());
    assert_eq!(a.perm(&Resource::Topic("topicA".into())), Perm::Deny);
    assert_eq!(a.perm(&Resource::Topic("topicB".into())), Perm::PubSub);
    assert_eq!(a.perm(&Resource::Topic("other".into())), Perm::Deny);
    assert_eq!(a.perm(&Resource::Group("groupC".into())), Perm::Sub);
    assert_eq!(a.perm(&Resource::Group("other".into())), Perm::Sub);
    let b = &d.accounts[1];
    assert!(b.is_admin() && b.is_unrestricted());
    assert_eq!(
        b.spec().white_remote_address.as_ref().map(|p| p.as_str()),
        Some("192.168.1.*")
    );
    assert_eq!(d.version, DataVersion::default());
}

#[test]
fn scalars_are_read_as_text_and_null_is_absent() {
    let d = parse_ok(
        "accounts:\n  - accessKey: 0123456789\n    secretKey: 'x y z 123'\n    admin: \"TRUE\"\n    \
         defaultTopicPerm: ~\n    topicPerms: ~\n    groupPerms:\n",
    );
    let a = &d.accounts[0];
    // The text as written: no octal or integer reading.
    assert_eq!(a.access_key(), "0123456789");
    assert_eq!(a.secret().expose(), "x y z 123");
    assert!(a.is_admin());
    assert_eq!(a.spec().default_topic_perm, Perm::Deny);
    assert!(a.spec().topic_perms.is_empty());
}

#[test]
fn empty_and_comment_only_files_are_empty_acls() {
    for text in [
        "",
        "   \n",
        "# nothing yet\n",
        "---\n",
        "globalWhiteRemoteAddresses:\naccounts:\n",
    ] {
        let d = parse_ok(text);
        assert!(d.accounts.is_empty() && d.global_white.is_empty(), "{text:?}");
    }
}

#[test]
fn errors_name_the_file_and_line() {
    let text = "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    topicPerms:\n      - topicA=SUB\n      - topicB=READ\n";
    let e = parse_err(text);
    let AclError::Parse { line, ref message, .. } = e else {
        panic!("{e:?}");
    };
    assert_eq!(line, Some(6), "{message}");
    let shown = e.to_string();
    assert!(shown.starts_with("test.yml: "), "{shown}");
    assert!(shown.contains("READ") && shown.contains("line 6"), "{shown}");

    let e = parse_err("accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    defaultGroupPerm: ALL\n");
    assert!(matches!(e, AclError::Parse { line: Some(4), .. }), "{e}");

    let e = parse_err("globalWhiteRemoteAddresses:\n  - 10.0.0.*\n  - 10.0.300.1\n");
    assert!(matches!(e, AclError::Parse { line: Some(3), .. }), "{e}");

    // Broken YAML: the parser's own position.
    let e = parse_err("accounts:\n  - accessKey: [unclosed\n");
    assert!(matches!(e, AclError::Parse { line: Some(_), .. }), "{e}");
}

#[test]
fn invalid_accounts_are_refused_without_showing_secrets() {
    let cases = [
        ("accounts:\n  - secretKey: 12345678\n", "no accessKey"),
        ("accounts:\n  - accessKey: account1\n", "no secretKey"),
        (
            "accounts:\n  - accessKey: short\n    secretKey: 12345678\n",
            "accessKey must be",
        ),
        (
            "accounts:\n  - accessKey: account1\n    secretKey: sh0rt\n",
            "secretKey must be",
        ),
        (
            "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    admin: maybe\n",
            "true or false",
        ),
        (
            "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    whiteRemoteAddress: 10.0.0\n",
            "10.0.0",
        ),
        (
            "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    topicPerms: topicA=SUB\n",
            "sequence",
        ),
        (
            "accounts:\n  - accessKey: [a, b]\n    secretKey: 12345678\n",
            "accessKey",
        ),
        ("accounts: 7\n", "sequence"),
        ("- just\n- a list\n", "expected a mapping of globalWhiteRemoteAddresses"),
        ("accounts:\n  - just a string\n", "expected an account"),
    ];
    for (text, expected) in cases {
        let shown = parse_err(text).to_string();
        assert!(shown.contains(expected), "{text:?}: {shown}");
        assert!(!shown.contains("sh0rt"), "{shown}");
    }
}

#[test]
fn a_repeated_access_key_is_an_error() {
    let text = "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n  - accessKey: account1\n    secretKey: 87654321\n";
    let e = parse_err(text);
    assert!(matches!(e, AclError::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("\"account1\" is defined more than once"), "{e}");
}

#[test]
fn blank_global_entries_are_dropped() {
    let d = parse_ok("globalWhiteRemoteAddresses:\n  -\n  - ''\n  - 127.0.0.1\n");
    assert_eq!(d.global_white.len(), 1);
}

#[test]
fn unknown_keys_are_ignored_and_data_version_is_read() {
    let d = parse_ok(
        "somethingElse: [1, 2]\ndataVersion:\n  - counter: 7\n    timestamp: 1700000000000\n    stateVersion: 0\n\
         accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    note: hello\n",
    );
    assert_eq!(d.version.counter, 7);
    assert_eq!(d.version.timestamp, 1_700_000_000_000);
    assert_eq!(d.accounts.len(), 1);
}

#[test]
fn written_text_reads_back_the_same() {
    let mut d = parse_ok(APACHE_SAMPLE);
    d.version = d.version.next(1_700_000_000_123);
    let text = match to_yaml(&d) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let back = parse_ok(&text);
    assert_eq!(back.accounts, d.accounts);
    assert_eq!(back.global_white, d.global_white);
    assert_eq!(back.version, d.version);
    // The secret stays a string, and the keys are Apache's.
    assert!(text.contains("secretKey: '12345678'"), "{text}");
    for key in [
        "globalWhiteRemoteAddresses:",
        "accessKey:",
        "defaultGroupPerm: SUB",
        "topicB=PUB|SUB",
        "dataVersion:",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[test]
fn alias_bombs_and_deep_nesting_fail_without_hanging() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for name in 'b'..='k' {
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = name;
    }
    bomb.push_str("accounts: *k\n");
    assert!(parse(&bomb, "bomb").is_err());
    // The YAML parser takes time quadratic in flow nesting (100 000 `[`
    // took 40 s): deep nesting is refused before parsing.
    let t = std::time::Instant::now();
    let deep = format!("accounts: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep, "deep").unwrap_err().to_string().contains("nested"));
    let deep_map = format!("accounts:\n  - {}", "{a: ".repeat(50_000));
    assert!(parse(&deep_map, "deep").is_err());
    let at_limit = format!("accounts: {}{}", "[".repeat(MAX_FLOW_DEPTH), "]".repeat(MAX_FLOW_DEPTH));
    assert!(!parse(&at_limit, "deep").unwrap_err().to_string().contains("nested"));
    let mut block = String::from("accounts:\n");
    for i in 0..2000 {
        block.push_str(&" ".repeat(i + 2));
        block.push_str("- \n");
    }
    assert!(parse(&block, "deep").is_err());
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn oversized_text_is_refused() {
    let big = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
    assert!(matches!(parse(&big, "big"), Err(AclError::Invalid { .. })));
}

#[test]
fn yaml_1_1_booleans_for_admin() {
    for (word, admin) in [
        ("yes", true),
        ("On", true),
        ("Y", true),
        ("no", false),
        ("OFF", false),
        ("false", false),
    ] {
        let d = parse_ok(&format!(
            "accounts:\n  - accessKey: account1\n    secretKey: 12345678\n    admin: {word}\n"
        ));
        assert_eq!(d.accounts[0].is_admin(), admin, "{word}");
    }
}

fn account_strategy() -> impl Strategy<Value = Account> {
    let key = "[ -~]{7,24}";
    let name = "[!-)+-<>-~]{1,12}\\*?";
    let perm = proptest::sample::select(vec![Perm::Deny, Perm::Pub, Perm::Sub, Perm::PubSub]);
    let entries = proptest::collection::vec((name, perm.clone()), 0..4);
    let address = proptest::option::of(proptest::sample::select(vec![
        "*",
        "10.0.0.1",
        "192.168.*.*",
        "192.168.1.1-100",
        "192.168.1.{1,2,3}",
        "10.0.0.0/8, fd00::/8",
        "2001:db8::*",
        "*.*.*.*",
    ]));
    (
        key,
        key,
        address,
        any::<bool>(),
        perm.clone(),
        perm,
        entries.clone(),
        entries,
    )
        .prop_filter_map("valid account", |(ak, sk, white, admin, dt, dg, tp, gp)| {
            let to_entries = |v: Vec<(String, Perm)>| -> Vec<ResourcePerm> {
                v.into_iter().map(|(name, perm)| ResourcePerm { name, perm }).collect()
            };
            Account::new(AccountSpec {
                access_key: ak,
                secret_key: Secret::new(sk),
                white_remote_address: white.map(|w| AddressPattern::parse(w).unwrap()),
                admin,
                default_topic_perm: dt,
                default_group_perm: dg,
                topic_perms: to_entries(tp),
                group_perms: to_entries(gp),
            })
            .ok()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_acl_is_written_and_read_back_unchanged(
        accounts in proptest::collection::vec(account_strategy(), 0..4),
        white in proptest::collection::vec(proptest::sample::select(vec!["*", "10.10.103.*", "::1", "1.2.3.{4,5}"]), 0..3),
        counter in any::<i64>(),
        timestamp in any::<i64>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let accounts: Vec<Account> = accounts.into_iter().filter(|a| seen.insert(a.access_key().to_owned())).collect();
        let doc = Document {
            global_white: white.iter().map(|w| AddressPattern::parse(w).unwrap()).collect(),
            accounts,
            version: DataVersion { counter, timestamp, ..DataVersion::default() },
        };
        let text = to_yaml(&doc).unwrap();
        let back = parse(&text, "round trip").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back.accounts, &doc.accounts, "{}", text);
        prop_assert_eq!(&back.global_white, &doc.global_white);
        prop_assert_eq!(back.version, doc.version);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text, "fuzz");
    }

    #[test]
    fn yaml_shaped_text_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("accounts:".to_string()),
                Just("globalWhiteRemoteAddresses:".to_string()),
                Just("dataVersion:".to_string()),
                Just("  - accessKey: account1".to_string()),
                Just("  - accessKey: ".to_string()),
                Just("    secretKey: 12345678".to_string()),
                Just("    admin: true".to_string()),
                Just("    topicPerms:".to_string()),
                Just("      - t=PUB".to_string()),
                Just("      - *=SUB".to_string()),
                Just("  - 10.0.*.*".to_string()),
                Just("  - counter: x".to_string()),
                Just("&a [*a]".to_string()),
                Just("- !tag {".to_string()),
                "[ -~]{0,24}",
                "(  ){0,4}[a-zA-Z]{1,8}: [ -~]{0,16}",
                "(  ){0,4}- [ -~]{0,16}",
            ],
            0..24,
        )
    ) {
        let _ = parse(&lines.join("\n"), "fuzz");
    }
}
