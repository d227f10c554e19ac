//! Redis through the `redis` crate: plain synchronous connections in a small pool.

use std::time::Duration;

use std::sync::Arc;

use super::generation::{self, Generations};
use super::pool::{self, Idle};
use super::redis_conn::{Conn, Slots, Target};
use super::{ErrorKind, Store, StoreError, DEFAULT_TIMEOUT};

/// A [`Store`] on a Redis server (or Valkey, KeyDB, any server of the protocol).
///
/// Keys are `namespace:generation:key`; values are set with `SET key value PX ttl`. Each
/// namespace has a generation, a number under `namespace:gen`: [`clear`](Store::clear) increments
/// it (one `INCR`, whatever else the server holds), which makes the old keys unreadable at once,
/// and a background thread then `UNLINK`s them (a `SCAN` of the keyspace, off the caller's path).
/// The generation is read at most once per `generation_refresh` (1 s by default) per namespace and
/// process, so a clear made by another process is seen within that time; this process's own
/// clears are seen at once. A missing generation (a restart, an eviction) is recreated, one that
/// does not parse is overwritten: a miss, never an outage. Redis cannot count one namespace's live
/// keys without a scan, so [`len`](Store::len) is unknown (`None`).
///
/// Only single-key commands are used, so the same calls work against a Redis Cluster
/// ([`cluster`](RedisStore::cluster)), where the `redis` crate's cluster client sends each to the
/// master of its key's slot; the background unlinking of a clear scans every master. `rediss://`
/// URLs connect through rustls (feature `redis-tls`), trusting the system's roots or
/// [`with_root_certificate`](RedisStore::with_root_certificate).
///
/// Connections are made on first use (a server that is down at start-up is an outage like any
/// other) and kept in a small pool; every connect, read and write is bounded by a timeout
/// (250 ms by default). A pooled connection found dead (the server restarted) is replaced once,
/// at once, before the call is counted as a failure.
///
/// ```
/// use memo::stores::{self, RedisStore};
/// use std::time::Duration;
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0")?
///     .with_timeouts(Duration::from_millis(100), Duration::from_millis(200));
/// stores::register("doc-redis", store);
/// # Ok::<(), stores::StoreError>(())
/// ```
pub struct RedisStore {
    target: Arc<Target>,
    pool: Idle<Conn>,
    connect_timeout: Duration,
    io_timeout: Duration,
    generations: Arc<Generations>,
}

