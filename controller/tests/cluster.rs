//! End-to-end tests: real controller nodes (in-process threads) over TCP.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use shardmq_controller::client::{Client, ClientError};
use shardmq_controller::{start, AlterReq, BrokerReq, Controller, ControllerConfig, GroupView};

const HB_TIMEOUT: Duration = Duration::from_millis(1000);

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
}

fn config(id: u64, listen: SocketAddr, peers: &BTreeMap<u64, String>, dir: &Path) -> ControllerConfig {
    let mut c = ControllerConfig::new(id, listen, peers.clone(), dir.join(format!("node{id}")));
    c.heartbeat_timeout = HB_TIMEOUT;
    c.scan_interval = Duration::from_millis(200);
    c.election_timeout = (Duration::from_millis(600), Duration::from_millis(1200));
    c.raft_heartbeat_interval = Duration::from_millis(150);
    // Small, so the tests build snapshots and purge the log on the way.
    c.snapshot_every = 20;
    c.snapshot_logs_to_keep = 0;
    c
}

fn broker(id: u64, offset: u64) -> BrokerReq {
    BrokerReq {
        cluster: "DefaultCluster".into(),
        broker_name: "broker-a".into(),
        broker_id: id,
        addr: format!("127.0.0.1:{}", 10910 + id * 10),
        ha_addr: format!("127.0.0.1:{}", 10912 + id * 10),
        epoch: 0,
        offset,
    }
}

/// Poll `f` until it returns Some, at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The leader id every reachable node agrees on.
fn agreed_leader(client: &mut Client, addrs: &[String]) -> Option<u64> {
    let mut leader = None;
    for a in addrs {
        let s = client.status(a).ok()?;
        let l = s.leader_id?;
        if leader.is_some_and(|x| x != l) {
            return None;
        }
        leader = Some(l);
    }
    leader
}

fn group(client: &mut Client) -> Option<GroupView> {
    client.groups().ok()?.into_iter().find(|g| g.broker_name == "broker-a")
}

