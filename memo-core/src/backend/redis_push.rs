//! The near cache's pushes on Redis: classic pub/sub (`PSUBSCRIBE`, `PUBLISH`), which a Redis
//! Cluster broadcasts to every node, so one connection to any node hears every process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::generation::Generations;
use super::near::Push;
use super::redis::redis_error;
use super::redis_conn::Target;
use super::StoreError;

/// How long the subscription may be silent before a `PING` checks it.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// A Redis store's side of the near cache.
pub(crate) struct RedisPush {
    pub target: Arc<Target>,
    pub generations: Arc<Generations>,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    /// Which node the next subscription tries (a cluster: each URL in turn).
    attempts: AtomicUsize,
    publisher: Mutex<Option<::redis::Connection>>,
}

impl RedisPush {
    pub fn new(
        target: Arc<Target>,
        generations: Arc<Generations>,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        RedisPush {
            target,
            generations,
            connect_timeout,
            io_timeout,
            attempts: AtomicUsize::new(0),
            publisher: Mutex::new(None),
        }
    }

    fn connect(&self, attempt: usize) -> ::redis::RedisResult<::redis::Connection> {
        let client = self.target.node_client(attempt)?;
        let conn = client.get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.io_timeout))?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        Ok(conn)
    }
}

impl Push for RedisPush {
    fn listen(
        &self,
        pattern: &str,
        live: &mut dyn FnMut(),
        message: &mut dyn FnMut(&str, &[u8]),
    ) -> StoreError {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let mut connecting = true;
        let result = (|| -> ::redis::RedisResult<()> {
            let mut conn = self.connect(attempt)?;
            connecting = false;
            let mut pubsub = conn.as_pubsub();
            pubsub.psubscribe(pattern)?;
            live();
            pubsub.set_read_timeout(Some(HEARTBEAT))?;
            loop {
                match pubsub.get_message() {
                    Ok(msg) => message(msg.get_channel_name(), msg.get_payload_bytes()),
                    Err(e) if e.is_timeout() => {
                        // Silent: is the server still there?
                        pubsub.set_read_timeout(Some(self.io_timeout))?;
                        pubsub.ping::<::redis::Value>()?;
                        pubsub.set_read_timeout(Some(HEARTBEAT))?;
                    }
                    Err(e) => return Err(e),
                }
            }
        })();
        match result {
            Err(e) => redis_error(&e, connecting),
            Ok(()) => StoreError::new(super::ErrorKind::Io, "subscription ended"),
        }
    }

    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), StoreError> {
        let mut publisher = self.publisher.lock();
        let mut last = None;
        // A kept connection found dead (a restart) is replaced once.
        for attempt in 0..2 {
            let conn = match publisher.as_mut() {
                Some(conn) => conn,
                None => {
                    let conn = self.connect(attempt).map_err(|e| redis_error(&e, true))?;
                    publisher.insert(conn)
                }
            };
            match ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query::<i64>(conn)
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    *publisher = None;
                    last = Some(redis_error(&e, false));
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::new(super::ErrorKind::Io, "not published")))
    }

    fn generation(&self, namespace: &str) -> Option<u64> {
        self.generations.last(namespace)
    }

    fn advance(&self, namespace: &str, generation: u64) {
        if self
            .generations
            .last(namespace)
            .is_none_or(|seen| generation > seen)
        {
            self.generations.remember(namespace, generation);
        }
    }
}
