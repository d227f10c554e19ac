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
/// Each entry keeps its expiry as a Unix time in milliseconds (a ttl too long for SQLite's
/// 64-bit integers, `Duration::MAX` say, is capped: never wrapped to "already expired"). The
/// number of entries is bounded
/// (10 000 by default, [`with_max_entries`](PersistentStore::with_max_entries)): when an insert
/// finds the file over the bound, expired entries go first, then the oldest, down to 90% of
/// it (Django's culling, by age instead of at random). Lookups do not reorder entries (they
/// write only to remove one found expired), so the order is of
/// insertion (FIFO), not of use.
///
/// [`clear`](Store::clear) and [`len`](Store::len) read or write one row whatever the namespace
/// holds: each namespace has a generation, part of each of its rows, and a count of the rows of
/// its current generation that SQLite keeps by triggers in each write's transaction (exact for
/// every process sharing the file; an expired entry counts until a lookup finds it expired or
/// the culling removes it). A clear bumps the
/// generation; the old rows, misses at once, are then removed a few per write.
///
/// Faults stay small. A file that is not a database or is corrupt, found at open or at any
/// later call, is moved aside (`<file>.corrupt-<unix ms>`, kept for inspection) and a new one is
/// made in its place, with a warning: the entries start over and the application goes on. A
/// write refused because the disk (or [`with_max_file_size`](PersistentStore::with_max_file_size))
/// is full or the file is read-only fails alone, as a refused request: lookups keep hitting.
///
/// ```
/// use memo::stores::{PersistentStore, Store};
///
/// let path = std::env::temp_dir().join(format!("memo-doc-persistent-{}.sqlite", std::process::id()));
/// {
///     let store = PersistentStore::open(&path)?;
///     store.set("ns", "[1]", b"one", None)?;
/// }
/// let reopened = PersistentStore::open(&path)?; // a restart
/// assert_eq!(reopened.get("ns", "[1]")?, Some(b"one".to_vec()));
/// # drop(reopened); let _ = std::fs::remove_file(&path);
/// # Ok::<(), memo::stores::StoreError>(())
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
    /// The file this connection opened (device, inode), so that a process that finds it
    /// corrupt does not move aside a new file another process made in its place.
    file_id: Option<(u64, u64)>,
    busy_timeout: Duration,
    max_pages: Option<i64>,
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

/// Whether `e` says the file is not a (sound) database.
fn is_corrupt(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// The (device, inode) of the file at `path`, where the platform has them.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Moves the corrupt file at `path` (and its WAL and shared-memory files) aside; the name it
/// got.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let aside = with_suffix(path, &format!(".corrupt-{}", wall_millis()));
    std::fs::rename(path, &aside)?;
    for extra in ["-wal", "-shm"] {
        let from = with_suffix(path, extra);
        if from.exists() {
            let _ = std::fs::rename(&from, with_suffix(&aside, extra));
        }
    }
    Ok(aside)
}

/// A connection to the file at `path`, its schema made, and its count of entries.
fn open_file(
    path: &Path,
    busy_timeout: Duration,
    max_pages: Option<i64>,
) -> rusqlite::Result<(Connection, usize)> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    if let Some(pages) = max_pages {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    conn.execute_batch(SCHEMA)?;
    migrate(&conn)?;
    conn.execute_batch(TRIGGERS)?;
    let entries = count(&conn)?;
    Ok((conn, entries))
}

