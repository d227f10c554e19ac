//! Feature `tokio`: the calls of an `async fn` with a [`RedisStore`](super::RedisStore) on the
//! redis crate's async connections (one multiplexed connection to a server, TLS or not, or the
//! async cluster client), so the executor thread never waits for the server.
//!
//! The connections and their calls run on a tokio runtime of memo's own (one thread per
//! process, `memo-redis-async`, started on the first call), and the caller awaits the call's
//! task: that works from any executor, whatever drivers the application's runtime enabled
//! (redis's tokio connections need the IO and time drivers, and a connection dies with the
//! runtime that drives it, while stores are registered once per process). One thread serves
//! every store and call at once: a hung server holds up no other call.
//!
//! Each call (a lookup, a write, a lock), connecting and reading the namespace's generation
//! included, is bounded as a whole by the store's timeout (the larger of its connect and I/O
//! timeouts, 250 ms by default) through `tokio::time`: it never takes longer. The commands, the
//! generations, the key layout and a cluster's per-master skipping are the sync store's
//! ([`super::redis`], [`Slots`]), shared with it, so a sync and an async function see the same
//! keys and the same clears.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster::ClusterConfig;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::RoutingInfo;
use ::redis::{AsyncConnectionConfig, Cmd, FromRedisValue, RedisError, RedisResult, Value};
use tokio::time::Instant;

use super::cache::Pending;
use super::generation::Generations;
use super::redis::{
    data_key, is_stale, lock_command, lock_key, redis_error, set_command, GenerationRead,
};
use super::redis_conn::{slots_command, Route, Slots, Target, TargetKind};
use super::{ErrorKind, StoreError};

/// The async side of one `RedisStore`: its target, generations and timeouts, and one
/// connection (multiplexed: every task shares it).
pub(crate) struct AsyncRedis {
    target: Arc<Target>,
    generations: Arc<Generations>,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// The bound of a whole call.
    timeout: Duration,
    /// Locked while connecting, so that concurrent first calls make one connection.
    conn: tokio::sync::Mutex<Option<AsyncConn>>,
}

/// An async connection of either kind; clones share it.
#[derive(Clone)]
enum AsyncConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl AsyncConn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            AsyncConn::Single(conn) => cmd.query_async(conn).await,
            AsyncConn::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    async fn route(&mut self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        match self {
            AsyncConn::Cluster(conn) => conn.route_command(cmd, routing).await,
            AsyncConn::Single(conn) => cmd.query_async(conn).await,
        }
    }
}

