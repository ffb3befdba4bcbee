//! The index `<dir>/index.db` (SQLite, WAL): records of successful phases, which objects
//! each references, object sizes, and the per-phase stat cache. A small pool of connections
//! keeps parallel checks from waiting on one another; every write is one `BEGIN IMMEDIATE`
//! transaction, so concurrent milo runs serialize instead of failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::{CacheError, Result};

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

/// At most this many records are kept per phase (the most recently used).
pub const RECORDS_PER_PHASE: i64 = 32;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    phase TEXT NOT NULL,
    key TEXT NOT NULL,
    result TEXT NOT NULL,
    logs TEXT NOT NULL,
    manifest TEXT NOT NULL,
    ingredients TEXT NOT NULL,
    stored INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    used_ns INTEGER NOT NULL,
    UNIQUE (phase, key)
);
CREATE INDEX IF NOT EXISTS records_used ON records (phase, used_ns);
CREATE INDEX IF NOT EXISTS records_lru ON records (stored, used_ns);
CREATE TABLE IF NOT EXISTS record_objects (
    record INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (record, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_objects_digest ON record_objects (digest);
CREATE TABLE IF NOT EXISTS objects (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    phase TEXT PRIMARY KEY,
    entries BLOB NOT NULL
) WITHOUT ROWID;
";

/// The index of one cache directory.
#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    read_only: bool,
    pool: Mutex<Vec<Connection>>,
    /// Every phase's stat cache row, read in one query by [`Db::preload_stats`]; each is
    /// handed out once by [`Db::load_stats`] (a later call reads the table again).
    stats: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

/// A record found by key.
#[derive(Debug)]
pub struct Found {
    /// Its row id.
    pub id: i64,
    /// The result JSON.
    pub result: String,
    /// The logs JSON.
    pub logs: String,
    /// The output manifest JSON.
    pub manifest: String,
    /// Whether its output objects are in the store.
    pub stored: bool,
    /// Whether it is the phase's most recently used record.
    pub latest: bool,
    /// When it was last used (ns since the epoch).
    pub used_ns: i64,
}

/// A record to write.
pub struct NewRecord<'a> {
    /// The phase.
    pub phase: &'a str,
    /// Its key.
    pub key: &'a str,
    /// Result JSON.
    pub result: String,
    /// Logs JSON.
    pub logs: String,
    /// Manifest JSON.
    pub manifest: String,
    /// Ingredients JSON.
    pub ingredients: String,
    /// The objects it references (empty when not stored), digest → size.
    pub objects: &'a BTreeMap<String, u64>,
    /// Whether its objects are stored.
    pub stored: bool,
    /// The phase's stat cache row.
    pub stats: Vec<u8>,
    /// Now (ns).
    pub now: i64,
}

/// (records, objects, bytes, per phase (name, records, stored records)).
pub type Counts = (u64, u64, u64, Vec<(String, u64, u64)>);

/// What an eviction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Records whose objects were dropped.
    pub records: u64,
    /// Objects no longer referenced.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of objects left.
    pub remaining: u64,
}

/// How long a connection waits for another one's lock, in its statements and when it opens.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn is_busy(e: &CacheError) -> bool {
    matches!(
        e,
        CacheError::Db { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    )
}

fn setup(conn: &Connection, read_only: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Pages are read through a shared mapping rather than copied into each connection's
    // page cache: a thousand phases' stat rows stay cheap to look up from every thread.
    conn.pragma_update(None, "mmap_size", 256i64 << 20)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(())
}

