//! Persistence for dialtone, on SQLite (the default) or PostgreSQL.
//!
//! One [`Store`], one code path: every query is written once, with `$1` placeholders
//! that both databases accept, and run on whichever pool is open through the
//! [`read!`], [`write!`] and [`transaction!`] macros. Each backend has its own
//! migrations under `migrations/{sqlite,postgres}`.
//!
//! Tenant scoping lives here, not in callers: customer data is only reachable through
//! [`Scoped`], which is built from a [`Scope`] and puts its organization, workspace and
//! mode into every query it runs.
//!
//! SQLite runs with WAL, one writer connection (writes are serialized in the process,
//! transactions start with `BEGIN IMMEDIATE`) and a pool of readers.

/// The scope condition of every tenant query: `$1` org, `$2` workspace, `$3` mode.
/// Queries through [`Scoped`] bind those three first.
macro_rules! in_scope {
    () => {
        "org_id = $1 AND workspace_id = $2 AND livemode = $3"
    };
}

mod agents;
mod billing;
mod contacts;
mod keys;
mod phone_numbers;
mod tenancy;

use std::path::Path;
use std::time::Duration;

use dialtone_domain::tenancy::Scope;
use dialtone_domain::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use contacts::ContactFilter;
pub use keys::{KeyChange, NewKeyRow, UsageDelta};
pub use phone_numbers::Candidate;
pub use tenancy::{Organization, Workspace};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database of a dialtone installation.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

/// Runs `$body` with `$conn` bound to a pool for reading.
macro_rules! read {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { reader, .. } => {
                let $conn = reader;
                $body
            }
            $crate::Db::Postgres(pool) => {
                let $conn = pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to a pool for a single writing statement.
macro_rules! write {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { writer, .. } => {
                let $conn = writer;
                $body
            }
            $crate::Db::Postgres(pool) => {
                let $conn = pool;
                $body
            }
        }
    };
}

/// Runs `$body` (which returns `Result<T>`) in a transaction bound to `$tx` and commits.
/// An early `?` drops the transaction, which rolls it back.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { writer, .. } => {
                let mut $tx = writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::db_error)?;
                let out = $body?;
                $tx.commit().await.map_err($crate::db_error)?;
                Ok(out)
            }
            $crate::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err($crate::db_error)?;
                let out = $body?;
                $tx.commit().await.map_err($crate::db_error)?;
                Ok(out)
            }
        }
    };
}

pub(crate) use {read, transaction, write};

/// Maps a database error to the domain's error: unreachable → 503, else 500.
/// Callers that expect a constraint violation check for it before calling this.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %e, "database unavailable");
            Error::Unavailable
        }
        other => Error::internal(other),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir` and migrates it.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(Error::internal)?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("dialtone.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // No ping before each acquire: a connection to a local file cannot silently die,
        // and with sqlx-sqlite's worker threads the ping doubled the thread hops of
        // every query (measured: the largest cost of a point read under load).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        let store = Store {
            db: Db::Sqlite { writer, reader },
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and migrates the database.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::validation("DATABASE_URL", format!("invalid DATABASE_URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        let store = Store {
            db: Db::Postgres(pool),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite")
                .run(writer)
                .await
                .map_err(Error::internal),
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres")
                .run(pool)
                .await
                .map_err(Error::internal),
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        read!(self, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map(|_| ())
        .map_err(db_error)
    }

    /// Closes every connection (SQLite checkpoints its WAL on close).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Reads an installation setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        read!(self, |c| sqlx::query_scalar::<_, String>(
            "SELECT value FROM settings WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(c)
        .await)
        .map_err(db_error)
    }

    /// Stores a setting unless one of that name exists; returns the value that holds.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        write!(self, |c| sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        )
        .bind(name)
        .bind(value)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(db_error)?;
        self.setting(name)
            .await?
            .ok_or_else(|| Error::internal(std::io::Error::other("setting vanished")))
    }

    /// Customer data of one tenant. Every query made through it is scoped.
    pub fn scoped<'a>(&'a self, scope: &'a Scope) -> Scoped<'a> {
        Scoped { store: self, scope }
    }
}

/// The store seen from inside one organization, workspace and mode.
#[derive(Debug, Clone, Copy)]
pub struct Scoped<'a> {
    store: &'a Store,
    scope: &'a Scope,
}

impl Scoped<'_> {
    pub fn scope(&self) -> &Scope {
        self.scope
    }
}
