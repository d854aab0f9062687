//! The name server's soft state, rebuilt from broker registrations
//! (Java `RouteInfoManager`, README §2).
//!
//! ```text
//!   clusters  clusterName → {brokerName}
//!   brokers   brokerName  → BrokerData {cluster, brokerId → addr}
//!   topics    topic       → {brokerName → QueueData}
//!   live      (cluster, brokerAddr) → last update, timeout, DataVersion,
//!                                     haServerAddr, connection
//! ```
//!
//! Invariants kept by every operation (checked by `debug_check` in tests):
//! every live entry's address appears in `brokers`; no topic maps to an
//! empty QueueData set; every brokerName in `clusters` has a BrokerData with
//! at least one address.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::protocol::bodies::route::MASTER_ID;
use crate::protocol::bodies::topic_config::perm;
use crate::protocol::bodies::{
    BrokerData, ClusterInfo, DataVersion, QueueData, RegisterBrokerResult, TopicConfig, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData,
};

use super::{ConnId, NamesrvError};

/// Identity of a live broker process: `BrokerAddrInfo`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddrInfo {
    pub cluster: String,
    pub addr: String,
}

/// Liveness of one broker process.
#[derive(Debug, Clone)]
pub struct BrokerLiveInfo {
    pub last_update: Instant,
    pub timeout: Duration,
    pub data_version: DataVersion,
    pub ha_server_addr: String,
    /// The connection the latest registration came over.
    pub conn: ConnId,
    pub broker_name: String,
    pub broker_id: i64,
}

/// One REGISTER_BROKER request, decoded.
#[derive(Debug, Clone)]
pub struct BrokerRegistration {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub ha_server_addr: String,
    pub broker_id: i64,
    /// `heartbeatTimeoutMillis`; `None` ⇒ the table's default (120 s).
    pub heartbeat_timeout: Option<Duration>,
    /// `None` for brokers older than 5.0 (which do not send it).
    pub enable_acting_master: Option<bool>,
    pub zone_name: Option<String>,
    pub topic_config: TopicConfigSerializeWrapper,
    pub filter_server_list: Vec<String>,
}

#[derive(Debug)]
pub struct RouteTable {
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: BTreeMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_servers: BTreeMap<BrokerAddrInfo, Vec<String>>,
    default_timeout: Duration,
    delete_topic_with_broker_registration: bool,
}

impl RouteTable {
    /// `default_timeout`: how long a broker may stay silent (Java: 120 s).
    /// `delete_topic_with_broker_registration`: drop a broker's topics that
    /// are missing from its latest registration (Java config, default off).
    pub fn new(default_timeout: Duration, delete_topic_with_broker_registration: bool) -> Self {
        Self {
            topics: BTreeMap::new(),
            brokers: BTreeMap::new(),
            clusters: BTreeMap::new(),
            live: BTreeMap::new(),
            filter_servers: BTreeMap::new(),
            default_timeout,
            delete_topic_with_broker_registration,
        }
    }

    /// The connection of the live registration of `broker_name`/`broker_id`.
    pub fn live_conn_of(&self, broker_name: &str, broker_id: i64) -> Option<ConnId> {
        let bd = self.brokers.get(broker_name)?;
        let addr = bd.broker_addrs.get(&broker_id)?;
        let key = BrokerAddrInfo {
            cluster: bd.cluster.clone(),
            addr: addr.clone(),
        };
        self.live.get(&key).map(|l| l.conn)
    }

    /// How many broker names are known.
    pub fn broker_count(&self) -> usize {
        self.brokers.len()
    }

