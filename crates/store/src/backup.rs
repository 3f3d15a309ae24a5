//! Online backups of the embedded SQLite database, and the checks a restore makes on
//! one, without starting a [`crate::Store`].
//!
//! A snapshot is `VACUUM INTO` on a connection of its own: it reads inside one read
//! transaction (WAL: the server's writer carries on, and the copy is the database as
//! of one commit) and writes a compact new file. A file copy of a live WAL database
//! can be torn; this cannot.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The SQLite file in a data directory (and in a backup).
pub const SQLITE_FILE: &str = "dialtone.db";

fn io(e: rusqlite::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// The newest migration this binary knows: a backup with a newer schema was made by
/// a newer dialtone and cannot be restored by this one.
pub fn newest_sqlite_migration() -> i64 {
    crate::SQLITE_MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .max()
        .unwrap_or_default()
}

/// Writes a consistent copy of the live database `source` to `dest` (which must not
/// exist), while servers keep reading and writing it. Takes no write lock.
pub fn sqlite_snapshot(source: &Path, dest: &Path) -> std::io::Result<()> {
    // Read-write without create: a read-only connection cannot open a WAL database
    // whose `-shm` is missing (no server running); only reads are made through it.
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(io)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(io)?;
    let dest = dest
        .to_str()
        .ok_or_else(|| std::io::Error::other("the backup path is not valid UTF-8"))?;
    conn.execute("VACUUM INTO ?1", [dest]).map_err(io)?;
    drop(conn);
    // VACUUM INTO does not sync its output: do it before the backup is called done.
    std::fs::File::open(dest)?.sync_all()
}

/// What a restore needs to know of a database file before it is put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteFacts {
    /// The newest migration applied to it (`None`: not a dialtone database).
    pub schema_version: Option<i64>,
    /// `PRAGMA integrity_check`: `ok`, or what is wrong.
    pub integrity: String,
    /// The digest of the server secret it was set up with (`settings.secret_check`).
    pub secret_check: Option<String>,
}

/// Reads a (backup) database file without changing it.
pub fn sqlite_facts(path: &Path) -> std::io::Result<SqliteFacts> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(io)?;
    let integrity: String = {
        let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(io)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        rows.join("; ")
    };
    let has = |table: &str| -> std::io::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(io)
    };
    let schema_version = if has("_migrations")? {
        conn.query_row("SELECT max(version) FROM _migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(io)?
    } else {
        None
    };
    let secret_check = if has("settings")? {
        conn.query_row(
            "SELECT value FROM settings WHERE name = 'secret_check'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(io)?
    } else {
        None
    };
    Ok(SqliteFacts {
        schema_version,
        integrity,
        secret_check,
    })
}
