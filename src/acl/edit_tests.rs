use super::*;
use crate::acl::resources::Resource;

const BASE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=PUB
";

fn acl() -> Acl {
    match Acl::parse(BASE) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

fn header(fields: &[(&str, &str)]) -> ExtFields {
    fields.iter().copied().collect()
}

#[test]
fn create_from_the_admin_header() {
    let mut a = acl();
    let h = header(&[
        ("accessKey", "newAccount"),
        ("secretKey", "newSecret1"),
        ("whiteRemoteAddress", "192.168.1.*"),
        ("admin", "false"),
        ("defaultTopicPerm", "SUB"),
        ("topicPerms", "topicA=PUB|SUB,orders-*=PUB"),
        ("groupPerms", "groupA=DENY"),
        // The requester's own credentials are other keys.
        ("AccessKey", "RocketMQ"),
        ("Signature", "x"),
    ]);
    let u = AccountUpdate::from_ext_fields(&h).unwrap();
    assert_eq!(a.upsert_account(u, 1000).unwrap(), Upserted::Created);
    let n = a.account("newAccount").unwrap();
    assert_eq!(n.secret().expose(), "newSecret1");
    assert_eq!(n.perm(&Resource::Topic("orders-1".into())), Perm::Pub);
    assert_eq!(n.perm(&Resource::Topic("topicA".into())), Perm::PubSub);
    assert_eq!(n.perm(&Resource::Topic("x".into())), Perm::Sub);
    assert_eq!(n.perm(&Resource::Group("groupA".into())), Perm::Deny);
    assert_eq!(n.perm(&Resource::Group("x".into())), Perm::Deny);
    assert!(n.allows_address("192.168.1.9".parse().unwrap()));
    assert!(!n.allows_address("192.168.2.9".parse().unwrap()));
    assert_eq!(a.version().counter, 1);
    assert_eq!(a.version().timestamp, 1000);
    assert_eq!(a.accounts().len(), 2);
}

#[test]
fn update_changes_only_what_is_sent() {
    let mut a = acl();
    let u = AccountUpdate::from_ext_fields(&header(&[("accessKey", "RocketMQ"), ("groupPerms", "g1=DENY")])).unwrap();
    assert_eq!(a.upsert_account(u, 5).unwrap(), Upserted::Updated);
    let r = a.account("RocketMQ").unwrap();
    assert_eq!(r.secret().expose(), "12345678");
    assert_eq!(r.perm(&Resource::Topic("topicA".into())), Perm::Pub);
    assert_eq!(r.perm(&Resource::Group("g1".into())), Perm::Deny);
    assert_eq!(r.perm(&Resource::Group("g2".into())), Perm::Sub);
    // Lift and set an address restriction, change the secret and admin.
    let mut u = AccountUpdate {
        access_key: "RocketMQ".into(),
        white_remote_address: Some("10.0.0.0/8".into()),
        secret_key: Some(Secret::new("another-secret")),
        admin: Some(true),
        ..AccountUpdate::default()
    };
    a.upsert_account(u.clone(), 6).unwrap();
    let r = a.account("RocketMQ").unwrap();
    assert!(r.is_admin() && !r.allows_address("11.0.0.1".parse().unwrap()));
    assert_eq!(r.secret().expose(), "another-secret");
    u.white_remote_address = Some("*".into());
    a.upsert_account(u, 7).unwrap();
    assert!(a
        .account("RocketMQ")
        .unwrap()
        .allows_address("11.0.0.1".parse().unwrap()));
    assert_eq!(a.version().counter, 3);
}

#[test]
fn invalid_updates_change_nothing() {
    let mut a = acl();
    let before = a.to_yaml().unwrap();
    let bad = [
        AccountUpdate {
            access_key: "brandNew1".into(),
            ..AccountUpdate::default()
        },
        AccountUpdate {
            access_key: "shrt".into(),
            secret_key: Some(Secret::new("12345678")),
            ..AccountUpdate::default()
        },
        AccountUpdate {
            access_key: "RocketMQ".into(),
            secret_key: Some(Secret::new("short")),
            ..AccountUpdate::default()
        },
        AccountUpdate {
            access_key: "RocketMQ".into(),
            white_remote_address: Some("10.0.0".into()),
            ..AccountUpdate::default()
        },
    ];
    for u in bad {
        let e = a.upsert_account(u, 9).unwrap_err().to_string();
        assert!(!e.contains("short\"") && !e.contains("12345678"), "{e}");
    }
    assert_eq!(a.to_yaml().unwrap(), before);
    for h in [
        header(&[("secretKey", "12345678")]),
        header(&[("accessKey", "RocketMQ"), ("defaultTopicPerm", "ALL")]),
        header(&[("accessKey", "RocketMQ"), ("topicPerms", "a=SUB,b")]),
        header(&[("accessKey", "RocketMQ"), ("admin", "perhaps")]),
    ] {
        assert!(AccountUpdate::from_ext_fields(&h).is_err(), "{h:?}");
    }
}

#[test]
fn delete_and_global_white_list() {
    let mut a = acl();
    assert!(matches!(
        a.delete_account("nobody12", 1),
        Err(AclError::NoSuchAccount(_))
    ));
    a.delete_account("RocketMQ", 2).unwrap();
    assert!(a.account("RocketMQ").is_none() && a.accounts().is_empty());
    assert_eq!(a.version().counter, 1);

    a.set_global_white_addrs_text("10.0.0.{1,2}, 192.168.*.*,", 3).unwrap();
    assert!(a.is_globally_white("10.0.0.2".parse().unwrap()));
    assert!(a.is_globally_white("192.168.4.4".parse().unwrap()));
    assert!(!a.is_globally_white("10.10.103.1".parse().unwrap()));
    assert!(a.set_global_white_addrs(["10.0.0.300"], 4).is_err());
    assert_eq!(a.global_white_remote_addresses().len(), 2);
    a.set_global_white_addrs(Vec::<String>::new(), 5).unwrap();
    assert!(!a.is_globally_white("10.0.0.2".parse().unwrap()));
}

#[test]
fn the_view_never_has_a_secret() {
    let mut a = acl();
    a.upsert_account(
        AccountUpdate {
            access_key: "viewer01".into(),
            secret_key: Some(Secret::new("Sup3r-Secr3t-Value")),
            ..AccountUpdate::default()
        },
        42,
    )
    .unwrap();
    let v = a.view();
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        !json.contains("Sup3r-Secr3t-Value") && !json.contains("12345678"),
        "{json}"
    );
    assert!(!json.contains("secretKey"), "{json}");
    assert!(json.contains(r#""accessKey":"viewer01""#) && json.contains(r#""globalWhiteAddrs":["10.10.103.*"]"#));
    assert_eq!(v.version.counter, 1);
    assert_eq!(v.plain_access_configs[0].topic_perms, vec!["topicA=PUB".to_string()]);
    assert_eq!(v.plain_access_configs[0].default_group_perm, "SUB");
    // The file, in contrast, keeps it.
    assert!(a.to_yaml().unwrap().contains("Sup3r-Secr3t-Value"));
}

#[test]
fn edits_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain_acl.yml");
    let mut a = acl();
    a.upsert_account(
        AccountUpdate::from_ext_fields(&header(&[
            ("accessKey", "saved001"),
            ("secretKey", "saved-secret"),
            ("topicPerms", "t*=SUB"),
        ]))
        .unwrap(),
        77,
    )
    .unwrap();
    a.save(&path).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let back = Acl::load(&path).unwrap();
    assert_eq!(back.accounts(), a.accounts());
    assert_eq!(back.version(), a.version());
    assert_eq!(back.view(), a.view());
    assert!(!dir.path().join("plain_acl.yml.tmp").exists());
}
