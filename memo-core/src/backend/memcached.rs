//! Memcached over its text protocol on a `TcpStream`.
//!
//! Written here rather than taken from the `memcache` crate (0.21, the maintained sync client),
//! whose r2d2 pool checks every connection with an extra `version` round trip on checkout, never
//! notices a broken connection (`has_broken` is a TODO returning `false`), connects eagerly when
//! the client is built (so registration fails while the server is down), and has no connect
//! timeout. The commands used here (`get`, `set`, `add`, `incr`, `delete`, and `mg` for the near
//! cache) are short.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::generation::{self, Generations};
use super::ketama::Ketama;
use super::key::{is_safe, sha256_hex, MAX_KEY_LEN};
use super::nodes::NodeHealth;
use super::pool::{self, Idle};
use super::{ErrorKind, Store, StoreError, DEFAULT_TIMEOUT};

/// A [`Store`] on one memcached server or several (Django's list of `LOCATION`s).
///
/// Memcached cannot list keys, so each namespace has a generation, a number stored in
/// memcached under `namespace:gen` and part of every key (`namespace:generation:key`);
/// [`clear`](Store::clear) increments it, which orphans the old keys (memcached evicts them in
/// time). The generation is read at most once per `generation_refresh` (1 s by default) per
/// namespace and process, so a clear made by another process is seen within that time; this
/// process's own clears are seen at once. A generation that is not a number (garbage written by
/// something else) is replaced by a fresh one, once, with a warning: the namespace's old entries
/// become misses, as an undecodable value does.
///
/// Ttls are in whole seconds (rounded up), memcached's resolution; up to 30 days they are sent
/// as they are, beyond as a Unix time, capped at the largest memcached accepts (2038-01-19), so
/// no ttl overflows or wraps around to "already expired". A value too large for memcached's item
/// limit (1 MiB by default, [`with_item_size_max`](MemcachedStore::with_item_size_max)) is not
/// sent: the call is counted as a refused request (code `TOO_LARGE`), warned once per function.
///
/// With several servers, each key lives on one of them, chosen by ketama consistent hashing
/// (libmemcached's and pylibmc's continuum, so the same list places keys as they do); a server
/// that fails is skipped alone, for one second, doubling on each failed retry up to 30 s: only
/// its share of the keys misses (they are not moved to the other servers, whose entries would
/// go stale when it comes back), the others keep hitting, and one warning is logged per server
/// outage. Only when every server is down does the store report an outage. A namespace's
/// generation lives on one server too; while that one is down, the generation this process last
/// saw is used, and a clear of that namespace fails.
///
/// ```
/// use memo::stores::{self, MemcachedStore};
/// use std::time::Duration;
///
/// let store = MemcachedStore::connect("memcache://127.0.0.1:11211")?
///     .with_timeouts(Duration::from_millis(100), Duration::from_millis(200));
/// stores::register("doc-memcached", store);
/// // Three servers: keys spread by consistent hashing.
/// let pool = MemcachedStore::pool(["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"])?;
/// stores::register("doc-memcached-pool", pool);
/// # Ok::<(), stores::StoreError>(())
/// ```
pub struct MemcachedStore {
    servers: Vec<Server>,
    /// Where keys go when there are several servers.
    ring: Option<Ketama>,
    generations: Generations,
    connect_timeout: Duration,
    io_timeout: Duration,
    item_size_max: usize,
    warned_generation: AtomicBool,
    /// A server answered `mg` with `ERROR`: `get` only (the near cache's ttl then unknown).
    no_meta: AtomicBool,
}

/// One server of the store: its idle connections, and whether it is down (in a pool).
struct Server {
    address: String,
    idle: Idle<Connection>,
    health: NodeHealth,
}

/// A server that does not speak the meta protocol (`mg`): memcached before 1.6.
struct NoMeta;

/// Idle connections kept per server.
const MAX_IDLE: usize = 16;

/// What a server of a pool is called in warnings.
const SERVER: &str = "memcached server";

struct Connection {
    stream: BufReader<TcpStream>,
}

/// Memcached reads an expiry above 30 days as a Unix time.
const RELATIVE_EXPIRY_LIMIT: u64 = 30 * 24 * 3600;