impl RedisStore {
    /// A store on the server at `url` (`redis://[:password@]host:port[/db]`, `rediss://` not
    /// included). Only the URL is checked here; the connection is made on first use.
    ///
    /// ```
    /// assert!(memo::stores::RedisStore::connect("redis://127.0.0.1:6379").is_ok());
    /// assert!(memo::stores::RedisStore::connect("not a url").is_err());
    /// ```
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let target = Target::single(url)
            .map_err(|e| StoreError::new(ErrorKind::Config, format!("redis url `{url}`: {e}")))?;
        Ok(Self::on(target))
    }

    /// A store on the Redis Cluster that any of `urls` belongs to (one is enough; the client
    /// finds every master): each key goes to the master of its slot, and a master that moves
    /// slots is followed. Only the URLs are checked here; the cluster is reached on first use.
    ///
    /// ```
    /// use memo::stores::RedisStore;
    /// let store = RedisStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])?;
    /// # let _ = store;
    /// assert!(RedisStore::cluster(["not a url"]).is_err());
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn cluster<I>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_string()).collect();
        let target = Target::cluster(urls.clone()).map_err(|e| {
            StoreError::new(
                ErrorKind::Config,
                format!("redis cluster `{}`: {e}", urls.join(",")),
            )
        })?;
        Ok(Self::on(target))
    }

    fn on(target: Target) -> Self {
        RedisStore {
            target: Arc::new(target),
            pool: Idle::new(16),
            connect_timeout: DEFAULT_TIMEOUT,
            io_timeout: DEFAULT_TIMEOUT,
            generations: Arc::new(Generations::new(Duration::from_secs(1))),
        }
    }

    /// Trusts the CA certificates in `pem` (PEM text) for `rediss://` servers, instead of the
    /// system's roots: servers with certificates of a private CA.
    ///
    /// ```
    /// # #[cfg(feature = "redis-tls")] {
    /// let store = memo::stores::RedisStore::connect("rediss://127.0.0.1:6380");
    /// assert!(store?.with_root_certificate(b"not a certificate").is_err());
    /// # }
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn with_root_certificate(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        let config = |e: ::redis::RedisError| {
            StoreError::new(ErrorKind::Config, format!("redis root certificate: {e}"))
        };
        // Check the PEM now (a bad one would otherwise fail every connect).
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(StoreError::new(
                ErrorKind::Config,
                "redis root certificate: no PEM certificate in it",
            ));
        }
        self.target = Arc::new(self.target.with_root_cert(pem.to_vec()).map_err(config)?);
        self.pool.clear();
        Ok(self)
    }

    /// The timeouts of connecting and of each read or write (both 250 ms by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo::stores::RedisStore::connect("redis://127.0.0.1")?
    ///     .with_timeouts(Duration::from_millis(50), Duration::from_millis(100));
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = pool::timeout(connect);
        self.io_timeout = pool::timeout(io);
        self
    }

    /// How many idle connections are kept for reuse (default 16).
    ///
    /// ```
    /// let store = memo::stores::RedisStore::connect("redis://127.0.0.1")?.with_max_idle(4);
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_max_idle(mut self, max_idle: usize) -> Self {
        self.pool.set_max(max_idle);
        self
    }

    /// How long a namespace's generation is trusted before it is read again (default 1 s): how
    /// soon a clear made by another process is seen.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo::stores::RedisStore::connect("redis://127.0.0.1")?
    ///     .with_generation_refresh(Duration::ZERO); // read it on every call
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_generation_refresh(mut self, refresh: Duration) -> Self {
        match Arc::get_mut(&mut self.generations) {
            Some(generations) => generations.set_refresh(refresh),
            None => self.generations = Arc::new(Generations::new(refresh)),
        }
        self
    }

    /// The async side of this store (feature `tokio`), sharing its target and generations.
    #[cfg(feature = "tokio")]
    pub(crate) fn async_side(&self) -> super::redis_async::AsyncRedis {
        super::redis_async::AsyncRedis::new(
            Arc::clone(&self.target),
            Arc::clone(&self.generations),
            self.connect_timeout,
            self.io_timeout,
        )
    }

    /// The near cache's pushes of this store (pub/sub), sharing its target and generations.
    pub(crate) fn push_side(&self) -> super::redis_push::RedisPush {
        super::redis_push::RedisPush::new(
            Arc::clone(&self.target),
            Arc::clone(&self.generations),
            self.connect_timeout,
            self.io_timeout,
        )
    }

    fn open(&self) -> Result<Conn, StoreError> {
        self.target
            .open(self.connect_timeout, self.io_timeout)
            .map_err(|e| redis_error(&e, true))
    }

    /// Runs `op` on a pooled connection, or a new one; a pooled connection that turns out dead
    /// is replaced once. A connection that failed in any way is dropped, never pooled.
    fn with_conn<T>(
        &self,
        op: impl Fn(&mut Conn) -> ::redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.pool
            .with(|| self.open(), op, is_stale, |e| redis_error(&e, false))
    }
}

/// A pooled connection that the server closed (restart, idle timeout): worth one retry.
pub(super) fn is_stale(e: &::redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal())
}

/// The kind of a redis error: a fault of the connection (an outage), or an answer of the server
/// refusing the request (`OOM` under `maxmemory` with `noeviction`, `READONLY` on a replica,
/// `WRONGTYPE` at a key of another type, any other error reply), which fails that call only.
pub(super) fn redis_error(e: &::redis::RedisError, connecting: bool) -> StoreError {
    use ::redis::ErrorKind as Redis;
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if connecting || e.is_connection_refusal() {
        ErrorKind::Connect
    } else if e.is_io_error() || e.is_connection_dropped() {
        ErrorKind::Io
    } else if matches!(e.kind(), Redis::Server(_) | Redis::Extension) {
        ErrorKind::Rejected
    } else {
        ErrorKind::Protocol
    };
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) if kind == ErrorKind::Rejected => {
            StoreError::new(kind, detail).with_code(code)
        }
        _ => StoreError::new(kind, e.to_string()),
    }
}

