//! Redis through the `redis` crate: plain synchronous connections in a small pool.

use std::time::Duration;

use parking_lot::Mutex;

use super::generation::{self, Generations};
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
/// keys without a scan, so [`len`](Store::len) is unknown (`None`). Only single-key commands are
/// used, so the same calls work against a Redis Cluster.
///
/// Connections are made on first use (a server that is down at start-up is an outage like any
/// other) and kept in a small pool; every connect, read and write is bounded by a timeout
/// (250 ms by default). A pooled connection found dead (the server restarted) is replaced once,
/// at once, before the call is counted as a failure.
///
/// ```
/// use memo_core::stores::{self, RedisStore};
/// use std::time::Duration;
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0")?
///     .with_timeouts(Duration::from_millis(100), Duration::from_millis(200));
/// stores::register("doc-redis", store);
/// # Ok::<(), stores::StoreError>(())
/// ```
pub struct RedisStore {
    client: ::redis::Client,
    pool: Mutex<Vec<::redis::Connection>>,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    generations: Generations,
}

impl RedisStore {
    /// A store on the server at `url` (`redis://[:password@]host:port[/db]`, `rediss://` not
    /// included). Only the URL is checked here; the connection is made on first use.
    ///
    /// ```
    /// assert!(memo_core::stores::RedisStore::connect("redis://127.0.0.1:6379").is_ok());
    /// assert!(memo_core::stores::RedisStore::connect("not a url").is_err());
    /// ```
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url)
            .map_err(|e| StoreError::new(ErrorKind::Config, format!("redis url `{url}`: {e}")))?;
        Ok(RedisStore {
            client,
            pool: Mutex::new(Vec::new()),
            connect_timeout: DEFAULT_TIMEOUT,
            io_timeout: DEFAULT_TIMEOUT,
            max_idle: 16,
            generations: Generations::new(Duration::from_secs(1)),
        })
    }

    /// The timeouts of connecting and of each read or write (both 250 ms by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo_core::stores::RedisStore::connect("redis://127.0.0.1")?
    ///     .with_timeouts(Duration::from_millis(50), Duration::from_millis(100));
    /// # let _ = store;
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect.max(Duration::from_millis(1));
        self.io_timeout = io.max(Duration::from_millis(1));
        self
    }

    /// How many idle connections are kept for reuse (default 16).
    ///
    /// ```
    /// let store = memo_core::stores::RedisStore::connect("redis://127.0.0.1")?.with_max_idle(4);
    /// # let _ = store;
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// How long a namespace's generation is trusted before it is read again (default 1 s): how
    /// soon a clear made by another process is seen.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo_core::stores::RedisStore::connect("redis://127.0.0.1")?
    ///     .with_generation_refresh(Duration::ZERO); // read it on every call
    /// # let _ = store;
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_generation_refresh(mut self, refresh: Duration) -> Self {
        self.generations.set_refresh(refresh);
        self
    }

    fn open(&self) -> Result<::redis::Connection, StoreError> {
        open(&self.client, self.connect_timeout, self.io_timeout)
    }

    /// Runs `op` on a pooled connection, or a new one; a pooled connection that turns out dead
    /// is replaced once. A connection that failed in any way is dropped, never pooled.
    fn with_conn<T>(
        &self,
        op: impl Fn(&mut ::redis::Connection) -> ::redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.pool.lock().pop();
        let (mut conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => (self.open()?, false),
        };
        let result = match op(&mut conn) {
            Err(e) if reused && is_stale(&e) => {
                conn = self.open()?;
                op(&mut conn)
            }
            other => other,
        };
        match result {
            Ok(value) => {
                let mut pool = self.pool.lock();
                if pool.len() < self.max_idle {
                    pool.push(conn);
                }
                Ok(value)
            }
            Err(e) => Err(redis_error(&e, false)),
        }
    }
}

/// A connection to the server of `client`: the one place connections are made.
fn open(
    client: &::redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<::redis::Connection, StoreError> {
    let conn = client
        .get_connection_with_timeout(connect_timeout)
        .map_err(|e| redis_error(&e, true))?;
    conn.set_read_timeout(Some(io_timeout))
        .and_then(|()| conn.set_write_timeout(Some(io_timeout)))
        .map_err(|e| redis_error(&e, true))?;
    Ok(conn)
}

/// A pooled connection that the server closed (restart, idle timeout): worth one retry.
fn is_stale(e: &::redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal())
}

