//! The kinds of Redis connection a [`RedisStore`](super::RedisStore) makes: one server (`redis://`
//! or, with feature `redis-tls`, `rediss://` through rustls) or a Redis Cluster through the
//! `redis` crate's cluster client, which routes each single-key command to the master of its
//! slot and follows `MOVED`/`ASK` redirections.
//!
//! Both kinds are one [`Conn`] that implements `ConnectionLike`, so a command is written once for
//! both; what a cluster does differently (a command per master: `SCAN`; deleting keys of many
//! slots) is here too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::nodes::{self, NodeHealth, Routed};
use super::StoreError;
use ::redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{Client, Cmd, Connection, ConnectionLike, FromRedisValue, RedisResult, Value};

/// What a store connects to, and how.
pub(crate) struct Target {
    urls: Vec<String>,
    root_cert: Option<Vec<u8>>,
    kind: TargetKind,
    /// For a cluster: which master holds which slots, and whether each is up.
    slots: Option<Slots>,
}

// One per store, made once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum TargetKind {
    Single(Client),
    Cluster(ClusterClient),
}

/// A connection of either kind.
pub(crate) enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

/// A master of the server or cluster: `None` for the one server.
pub(crate) type Node = Option<(String, u16)>;

impl Target {
    /// One server at `url`.
    pub fn single(url: &str) -> RedisResult<Target> {
        Target::build(vec![url.to_string()], None, false)
    }

    /// A cluster reached through any of `urls` (it finds the others itself).
    pub fn cluster(urls: Vec<String>) -> RedisResult<Target> {
        Target::build(urls, None, true)
    }

    /// The same target, trusting `pem` (one or more CA certificates) for `rediss://`.
    #[cfg(feature = "redis-tls")]
    pub fn with_root_cert(&self, pem: Vec<u8>) -> RedisResult<Target> {
        let cluster = matches!(self.kind, TargetKind::Cluster(_));
        Target::build(self.urls.clone(), Some(pem), cluster)
    }

    fn build(urls: Vec<String>, root_cert: Option<Vec<u8>>, cluster: bool) -> RedisResult<Target> {
        let tls = urls.iter().any(|u| u.starts_with("rediss://"));
        if tls {
            ensure_tls()?;
        }
        let kind = if cluster {
            // Few, quick retries: a redirection, or a reconnection after a restart. Anything
            // longer is the breaker's job.
            #[cfg_attr(not(feature = "redis-tls"), allow(unused_mut))]
            let mut builder = ClusterClientBuilder::new(urls.clone())
                .retries(1)
                .min_retry_wait(5)
                .max_retry_wait(50);
            #[cfg(feature = "redis-tls")]
            if let Some(pem) = &root_cert {
                builder = builder.certs(certificates(pem));
            }
            TargetKind::Cluster(builder.build()?)
        } else {
            let url = urls[0].as_str();
            #[cfg(feature = "redis-tls")]
            if let Some(pem) = &root_cert {
                let client = Client::build_with_tls(url, certificates(pem))?;
                return Ok(Target {
                    urls,
                    root_cert,
                    kind: TargetKind::Single(client),
                    slots: None,
                });
            }
            TargetKind::Single(Client::open(url)?)
        };
        Ok(Target {
            urls,
            root_cert,
            slots: cluster.then(Slots::default),
            kind,
        })
    }

    /// The client: one server's, or the cluster's.
    #[cfg(feature = "tokio")]
    pub fn kind(&self) -> &TargetKind {
        &self.kind
    }

    /// A client of one node, for pub/sub (the near cache): the server, or on a cluster the
    /// URL `attempt` picks, each in turn (any node hears every message of a cluster).
    pub fn node_client(&self, attempt: usize) -> RedisResult<Client> {
        match &self.kind {
            TargetKind::Single(client) => Ok(client.clone()),
            TargetKind::Cluster(_) => {
                let url = self.urls[attempt % self.urls.len()].as_str();
                #[cfg(feature = "redis-tls")]
                if let Some(pem) = &self.root_cert {
                    return Client::build_with_tls(url, certificates(pem));
                }
                Client::open(url)
            }
        }
    }