#[test]
fn three_nodes_failover_controller_failover_and_catch_up() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let listens: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let peers: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, listens[id as usize - 1].to_string()))
        .collect();
    let addrs: Vec<String> = peers.values().cloned().collect();
    let mut nodes: BTreeMap<u64, Controller> = BTreeMap::new();
    for id in 1..=3u64 {
        let c =
            start(config(id, listens[id as usize - 1], &peers, dir.path())).unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(c.local_addr(), listens[id as usize - 1]);
        nodes.insert(id, c);
    }
    let mut client = Client::new(addrs.clone(), Duration::from_secs(1));

    // 1. A leader is elected.
    let leader = wait_for(Duration::from_secs(10), "a leader", || {
        agreed_leader(&mut client, &addrs)
    });
    let st = client.status(&peers[&leader]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.members, vec![1, 2, 3]);

    // 2. A client that only knows a follower follows the NOT_LEADER hint.
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let mut via_follower = Client::new(vec![peers[&follower].clone()], Duration::from_secs(1));
    let g = via_follower
        .register(&broker(1, 0))
        .unwrap_or_else(|e| panic!("register 1: {e}"));
    assert_eq!((g.master_id, g.master_epoch), (Some(1), 1), "first broker is master");
    assert_eq!(g.master_addr.as_deref(), Some("127.0.0.1:10920"));
    assert_eq!(g.sync_state_set, vec![1]);

    let g = client
        .register(&broker(2, 0))
        .unwrap_or_else(|e| panic!("register 2: {e}"));
    assert_eq!((g.master_id, g.master_epoch), (Some(1), 1));
    assert_eq!(g.brokers.len(), 2);
    assert!(g.brokers.iter().all(|b| b.alive));

    // 3. ISR {1,2}; stale / wrong requests refused.
    let alter = |master_id, master_epoch, set: &[u64], set_epoch| AlterReq {
        cluster: "DefaultCluster".into(),
        broker_name: "broker-a".into(),
        master_id,
        master_epoch,
        sync_state_set: set.to_vec(),
        sync_state_set_epoch: set_epoch,
    };
    let g = client
        .alter_sync_state_set(&alter(1, 1, &[1, 2], 1))
        .unwrap_or_else(|e| panic!("alter: {e}"));
    assert_eq!((g.sync_state_set.clone(), g.sync_state_set_epoch), (vec![1, 2], 2));
    assert!(matches!(
        client.alter_sync_state_set(&alter(1, 1, &[1], 1)),
        Err(ClientError::Fenced(_))
    ));
    assert!(matches!(
        client.alter_sync_state_set(&alter(2, 1, &[1, 2], 2)),
        Err(ClientError::Fenced(_))
    ));
    assert!(matches!(
        client.alter_sync_state_set(&alter(1, 1, &[2], 2)),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.alter_sync_state_set(&alter(1, 1, &[1, 7], 2)),
        Err(ClientError::Invalid(_))
    ));

    // 4. Broker 1 stops heartbeating, 2 goes on → 2 is master, epoch 2, within 5 s.
    let t0 = Instant::now();
    let g = wait_for(Duration::from_secs(5), "failover to broker 2", || {
        client.heartbeat(&broker(2, 100)).ok()?;
        let g = group(&mut client)?;
        (g.master_id == Some(2)).then_some(g)
    });
    eprintln!("broker failover took {:?}", t0.elapsed());
    assert_eq!(g.master_epoch, 2);
    assert_eq!(g.sync_state_set, vec![2]);
    assert_eq!(g.master_ha_addr.as_deref(), Some("127.0.0.1:10932"));
    let b1 = g.brokers.iter().find(|b| b.broker_id == 1).map(|b| b.alive);
    assert_eq!(b1, Some(false));
    // The old master is fenced.
    assert!(matches!(
        client.alter_sync_state_set(&alter(1, 1, &[1, 2], 3)),
        Err(ClientError::Fenced(_))
    ));
    let g = client
        .alter_sync_state_set(&alter(2, 2, &[1, 2], 3))
        .unwrap_or_else(|e| panic!("alter by 2: {e}"));
    assert_eq!((g.sync_state_set.clone(), g.sync_state_set_epoch), (vec![1, 2], 4));

    // 5. The controller leader goes away; the other two elect a new one.
    let old_leader = wait_for(Duration::from_secs(5), "leader", || agreed_leader(&mut client, &addrs));
    let stopped_cfg = config(old_leader, listens[old_leader as usize - 1], &peers, dir.path());
    let t0 = Instant::now();
    if let Some(n) = nodes.remove(&old_leader) {
        n.shutdown();
    }
    let rest: Vec<String> = peers
        .iter()
        .filter(|(id, _)| **id != old_leader)
        .map(|(_, a)| a.clone())
        .collect();
    let new_leader = wait_for(Duration::from_secs(10), "a new leader", || {
        agreed_leader(&mut client, &rest).filter(|l| *l != old_leader)
    });
    eprintln!("controller leader {old_leader} → {new_leader} took {:?}", t0.elapsed());
    // State intact (brokers 1 and 2 keep heartbeating through the switch).
    let g = wait_for(Duration::from_secs(5), "groups from the new leader", || {
        client.heartbeat(&broker(2, 200)).ok()?;
        client.heartbeat(&broker(1, 150)).ok()?;
        group(&mut client)
    });
    assert_eq!((g.master_id, g.master_epoch), (Some(2), 2));
    assert_eq!((g.sync_state_set.clone(), g.sync_state_set_epoch), (vec![1, 2], 4));
    assert_eq!(g.brokers.len(), 2);

    // More entries while a node is down: snapshots (every 20) are built and
    // the log purged behind them, so the restarted node needs a snapshot.
    for i in 0..30 {
        client
            .register(&broker(10 + i, 0))
            .unwrap_or_else(|e| panic!("register {}: {e}", 10 + i));
    }

    // 6. A further election works on the new leader: 2 stops, 1 goes on.
    let g = wait_for(Duration::from_secs(6), "failover back to broker 1", || {
        client.heartbeat(&broker(1, 300)).ok()?;
        let g = group(&mut client)?;
        (g.master_id == Some(1)).then_some(g)
    });
    assert_eq!(g.master_epoch, 3);
    assert_eq!(g.sync_state_set, vec![1]);

    // 7. The stopped node restarts from its data dir and catches up.
    let restarted = start(stopped_cfg).unwrap_or_else(|e| panic!("restart: {e}"));
    nodes.insert(old_leader, restarted);
    let leader_addr = peers[&new_leader].clone();
    let applied = wait_for(Duration::from_secs(10), "restarted node catching up", || {
        let l = client.status(&leader_addr).ok()?;
        let r = client.status(&peers[&old_leader]).ok()?;
        (r.last_applied.is_some() && r.last_applied == l.last_applied && r.leader_id == Some(new_leader))
            .then_some(r.last_applied)
    });
    eprintln!("restarted node caught up at {applied:?}");
    assert!(
        dir.path().join(format!("node{old_leader}/snapshot.json")).exists(),
        "the restarted node has a snapshot"
    );
    let g = client.groups().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.iter().map(|g| g.brokers.len()).sum::<usize>(), 32);

    for (_, n) in nodes {
        n.shutdown();
    }
}