/// The kind of a redis error: a fault of the connection (an outage), or an answer of the server
/// refusing the request (`OOM` under `maxmemory` with `noeviction`, `READONLY` on a replica,
/// `WRONGTYPE` at a key of another type, any other error reply), which fails that call only.
fn redis_error(e: &::redis::RedisError, connecting: bool) -> StoreError {
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
    fn generation(
        &self,
        conn: &mut ::redis::Connection,
        namespace: &str,
    ) -> ::redis::RedisResult<u64> {
        if let Some(generation) = self.generations.fresh(namespace) {
            return Ok(generation);
        }
        let gen_key = generation::key(namespace);
        let stored: Option<Vec<u8>> = ::redis::cmd("GET").arg(&gen_key).query(conn)?;
        let generation = match stored.as_deref().map(generation::parse) {
            Some(Some(generation)) => generation,
            missing_or_garbled => {
                let fresh = self.generations.replacement(namespace);
                let mut set = ::redis::cmd("SET");
                set.arg(&gen_key).arg(fresh);
                if missing_or_garbled.is_none() {
                    // Missing: unless another process recreated it first.
                    set.arg("NX");
                }
                let stored: Option<String> = set.query(conn)?;
                if stored.is_some() {
                    fresh
                } else {
                    let again: Option<Vec<u8>> = ::redis::cmd("GET").arg(&gen_key).query(conn)?;
                    again
                        .as_deref()
                        .and_then(generation::parse)
                        .unwrap_or(fresh)
                }
            }
        };
        self.generations.remember(namespace, generation);
        Ok(generation)
    }

    /// Runs `op` with the data key of `key` in `namespace`.
    fn with_key<T>(
        &self,
        namespace: &str,
        key: &str,
        op: impl Fn(&mut ::redis::Connection, &str) -> ::redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.with_conn(|c| {
            let generation = self.generation(c, namespace)?;
            op(c, &data_key(namespace, generation, key))
        })
    }
}

fn data_key(namespace: &str, generation: u64, key: &str) -> String {
    format!("{namespace}:{generation}:{key}")
}

/// Unlinks the keys of `namespace`'s generations before `current`, on a thread of its own: the
/// memory of a cleared namespace is given back without the caller waiting for a SCAN of the
/// whole keyspace. Best effort: a failure leaves the keys to their ttl or to eviction.
fn reclaim(store: &RedisStore, namespace: &str, current: u64) {
    let (client, connect, io) = (
        store.client.clone(),
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
                let mut conn = open(&client, connect, io)?;
                let mut cursor: u64 = 0;
                let mut unlinked = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut conn)
                        .map_err(|e| redis_error(&e, false))?;
                    let mut pipe = ::redis::pipe();
                    let before = unlinked;
                    for key in &keys {
                        let generation = key[prefix.len()..].split(':').next().unwrap_or("");
                        // Old generations' data keys only: not `gen`, not the current one.
                        if generation != current && generation.bytes().all(|b| b.is_ascii_digit()) {
                            pipe.cmd("UNLINK").arg(key).ignore();
                            unlinked += 1;
                        }
                    }
                    if unlinked > before {
                        pipe.query::<()>(&mut conn)
                            .map_err(|e| redis_error(&e, false))?;
                    }
                    if next == 0 {
                        return Ok(unlinked);
                    }
                    cursor = next;
                }
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
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with_key(namespace, key, |c, key| {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(key).arg(value);
            match ttl {
                Some(ttl) if ttl.subsec_nanos() == 0 => cmd.arg("EX").arg(ttl.as_secs()),
                Some(ttl) => cmd
                    .arg("PX")
                    .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64),
                None => &mut cmd,
            };
            cmd.query::<()>(c)
        })
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.with_key(namespace, key, |c, key| {
            ::redis::cmd("DEL").arg(key).query::<u64>(c)
        })
        .map(|n| n > 0)
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

    /// Unknown: Redis cannot count one namespace's live keys without scanning the keyspace.
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        let _ = namespace;
        Ok(None)
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.client.get_connection_info().addr())
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