/// The expiry, in Unix ms, of an entry stored at `now` with `ttl`: at least 1 ms later, and
/// capped at SQLite's largest integer.
/// The entries, and per namespace its generation and the number of its live entries (rows of
/// its current generation): what makes `clear` and `len` one row each, whatever the namespace
/// holds. Older files (no `generation` column) are migrated by [`migrate`].
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS memo_entries (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_at INTEGER,
        stored_at INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS memo_entries_by_age ON memo_entries (stored_at);
    CREATE TABLE IF NOT EXISTS memo_namespaces (
        namespace TEXT PRIMARY KEY,
        generation INTEGER NOT NULL,
        entries INTEGER NOT NULL
    ) WITHOUT ROWID;";

/// The count of each namespace's current entries, kept by SQLite itself in the same
/// transaction as each write, so it stays exact whichever process writes. Rows of an older
/// generation (left by a clear) count for nothing.
const TRIGGERS: &str = "
    CREATE INDEX IF NOT EXISTS memo_entries_by_generation ON memo_entries (namespace, generation);
    CREATE TRIGGER IF NOT EXISTS memo_namespace_row BEFORE INSERT ON memo_entries BEGIN
        INSERT OR IGNORE INTO memo_namespaces (namespace, generation, entries)
        VALUES (NEW.namespace, 0, 0);
    END;
    CREATE TRIGGER IF NOT EXISTS memo_count_insert AFTER INSERT ON memo_entries BEGIN
        UPDATE memo_namespaces SET entries = entries + 1
        WHERE namespace = NEW.namespace AND generation = NEW.generation;
    END;
    CREATE TRIGGER IF NOT EXISTS memo_count_delete AFTER DELETE ON memo_entries BEGIN
        UPDATE memo_namespaces SET entries = entries - 1
        WHERE namespace = OLD.namespace AND generation = OLD.generation;
    END;
    CREATE TRIGGER IF NOT EXISTS memo_count_update AFTER UPDATE OF generation ON memo_entries
    WHEN OLD.generation <> NEW.generation BEGIN
        UPDATE memo_namespaces SET entries = entries - 1
        WHERE namespace = OLD.namespace AND generation = OLD.generation;
        UPDATE memo_namespaces SET entries = entries + 1
        WHERE namespace = NEW.namespace AND generation = NEW.generation;
    END;";

/// A file made before generations: adds the column (existing rows are generation 0) and counts
/// each namespace once, in one transaction (another process may be migrating it too).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_generation = |conn: &Connection| -> rusqlite::Result<bool> {
        conn.prepare("SELECT 1 FROM pragma_table_info('memo_entries') WHERE name = 'generation'")?
            .exists([])
    };
    if has_generation(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        if !has_generation(conn)? {
            conn.execute_batch(
                "ALTER TABLE memo_entries ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
                 INSERT OR REPLACE INTO memo_namespaces (namespace, generation, entries)
                     SELECT namespace, 0, COUNT(*) FROM memo_entries GROUP BY namespace;",
            )?;
        }
        Ok(())
    })();
    conn.execute_batch(if migrated.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    })?;
    migrated
}

/// The current generation of namespace `?1`, in a statement.
const CURRENT: &str = "COALESCE((SELECT generation FROM memo_namespaces WHERE namespace = ?1), 0)";

/// Rows of older generations removed per write at most: what a clear left is collected in
/// small steps (and by the culling of the oldest entries), never in one long statement.
const COLLECT_PER_WRITE: i64 = 16;

fn expiry(now: i64, ttl: Duration) -> i64 {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
    now.saturating_add(millis)
}

