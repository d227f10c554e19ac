//! A local store that survives restarts: one SQLite file.
//!
//! SQLite rather than redb or a directory of files: redb locks its file for one process, and
//! memoized results on one machine are typically shared by several (workers of one service);
//! SQLite in WAL mode lets any number of processes read and write one file safely, gives atomic
//! writes and crash safety for free, and its indexes make the ttl, the size bound and clearing one
//! function's entries single statements instead of directory walks (Django's file cache lists its
//! whole directory to cull).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::{ErrorKind, Store, StoreError};
use crate::ManualClock;

/// A [`Store`] in a SQLite file: entries survive restarts and are shared by the processes of
/// one machine.
///
/// Each entry keeps its expiry as a Unix time in milliseconds. The number of entries is bounded
/// (10 000 by default, [`with_max_entries`](PersistentStore::with_max_entries)): when an insert
/// finds the file over the bound, expired entries go first, then the oldest, down to 90% of
/// it (Django's culling, by age instead of at random). Lookups do not write, so the order is of
/// insertion (FIFO), not of use.
///
/// ```
/// use memo_core::stores::{PersistentStore, Store};
///
/// let path = std::env::temp_dir().join(format!("memo-doc-persistent-{}.sqlite", std::process::id()));
/// {
///     let store = PersistentStore::open(&path)?;
///     store.set("ns", "[1]", b"one", None)?;
/// }
/// let reopened = PersistentStore::open(&path)?; // a restart
/// assert_eq!(reopened.get("ns", "[1]")?, Some(b"one".to_vec()));
/// # drop(reopened); let _ = std::fs::remove_file(&path);
/// # Ok::<(), memo_core::stores::StoreError>(())
/// ```
pub struct PersistentStore {
    path: PathBuf,
    conn: Mutex<Inner>,
    max_entries: usize,
    clock: Option<(u64, ManualClock)>,
}

struct Inner {
    conn: Connection,
    /// Entries in the file at the last count, plus inserts since: when it passes the bound, the
    /// file is counted (other processes insert too) and culled.
    estimate: usize,
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    // A full disk or a read-only file refuses writes only: reads keep hitting.
    let (kind, code) = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (ErrorKind::Timeout, None),
        Some(ErrorCode::TooBig) => (ErrorKind::Rejected, Some("TOOBIG")),
        Some(ErrorCode::DiskFull) => (ErrorKind::Rejected, Some("FULL")),
        Some(ErrorCode::ReadOnly) => (ErrorKind::Rejected, Some("READONLY")),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => (ErrorKind::Connect, None),
        _ => (ErrorKind::Io, None),
    };
    let error = StoreError::new(kind, format!("sqlite: {e}"));
    match code {
        Some(code) => error.with_code(code),
        None => error,
    }
}