impl Db {
    /// Opens (creating unless `read_only`) the index in `dir`.
    pub fn open(dir: &Path, read_only: bool) -> Result<Db> {
        let db = Db {
            path: dir.join("index.db"),
            read_only,
            pool: Mutex::new(Vec::new()),
            stats: Mutex::new(std::collections::HashMap::new()),
        };
        if !read_only {
            std::fs::create_dir_all(dir).map_err(CacheError::io("create the cache directory", dir))?;
            let conn = db.connect()?;
            if let Some(conn) = conn {
                db.pool.lock().push(conn);
            }
        }
        Ok(db)
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> CacheError + '_ {
        |source| CacheError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// A new connection; `None` when read-only and there is no index yet.
    fn connect(&self) -> Result<Option<Connection>> {
        // Setting up a new file (WAL, schema) takes locks that SQLite reports busy at once,
        // without calling the busy handler, while another process sets it up too (two
        // `milo run` in a fresh checkout): retry for as long as the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match self.connect_once() {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => return result,
            }
        }
    }

    fn connect_once(&self) -> Result<Option<Connection>> {
        if self.read_only {
            if !self.path.exists() {
                return Ok(None);
            }
            // A read-only connection to a WAL database creates `-wal` and `-shm` files when
            // they are absent (no writer has the index open). Then nothing is changing it
            // and it is opened as immutable, which creates nothing; while a writer is
            // active, both files exist and are only shared.
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
            let wal = self.path.with_file_name("index.db-wal");
            let uri = format!(
                "file:{}{}",
                uri_path(&self.path),
                if wal.exists() { "" } else { "?immutable=1" }
            );
            let conn = Connection::open_with_flags(uri, flags).map_err(self.err())?;
            setup(&conn, true).map_err(self.err())?;
            return Ok(Some(conn));
        }
        let mut conn = Connection::open(&self.path).map_err(self.err())?;
        setup(&conn, false).map_err(self.err())?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.err())?;
        if version != SCHEMA_VERSION {
            if version != 0 {
                return Err(CacheError::Db {
                    path: self.path.clone(),
                    source: rusqlite::Error::InvalidParameterName(format!(
                        "schema version {version}, this milo uses {SCHEMA_VERSION}"
                    )),
                });
            }
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(self.err())?;
            tx.execute_batch(SCHEMA).map_err(self.err())?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(self.err())?;
            tx.commit().map_err(self.err())?;
        }
        Ok(Some(conn))
    }

    /// Runs `f` on a pooled connection; `None` when read-only without an index.
    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<Option<R>> {
        let conn = self.pool.lock().pop();
        let mut conn = match conn {
            Some(c) => c,
            None => match self.connect()? {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        let r = f(&mut conn).map_err(self.err());
        self.pool.lock().push(conn);
        r.map(Some)
    }

    /// The stat cache row of `phase` (empty when none).
    pub fn load_stats(&self, phase: &str) -> Result<Vec<u8>> {
        if let Some(row) = self.stats.lock().remove(phase) {
            return Ok(row);
        }
        Ok(self
            .with(|c| {
                c.prepare_cached("SELECT entries FROM stats WHERE phase = ?1")?
                    .query_row([phase], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })?
            .flatten()
            .unwrap_or_default())
    }

    /// Reads the stat cache rows of `phases` in one query (a no-op run of a thousand phases
    /// otherwise makes a thousand), for [`Db::load_stats`]. A row that changes meanwhile (in
    /// another milo run) is only a cache: an entry whose stat does not match is hashed again.
    pub fn preload_stats(&self, phases: &[&str]) -> Result<()> {
        if phases.len() < 2 {
            return Ok(());
        }
        let wanted: std::collections::HashSet<&str> = phases.iter().copied().collect();
        let rows = self.with(|c| {
            let mut stmt = c.prepare("SELECT phase, entries FROM stats")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            let mut out = std::collections::HashMap::new();
            for row in rows {
                let (phase, entries) = row?;
                if wanted.contains(phase.as_str()) {
                    out.insert(phase, entries);
                }
            }
            Ok(out)
        })?;
        if let Some(rows) = rows {
            *self.stats.lock() = rows;
        }
        Ok(())
    }

    /// Replaces the stat cache row of `phase`.
    pub fn save_stats(&self, phase: &str, blob: &[u8]) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO stats (phase, entries) VALUES (?1, ?2)")?
                .execute(params![phase, blob])
                .map(drop)
        })?;
        Ok(())
    }

    /// The record of `phase` with `key`, if any.
    pub fn lookup(&self, phase: &str, key: &str) -> Result<Option<Found>> {
        Ok(self
            .with(|c| {
                c.prepare_cached(
                    "SELECT id, result, logs, manifest, stored,
                            used_ns >= (SELECT MAX(used_ns) FROM records WHERE phase = ?1), used_ns
                     FROM records WHERE phase = ?1 AND key = ?2",
                )?
                .query_row([phase, key], |r| {
                    Ok(Found {
                        id: r.get(0)?,
                        result: r.get(1)?,
                        logs: r.get(2)?,
                        manifest: r.get(3)?,
                        stored: r.get(4)?,
                        latest: r.get(5)?,
                        used_ns: r.get(6)?,
                    })
                })
                .optional()
            })?
            .flatten())
    }

    /// The key and ingredients JSON of `phase`'s most recently used record.
    pub fn latest(&self, phase: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .with(|c| {
                c.prepare_cached(
                    "SELECT key, ingredients FROM records WHERE phase = ?1 ORDER BY used_ns DESC, id DESC LIMIT 1",
                )?
                .query_row([phase], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
            })?
            .flatten())
    }

    /// Marks records (id, when) as used.
    pub fn touch(&self, ids: &[(i64, i64)]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached("UPDATE records SET used_ns = MAX(used_ns, ?2) WHERE id = ?1")?;
                for (id, at) in ids {
                    st.execute(params![id, at])?;
                }
            }
            tx.commit()
        })?;
        Ok(())
    }

    /// Writes a record, its objects and the phase's stat row in one transaction; drops the
    /// phase's records beyond [`RECORDS_PER_PHASE`]. Returns the digests that lost their
    /// last reference (their files are to be removed).
    pub fn record(&self, r: &NewRecord<'_>) -> Result<Vec<String>> {
        Ok(self
            .with(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut candidates: Vec<String> = Vec::new();
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO records (phase, key, result, logs, manifest, ingredients, stored, created_ns, used_ns)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                         ON CONFLICT (phase, key) DO UPDATE SET result = excluded.result, logs = excluded.logs,
                             manifest = excluded.manifest, ingredients = excluded.ingredients,
                             stored = excluded.stored, created_ns = excluded.created_ns, used_ns = excluded.used_ns
                         RETURNING id",
                    )?
                    .query_row(
                        params![r.phase, r.key, r.result, r.logs, r.manifest, r.ingredients, r.stored, r.now],
                        |row| row.get(0),
                    )?;
                drop_objects_of(&tx, id, &mut candidates)?;
                {
                    let mut link = tx.prepare_cached("INSERT OR IGNORE INTO record_objects (record, digest) VALUES (?1, ?2)")?;
                    let mut obj = tx.prepare_cached("INSERT OR IGNORE INTO objects (digest, size) VALUES (?1, ?2)")?;
                    for (digest, size) in r.objects {
                        link.execute(params![id, digest])?;
                        obj.execute(params![digest, *size as i64])?;
                    }
                }
                let old: Vec<i64> = tx
                    .prepare_cached("SELECT id FROM records WHERE phase = ?1 ORDER BY used_ns DESC, id DESC LIMIT -1 OFFSET ?2")?
                    .query_map(params![r.phase, RECORDS_PER_PHASE], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for old in old {
                    drop_objects_of(&tx, old, &mut candidates)?;
                    tx.prepare_cached("DELETE FROM records WHERE id = ?1")?.execute([old])?;
                }
                tx.prepare_cached("INSERT OR REPLACE INTO stats (phase, entries) VALUES (?1, ?2)")?
                    .execute(params![r.phase, r.stats])?;
                let gone = collect_unreferenced(&tx, candidates)?;
                tx.commit()?;
                Ok(gone)
            })?
            .unwrap_or_default())
    }

    /// Drops the objects of least recently used records until the stored objects total at
    /// most `max_size` bytes. Returns what was done and the digests to remove from disk.
    /// With `sweep`, also drops objects no record references (left by a crash between
    /// storing and indexing): a full scan, for `prune`.
    pub fn evict(&self, max_size: u64, sweep: bool) -> Result<(Evicted, Vec<String>)> {
        Ok(self
            .with(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let total: i64 = tx.query_row("SELECT COALESCE(SUM(size), 0) FROM objects", [], |r| r.get(0))?;
                let mut total = total.max(0) as u64;
                let mut done = Evicted::default();
                let mut gone = Vec::new();
                while total > max_size {
                    let Some(id): Option<i64> = tx
                        .prepare_cached("SELECT id FROM records WHERE stored = 1 ORDER BY used_ns ASC, id ASC LIMIT 1")?
                        .query_row([], |r| r.get(0))
                        .optional()?
                    else {
                        break;
                    };
                    let mut candidates = Vec::new();
                    drop_objects_of(&tx, id, &mut candidates)?;
                    tx.prepare_cached("UPDATE records SET stored = 0 WHERE id = ?1")?
                        .execute([id])?;
                    done.records += 1;
                    for digest in candidates {
                        if let Some(size) = remove_if_unreferenced(&tx, &digest)? {
                            total = total.saturating_sub(size);
                            done.objects += 1;
                            done.bytes += size;
                            gone.push(digest);
                        }
                    }
                }
                let orphans: Vec<(String, i64)> = if !sweep {
                    Vec::new()
                } else {
                    tx.prepare(
                        "SELECT digest, size FROM objects
                         WHERE NOT EXISTS (SELECT 1 FROM record_objects ro WHERE ro.digest = objects.digest)",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
                };
                for (digest, size) in orphans {
                    tx.prepare_cached("DELETE FROM objects WHERE digest = ?1")?
                        .execute([&digest])?;
                    let size = size.max(0) as u64;
                    total = total.saturating_sub(size);
                    done.objects += 1;
                    done.bytes += size;
                    gone.push(digest);
                }
                done.remaining = total;
                tx.commit()?;
                Ok((done, gone))
            })?
            .unwrap_or_default())
    }

    /// (records, objects, bytes, per phase (name, records, stored records)).
    pub fn status(&self) -> Result<Option<Counts>> {
        self.with(|c| {
            let records: i64 = c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
            let (objects, bytes): (i64, i64) =
                c.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let phases = c
                .prepare("SELECT phase, COUNT(*), SUM(stored) FROM records GROUP BY phase ORDER BY phase")?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?.max(0) as u64,
                        r.get::<_, i64>(2)?.max(0) as u64,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((
                records.max(0) as u64,
                objects.max(0) as u64,
                bytes.max(0) as u64,
                phases,
            ))
        })
    }

    /// The digests of every object in the index.
    pub fn object_digests(&self) -> Result<Vec<String>> {
        Ok(self
            .with(|c| {
                c.prepare("SELECT digest FROM objects")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })?
            .unwrap_or_default())
    }
}