    /// `RouteInfoManager.registerBroker` (5.x).
    ///
    /// QueueDatas are (re)built from the topic configs only for the master
    /// (or, for 5.x brokers, the lowest-id slave) and only when this is the
    /// broker's first registration, its DataVersion changed, or a topic has
    /// no QueueData for this brokerName yet. A slave gets the live master's
    /// `haServerAddr`/`masterAddr` back.
    pub fn register_broker(
        &mut self,
        reg: BrokerRegistration,
        conn: ConnId,
        now: Instant,
    ) -> Result<RegisterBrokerResult, NamesrvError> {
        let key = BrokerAddrInfo {
            cluster: reg.cluster_name.clone(),
            addr: reg.broker_addr.clone(),
        };
        let known_addr = self
            .brokers
            .get(&reg.broker_name)
            .and_then(|bd| bd.broker_addrs.get(&reg.broker_id))
            .cloned();

        // A different process claims this brokerId with an older state
        // version (controller mode): ignore it and forget its liveness.
        if let Some(old_addr) = known_addr.as_ref().filter(|a| **a != reg.broker_addr) {
            let old_key = BrokerAddrInfo {
                cluster: reg.cluster_name.clone(),
                addr: old_addr.clone(),
            };
            if let Some(old) = self.live.get(&old_key) {
                if old.data_version.state_version > reg.topic_config.data_version.state_version {
                    self.live.remove(&key);
                    return Ok(RegisterBrokerResult::default());
                }
            }
        }
        // A single-topic registration (broker `registerSingleTopicAll`) must
        // not create a broker entry that lacks its other topics.
        if known_addr.is_none() && reg.topic_config.topic_config_table.len() == 1 {
            return Err(NamesrvError::RegisterRejected(format!(
                "broker {}[{}] {} has not registered yet and sent a single topic",
                reg.broker_name, reg.broker_id, reg.broker_addr
            )));
        }

        self.clusters
            .entry(reg.cluster_name.clone())
            .or_default()
            .insert(reg.broker_name.clone());
        let is_old_version = reg.enable_acting_master.is_none();
        let mut register_first = !self.brokers.contains_key(&reg.broker_name);
        let bd = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: reg.cluster_name.clone(),
                broker_name: reg.broker_name.clone(),
                ..BrokerData::default()
            });
        bd.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        bd.zone_name = reg.zone_name.clone();
        // One address has one id: a slave promoted to master moves from id N to 0.
        bd.broker_addrs
            .retain(|id, addr| !(*addr == reg.broker_addr && *id != reg.broker_id));
        let old_addr = bd.broker_addrs.insert(reg.broker_id, reg.broker_addr.clone());
        register_first |= old_addr.is_none_or(|a| a.is_empty());

        let is_master = reg.broker_id == MASTER_ID;
        let min_id = bd.broker_addrs.keys().next().copied();
        let is_prime_slave = !is_old_version && !is_master && min_id == Some(reg.broker_id);
        let acting_master = bd.enable_acting_master;

        if is_master || is_prime_slave {
            let version_changed = self.live.get(&key).map(|l| l.data_version) != Some(reg.topic_config.data_version);
            let no_static_topics = reg
                .topic_config
                .topic_queue_mapping_info_map
                .as_ref()
                .is_none_or(BTreeMap::is_empty);
            if self.delete_topic_with_broker_registration && no_static_topics {
                let keep: BTreeSet<&str> = reg
                    .topic_config
                    .topic_config_table
                    .values()
                    .map(|tc| tc.topic_name.as_str())
                    .collect();
                self.remove_broker_from_topics(&reg.broker_name, |topic| !keep.contains(topic));
            }
            for (name, tc) in &reg.topic_config.topic_config_table {
                let topic = if tc.topic_name.is_empty() { name } else { &tc.topic_name };
                if topic.is_empty() {
                    continue;
                }
                let missing = !self.topics.get(topic).is_some_and(|m| m.contains_key(&reg.broker_name));
                if register_first || version_changed || missing {
                    let mut perm = tc.perm;
                    if is_prime_slave && acting_master {
                        perm &= !perm::WRITE;
                    }
                    self.topics
                        .entry(topic.clone())
                        .or_default()
                        .insert(reg.broker_name.clone(), queue_data(&reg.broker_name, tc, perm));
                }
            }
        }

        self.live.insert(
            key.clone(),
            BrokerLiveInfo {
                last_update: now,
                timeout: reg.heartbeat_timeout.unwrap_or(self.default_timeout),
                data_version: reg.topic_config.data_version,
                ha_server_addr: reg.ha_server_addr.clone(),
                conn,
                broker_name: reg.broker_name.clone(),
                broker_id: reg.broker_id,
            },
        );
        if reg.filter_server_list.is_empty() {
            self.filter_servers.remove(&key);
        } else {
            self.filter_servers.insert(key, reg.filter_server_list);
        }

        let mut result = RegisterBrokerResult::default();
        if !is_master {
            let master_addr = self.brokers.get(&reg.broker_name).and_then(BrokerData::master_addr);
            if let Some(master_addr) = master_addr {
                let master_key = BrokerAddrInfo {
                    cluster: reg.cluster_name,
                    addr: master_addr.to_owned(),
                };
                if let Some(master) = self.live.get(&master_key) {
                    result.ha_server_addr = Some(master.ha_server_addr.clone());
                    result.master_addr = Some(master_addr.to_owned());
                }
            }
        }
        Ok(result)
    }

    /// `RouteInfoManager.unRegisterBroker`: forget one broker process.
    /// Dropping a brokerName's last address removes its QueueDatas from
    /// every topic; topics left without QueueData disappear.
    pub fn unregister_broker(&mut self, cluster: &str, broker_addr: &str, broker_name: &str) {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        self.live.remove(&key);
        self.filter_servers.remove(&key);

        let Some(bd) = self.brokers.get_mut(broker_name) else {
            return;
        };
        bd.broker_addrs.retain(|_, addr| addr != broker_addr);
        if bd.broker_addrs.is_empty() {
            self.brokers.remove(broker_name);
            if let Some(names) = self.clusters.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.clusters.remove(cluster);
                }
            }
            self.remove_broker_from_topics(broker_name, |_| true);
        } else if bd.enable_acting_master && bd.master_addr().is_none() {
            // The master left and a slave acts for it: read-only now.
            for queues in self.topics.values_mut() {
                if let Some(qd) = queues.get_mut(broker_name) {
                    qd.perm &= !perm::WRITE;
                }
            }
        }
    }

    /// Drop every broker whose latest registration came over `conn`
    /// (`BrokerHousekeepingService.onChannelClose`). Returns how many.
    pub fn connection_closed(&mut self, conn: ConnId) -> usize {
        let gone: Vec<BrokerAddrInfo> = self
            .live
            .iter()
            .filter(|(_, live)| live.conn == conn)
            .map(|(key, _)| key.clone())
            .collect();
        self.drop_live(&gone);
        gone.len()
    }

    /// Drop brokers silent for longer than their timeout
    /// (`scanNotActiveBroker`). Returns their connections, which the Java
    /// name server closes.
    pub fn scan_expired(&mut self, now: Instant) -> Vec<ConnId> {
        let expired: Vec<(BrokerAddrInfo, ConnId)> = self
            .live
            .iter()
            .filter(|(_, live)| now.saturating_duration_since(live.last_update) > live.timeout)
            .map(|(key, live)| (key.clone(), live.conn))
            .collect();
        let keys: Vec<BrokerAddrInfo> = expired.iter().map(|(k, _)| k.clone()).collect();
        self.drop_live(&keys);
        let mut conns: Vec<ConnId> = expired.into_iter().map(|(_, c)| c).collect();
        conns.sort_unstable();
        conns.dedup();
        conns
    }

    fn drop_live(&mut self, keys: &[BrokerAddrInfo]) {
        for key in keys {
            let Some(live) = self.live.get(key) else { continue };
            let name = live.broker_name.clone();
            self.unregister_broker(&key.cluster, &key.addr, &name);
        }
    }

    /// Refresh a broker's liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION).
    /// Returns false when the broker is not registered.
    pub fn touch(&mut self, cluster: &str, broker_addr: &str, now: Instant) -> bool {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        match self.live.get_mut(&key) {
            Some(live) => {
                live.last_update = now;
                true
            }
            None => false,
        }
    }

    /// The DataVersion stored for a broker, if it is live.
    pub fn data_version(&self, cluster: &str, broker_addr: &str) -> Option<DataVersion> {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: broker_addr.to_owned(),
        };
        self.live.get(&key).map(|l| l.data_version)
    }

    /// `pickupTopicRouteData`: `None` unless the topic has QueueData and at
    /// least one of its brokers is known.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topics.get(topic)?;
        let mut route = TopicRouteData {
            queue_datas: queues.values().cloned().collect(),
            ..TopicRouteData::default()
        };
        for name in queues.keys() {
            let Some(bd) = self.brokers.get(name) else { continue };
            for addr in bd.broker_addrs.values() {
                let key = BrokerAddrInfo {
                    cluster: bd.cluster.clone(),
                    addr: addr.clone(),
                };
                if let Some(list) = self.filter_servers.get(&key) {
                    route.filter_server_table.insert(addr.clone(), list.clone());
                }
            }
            route.broker_datas.push(bd.clone());
        }
        (!route.broker_datas.is_empty()).then_some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    /// Every topic with a route.
    pub fn all_topics(&self) -> TopicList {
        TopicList {
            broker_addr: None,
            topic_list: self.topics.keys().cloned().collect(),
        }
    }

    /// Topics with QueueData on any brokerName of `cluster`.
    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        let topic_list = self
            .topics
            .iter()
            .filter(|(_, queues)| names.is_some_and(|n| queues.keys().any(|b| n.contains(b))))
            .map(|(t, _)| t.clone())
            .collect();
        TopicList {
            broker_addr: None,
            topic_list,
        }
    }

    /// `getSystemTopicList`: cluster names and broker names (each broker
    /// has a topic of its own name), plus one broker address.
    pub fn system_topics(&self) -> TopicList {
        let mut topic_list = Vec::new();
        for (cluster, names) in &self.clusters {
            topic_list.push(cluster.clone());
            topic_list.extend(names.iter().cloned());
        }
        let broker_addr = self
            .brokers
            .values()
            .find_map(|bd| bd.broker_addrs.values().next().cloned());
        TopicList {
            broker_addr,
            topic_list,
        }
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its QueueDatas on
    /// the brokers of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topics.remove(topic);
            }
            Some(cluster) => {
                let Some(names) = self.clusters.get(cluster) else {
                    return;
                };
                if let Some(queues) = self.topics.get_mut(topic) {
                    queues.retain(|broker, _| !names.contains(broker));
                    if queues.is_empty() {
                        self.topics.remove(topic);
                    }
                }
            }
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV: add QueueDatas for known brokers. Like
    /// Java, nothing is registered if one names an unknown brokerName
    /// (Java stops half-way; this checks first). Returns whether it applied.
    pub fn register_topic(&mut self, topic: &str, queue_datas: Vec<QueueData>) -> bool {
        if topic.is_empty()
            || queue_datas.is_empty()
            || queue_datas.iter().any(|qd| !self.brokers.contains_key(&qd.broker_name))
        {
            return false;
        }
        let queues = self.topics.entry(topic.to_owned()).or_default();
        for qd in queue_datas {
            queues.insert(qd.broker_name.clone(), qd);
        }
        true
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) / ADD_WRITE_PERM_OF_BROKER:
    /// returns the number of topics changed.
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> usize {
        let mut count = 0;
        for queues in self.topics.values_mut() {
            if let Some(qd) = queues.get_mut(broker_name) {
                qd.perm = if writable {
                    perm::READ | perm::WRITE
                } else {
                    qd.perm & !perm::WRITE
                };
                count += 1;
            }
        }
        count
    }

    pub fn live_brokers(&self) -> impl Iterator<Item = (&BrokerAddrInfo, &BrokerLiveInfo)> {
        self.live.iter()
    }

    fn remove_broker_from_topics(&mut self, broker_name: &str, mut which: impl FnMut(&str) -> bool) {
        self.topics.retain(|topic, queues| {
            if which(topic) {
                queues.remove(broker_name);
            }
            !queues.is_empty()
        });
    }

    /// Check the invariants of the module docs (tests only; O(size)).
    #[cfg(test)]
    pub(crate) fn debug_check(&self) {
        for key in self.live.keys() {
            assert!(
                self.brokers
                    .values()
                    .any(|bd| bd.broker_addrs.values().any(|a| *a == key.addr)),
                "live {key:?} has no address entry"
            );
        }
        for (topic, queues) in &self.topics {
            assert!(!queues.is_empty(), "topic {topic} has no QueueData");
        }
        for names in self.clusters.values() {
            for name in names {
                assert!(
                    self.brokers.get(name).is_some_and(|bd| !bd.broker_addrs.is_empty()),
                    "{name}"
                );
            }
        }
    }
}

fn queue_data(broker_name: &str, tc: &TopicConfig, perm: i32) -> QueueData {
    QueueData {
        broker_name: broker_name.to_owned(),
        perm,
        read_queue_nums: tc.read_queue_nums,
        topic_sys_flag: tc.topic_sys_flag,
        write_queue_nums: tc.write_queue_nums,
    }
}