/// The largest expiry memcached accepts: it parses `exptime` as a signed 32-bit number.
const MAX_EXPTIME: u64 = i32::MAX as u64;

/// Memcached's default item size limit (`-I 1m`).
const DEFAULT_ITEM_SIZE_MAX: usize = 1 << 20;

/// What an item costs memcached beside its key and value (header, flags, lengths, CAS).
const ITEM_OVERHEAD: usize = 96;

/// `host:port` from `host:port` or `memcache://host:port/`.
fn parse_address(address: &str) -> Result<String, StoreError> {
    let address = address.trim();
    let address = address.strip_prefix("memcache://").unwrap_or(address);
    let address = address.trim_end_matches('/');
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if port_ok {
        Ok(address.to_string())
    } else {
        Err(StoreError::new(
            ErrorKind::Config,
            format!("memcached address `{address}`: expected host:port"),
        ))
    }
}

impl MemcachedStore {
    /// A store on the server at `address` (`host:port`, optionally `memcache://host:port`), or
    /// on several servers separated by commas or semicolons (as [`pool`](MemcachedStore::pool)).
    /// Only the form is checked here; connections are made on first use.
    ///
    /// ```
    /// use memo::stores::MemcachedStore;
    /// assert!(MemcachedStore::connect("127.0.0.1:11211").is_ok());
    /// assert!(MemcachedStore::connect("memcache://localhost:11211").is_ok());
    /// assert!(MemcachedStore::connect("10.0.0.1:11211,10.0.0.2:11211").is_ok());
    /// assert!(MemcachedStore::connect("localhost").is_err()); // no port
    /// ```
    pub fn connect(address: &str) -> Result<Self, StoreError> {
        Self::pool(address.split([',', ';']))
    }

    /// A store on several servers, keys spread by ketama consistent hashing; the order of the
    /// list does not matter, but every process sharing the store must list the same servers.
    ///
    /// ```
    /// use memo::stores::MemcachedStore;
    /// assert!(MemcachedStore::pool(["10.0.0.1:11211", "10.0.0.2:11211"]).is_ok());
    /// assert!(MemcachedStore::pool(Vec::<String>::new()).is_err()); // no server
    /// ```
    pub fn pool<I>(addresses: I) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let addresses = addresses
            .into_iter()
            .map(|a| parse_address(a.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if addresses.is_empty() {
            return Err(StoreError::new(
                ErrorKind::Config,
                "a memcached store needs at least one server",
            ));
        }
        let ring = (addresses.len() > 1).then(|| Ketama::new(&addresses));
        let servers = addresses
            .into_iter()
            .map(|address| Server {
                health: NodeHealth::new(address.clone()),
                address,
                idle: Idle::new(MAX_IDLE),
            })
            .collect();
        Ok(MemcachedStore {
            servers,
            ring,
            generations: Generations::new(Duration::from_secs(1)),
            connect_timeout: DEFAULT_TIMEOUT,
            io_timeout: DEFAULT_TIMEOUT,
            item_size_max: DEFAULT_ITEM_SIZE_MAX,
            warned_generation: AtomicBool::new(false),
            no_meta: AtomicBool::new(false),
        })
    }

    /// The timeouts of connecting and of each read or write (both 250 ms by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo::stores::MemcachedStore::connect("127.0.0.1:11211")?
    ///     .with_timeouts(Duration::from_millis(50), Duration::from_millis(100));
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = pool::timeout(connect);
        self.io_timeout = pool::timeout(io);
        self
    }

    /// How long a namespace's generation is trusted before it is read again (default 1 s): how
    /// soon a clear made by another process is seen.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memo::stores::MemcachedStore::connect("127.0.0.1:11211")?
    ///     .with_generation_refresh(Duration::ZERO); // read it on every call
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_generation_refresh(mut self, refresh: Duration) -> Self {
        self.generations.set_refresh(refresh);
        self
    }

    /// The servers' item size limit, memcached's `-I` (default 1 MiB): a value that would not
    /// fit with its key is not sent.
    ///
    /// ```
    /// let store = memo::stores::MemcachedStore::connect("127.0.0.1:11211")?
    ///     .with_item_size_max(4 << 20); // servers started with -I 4m
    /// # let _ = store;
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_item_size_max(mut self, bytes: usize) -> Self {
        self.item_size_max = bytes;
        self
    }

