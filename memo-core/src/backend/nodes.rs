//! The health of each node of a store that spreads its keys over several (the servers of a
//! memcached pool, the masters of a Redis Cluster): a node that fails is skipped alone, so that
//! only its share of the keys misses while the others keep hitting.
//!
//! A node is skipped for one second after it fails, doubling on each failed retry up to 30 s;
//! past its retry time one call claims the retry while the others keep skipping it. One warning
//! is logged when a node goes down and one message when it comes back. Only when every node is
//! down does the store report the error itself, so that the registry's breaker opens one outage
//! of the whole store.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{ErrorKind, StoreError};

/// How long a failed node is skipped at first, and at most.
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One node: its address and whether it is down.
pub(crate) struct NodeHealth {
    address: String,
    down: Mutex<Option<Down>>,
}

/// A node that failed: skipped until `retry_at`.
struct Down {
    since: Instant,
    retry_at: Instant,
    failures: u32,
}

/// What a call routed to a node found: its answer, or `None` if the node was skipped.
pub(crate) type Routed<T> = Result<Option<T>, StoreError>;

impl NodeHealth {
    pub fn new(address: impl Into<String>) -> Self {
        NodeHealth {
            address: address.into(),
            down: Mutex::new(None),
        }
    }

    /// Whether the node is in use (not down).
    pub fn is_up(&self) -> bool {
        self.down.lock().is_none()
    }

    /// Whether the node may be used now; past its retry time, one call claims the retry and
    /// the others keep skipping it.
    pub fn may_try(&self) -> bool {
        let mut down = self.down.lock();
        match down.as_mut() {
            None => true,
            Some(down) if Instant::now() >= down.retry_at => {
                down.retry_at = Instant::now() + backoff(down.failures);
                true
            }
            Some(_) => false,
        }
    }

    /// The node failed with `error` (a fault of the connection); `what` names it in the warning
    /// (`memcached server`), of `nodes` in the store.
    pub fn failed(&self, what: &str, error: &StoreError, nodes: usize) {
        let mut down = self.down.lock();
        match down.as_mut() {
            Some(down) => {
                down.failures = down.failures.saturating_add(1);
                down.retry_at = Instant::now() + backoff(down.failures);
            }
            None => {
                *down = Some(Down {
                    since: Instant::now(),
                    retry_at: Instant::now() + RETRY,
                    failures: 0,
                });
                tracing::warn!(
                    node = %self.address,
                    %error,
                    "{what} {} unreachable: {error}; its share of the keys (about 1/{nodes}) \
                     misses until it recovers, the other nodes are used as before",
                    self.address
                );
            }
        }
    }

    /// The node answered.
    pub fn recovered(&self, what: &str) {
        let mut down = self.down.lock();
        if let Some(was) = down.take() {
            tracing::info!(
                node = %self.address,
                "{what} {} recovered after {:.1?}; using it again",
                self.address,
                was.since.elapsed()
            );
        }
    }

    /// Runs `op` on this node unless it is skipped, and records what happened: an outage error
    /// marks the node down and gives `Ok(None)` unless `all_down()` (every node of the store is
    /// down), then the error. A refusal passes through: the node answered.
    #[cfg_attr(not(feature = "memcached"), allow(dead_code))]
    pub fn route<T>(
        &self,
        what: &str,
        nodes: usize,
        all_down: impl Fn() -> bool,
        op: impl FnOnce() -> Result<T, StoreError>,
    ) -> Routed<T> {
        if !self.may_try() {
            return unless_all_down(what, all_down(), None);
        }
        let result = op();
        self.settle(what, nodes, all_down, result)
    }

    /// What [`route`](NodeHealth::route) does with the result of a call on this node.
    pub fn settle<T>(
        &self,
        what: &str,
        nodes: usize,
        all_down: impl Fn() -> bool,
        result: Result<T, StoreError>,
    ) -> Routed<T> {
        match result {
            Ok(value) => {
                self.recovered(what);
                Ok(Some(value))
            }
            Err(error) if error.is_outage() => {
                self.failed(what, &error, nodes);
                unless_all_down(what, all_down(), Some(error))
            }
            Err(error) => {
                self.recovered(what);
                Err(error)
            }
        }
    }
}

/// `Ok(None)` (a skipped node) while some node is up; the error once all are down (`what`s).
pub(crate) fn unless_all_down<T>(
    what: &str,
    all_down: bool,
    error: Option<StoreError>,
) -> Routed<T> {
    if !all_down {
        return Ok(None);
    }
    let error = error.unwrap_or_else(|| StoreError::new(ErrorKind::Connect, "no answer"));
    Err(StoreError::new(
        error.kind(),
        format!(
            "every {what} of the store is down; last: {}",
            error.message()
        ),
    ))
}

fn backoff(failures: u32) -> Duration {
    RETRY.saturating_mul(1 << failures.min(16)).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_node_is_skipped_until_its_retry_and_the_last_one_down_reports_the_error() {
        let node = NodeHealth::new("a:1");
        let refused = || StoreError::new(ErrorKind::Connect, "refused");
        assert_eq!(node.route("node", 2, || false, || Ok(1)), Ok(Some(1)));
        assert_eq!(
            node.route("node", 2, || false, || Err::<u8, _>(refused())),
            Ok(None)
        );
        assert!(!node.is_up());
        assert_eq!(
            node.route("node", 2, || false, || -> Result<u8, _> { unreachable!() }),
            Ok(None),
            "skipped, not called"
        );
        let all = node.route("node", 2, || true, || -> Result<u8, _> { unreachable!() });
        assert_eq!(all.unwrap_err().kind(), ErrorKind::Connect);
        assert_eq!(
            (backoff(0), backoff(1), backoff(9)),
            (RETRY, 2 * RETRY, MAX_RETRY)
        );
        let rejected = StoreError::new(ErrorKind::Rejected, "OOM");
        let up = NodeHealth::new("b:1");
        assert_eq!(
            up.route("node", 2, || false, || Err::<u8, _>(rejected.clone())),
            Err(rejected)
        );
        assert!(up.is_up(), "a refusal is an answer");
    }
}