fn drop_objects_of(tx: &rusqlite::Transaction<'_>, id: i64, candidates: &mut Vec<String>) -> rusqlite::Result<()> {
    let digests: Vec<String> = tx
        .prepare_cached("DELETE FROM record_objects WHERE record = ?1 RETURNING digest")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    candidates.extend(digests);
    Ok(())
}

/// Deletes object `digest`'s row when no record references it; its size if it did.
fn remove_if_unreferenced(tx: &rusqlite::Transaction<'_>, digest: &str) -> rusqlite::Result<Option<u64>> {
    let used: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM record_objects WHERE digest = ?1)")?
        .query_row([digest], |r| r.get(0))?;
    if used {
        return Ok(None);
    }
    let size: Option<i64> = tx
        .prepare_cached("DELETE FROM objects WHERE digest = ?1 RETURNING size")?
        .query_row([digest], |r| r.get(0))
        .optional()?;
    Ok(size.map(|s| s.max(0) as u64))
}

fn collect_unreferenced(tx: &rusqlite::Transaction<'_>, mut candidates: Vec<String>) -> rusqlite::Result<Vec<String>> {
    candidates.sort();
    candidates.dedup();
    let mut gone = Vec::new();
    for d in candidates {
        if remove_if_unreferenced(tx, &d)?.is_some() {
            gone.push(d);
        }
    }
    Ok(gone)
}

/// `path` for a `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}