    fn open(&self, address: &str) -> Result<Connection, StoreError> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|e| StoreError::new(ErrorKind::Connect, format!("{address}: {e}")))?
            .collect();
        let mut last = StoreError::new(ErrorKind::Connect, format!("{address}: no address"));
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

    /// Runs `op` on a pooled connection to server `index`, or a new one; a pooled connection
    /// that turns out dead is replaced once. A connection that failed in any way is dropped,
    /// never pooled.
    fn with_conn<T>(
        &self,
        index: usize,
        op: impl Fn(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let server = &self.servers[index];
        server.idle.with(
            || self.open(&server.address),
            op,
            |e| e.kind() == ErrorKind::Io,
            |e| e,
        )
    }

    /// The server that holds `key`.
    fn server_of(&self, key: &str) -> usize {
        self.ring.as_ref().map_or(0, |ring| ring.server(key))
    }

    /// Runs `op` on server `index`. With one server, errors pass through (the registry's
    /// breaker handles outages). In a pool, a server that is down is skipped (`Ok(None)`), and
    /// an outage error marks it down and also gives `Ok(None)`, unless every server is down:
    /// then the error, so that the whole store counts as down.
    fn routed<T>(
        &self,
        index: usize,
        op: impl Fn(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if self.ring.is_none() {
            return self.with_conn(index, op).map(Some);
        }
        let all_down = || self.servers.iter().all(|s| !s.health.is_up());
        self.servers[index]
            .health
            .route(SERVER, self.servers.len(), all_down, || {
                self.with_conn(index, op)
            })
    }

    /// The generation of `namespace`: from this process's memory if fresh, else from its
    /// server, created there if missing (as the last one this process saw, or else the current
    /// time in ms, so that a generation lost to eviction never comes back to an old value) and
    /// replaced if garbage. `None` if its server is down and this process never saw it.
    fn generation(&self, namespace: &str) -> Result<Option<u64>, StoreError> {
        if let Some(generation) = self.generations.fresh(namespace) {
            return Ok(Some(generation));
        }
        let gen_key = generation::key(namespace);
        let remembered = self.generations.last(namespace);
        let read = self.routed(self.server_of(&gen_key), |c| {
            self.read_generation(c, &gen_key, remembered)
        })?;
        match read {
            Some(generation) => {
                self.generations.remember(namespace, generation);
                Ok(Some(generation))
            }
            // Its server is down: nobody can clear the namespace meanwhile, so the generation
            // last seen is still right.
            None => Ok(remembered),
        }
    }

    fn read_generation(
        &self,
        c: &mut Connection,
        gen_key: &str,
        remembered: Option<u64>,
    ) -> Result<u64, StoreError> {
        match c.get(gen_key)? {
            Some(bytes) => match generation::parse(&bytes) {
                Some(generation) => Ok(generation),
                None => {
                    // Garbage: repaired like an undecodable value, by overwriting it with a
                    // generation newer than any (the entries under the garbage are orphaned).
                    let fresh = generation::unix_millis().max(remembered.map_or(0, |g| g + 1));
                    c.store("set", gen_key, fresh.to_string().as_bytes(), 0)?;
                    if !self.warned_generation.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            key = gen_key,
                            "memcached generation `{gen_key}` held something that is not a \
                             number; replaced it with a fresh generation (that function's \
                             entries start over)"
                        );
                    }
                    Ok(fresh)
                }
            },
            None => {
                // Lost (a restart, an eviction): put back the last one seen, if any, so that
                // entries written under it stay readable.
                let fresh = remembered.unwrap_or_else(generation::unix_millis);
                if c.store("add", gen_key, fresh.to_string().as_bytes(), 0)? {
                    Ok(fresh)
                } else {
                    // Another process added it first: read it again (garbage included).
                    self.read_generation(c, gen_key, remembered)
                }
            }
        }
    }

    /// The memcached key of `key` in `namespace`; `None` if the generation is unknown.
    fn data_key(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        let Some(generation) = self.generation(namespace)? else {
            return Ok(None);
        };
        let full = format!("{namespace}:{generation}:{key}");
        if full.len() <= MAX_KEY_LEN && is_safe(&full) {
            Ok(Some(full))
        } else {
            Ok(Some(format!(
                "{namespace}:{generation}:#{}",
                sha256_hex(key.as_bytes())
            )))
        }
    }

    /// The refusal of a value that memcached would not take (code `TOO_LARGE`): like any
    /// refusal, warned once per function by the registry.
    fn oversized(&self, len: usize) -> StoreError {
        StoreError::new(
            ErrorKind::Rejected,
            format!(
                "a value of {len} bytes is over memcached's item size limit of {} bytes with its \
                 key; not sent (raise it with `memcached -I` and \
                 MemcachedStore::with_item_size_max, or compress values)",
                self.item_size_max
            ),
        )
        .with_code("TOO_LARGE")
    }
}