/// The cross-process single-flight lock of a key: outside the namespace, so that clearing it
/// never sees locks.
pub(super) fn lock_key(namespace: &str, key: &str) -> String {
    format!("lock:{namespace}:{key}")
}

/// A SCAN pattern matching the keys of `namespace` exactly: its glob characters escaped.
fn namespace_pattern(namespace: &str) -> String {
    let mut pattern = String::with_capacity(namespace.len() + 3);
    for c in namespace.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}

impl RedisStore {
    /// The generation of `namespace` (see the type's docs), read through `conn` if not fresh.
    fn generation(&self, conn: &mut Conn, namespace: &str) -> ::redis::RedisResult<u64> {
        if let Some(generation) = self.generations.fresh(namespace) {
            return Ok(generation);
        }
        let steps = GenerationRead::new(&self.generations, namespace);
        let generation = match steps.found(steps.get().query(conn)?) {
            Ok(generation) => generation,
            Err(set) => {
                let again = match set.query::<Option<String>>(conn)? {
                    Some(_) => None,
                    None => steps.get().query(conn)?,
                };
                steps.replaced(again)
            }
        };
        self.generations.remember(namespace, generation);
        Ok(generation)
    }

    /// Runs `op` with the data key of `key` in `namespace`; `None` if skipped: on a cluster,
    /// when the master of the key (or of the namespace's generation, never read by this
    /// process) is down while others are up.
    fn with_key<T>(
        &self,
        namespace: &str,
        key: &str,
        op: impl Fn(&mut Conn, &str) -> ::redis::RedisResult<T>,
    ) -> Result<Option<T>, StoreError> {
        let Some(slots) = self.target.slots() else {
            return self
                .with_conn(|c| {
                    let generation = self.generation(c, namespace)?;
                    op(c, &data_key(namespace, generation, key))
                })
                .map(Some);
        };
        self.refresh_slots(slots);
        let generation = match self.generations.fresh(namespace) {
            Some(generation) => generation,
            None => {
                let read = self.routed(slots, &generation::key(namespace), |c| {
                    self.generation(c, namespace)
                })?;
                // Its master is down: nobody can clear the namespace meanwhile, so the
                // generation last seen is still right.
                match read.or_else(|| self.generations.last(namespace)) {
                    Some(generation) => generation,
                    None => return Ok(None),
                }
            }
        };
        let data = data_key(namespace, generation, key);
        self.routed(slots, &data, |c| op(c, &data))
    }

    /// `op` on the master of `key` unless it is down (see [`Slots`]).
    fn routed<T>(
        &self,
        slots: &Slots,
        key: &str,
        op: impl Fn(&mut Conn) -> ::redis::RedisResult<T>,
    ) -> Result<Option<T>, StoreError> {
        slots.run(key, || self.with_conn(op))
    }

    /// Reads the cluster's slot map if it is stale (best effort: a failure keeps the old one).
    fn refresh_slots(&self, slots: &Slots) {
        if !slots.claim_refresh() {
            return;
        }
        let (cmd, routing) = super::redis_conn::slots_command();
        match self.with_conn(|c| c.route(&cmd, routing.clone())) {
            Ok(reply) => slots.update(&reply),
            Err(_) => slots.refreshed(),
        }
    }

    /// `op` on the lock key `lock` (routed on a cluster); `None` if skipped.
    fn with_lock<T>(
        &self,
        lock: &str,
        op: impl Fn(&mut Conn) -> ::redis::RedisResult<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.target.slots() {
            Some(slots) => self.routed(slots, lock, op),
            None => self.with_conn(op).map(Some),
        }
    }
}

