//! `acl show|update|delete|white-addrs`: the broker's ACL through the
//! 4.9.x admin codes 50–53 (the broker must run with `aclEnable=true`, and
//! these need an admin account: `--access-key` with its secret, or an
//! address in `globalWhiteRemoteAddresses`). Nothing printed here ever
//! holds a secret key: the broker's view has none.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::protocol::codes::request;

use super::client::req;
use super::output::{cell, print_json, table};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// The accounts (without secrets), the global white list and the ACL
    /// version.
    Show,
    /// Create an account, or change the fields given of an existing one.
    Update {
        /// The account's access key (at least 7 characters).
        #[arg(value_name = "ACCESS_KEY")]
        account: String,
        /// The account's secret key (required for a new account; at least
        /// 6 characters).
        #[arg(long)]
        secret: Option<String>,
        /// Admin account (may run admin requests).
        #[arg(long)]
        admin: Option<bool>,
        /// Where the account may connect from (`*` for anywhere, CIDR,
        /// `192.168.1.*`, `192.168.1.{1,2}`, `192.168.1.1-100`).
        #[arg(long)]
        white_remote_address: Option<String>,
        /// DENY, PUB, SUB or PUB|SUB for topics without an entry.
        #[arg(long)]
        default_topic_perm: Option<String>,
        /// DENY, PUB, SUB or PUB|SUB for groups without an entry.
        #[arg(long)]
        default_group_perm: Option<String>,
        /// Comma-separated `topic=PERM` entries (`orders-*=SUB` for a
        /// prefix); replaces the account's list.
        #[arg(long)]
        topic_perms: Option<String>,
        /// Comma-separated `group=PERM` entries; replaces the account's list.
        #[arg(long)]
        group_perms: Option<String>,
    },
    /// Delete an account.
    Delete {
        #[arg(value_name = "ACCESS_KEY")]
        account: String,
    },
    /// Replace the global white list (addresses that need no signature):
    /// comma-separated patterns, "" for none.
    WhiteAddrs { addrs: String },
}

pub fn run(ctx: &Ctx, cmd: AclCommand) -> Result<(), String> {
    match cmd {
        AclCommand::Show => show(ctx),
        AclCommand::Update {
            account: access_key,
            secret,
            admin,
            white_remote_address,
            default_topic_perm,
            default_group_perm,
            topic_perms,
            group_perms,
        } => {
            let mut fields = vec![("accessKey", access_key.clone())];
            let optional = [
                ("secretKey", secret),
                ("admin", admin.map(|a| a.to_string())),
                ("whiteRemoteAddress", white_remote_address),
                ("defaultTopicPerm", default_topic_perm),
                ("defaultGroupPerm", default_group_perm),
                ("topicPerms", topic_perms),
                ("groupPerms", group_perms),
            ];
            fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
            ctx.broker_call(req(request::UPDATE_AND_CREATE_ACL_CONFIG, &fields))?;
            done(
                ctx,
                json!({ "accessKey": access_key, "updated": true }),
                &format!("account {access_key} created/updated"),
            )
        }
        AclCommand::Delete { account: access_key } => {
            ctx.broker_call(req(request::DELETE_ACL_CONFIG, &[("accessKey", access_key.clone())]))?;
            done(
                ctx,
                json!({ "accessKey": access_key, "deleted": true }),
                &format!("account {access_key} deleted"),
            )
        }
        AclCommand::WhiteAddrs { addrs } => {
            ctx.broker_call(req(
                request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
                &[("globalWhiteAddrs", addrs.clone())],
            ))?;
            done(
                ctx,
                json!({ "globalWhiteAddrs": addrs, "updated": true }),
                "global white list replaced",
            )
        }
    }
}

fn done(ctx: &Ctx, v: Value, text: &str) -> Result<(), String> {
    if ctx.json {
        print_json(&v);
    } else {
        println!("{text} on broker {}", ctx.broker_addr()?);
    }
    Ok(())
}

fn show(ctx: &Ctx) -> Result<(), String> {
    let r = ctx.broker_call(req(request::GET_BROKER_CLUSTER_ACL_INFO, &[]))?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("the broker's ACL view is not JSON: {e}"))?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    // No address rule: anywhere.
    let text = |v: &Value| if v.is_null() { "*".to_owned() } else { cell(v) };
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    println!("version: {}", r.ext_fields.get_str("version").unwrap_or("?"));
    println!("global white list: {}", list(&v["globalWhiteAddrs"]));
    let mut t = table(
        &[
            "ACCESS KEY",
            "ADMIN",
            "FROM",
            "TOPIC DEFAULT",
            "GROUP DEFAULT",
            "TOPICS",
            "GROUPS",
        ],
        7,
    );
    for a in v["plainAccessConfigs"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&a["accessKey"]),
            text(&a["admin"]),
            text(&a["whiteRemoteAddress"]),
            text(&a["defaultTopicPerm"]),
            text(&a["defaultGroupPerm"]),
            list(&a["topicPerms"]),
            list(&a["groupPerms"]),
        ]);
    }
    println!("{t}");
    Ok(())
}
