//! What the network stores share about their connections: the idle connections kept for reuse
//! and the way a call uses one, and how their timeouts are taken.

use std::time::Duration;

use parking_lot::Mutex;

use super::StoreError;

/// Idle connections kept for reuse, at most `max` of them.
pub(crate) struct Idle<C> {
    conns: Mutex<Vec<C>>,
    max: usize,
}

impl<C> Idle<C> {
    pub fn new(max: usize) -> Self {
        Idle {
            conns: Mutex::new(Vec::new()),
            max,
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Drops every idle connection (the target changed).
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    pub fn clear(&self) {
        self.conns.lock().clear();
    }

    /// Runs `op` on an idle connection, or a new one from `open`; an idle connection that
    /// turns out dead (`stale`: the server restarted or closed it) is replaced once, at once.
    /// A connection that failed in any way is dropped, never kept; `error` turns `op`'s errors
    /// into the store's.
    pub fn with<T, E>(
        &self,
        open: impl Fn() -> Result<C, StoreError>,
        op: impl Fn(&mut C) -> Result<T, E>,
        stale: impl Fn(&E) -> bool,
        error: impl Fn(E) -> StoreError,
    ) -> Result<T, StoreError> {
        let idle = self.conns.lock().pop();
        let (mut conn, reused) = match idle {
            Some(conn) => (conn, true),
            None => (open()?, false),
        };
        let result = match op(&mut conn) {
            Err(e) if reused && stale(&e) => {
                conn = open()?;
                op(&mut conn)
            }
            other => other,
        };
        match result {
            Ok(value) => {
                let mut conns = self.conns.lock();
                if conns.len() < self.max {
                    conns.push(conn);
                }
                Ok(value)
            }
            Err(e) => Err(error(e)),
        }
    }
}

/// A configured timeout: at least 1 ms (a zero timeout means "none" to the socket calls).
pub(crate) fn timeout(configured: Duration) -> Duration {
    configured.max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::ErrorKind;
    use std::cell::Cell;

    #[test]
    fn a_stale_idle_connection_is_replaced_once_and_failed_ones_are_never_kept() {
        let idle: Idle<u32> = Idle::new(1);
        let opened = Cell::new(0);
        let open = || {
            opened.set(opened.get() + 1);
            Ok(opened.get())
        };
        let io = |_: String| StoreError::new(ErrorKind::Io, "x");
        assert_eq!(
            idle.with(open, |c| Ok::<_, String>(*c), |_| true, io),
            Ok(1)
        );
        // The kept connection is stale: one new one, which works and is kept.
        let stale_once = |c: &mut u32| {
            if *c == 1 {
                Err("dead".to_string())
            } else {
                Ok(*c)
            }
        };
        assert_eq!(idle.with(open, stale_once, |_| true, io), Ok(2));
        assert_eq!(opened.get(), 2);
        // A failure of a new connection: reported, the connection dropped.
        let failing = |_: &mut u32| Err::<u32, _>("no".to_string());
        assert!(idle.with(open, failing, |_| false, io).is_err());
        assert_eq!(
            idle.with(open, |c| Ok::<_, String>(*c), |_| true, io),
            Ok(3)
        );
        assert_eq!(timeout(Duration::ZERO), Duration::from_millis(1));
    }
}