impl PersistentStore {
    /// Opens (creating it and its folder if needed) the store in the file at `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("memo-doc-open-{}.sqlite", std::process::id()));
    /// let store = memo::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.path(), path);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let busy_timeout = Duration::from_millis(250);
        let (conn, estimate) = match open_file(&path, busy_timeout, None) {
            Ok(opened) => opened,
            Err(e) if is_corrupt(&e) => {
                let aside = move_aside(&path)?;
                tracing::warn!(
                    path = %path.display(),
                    "{} is not a sound SQLite database ({e}); moved it to {} and started a new                      one",
                    path.display(),
                    aside.display()
                );
                open_file(&path, busy_timeout, None).map_err(sqlite_error)?
            }
            Err(e) => return Err(sqlite_error(e)),
        };
        Ok(PersistentStore {
            conn: Mutex::new(Inner {
                conn,
                estimate,
                file_id: file_id(&path),
                busy_timeout,
                max_pages: None,
            }),
            path,
            max_entries: 10_000,
            clock: None,
        })
    }

    /// The bound on the number of entries in the file (default 10 000), all functions together.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-max-{}.sqlite", std::process::id()));
    /// let store = memo::stores::PersistentStore::open(&path)?.with_max_entries(100);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
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
    /// let store = memo::stores::PersistentStore::open(&path)?
    ///     .with_busy_timeout(std::time::Duration::from_millis(100))?;
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_busy_timeout(self, timeout: Duration) -> Result<Self, StoreError> {
        {
            let mut inner = self.conn.lock();
            inner.conn.busy_timeout(timeout).map_err(sqlite_error)?;
            inner.busy_timeout = timeout;
        }
        Ok(self)
    }

    /// A bound on the size of the file, beyond which a write fails alone (lookups go on), as on
    /// a full disk; rounded down to SQLite's pages (4 KiB). Default: none.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-size-{}.sqlite", std::process::id()));
    /// let store = memo::stores::PersistentStore::open(&path)?.with_max_file_size(64 << 20)?;
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_max_file_size(self, bytes: u64) -> Result<Self, StoreError> {
        {
            let mut inner = self.conn.lock();
            let page_size: i64 = inner
                .conn
                .pragma_query_value(None, "page_size", |row| row.get(0))
                .map_err(sqlite_error)?;
            let pages = i64::try_from(bytes / page_size.max(1) as u64)
                .unwrap_or(i64::MAX)
                .max(1);
            inner
                .conn
                .pragma_update(None, "max_page_count", pages)
                .map_err(sqlite_error)?;
            inner.max_pages = Some(pages);
        }
        Ok(self)
    }

    /// Reads time as the wall clock at this call plus how far `clock` has been advanced: tests
    /// expire entries without sleeping.
    ///
    /// ```
    /// use memo::{stores::{PersistentStore, Store}, ManualClock};
    /// use std::time::Duration;
    /// # let path = std::env::temp_dir().join(format!("memo-doc-clock-{}.sqlite", std::process::id()));
    /// let clock = ManualClock::new();
    /// let store = PersistentStore::open(&path)?.with_clock(clock.clone());
    /// store.set("ns", "k", b"v", Some(Duration::from_secs(60)))?;
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(store.get("ns", "k")?, None);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some((wall_millis(), clock));
        self
    }

    /// The file.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-path-{}.sqlite", std::process::id()));
    /// let store = memo::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.path(), path);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the file holds, live or expired, for all functions.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("memo-doc-total-{}.sqlite", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let store = memo::stores::PersistentStore::open(&path)?;
    /// assert_eq!(store.total_entries()?, 0);
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn total_entries(&self) -> Result<usize, StoreError> {
        self.with_inner(|inner| count(&inner.conn))
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

impl PersistentStore {
    /// Runs `op` on the connection; if the file turns out corrupt, moves it aside, makes a new
    /// one (one warning) and runs `op` once more there.
    fn with_inner<T>(
        &self,
        op: impl Fn(&mut Inner) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut inner = self.conn.lock();
        match op(&mut inner) {
            Err(e) if is_corrupt(&e) => {
                self.recover(&mut inner, &e)?;
                op(&mut inner).map_err(sqlite_error)
            }
            other => other.map_err(sqlite_error),
        }
    }

    /// Replaces a corrupt file by a new one, unless another process did already.
    fn recover(&self, inner: &mut Inner, error: &rusqlite::Error) -> Result<(), StoreError> {
        let ours = inner.file_id.is_some() && file_id(&self.path) == inner.file_id;
        if ours || inner.file_id.is_none() {
            let aside = move_aside(&self.path)?;
            tracing::warn!(
                path = %self.path.display(),
                "{} turned out corrupt ({error}); moved it to {} and started a new one",
                self.path.display(),
                aside.display()
            );
        }
        let (conn, estimate) =
            open_file(&self.path, inner.busy_timeout, inner.max_pages).map_err(sqlite_error)?;
        inner.conn = conn;
        inner.estimate = estimate;
        inner.file_id = file_id(&self.path);
        Ok(())
    }
}

impl Store for PersistentStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_with_ttl(namespace, key)?.map(|(value, _)| value))
    }

    /// The value and what is left of its ttl (its `expires_at`), in one query.
    fn get_with_ttl(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
        let now = self.now_millis();
        self.with_inner(|inner| {
            let found: Option<(Vec<u8>, Option<i64>)> = inner
                .conn
                .prepare_cached(&format!(
                    "SELECT value, expires_at FROM memo_entries WHERE namespace = ?1
                     AND key = ?2 AND generation = {CURRENT}"
                ))?
                .query_row(params![namespace, key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            match found {
                Some((_, Some(expires_at))) if expires_at <= now => {
                    // Expired: removed now, so that the count stops including it.
                    inner
                        .conn
                        .prepare_cached(
                            "DELETE FROM memo_entries WHERE namespace = ?1 AND key = ?2
                             AND expires_at <= ?3",
                        )?
                        .execute(params![namespace, key, now])?;
                    Ok(None)
                }
                found => Ok(found.map(|(value, expires_at)| {
                    let left = expires_at
                        .map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64));
                    (value, left)
                })),
            }
        })
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let now = self.now_millis();
        let expires_at = ttl.map(|t| expiry(now, t));
        self.with_inner(|inner| {
            inner
                .conn
                .prepare_cached(&format!(
                    "INSERT INTO memo_entries
                         (namespace, key, value, expires_at, stored_at, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, {CURRENT})
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                         expires_at = excluded.expires_at, stored_at = excluded.stored_at,
                         generation = excluded.generation"
                ))?
                .execute(params![namespace, key, value, expires_at, now])?;
            // A few rows of the namespace's older generations, if a clear left any.
            inner
                .conn
                .prepare_cached(&format!(
                    "DELETE FROM memo_entries WHERE (namespace, key) IN
                         (SELECT namespace, key FROM memo_entries
                          WHERE namespace = ?1 AND generation < {CURRENT} LIMIT ?2)"
                ))?
                .execute(params![namespace, COLLECT_PER_WRITE])?;
            inner.estimate += 1;
            if inner.estimate > self.max_entries {
                self.cull(inner, now)?;
            }
            Ok(())
        })
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.with_inner(|inner| {
            inner
                .conn
                .prepare_cached(&format!(
                    "DELETE FROM memo_entries WHERE namespace = ?1 AND key = ?2
                     AND generation = {CURRENT}"
                ))?
                .execute(params![namespace, key])
                .map(|n| n > 0)
        })
    }

    /// One row: the namespace's generation goes up and its count to zero, whatever it holds.
    /// The rows of the old generation are misses at once and are collected a few per write
    /// (and by the culling of the oldest entries).
    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.with_inner(|inner| {
            inner
                .conn
                .prepare_cached(
                    "INSERT INTO memo_namespaces (namespace, generation, entries) VALUES (?1, 1, 0)
                     ON CONFLICT (namespace) DO UPDATE SET generation = generation + 1,
                         entries = 0",
                )?
                .execute(params![namespace])
                .map(drop)
        })
    }

    /// The count SQLite keeps of the namespace's entries: one row read, however many there
    /// are. An expired entry counts until it is removed: by the lookup that finds it expired,
    /// or by the culling, which removes expired entries first.
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        self.with_inner(|inner| {
            inner
                .conn
                .prepare_cached("SELECT entries FROM memo_namespaces WHERE namespace = ?1")?
                .query_row(params![namespace], |row| row.get::<_, i64>(0))
                .optional()
                .map(|n| Some(n.unwrap_or(0).max(0) as usize))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(store: &PersistentStore) -> usize {
        store.total_entries().unwrap()
    }

    #[test]
    fn the_count_is_kept_exact_and_a_clear_touches_one_row() {
        let path = std::env::temp_dir().join(format!("memo-unit-count-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = PersistentStore::open(&path)
            .unwrap()
            .with_max_entries(1 << 30);
        let len = |ns: &str| store.len(ns).unwrap().unwrap();
        assert_eq!(len("a"), 0);
        store.set("a", "1", b"x", None).unwrap();
        store.set("a", "1", b"y", None).unwrap(); // replaced: still one
        store.set("a", "2", b"x", None).unwrap();
        store.set("b", "1", b"x", None).unwrap();
        assert_eq!((len("a"), len("b")), (2, 1));
        assert!(store.delete("a", "2").unwrap());
        assert!(!store.delete("a", "2").unwrap());
        assert_eq!(len("a"), 1);
        // Many rows, written straight into the file: a clear and a count stay one row each.
        let n = std::env::var("MEMO_SQLITE_ROWS").map_or(100_000, |v| v.parse().unwrap());
        {
            let mut inner = store.conn.lock();
            let tx = inner.conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO memo_entries (namespace, key, value, stored_at) \
                              VALUES ('big', ?1, x'00', 0)",
                    )
                    .unwrap();
                for i in 0..n {
                    insert.execute(params![i.to_string()]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let started = std::time::Instant::now();
        assert_eq!(len("big"), n);
        let counted = started.elapsed();
        // What the count and the clear cost before: a scan of the namespace's rows.
        let started = std::time::Instant::now();
        let scanned: i64 = store
            .conn
            .lock()
            .conn
            .query_row(
                "SELECT COUNT(*) FROM memo_entries WHERE namespace = 'big' \
                 AND (expires_at IS NULL OR expires_at > 0)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        let scan = started.elapsed();
        assert_eq!(scanned as usize, n);
        let started = std::time::Instant::now();
        store.clear("big").unwrap();
        let cleared = started.elapsed();
        assert_eq!(len("big"), 0);
        assert_eq!(
            store.get("big", "7").unwrap(),
            None,
            "old rows are misses at once"
        );
        assert_eq!(rows(&store), n + 2, "and still in the file");
        store.set("big", "7", b"new", None).unwrap();
        assert_eq!(store.get("big", "7").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(len("big"), 1);
        assert_eq!(
            rows(&store),
            n + 2 - COLLECT_PER_WRITE as usize,
            "key 7's old row was overwritten, and a few others collected"
        );
        let started = std::time::Instant::now();
        {
            let inner = store.conn.lock();
            inner
                .conn
                .execute("DELETE FROM memo_entries WHERE namespace = 'big'", [])
                .unwrap();
        }
        let deleted = started.elapsed();
        assert_eq!(
            len("big"),
            0,
            "deleting rows of any generation keeps the count"
        );
        eprintln!(
            "sqlite, {n} rows in a namespace: len {counted:?} (a COUNT scan: {scan:?}), \
             clear {cleared:?} (a DELETE of them: {deleted:?})"
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_file_of_before_generations_is_migrated_with_its_counts() {
        let path = std::env::temp_dir().join(format!("memo-unit-migrate-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE memo_entries (namespace TEXT NOT NULL, key TEXT NOT NULL,
                     value BLOB NOT NULL, expires_at INTEGER, stored_at INTEGER NOT NULL,
                     PRIMARY KEY (namespace, key)) WITHOUT ROWID;
                 INSERT INTO memo_entries VALUES ('a', '1', x'01', NULL, 0), ('a', '2', x'02', NULL, 0);",
            )
            .unwrap();
        }
        let store = PersistentStore::open(&path).unwrap();
        assert_eq!(store.len("a").unwrap(), Some(2));
        assert_eq!(store.get("a", "1").unwrap(), Some(vec![1]));
        store.clear("a").unwrap();
        assert_eq!(
            (store.get("a", "1").unwrap(), store.len("a").unwrap()),
            (None, Some(0))
        );
        drop(store);
        let reopened = PersistentStore::open(&path).unwrap();
        assert_eq!(reopened.len("a").unwrap(), Some(0), "migrated once");
        drop(reopened);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn expiry_is_capped_never_wrapped() {
        assert_eq!(expiry(1_000, Duration::from_millis(5)), 1_005);
        assert_eq!(expiry(1_000, Duration::from_micros(1)), 1_001);
        assert_eq!(expiry(1_000, Duration::MAX), i64::MAX);
        assert_eq!(expiry(1_000, Duration::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(expiry(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
    }

    #[test]
    fn full_and_read_only_refuse_one_write_and_corruption_is_recognized() {
        use rusqlite::ffi;
        for (code, kind) in [
            (ffi::SQLITE_FULL, ErrorKind::Rejected),
            (ffi::SQLITE_READONLY, ErrorKind::Rejected),
            (ffi::SQLITE_TOOBIG, ErrorKind::Rejected),
            (ffi::SQLITE_BUSY, ErrorKind::Timeout),
            (ffi::SQLITE_CANTOPEN, ErrorKind::Connect),
        ] {
            let error = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
            assert_eq!(sqlite_error(error).kind(), kind, "code {code}");
        }
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB] {
            assert!(is_corrupt(&rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                None
            )));
        }
    }
}
