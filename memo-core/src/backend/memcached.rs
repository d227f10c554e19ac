//! Memcached over its text protocol on a `TcpStream`.
//!
//! Written here rather than taken from the `memcache` crate (0.21, the maintained sync client),
//! whose r2d2 pool checks every connection with an extra `version` round trip on checkout, never
//! notices a broken connection (`has_broken` is a TODO returning `false`), connects eagerly when
//! the client is built (so registration fails while the server is down), and has no connect
//! timeout. The five commands used here (`get`, `set`, `add`, `incr`, `delete`) are short.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::key::{is_safe, sha256_hex, MAX_KEY_LEN};
use super::{ErrorKind, Store, StoreError, DEFAULT_TIMEOUT};

/// A [`Store`] on a memcached server.
///
/// Memcached cannot list keys, so each namespace has a generation, a number stored in
/// memcached under `namespace:gen` and part of every key (`namespace:generation:key`);
/// [`clear`](Store::clear) increments it, which orphans the old keys (memcached evicts them in
/// time). The generation is read at most once per `generation_refresh` (1 s by default) per
/// namespace and process, so a clear made by another process is seen within that time; this
/// process's own clears are seen at once. Ttls are in whole seconds (rounded up), memcached's
/// resolution.
///
/// ```
/// use memo_core::stores::{self, MemcachedStore};
/// use std::time::Duration;
///
/// let store = MemcachedStore::connect("memcache://127.0.0.1:11211")?
///     .with_timeouts(Duration::from_millis(100), Duration::from_millis(200));
/// stores::register("doc-memcached", store);
/// # Ok::<(), stores::StoreError>(())
/// ```
pub struct MemcachedStore {
    address: String,
    pool: Mutex<Vec<Connection>>,
    generations: Mutex<HashMap<String, (u64, Instant)>>,
    connect_timeout: Duration,
    io_timeout: Duration,
    generation_refresh: Duration,
    max_idle: usize,
}

struct Connection {
    stream: BufReader<TcpStream>,
}

/// Memcached reads an expiry above 30 days as a Unix time.
const RELATIVE_EXPIRY_LIMIT: u64 = 30 * 24 * 3600;