    /// The slot map of a cluster (`None` for one server).
    pub fn slots(&self) -> Option<&Slots> {
        self.slots.as_ref()
    }

    /// A new connection, every connect bounded by `connect` and every read and write by `io`.
    pub fn open(&self, connect: Duration, io: Duration) -> RedisResult<Conn> {
        match &self.kind {
            TargetKind::Single(client) => {
                let conn = client.get_connection_with_timeout(connect)?;
                conn.set_read_timeout(Some(io))?;
                conn.set_write_timeout(Some(io))?;
                Ok(Conn::Single(conn))
            }
            TargetKind::Cluster(client) => {
                let config = ::redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(connect)
                    .set_response_timeout(io);
                let conn = client.get_connection_with_config(config)?;
                conn.set_read_timeout(Some(io))?;
                conn.set_write_timeout(Some(io))?;
                Ok(Conn::Cluster(Box::new(conn)))
            }
        }
    }

    /// What the target is, for `Debug`: the URLs without passwords.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .urls
            .iter()
            .map(|u| match u.rsplit_once('@') {
                Some((scheme_and_auth, host)) => {
                    let scheme = scheme_and_auth.split("://").next().unwrap_or("redis");
                    format!("{scheme}://***@{host}")
                }
                None => u.clone(),
            })
            .collect();
        let kind = match self.kind {
            TargetKind::Single(_) => "server",
            TargetKind::Cluster(_) => "cluster",
        };
        let ca = if self.root_cert.is_some() {
            ", own CA"
        } else {
            ""
        };
        format!("{kind} {}{ca}", hosts.join(","))
    }
}

/// rustls needs a crypto provider for the process: install ring's unless the application
/// installed one.
fn ensure_tls() -> RedisResult<()> {
    #[cfg(feature = "redis-tls")]
    {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Another thread may win the race: either way a provider is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(())
    }
    #[cfg(not(feature = "redis-tls"))]
    Err(::redis::RedisError::from((
        ::redis::ErrorKind::InvalidClientConfig,
        "a rediss:// URL needs memo's `redis-tls` feature",
    )))
}

