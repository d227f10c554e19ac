//! The kinds of Redis connection a [`RedisStore`](super::RedisStore) makes: one server (`redis://`
//! or, with feature `redis-tls`, `rediss://` through rustls) or a Redis Cluster through the
//! `redis` crate's cluster client, which routes each single-key command to the master of its
//! slot and follows `MOVED`/`ASK` redirections.
//!
//! Both kinds are one [`Conn`] that implements `ConnectionLike`, so a command is written once for
//! both; what a cluster does differently (a command per master: `SCAN`; deleting keys of many
//! slots) is here too.

use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{Client, Cmd, Connection, ConnectionLike, FromRedisValue, RedisResult, Value};

/// What a store connects to, and how.
pub(crate) struct Target {
    urls: Vec<String>,
    root_cert: Option<Vec<u8>>,
    kind: TargetKind,
}

enum TargetKind {
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
                });
            }
            TargetKind::Single(Client::open(url)?)
        };
        Ok(Target {
            urls,
            root_cert,
            kind,
        })
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
        if let Some((host, port)) = address.rsplit_once(':') {
            if let (false, Ok(port)) = (host.is_empty(), port.parse()) {
                masters.push((host.to_string(), port));
            }
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
    fn describe_hides_passwords() {
        let target = Target::single("redis://:secret@127.0.0.1:6379/0").unwrap();
        assert_eq!(target.describe(), "server redis://***@127.0.0.1:6379/0");
        let cluster = Target::cluster(vec!["redis://127.0.0.1:7000".into()]).unwrap();
        assert_eq!(cluster.describe(), "cluster redis://127.0.0.1:7000");
    }
}