/// The cross-process single-flight lock of the memcached key `data`.
fn lock_key(data: &str) -> String {
    let lock = format!("lock:{data}");
    if lock.len() <= MAX_KEY_LEN {
        lock
    } else {
        format!("lock:#{}", sha256_hex(data.as_bytes()))
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Memcached's `exptime` for `ttl` at Unix time `now`: seconds rounded up, or beyond 30 days a
/// Unix time, capped at the largest memcached accepts.
fn exptime(ttl: Option<Duration>, now: u64) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if secs <= RELATIVE_EXPIRY_LIMIT {
        secs.max(1)
    } else {
        now.saturating_add(secs).min(MAX_EXPTIME)
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
            let code = line.split(' ').next().unwrap_or(line);
            StoreError::new(ErrorKind::Rejected, line.to_string()).with_code(code)
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

    /// `mg key v t` (the meta protocol, memcached 1.6+): the value and its remaining ttl
    /// (whole seconds, rounded down by the server: never longer than the item's; `None`: no
    /// expiry), for the near cache; `Err(NoMeta)` from a server without the meta protocol.
    #[allow(clippy::type_complexity)]
    fn get_with_ttl(
        &mut self,
        key: &str,
    ) -> Result<Result<Option<(Vec<u8>, Option<Duration>)>, NoMeta>, StoreError> {
        self.send(&[b"mg ", key.as_bytes(), b" v t\r\n"])?;
        let line = self.line()?;
        match line.as_str() {
            "EN" => return Ok(Ok(None)),
            "ERROR" => return Ok(Err(NoMeta)),
            _ => {}
        }
        let mut parts = line.split(' ');
        let (Some("VA"), Some(len)) = (parts.next(), parts.next()) else {
            return Err(Self::unexpected(&line));
        };
        let len: usize = len
            .parse()
            .map_err(|_| protocol("a value length that is not a number"))?;
        let left = parts
            .find_map(|flag| flag.strip_prefix('t'))
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| u64::try_from(t).ok())
            .map(Duration::from_secs);
        let mut data = vec![0; len + 2];
        self.stream.read_exact(&mut data)?;
        if !data.ends_with(b"\r\n") {
            return Err(protocol("a value without its end"));
        }
        data.truncate(len);
        Ok(Ok(Some((data, left))))
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
        let Some(key) = self.data_key(namespace, key)? else {
            return Ok(None);
        };
        Ok(self
            .routed(self.server_of(&key), |c| c.get(&key))?
            .flatten())
    }

    /// `mg key v t`: the value and its remaining ttl in one round trip (memcached 1.6+; a
    /// server without the meta protocol answers `ERROR`, and `get` is used from then on, the
    /// ttl unknown).
    fn get_with_ttl(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
        if self.no_meta.load(Ordering::Relaxed) {
            return Ok(self.get(namespace, key)?.map(|value| (value, None)));
        }
        let Some(data_key) = self.data_key(namespace, key)? else {
            return Ok(None);
        };
        match self.routed(self.server_of(&data_key), |c| c.get_with_ttl(&data_key))? {
            Some(Err(NoMeta)) => {
                self.no_meta.store(true, Ordering::Relaxed);
                Ok(self.get(namespace, key)?.map(|value| (value, None)))
            }
            Some(Ok(found)) => Ok(found),
            None => Ok(None),
        }
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let Some(key) = self.data_key(namespace, key)? else {
            return Ok(());
        };
        if value.len().saturating_add(key.len() + ITEM_OVERHEAD) > self.item_size_max {
            return Err(self.oversized(value.len()));
        }
        let exptime = exptime(ttl, unix_secs());
        self.routed(self.server_of(&key), |c| {
            c.store("set", &key, value, exptime)
        })
        .map(drop)
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        let Some(key) = self.data_key(namespace, key)? else {
            return Ok(false);
        };
        Ok(self
            .routed(self.server_of(&key), |c| c.delete(&key))?
            .unwrap_or(false))
    }

    fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let Some(data) = self.data_key(namespace, key)? else {
            return Ok(true); // its server is down: compute
        };
        let lock = lock_key(&data);
        let exptime = exptime(Some(ttl), unix_secs());
        let taken = self.routed(self.server_of(&lock), |c| {
            c.store("add", &lock, b"1", exptime)
        })?;
        Ok(taken.unwrap_or(true))
    }

    fn unlock(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let Some(data) = self.data_key(namespace, key)? else {
            return Ok(());
        };
        let lock = lock_key(&data);
        self.routed(self.server_of(&lock), |c| c.delete(&lock))
            .map(drop)
    }

    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let gen_key = generation::key(namespace);
        let index = self.server_of(&gen_key);
        // A fresh generation must differ from the one in use, even within one millisecond.
        let newer = self
            .generations
            .last(namespace)
            .map_or(0, |generation| generation + 1);
        let generation = self.routed(index, |c| {
            let incremented = match c.incr(&gen_key) {
                // Garbage, which `incr` refuses, is replaced like a missing generation.
                Err(error) if error.kind() == ErrorKind::Rejected => None,
                other => other?,
            };
            match incremented {
                Some(generation) => Ok(generation),
                None => {
                    // No generation yet (or evicted): a fresh one orphans whatever was there.
                    let fresh = generation::unix_millis().max(newer);
                    c.store("set", &gen_key, fresh.to_string().as_bytes(), 0)?;
                    Ok(fresh)
                }
            }
        })?;
        match generation {
            Some(generation) => {
                self.generations.remember(namespace, generation);
                Ok(())
            }
            None => Err(StoreError::new(
                ErrorKind::Rejected,
                format!(
                    "cannot clear `{namespace}`: the memcached server holding its generation \
                     ({}) is down",
                    self.servers[index].address
                ),
            )),
        }
    }
}