#[cfg(feature = "redis-tls")]
fn certificates(pem: &[u8]) -> ::redis::TlsCertificates {
    ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

impl Conn {
    /// The masters whose keys a whole-keyspace command (`SCAN`) must visit: the one server, or
    /// every master of the cluster not known to have failed.
    pub fn masters(&mut self) -> RedisResult<Vec<Node>> {
        let Conn::Cluster(conn) = self else {
            return Ok(vec![None]);
        };
        let nodes = conn.route_command(
            &::redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )?;
        let text = String::from_redis_value(nodes)?;
        Ok(parse_masters(&text).into_iter().map(Some).collect())
    }

    /// `cmd` routed by `routing` on a cluster (on the one server otherwise).
    pub fn route(&mut self, cmd: &Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        match self {
            Conn::Cluster(conn) => conn.route_command(cmd, routing),
            Conn::Single(conn) => cmd.query(conn),
        }
    }

    /// `cmd` on master `node` (from [`masters`](Conn::masters)).
    pub fn query_on<T: FromRedisValue>(&mut self, node: &Node, cmd: &Cmd) -> RedisResult<T> {
        match (self, node) {
            (Conn::Cluster(conn), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                Ok(T::from_redis_value(conn.route_command(cmd, routing)?)?)
            }
            (conn, _) => cmd.query(conn),
        }
    }

    /// `GET key` and `PTTL key` in one pipeline (a cluster pipeline on a cluster: one master).
    pub fn get_with_ttl(&mut self, key: &str) -> RedisResult<(Option<Vec<u8>>, i64)> {
        match self {
            Conn::Single(conn) => super::redis::get_with_ttl_pipe(key).query(conn),
            Conn::Cluster(conn) => {
                let mut pipe = ::redis::cluster::cluster_pipe();
                pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
                pipe.query(conn)
            }
        }
    }

    /// `UNLINK` of each of `keys`, in one pipeline (per master, in a cluster).
    pub fn unlink_each(&mut self, keys: &[Vec<u8>]) -> RedisResult<()> {
        match self {
            Conn::Single(conn) => {
                let mut pipe = ::redis::pipe();
                for key in keys {
                    pipe.cmd("UNLINK").arg(key).ignore();
                }
                pipe.query(conn)
            }
            Conn::Cluster(conn) => {
                let mut pipe = ::redis::cluster::cluster_pipe();
                for key in keys {
                    pipe.cmd("UNLINK").arg(key).ignore();
                }
                pipe.query(conn)
            }
        }
    }
}

/// What a master of a cluster is called in warnings.
const MASTER: &str = "redis cluster master";

/// How long a cluster's slot map is trusted before it is read again.
const SLOTS_REFRESH: Duration = Duration::from_secs(5);

/// The slots of a Redis Cluster and the health of the masters that serve them: a master that
/// fails is skipped alone (its keys miss), the others keep serving theirs. Read with
/// `CLUSTER SLOTS` on first use and every few seconds; until it is known, calls are not routed
/// (their errors go to the store's breaker).
#[derive(Default)]
pub(crate) struct Slots {
    map: RwLock<SlotMap>,
    /// Each master's health, by `host:port`, kept across refreshes.
    health: Mutex<HashMap<String, Arc<NodeHealth>>>,
    refreshing: AtomicBool,
}

#[derive(Default)]
struct SlotMap {
    /// `(first, last, master)` per range, sorted.
    ranges: Vec<(u16, u16, Arc<NodeHealth>)>,
    read_at: Option<Instant>,
}

/// Where a call on one key goes.
pub(crate) enum Route {
    /// No slot map yet: straight to the cluster client, errors to the breaker.
    Direct,
    /// To this master.
    Node(Arc<NodeHealth>),
    /// Its master is down: skipped (`true`: every master is down).
    Skip(bool),
}

impl Slots {
    /// Whether the map should be read again; `true` claims the refresh (call
    /// [`update`](Slots::update) or [`refreshed`](Slots::refreshed) after).
    pub fn claim_refresh(&self) -> bool {
        let stale = self
            .map
            .read()
            .read_at
            .is_none_or(|at| at.elapsed() >= SLOTS_REFRESH);
        stale && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// The end of a refresh that could not read the map.
    pub fn refreshed(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// A new map from the `CLUSTER SLOTS` reply `reply` (left as it was if it does not parse).
    pub fn update(&self, reply: &Value) {
        let parsed = parse_slots(reply);
        if !parsed.is_empty() {
            let mut health = self.health.lock();
            let mut ranges: Vec<(u16, u16, Arc<NodeHealth>)> = parsed
                .into_iter()
                .map(|(first, last, address)| {
                    let node = health
                        .entry(address.clone())
                        .or_insert_with(|| Arc::new(NodeHealth::new(address)));
                    (first, last, Arc::clone(node))
                })
                .collect();
            ranges.sort_by_key(|r| r.0);
            *self.map.write() = SlotMap {
                ranges,
                read_at: Some(Instant::now()),
            };
        }
        self.refreshed();
    }

    /// Where a call on `key` goes.
    pub fn route(&self, key: &str) -> Route {
        let slot = slot(key.as_bytes());
        let map = self.map.read();
        let found = map
            .ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot));
        match found {
            None => Route::Direct,
            Some((_, _, node)) if node.may_try() => Route::Node(Arc::clone(node)),
            Some(_) => Route::Skip(self.all_down()),
        }
    }

    fn all_down(&self) -> bool {
        self.health.lock().values().all(|node| !node.is_up())
    }

    fn masters(&self) -> usize {
        self.health.lock().len().max(1)
    }

    /// `op` on the master of `key`, unless it is down.
    pub fn run<T>(&self, key: &str, op: impl FnOnce() -> Result<T, StoreError>) -> Routed<T> {
        match self.route(key) {
            Route::Skip(all_down) => skipped(all_down),
            route => self.settle(&route, op()),
        }
    }

    /// What a call routed by `route` answered: see [`NodeHealth::settle`].
    pub fn settle<T>(&self, route: &Route, result: Result<T, StoreError>) -> Routed<T> {
        match route {
            Route::Direct => result.map(Some),
            Route::Node(node) => node.settle(MASTER, self.masters(), || self.all_down(), result),
            Route::Skip(all_down) => skipped(*all_down),
        }
    }
}

/// A call whose master is down: `Ok(None)`, or the error once every master is.
pub(crate) fn skipped<T>(all_down: bool) -> Routed<T> {
    nodes::unless_all_down(MASTER, all_down, None)
}

/// `CLUSTER SLOTS`, routed to any node.
pub(crate) fn slots_command() -> (Cmd, RoutingInfo) {
    (
        ::redis::cmd("CLUSTER").arg("SLOTS").clone(),
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
    )
}

/// `(first, last, "host:port")` per slot range of a `CLUSTER SLOTS` reply.
fn parse_slots(reply: &Value) -> Vec<(u16, u16, String)> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let number = |v: &Value| match v {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let (first, last) = (number(fields.first()?)?, number(fields.get(1)?)?);
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let (host, port) = (text(master.first()?)?, number(master.get(1)?)?);
            Some((first, last, format!("{host}:{port}")))
        })
        .collect()
}