/// The steps of reading a namespace's generation, for the sync and the async connection alike:
/// `GET` it; if it is missing or garbled, `SET` a replacement (`NX` if missing: unless another
/// process recreated it first), and if that did not take, `GET` it again.
pub(super) struct GenerationRead {
    gen_key: String,
    fresh: u64,
}

impl GenerationRead {
    pub fn new(generations: &Generations, namespace: &str) -> Self {
        GenerationRead {
            gen_key: generation::key(namespace),
            fresh: generations.replacement(namespace),
        }
    }

    pub fn get(&self) -> ::redis::Cmd {
        ::redis::cmd("GET").arg(&self.gen_key).clone()
    }

    /// The generation `stored`, or the `SET` that replaces it.
    pub fn found(&self, stored: Option<Vec<u8>>) -> Result<u64, ::redis::Cmd> {
        match stored.as_deref().map(generation::parse) {
            Some(Some(generation)) => Ok(generation),
            missing_or_garbled => {
                let mut set = ::redis::cmd("SET");
                set.arg(&self.gen_key).arg(self.fresh);
                if missing_or_garbled.is_none() {
                    set.arg("NX");
                }
                Err(set)
            }
        }
    }

    /// The generation after the `SET`: the replacement if it took (`again` is `None`), else
    /// what another process stored, read `again`.
    pub fn replaced(&self, again: Option<Vec<u8>>) -> u64 {
        again
            .as_deref()
            .and_then(generation::parse)
            .unwrap_or(self.fresh)
    }
}

/// `SET key value` with the ttl in `EX` seconds or `PX` milliseconds.
pub(super) fn set_command(key: &str, value: &[u8], ttl: Option<Duration>) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(value);
    match ttl {
        Some(ttl) if ttl.subsec_nanos() == 0 => cmd.arg("EX").arg(ttl.as_secs()),
        Some(ttl) => cmd
            .arg("PX")
            .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64),
        None => &mut cmd,
    };
    cmd
}

/// `SET lock pid NX PX ttl`: the cross-process single-flight lock.
pub(super) fn lock_command(lock: &str, ttl: Duration) -> ::redis::Cmd {
    let millis = ttl.as_millis().clamp(1, i64::MAX as u128) as u64;
    ::redis::cmd("SET")
        .arg(lock)
        .arg(std::process::id())
        .arg("NX")
        .arg("PX")
        .arg(millis)
        .clone()
}

/// `GET key` and `PTTL key`, for the near cache: the value and how long it has left.
pub(super) fn get_with_ttl_pipe(key: &str) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
    pipe
}

/// What a `PTTL` reply says is left (`-1`: no expiry, `-2`: gone).
pub(super) fn remaining(pttl: i64) -> Option<Duration> {
    u64::try_from(pttl).ok().map(Duration::from_millis)
}

pub(super) fn data_key(namespace: &str, generation: u64, key: &str) -> String {
    format!("{namespace}:{generation}:{key}")
}