#[test]
fn single_node_durable_across_restart_and_wire_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let listen = free_port();
    let mk = || {
        let mut c = config(1, listen, &BTreeMap::new(), dir.path());
        c.snapshot_every = 5;
        c
    };
    let node = start(mk()).unwrap_or_else(|e| panic!("start: {e}"));
    let addr = node.local_addr().to_string();
    let mut client = Client::new(vec![addr.clone()], Duration::from_secs(1));
    let g = wait_for(Duration::from_secs(10), "single-node leader", || {
        client.register(&broker(1, 0)).ok()
    });
    assert_eq!((g.master_id, g.master_epoch), (Some(1), 1));
    for id in 2..=8 {
        client
            .register(&broker(id, 0))
            .unwrap_or_else(|e| panic!("register {id}: {e}"));
    }
    let g = client
        .alter_sync_state_set(&AlterReq {
            cluster: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            master_id: 1,
            master_epoch: 1,
            sync_state_set: vec![1, 2, 3],
            sync_state_set_epoch: 1,
        })
        .unwrap_or_else(|e| panic!("alter: {e}"));
    assert_eq!(g.sync_state_set_epoch, 2);

    // Wire errors: garbage JSON → INVALID on the same connection; an
    // oversized frame closes the connection.
    let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{e}"));
    let body = b"{\"op\":\"nope\"}";
    s.write_all(&(body.len() as u32).to_be_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(body).unwrap_or_else(|e| panic!("{e}"));
    let reply = shardmq_controller::wire::read_frame_blocking(&mut s).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], "INVALID");
    s.write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 1];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "oversized frame closes the connection"
    );

    let before = client.status(&addr).unwrap_or_else(|e| panic!("{e}"));
    node.shutdown();

    // Restart: the group is recovered from snapshot + log.
    let node = start(mk()).unwrap_or_else(|e| panic!("restart: {e}"));
    let mut client = Client::new(vec![node.local_addr().to_string()], Duration::from_secs(1));
    let g = wait_for(Duration::from_secs(10), "groups after restart", || group(&mut client));
    assert_eq!((g.master_id, g.master_epoch), (Some(1), 1));
    assert_eq!(g.sync_state_set, vec![1, 2, 3]);
    assert_eq!(g.sync_state_set_epoch, 2);
    assert_eq!(g.brokers.len(), 8);
    let after = client
        .status(&node.local_addr().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(after.last_applied >= before.last_applied);
    assert!(after.term >= before.term);
    assert!(dir.path().join("node1/snapshot.json").exists(), "a snapshot was built");
    node.shutdown();
}