impl MemcachedStore {
    /// A store on the server at `address` (`host:port`, optionally `memcache://host:port`).
    /// Only the form is checked here; the connection is made on first use.
    ///
    /// ```
    /// use memo_core::stores::MemcachedStore;
    /// assert!(MemcachedStore::connect("127.0.0.1:11211").is_ok());
    /// assert!(MemcachedStore::connect("memcache://localhost:11211").is_ok());
    /// assert!(MemcachedStore::connect("localhost").is_err()); // no port
    /// ```
    pub fn connect(address: &str) -> Result<Self, StoreError> {
        let address = address.strip_prefix("memcache://").unwrap_or(address);
        let address = address.trim_end_matches('/');
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(StoreError::new(
                ErrorKind::Config,
                format!("memcached address `{address}`: expected host:port"),
            ));
        }
        Ok(MemcachedStore {
            address: address.to_string(),
            pool: Mutex::new(Vec::new()),
            generations: Mutex::new(HashMap::new()),
            connect_timeout: DEFAULT_TIMEOUT,
            io_timeout: DEFAULT_TIMEOUT,
            generation_refresh: Duration::from_secs(1),
            max_idle: 16,
        })
    }

    /// The timeouts of connecting and of each read or write (both 250 ms by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo_core::stores::MemcachedStore::connect("127.0.0.1:11211")?
    ///     .with_timeouts(Duration::from_millis(50), Duration::from_millis(100));
    /// # let _ = store;
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect.max(Duration::from_millis(1));
        self.io_timeout = io.max(Duration::from_millis(1));
        self
    }

    /// How long a namespace's generation is trusted before it is read again (default 1 s): how
    /// soon a clear made by another process is seen.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo_core::stores::MemcachedStore::connect("127.0.0.1:11211")?
    ///     .with_generation_refresh(Duration::ZERO); // read it on every call
    /// # let _ = store;
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_generation_refresh(mut self, refresh: Duration) -> Self {
        self.generation_refresh = refresh;
        self
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let addrs: Vec<SocketAddr> = self
            .address
            .to_socket_addrs()
            .map_err(|e| StoreError::new(ErrorKind::Connect, format!("{}: {e}", self.address)))?
            .collect();
        let mut last = StoreError::new(ErrorKind::Connect, format!("{}: no address", self.address));
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(self.io_timeout))?;
                    stream.set_write_timeout(Some(self.io_timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        stream: BufReader::new(stream),
                    });
                }
                Err(e) => {
                    let mut error = StoreError::from(e);
                    if error.kind() == ErrorKind::Io {
                        error = StoreError::new(ErrorKind::Connect, error.message());
                    }
                    last = error;
                }
            }
        }
        Err(last)
    }

    /// Runs `op` on a pooled connection, or a new one; a pooled connection that turns out dead
    /// is replaced once. A connection that failed in any way is dropped, never pooled.
    fn with_conn<T>(
        &self,
        op: impl Fn(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.pool.lock().pop();
        let (mut conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => (self.open()?, false),
        };
        let result = match op(&mut conn) {
            Err(e) if reused && e.kind() == ErrorKind::Io => {
                conn = self.open()?;
                op(&mut conn)
            }
            other => other,
        };
        if result.is_ok() {
            let mut pool = self.pool.lock();
            if pool.len() < self.max_idle {
                pool.push(conn);
            }
        }
        result
    }

    /// The generation of `namespace`: from this process's memory if fresh, else from the
    /// server, created there if missing: as the last one this process saw, or else the current
    /// time in ms (so that a generation lost to eviction never comes back to an old value).
    fn generation(&self, conn: &mut Connection, namespace: &str) -> Result<u64, StoreError> {
        let remembered = self.generations.lock().get(namespace).copied();
        if let Some((generation, read_at)) = remembered {
            if read_at.elapsed() < self.generation_refresh {
                return Ok(generation);
            }
        }
        let gen_key = format!("{namespace}:gen");
        let generation = match conn.get(&gen_key)? {
            Some(bytes) => parse_number(&bytes)?,
            None => {
                // Lost (a restart, an eviction): put back the last one seen, if any, so that
                // entries written under it stay readable.
                let fresh = remembered.map_or_else(unix_millis, |(generation, _)| generation);
                if conn.store("add", &gen_key, fresh.to_string().as_bytes(), 0)? {
                    fresh
                } else {
                    // Another process added it first.
                    let bytes = conn.get(&gen_key)?.ok_or_else(|| {
                        StoreError::new(ErrorKind::Protocol, "generation vanished")
                    })?;
                    parse_number(&bytes)?
                }
            }
        };
        self.remember(namespace, generation);
        Ok(generation)
    }

    fn remember(&self, namespace: &str, generation: u64) {
        self.generations
            .lock()
            .insert(namespace.to_string(), (generation, Instant::now()));
    }

    fn data_key(
        &self,
        conn: &mut Connection,
        namespace: &str,
        key: &str,
    ) -> Result<String, StoreError> {
        let generation = self.generation(conn, namespace)?;
        let full = format!("{namespace}:{generation}:{key}");
        if full.len() <= MAX_KEY_LEN && is_safe(&full) {
            Ok(full)
        } else {
            Ok(format!(
                "{namespace}:{generation}:#{}",
                sha256_hex(key.as_bytes())
            ))
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn parse_number(bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| StoreError::new(ErrorKind::Protocol, "a generation that is not a number"))
}

/// Memcached's `exptime` for `ttl`: seconds rounded up, or a Unix time beyond 30 days.
fn exptime(ttl: Option<Duration>) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    if secs <= RELATIVE_EXPIRY_LIMIT {
        secs.max(1)
    } else {
        unix_millis() / 1000 + secs
    }
}

fn protocol(message: impl Into<String>) -> StoreError {
    StoreError::new(ErrorKind::Protocol, message)
}

impl Connection {
    fn send(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        let stream = self.stream.get_mut();
        let mut request = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            request.extend_from_slice(part);
        }
        stream.write_all(&request)?;
        Ok(())
    }

    /// One response line, without its `\r\n`.
    fn line(&mut self) -> Result<String, StoreError> {
        let mut line = Vec::new();
        let read = (&mut self.stream).take(8192).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(StoreError::new(
                ErrorKind::Io,
                "connection closed by the server",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(protocol("a response line without its end"));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| protocol("a response line that is not text"))
    }

    /// An error line (`ERROR`, `CLIENT_ERROR ...`, `SERVER_ERROR ...`) as an error.
    fn unexpected(line: &str) -> StoreError {
        if line.starts_with("SERVER_ERROR") || line.starts_with("CLIENT_ERROR") {
            StoreError::new(ErrorKind::Rejected, line.to_string())
        } else {
            protocol(format!("unexpected response `{line}`"))
        }
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.send(&[b"get ", key.as_bytes(), b"\r\n"])?;
        let line = self.line()?;
        if line == "END" {
            return Ok(None);
        }
        let mut parts = line.split(' ');
        let (Some("VALUE"), Some(_key), Some(_flags), Some(len)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Self::unexpected(&line));
        };
        let len: usize = len
            .parse()
            .map_err(|_| protocol("a value length that is not a number"))?;
        let mut data = vec![0; len + 2];
        self.stream.read_exact(&mut data)?;
        if !data.ends_with(b"\r\n") {
            return Err(protocol("a value without its end"));
        }
        data.truncate(len);
        match self.line()?.as_str() {
            "END" => Ok(Some(data)),
            other => Err(Self::unexpected(other)),
        }
    }

    /// `set` or `add`; whether it stored.
    fn store(
        &mut self,
        verb: &str,
        key: &str,
        value: &[u8],
        exptime: u64,
    ) -> Result<bool, StoreError> {
        let header = format!("{verb} {key} 0 {exptime} {}\r\n", value.len());
        self.send(&[header.as_bytes(), value, b"\r\n"])?;
        match self.line()?.as_str() {
            "STORED" => Ok(true),
            "NOT_STORED" => Ok(false),
            other => Err(Self::unexpected(other)),
        }
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.send(&[b"delete ", key.as_bytes(), b"\r\n"])?;
        match self.line()?.as_str() {
            "DELETED" => Ok(true),
            "NOT_FOUND" => Ok(false),
            other => Err(Self::unexpected(other)),
        }
    }

    /// `incr key 1`: the new value, or `None` if the key is missing.
    fn incr(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        self.send(&[b"incr ", key.as_bytes(), b" 1\r\n"])?;
        let line = self.line()?;
        if line == "NOT_FOUND" {
            return Ok(None);
        }
        line.parse().map(Some).map_err(|_| Self::unexpected(&line))
    }
}