/// The cluster slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the part between
/// the first `{` and the next `}`, when not empty), modulo 16384.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// `host:port` of each master in `CLUSTER NODES` output that is not failing.
fn parse_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut masters = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
            continue;
        }
        // A master without slots holds no keys.
        if fields.len() <= 8 {
            continue;
        }
        let address = address.split('@').next().unwrap_or(address);
        if let Some((host, port)) = address.rsplit_once(':')
            && let (false, Ok(port)) = (host.is_empty(), port.parse())
        {
            masters.push((host.to_string(), port));
        }
    }
    masters
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        match self {
            Conn::Single(c) => c.supports_pipelining(),
            Conn::Cluster(c) => c.supports_pipelining(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes_skipping_failed_and_replicas() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 5 connected";
        assert_eq!(
            parse_masters(nodes),
            vec![
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7001)
            ]
        );
    }

    #[test]
    fn slots_follow_redis_hash_tags_and_crc16() {
        // Redis's own values (CLUSTER KEYSLOT).
        assert_eq!(slot(b"123456789"), 0x31c3); // CRC16/XMODEM check value
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(7000),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])]);
        assert_eq!(parse_slots(&reply), [(0, 5460, "127.0.0.1:7000".into())]);
        let slots = Slots::default();
        assert!(matches!(slots.route("foo"), Route::Direct));
        assert!(slots.claim_refresh());
        assert!(!slots.claim_refresh(), "one refresh at a time");
        slots.update(&reply);
        assert!(!slots.claim_refresh(), "fresh");
        let key = (0..)
            .map(|n| format!("k{n}"))
            .find(|k| slot(k.as_bytes()) <= 5460)
            .unwrap();
        assert!(matches!(slots.route(&key), Route::Node(_)));
    }

    #[test]
    fn describe_hides_passwords() {
        let target = Target::single("redis://:secret@127.0.0.1:6379/0").unwrap();
        assert_eq!(target.describe(), "server redis://***@127.0.0.1:6379/0");
        let cluster = Target::cluster(vec!["redis://127.0.0.1:7000".into()]).unwrap();
        assert_eq!(cluster.describe(), "cluster redis://127.0.0.1:7000");
    }
}