/// Unlinks the keys of `namespace`'s generations before `current`, on a thread of its own: the
/// memory of a cleared namespace is given back without the caller waiting for a SCAN of the
/// whole keyspace. Best effort: a failure leaves the keys to their ttl or to eviction.
fn reclaim(store: &RedisStore, namespace: &str, current: u64) {
    let (target, connect, io) = (
        Arc::clone(&store.target),
        store.connect_timeout,
        store.io_timeout,
    );
    let pattern = namespace_pattern(namespace);
    let prefix = format!("{namespace}:");
    let current = current.to_string();
    let spawned = std::thread::Builder::new()
        .name("memo-redis-reclaim".into())
        .spawn(move || {
            let result = (|| -> Result<usize, StoreError> {
                let error = |e: ::redis::RedisError| redis_error(&e, false);
                let mut conn = target
                    .open(connect, io)
                    .map_err(|e| redis_error(&e, true))?;
                let mut unlinked = 0;
                // Every master of a cluster (the one server otherwise).
                for node in conn.masters().map_err(error)? {
                    let mut cursor: u64 = 0;
                    loop {
                        let mut scan = ::redis::cmd("SCAN");
                        scan.arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000);
                        let (next, keys): (u64, Vec<String>) =
                            conn.query_on(&node, &scan).map_err(error)?;
                        let old: Vec<Vec<u8>> = keys
                            .into_iter()
                            .filter(|key| {
                                let generation =
                                    key[prefix.len()..].split(':').next().unwrap_or("");
                                // Old generations' data keys only: not `gen`, not the current one.
                                generation != current
                                    && generation.bytes().all(|b| b.is_ascii_digit())
                            })
                            .map(String::into_bytes)
                            .collect();
                        if !old.is_empty() {
                            // One UNLINK per key in a pipeline: no multi-key command, so
                            // cluster-safe.
                            conn.unlink_each(&old).map_err(error)?;
                            unlinked += old.len();
                        }
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok(unlinked)
            })();
            match result {
                Ok(unlinked) => tracing::debug!(unlinked, "redis: old generations unlinked"),
                Err(error) => tracing::debug!(%error, "redis: old generations left to expire"),
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "redis: cannot start the reclaiming thread");
    }
}

impl Store for RedisStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_key(namespace, key, |c, key| {
            ::redis::cmd("GET").arg(key).query(c)
        })
        .map(Option::flatten)
    }

    /// `GET` and `PTTL` in one pipeline (one round trip, the same master on a cluster).
    fn get_with_ttl(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
        self.with_key(namespace, key, |c, key| {
            let (value, pttl) = c.get_with_ttl(key)?;
            Ok(value.map(|value| (value, remaining(pttl))))
        })
        .map(Option::flatten)
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with_key(namespace, key, |c, key| {
            set_command(key, value, ttl).query::<()>(c)
        })
        .map(drop)
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.with_key(namespace, key, |c, key| {
            ::redis::cmd("DEL").arg(key).query::<u64>(c)
        })
        .map(|n| n.is_some_and(|n| n > 0))
    }

    /// One `INCR` of the generation (one round trip, whatever the server holds); the old keys
    /// are unlinked in the background.
    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let gen_key = generation::key(namespace);
        let generation = self.with_conn(|c| {
            let mut generation: u64 = ::redis::cmd("INCR").arg(&gen_key).query(c)?;
            if generation == 1 {
                // It was missing (or evicted): a fresh one never meets an old generation.
                generation = (self.generations.replacement(namespace).saturating_add(1))
                    .max(generation::unix_millis());
                ::redis::cmd("SET")
                    .arg(&gen_key)
                    .arg(generation)
                    .query::<()>(c)?;
            }
            Ok(generation)
        });
        let generation = match generation {
            // A garbled generation cannot be incremented: start a fresh one.
            Err(e) if e.kind() == ErrorKind::Rejected => self.with_conn(|c| {
                let fresh = generation::unix_millis();
                ::redis::cmd("SET")
                    .arg(&gen_key)
                    .arg(fresh)
                    .query::<()>(c)?;
                Ok(fresh)
            })?,
            other => other?,
        };
        self.generations.remember(namespace, generation);
        reclaim(self, namespace, generation);
        Ok(())
    }

    fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let lock = lock_key(namespace, key);
        self.with_lock(&lock, |c| {
            let reply: Option<String> = lock_command(&lock, ttl).query(c)?;
            Ok(reply.is_some())
        })
        // Its master is down: compute.
        .map(|taken| taken.unwrap_or(true))
    }

    fn unlock(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let lock = lock_key(namespace, key);
        self.with_lock(&lock, |c| ::redis::cmd("DEL").arg(&lock).query::<()>(c))
            .map(drop)
    }

    /// Unknown: Redis cannot count one namespace's live keys without scanning the keyspace.
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        let _ = namespace;
        Ok(None)
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target.describe())
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_pattern_escapes_glob_characters() {
        assert_eq!(namespace_pattern("memo:a::f:v1.00"), "memo:a::f:v1.00:*");
        assert_eq!(namespace_pattern("p[1]*?\\"), "p\\[1\\]\\*\\?\\\\:*");
        assert_eq!(
            data_key("memo:a::f:v1.00", 7, "[1]"),
            "memo:a::f:v1.00:7:[1]"
        );
    }
}