impl Store for MemcachedStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_conn(|c| {
            let key = self.data_key(c, namespace, key)?;
            c.get(&key)
        })
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| {
            let key = self.data_key(c, namespace, key)?;
            c.store("set", &key, value, exptime(ttl)).map(drop)
        })
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.with_conn(|c| {
            let key = self.data_key(c, namespace, key)?;
            c.delete(&key)
        })
    }

    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let gen_key = format!("{namespace}:gen");
        let generation = self.with_conn(|c| match c.incr(&gen_key)? {
            Some(generation) => Ok(generation),
            None => {
                // No generation yet (or evicted): a fresh one orphans whatever was there.
                let fresh = unix_millis();
                c.store("set", &gen_key, fresh.to_string().as_bytes(), 0)?;
                Ok(fresh)
            }
        })?;
        self.remember(namespace, generation);
        Ok(())
    }
}

impl std::fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("address", &self.address)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rounds_up_to_seconds_and_switches_to_unix_time_past_30_days() {
        assert_eq!(exptime(None), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1))), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500))), 2);
        assert_eq!(exptime(Some(Duration::from_secs(60))), 60);
        let far = exptime(Some(Duration::from_secs(RELATIVE_EXPIRY_LIMIT + 1)));
        assert!(far > unix_millis() / 1000, "{far}");
    }
}