impl PersistentStore {
    /// Opens (creating it and its folder if needed) the store in the file at `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("memo-doc-open-{}.sqlite", std::process::id()));
    /// let store = memo_core::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.path(), path);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(&path).map_err(sqlite_error)?;
        conn.busy_timeout(Duration::from_millis(250))
            .map_err(sqlite_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_error)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS memo_entries (
                 namespace TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 expires_at INTEGER,
                 stored_at INTEGER NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS memo_entries_by_age ON memo_entries (stored_at);",
        )
        .map_err(sqlite_error)?;
        let estimate = count(&conn).map_err(sqlite_error)?;
        Ok(PersistentStore {
            path,
            conn: Mutex::new(Inner { conn, estimate }),
            max_entries: 10_000,
            clock: None,
        })
    }

    /// The bound on the number of entries in the file (default 10 000), all functions together.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-max-{}.sqlite", std::process::id()));
    /// let store = memo_core::stores::PersistentStore::open(&path)?.with_max_entries(100);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// How long a write waits for another process's write to finish before it fails (a miss,
    /// then retried after the backoff); 250 ms by default.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-busy-{}.sqlite", std::process::id()));
    /// let store = memo_core::stores::PersistentStore::open(&path)?
    ///     .with_busy_timeout(std::time::Duration::from_millis(100))?;
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_busy_timeout(self, timeout: Duration) -> Result<Self, StoreError> {
        self.conn
            .lock()
            .conn
            .busy_timeout(timeout)
            .map_err(sqlite_error)?;
        Ok(self)
    }

    /// Reads time as the wall clock at this call plus how far `clock` has been advanced: tests
    /// expire entries without sleeping.
    ///
    /// ```
    /// use memo_core::{stores::{PersistentStore, Store}, ManualClock};
    /// use std::time::Duration;
    /// # let path = std::env::temp_dir().join(format!("memo-doc-clock-{}.sqlite", std::process::id()));
    /// let clock = ManualClock::new();
    /// let store = PersistentStore::open(&path)?.with_clock(clock.clone());
    /// store.set("ns", "k", b"v", Some(Duration::from_secs(60)))?;
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(store.get("ns", "k")?, None);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some((wall_millis(), clock));
        self
    }

    /// The file.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-path-{}.sqlite", std::process::id()));
    /// let store = memo_core::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.path(), path);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the file holds, live or expired, for all functions.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-total-{}.sqlite", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = memo_core::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.total_entries()?, 0);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo_core::stores::StoreError>(())
    /// ```
    pub fn total_entries(&self) -> Result<usize, StoreError> {
        count(&self.conn.lock().conn).map_err(sqlite_error)
    }

    fn now_millis(&self) -> i64 {
        let now = match &self.clock {
            Some((base, clock)) => base + clock.elapsed().as_millis() as u64,
            None => wall_millis(),
        };
        now.min(i64::MAX as u64) as i64
    }

    /// Removes expired entries, then the oldest, down to 90% of the bound.
    fn cull(&self, inner: &mut Inner, now: i64) -> rusqlite::Result<()> {
        inner.conn.execute(
            "DELETE FROM memo_entries WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            params![now],
        )?;
        let total = count(&inner.conn)?;
        let target = self.max_entries - self.max_entries / 10;
        if total > self.max_entries {
            inner.conn.execute(
                "DELETE FROM memo_entries WHERE (namespace, key) IN
                     (SELECT namespace, key FROM memo_entries ORDER BY stored_at LIMIT ?1)",
                params![(total - target) as i64],
            )?;
            inner.estimate = target;
        } else {
            inner.estimate = total;
        }
        Ok(())
    }
}

fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn count(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("SELECT COUNT(*) FROM memo_entries", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|n| n as usize)
}

impl Store for PersistentStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.now_millis();
        let inner = self.conn.lock();
        let mut statement = inner
            .conn
            .prepare_cached(
                "SELECT value FROM memo_entries WHERE namespace = ?1 AND key = ?2
                 AND (expires_at IS NULL OR expires_at > ?3)",
            )
            .map_err(sqlite_error)?;
        statement
            .query_row(params![namespace, key, now], |row| row.get(0))
            .optional()
            .map_err(sqlite_error)
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let now = self.now_millis();
        let expires_at = ttl.map(|t| now.saturating_add(t.as_millis().max(1) as i64));
        let mut inner = self.conn.lock();
        inner
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO memo_entries (namespace, key, value, expires_at, stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![namespace, key, value, expires_at, now]))
            .map_err(sqlite_error)?;
        inner.estimate += 1;
        if inner.estimate > self.max_entries {
            self.cull(&mut inner, now).map_err(sqlite_error)?;
        }
        Ok(())
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        let inner = self.conn.lock();
        inner
            .conn
            .execute(
                "DELETE FROM memo_entries WHERE namespace = ?1 AND key = ?2",
                params![namespace, key],
            )
            .map(|n| n > 0)
            .map_err(sqlite_error)
    }

    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let inner = self.conn.lock();
        inner
            .conn
            .execute(
                "DELETE FROM memo_entries WHERE namespace = ?1",
                params![namespace],
            )
            .map(drop)
            .map_err(sqlite_error)
    }

    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        let now = self.now_millis();
        let inner = self.conn.lock();
        inner
            .conn
            .query_row(
                "SELECT COUNT(*) FROM memo_entries WHERE namespace = ?1
                 AND (expires_at IS NULL OR expires_at > ?2)",
                params![namespace, now],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| Some(n as usize))
            .map_err(sqlite_error)
    }
}

impl std::fmt::Debug for PersistentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentStore")
            .field("path", &self.path)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}