/// memo's runtime for the async connections, started on first use (`None` if it cannot be).
fn runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| tracing::warn!(%error, "cannot start memo's tokio runtime"))
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("memo-redis-async".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(|error| tracing::warn!(%error, "cannot start memo's tokio runtime"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Runs `call` on memo's runtime and awaits it (from any executor).
async fn spawned<T: Send + 'static>(
    call: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let Some(runtime) = runtime() else {
        return Err(StoreError::new(
            ErrorKind::Io,
            "memo's tokio runtime could not be started",
        ));
    };
    match runtime.spawn(call).await {
        Ok(result) => result,
        Err(error) => Err(StoreError::new(ErrorKind::Io, error.to_string())),
    }
}

/// Whether an invalidation stopped waiting for the write `ticket` tracks.
fn cancelled(ticket: &Option<Box<dyn Pending + Send>>) -> bool {
    ticket.as_ref().is_some_and(|t| t.cancelled())
}

impl AsyncRedis {
    pub fn new(
        target: Arc<Target>,
        generations: Arc<Generations>,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        AsyncRedis {
            target,
            generations,
            connect_timeout,
            io_timeout,
            timeout: connect_timeout.max(io_timeout),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// `GET` of `key` in `namespace`.
    pub async fn get(
        self: &Arc<Self>,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (this, namespace, key) = (Arc::clone(self), namespace.to_owned(), key.to_owned());
        spawned(async move {
            let get = |data: &str| ::redis::cmd("GET").arg(data).clone();
            this.with_key(&namespace, &key, get)
                .await
                .map(|found: Option<Option<Vec<u8>>>| found.flatten())
        })
        .await
    }

    /// `SET` of `key` in `namespace`, with the ttl. A `ticket` (a single-flight leader's write,
    /// which invalidations of the key wait for) goes with the call to memo's runtime and is
    /// dropped there when the write has ended, whether or not the caller still awaits it; if an
    /// invalidation stopped waiting for it, the `SET` is skipped, or undone by a `DEL` once made.
    pub async fn set(
        self: &Arc<Self>,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        ticket: Option<Box<dyn Pending + Send>>,
    ) -> Result<(), StoreError> {
        let (this, namespace, key) = (Arc::clone(self), namespace.to_owned(), key.to_owned());
        spawned(async move {
            if cancelled(&ticket) {
                return Ok(());
            }
            let set = |data: &str| set_command(data, &value, ttl);
            let written = this.with_key::<()>(&namespace, &key, set).await.map(drop);
            if cancelled(&ticket) {
                let del = |data: &str| ::redis::cmd("DEL").arg(data).clone();
                let _ = this.with_key::<()>(&namespace, &key, del).await;
            }
            drop(ticket);
            written
        })
        .await
    }

    /// The cross-process lock of `key` (`SET NX PX`): whether this call took it (`true` too
    /// when its master is down: compute).
    pub async fn try_lock(
        self: &Arc<Self>,
        namespace: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (this, lock) = (Arc::clone(self), lock_key(namespace, key));
        spawned(async move {
            let deadline = Instant::now() + this.timeout;
            let taken: Option<Option<String>> = this
                .routed(deadline, &lock, &lock_command(&lock, ttl))
                .await?;
            Ok(taken.is_none_or(|reply| reply.is_some()))
        })
        .await
    }

    /// Releases the lock of `key`.
    pub async fn unlock(self: &Arc<Self>, namespace: &str, key: &str) -> Result<(), StoreError> {
        let (this, lock) = (Arc::clone(self), lock_key(namespace, key));
        spawned(async move {
            let deadline = Instant::now() + this.timeout;
            let del = ::redis::cmd("DEL").arg(&lock).clone();
            this.routed::<()>(deadline, &lock, &del).await.map(drop)
        })
        .await
    }

    /// `command(data key)` for `key` in `namespace`, within one deadline; `None` if skipped (a
    /// cluster master that is down, see [`Slots`]).
    async fn with_key<T: FromRedisValue>(
        &self,
        namespace: &str,
        key: &str,
        command: impl Fn(&str) -> Cmd,
    ) -> Result<Option<T>, StoreError> {
        let deadline = Instant::now() + self.timeout;
        if let Some(slots) = self.target.slots() {
            self.refresh_slots(deadline, slots).await;
        }
        let generation = match self.generations.fresh(namespace) {
            Some(generation) => generation,
            None => match self.read_generation(deadline, namespace).await? {
                Some(generation) => generation,
                None => return Ok(None),
            },
        };
        let data = data_key(namespace, generation, key);
        self.routed(deadline, &data, &command(&data)).await
    }

    /// The generation of `namespace` from the server (as the sync store reads it); on a
    /// cluster whose master of it is down, the last one seen (`None`: never seen).
    async fn read_generation(
        &self,
        deadline: Instant,
        namespace: &str,
    ) -> Result<Option<u64>, StoreError> {
        let steps = GenerationRead::new(&self.generations, namespace);
        let gen_key = super::generation::key(namespace);
        let read = self
            .route_to(deadline, &gen_key, |mut conn| {
                let steps = &steps;
                async move {
                    let generation = match steps.found(conn.query(&steps.get()).await?) {
                        Ok(generation) => generation,
                        Err(set) => {
                            let again = match conn.query::<Option<String>>(&set).await? {
                                Some(_) => None,
                                None => conn.query(&steps.get()).await?,
                            };
                            steps.replaced(again)
                        }
                    };
                    Ok(generation)
                }
            })
            .await?;
        match read {
            Some(generation) => {
                self.generations.remember(namespace, generation);
                Ok(Some(generation))
            }
            None => Ok(self.generations.last(namespace)),
        }
    }

    /// `cmd` on the connection, routed by the key `key` on a cluster.
    async fn routed<T: FromRedisValue>(
        &self,
        deadline: Instant,
        key: &str,
        cmd: &Cmd,
    ) -> Result<Option<T>, StoreError> {
        self.route_to(
            deadline,
            key,
            |mut conn| async move { conn.query(cmd).await },
        )
        .await
    }

    /// `op` on the connection; on a cluster, on the master of `key` unless it is down.
    async fn route_to<T, F, Fut>(
        &self,
        deadline: Instant,
        key: &str,
        op: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: Fn(AsyncConn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(slots) = self.target.slots() else {
            return self.with_conn(deadline, op).await.map(Some);
        };
        match slots.route(key) {
            Route::Skip(all_down) => super::redis_conn::skipped(all_down),
            route => slots.settle(&route, self.with_conn(deadline, op).await),
        }
    }

    /// Reads a cluster's slot map if it is stale (best effort, within the call's deadline).
    async fn refresh_slots(&self, deadline: Instant, slots: &Slots) {
        if !slots.claim_refresh() {
            return;
        }
        let read = self
            .with_conn(deadline, |mut conn| async move {
                let (cmd, routing) = slots_command();
                conn.route(cmd, routing).await
            })
            .await;
        match read {
            Ok(reply) => slots.update(&reply),
            Err(_) => slots.refreshed(),
        }
    }

    /// `op` on the shared connection (made first if there is none, or if it turns out dead:
    /// the server restarted), by `deadline`.
    async fn with_conn<T, F, Fut>(&self, deadline: Instant, op: F) -> Result<T, StoreError>
    where
        F: Fn(AsyncConn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let work = async {
            let (conn, reused) = self.conn(None).await?;
            match op(conn).await {
                Err(e) if reused && is_stale(&e) => {
                    let (conn, _) = self.conn(Some(&e)).await?;
                    op(conn).await.map_err(|e| self.failed(&e))
                }
                other => other.map_err(|e| self.failed(&e)),
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                ErrorKind::Timeout,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    /// The shared connection, or a new one (also when `stale` says the one there is dead).
    async fn conn(&self, stale: Option<&RedisError>) -> Result<(AsyncConn, bool), StoreError> {
        let mut slot = self.conn.lock().await;
        if stale.is_some() {
            *slot = None;
        }
        if let Some(conn) = slot.as_ref() {
            return Ok((conn.clone(), true));
        }
        let conn = self.open().await.map_err(|e| redis_error(&e, true))?;
        *slot = Some(conn.clone());
        Ok((conn, false))
    }

    /// A failed call's error; a connection that broke is dropped (the next call makes one).
    fn failed(&self, e: &RedisError) -> StoreError {
        if !e.is_timeout()
            && (e.is_connection_dropped() || e.is_io_error())
            && let Ok(mut slot) = self.conn.try_lock()
        {
            *slot = None;
        }
        redis_error(e, false)
    }

    async fn open(&self) -> RedisResult<AsyncConn> {
        match self.target.kind() {
            TargetKind::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.io_timeout));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(AsyncConn::Single(conn))
            }
            TargetKind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.connect_timeout)
                    .set_response_timeout(self.io_timeout);
                let conn = client.get_async_connection_with_config(config).await?;
                Ok(AsyncConn::Cluster(conn))
            }
        }
    }
}

// The near cache: a lookup that also tells how long the value has left (`GET` and `PTTL` in one
// pipeline), as the sync store's `get_with_ttl`.
impl AsyncRedis {
    /// `GET` and `PTTL` of `key` in `namespace`: the value and its remaining ttl.
    pub async fn get_with_ttl(
        self: &Arc<Self>,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
        let (this, namespace, key) = (Arc::clone(self), namespace.to_owned(), key.to_owned());
        spawned(async move {
            let deadline = Instant::now() + this.timeout;
            if let Some(slots) = this.target.slots() {
                this.refresh_slots(deadline, slots).await;
            }
            let generation = match this.generations.fresh(&namespace) {
                Some(generation) => generation,
                None => match this.read_generation(deadline, &namespace).await? {
                    Some(generation) => generation,
                    None => return Ok(None),
                },
            };
            let data = data_key(&namespace, generation, &key);
            let pipe = super::redis::get_with_ttl_pipe(&data);
            let read: Option<(Option<Vec<u8>>, i64)> = this
                .route_to(deadline, &data, |conn| {
                    let pipe = &pipe;
                    async move {
                        match conn {
                            AsyncConn::Single(mut c) => pipe.query_async(&mut c).await,
                            AsyncConn::Cluster(mut c) => pipe.query_async(&mut c).await,
                        }
                    }
                })
                .await?;
            Ok(read.and_then(|(value, pttl)| {
                value.map(|value| (value, super::redis::remaining(pttl)))
            }))
        })
        .await
    }
}