impl std::fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<&str> = self.servers.iter().map(|s| s.address.as_str()).collect();
        f.debug_struct("MemcachedStore")
            .field("servers", &servers)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn exptime_rounds_up_to_seconds_and_switches_to_unix_time_past_30_days() {
        assert_eq!(exptime(None, NOW), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1)), NOW), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500)), NOW), 2);
        assert_eq!(exptime(Some(Duration::from_secs(60)), NOW), 60);
        let month = Duration::from_secs(RELATIVE_EXPIRY_LIMIT);
        assert_eq!(exptime(Some(month), NOW), RELATIVE_EXPIRY_LIMIT);
        let far = exptime(Some(month + Duration::from_secs(1)), NOW);
        assert_eq!(far, NOW + RELATIVE_EXPIRY_LIMIT + 1);
    }

    #[test]
    fn huge_ttls_are_capped_at_the_largest_exptime_without_overflow() {
        for ttl in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(100 * 365 * 24 * 3600),
        ] {
            assert_eq!(exptime(Some(ttl), NOW), MAX_EXPTIME, "{ttl:?}");
        }
        assert_eq!(exptime(Some(Duration::MAX), u64::MAX), MAX_EXPTIME);
    }

    #[test]
    fn addresses_are_checked_and_lists_make_a_ring() {
        let one = MemcachedStore::connect("memcache://127.0.0.1:11211/").unwrap();
        assert!(one.ring.is_none());
        assert_eq!(one.servers[0].address, "127.0.0.1:11211");
        let three = MemcachedStore::connect("a:1, b:2;c:3").unwrap();
        assert_eq!(three.servers.len(), 3);
        assert!(three.ring.is_some());
        assert_eq!(
            MemcachedStore::connect("a:1,b").unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}
