//! Persistence for dialtone, on SQLite (the default) or PostgreSQL.
//!
//! One [`Store`], one code path: every query is written once, with `$1` placeholders,
//! and its rows read once, through [`db`]; only the executor differs (rusqlite on the
//! calling thread for SQLite, sqlx for PostgreSQL). Each backend has its own
//! migrations under `migrations/{sqlite,postgres}`.
//!
//! Tenant scoping lives here, not in callers: customer data is only reachable through
//! [`Scoped`], which is built from a [`Scope`] and puts its organization, workspace and
//! mode into every query it runs.

/// The scope condition of every tenant query: `$1` org, `$2` workspace, `$3` mode.
/// Queries through [`Scoped`] bind those three first.
macro_rules! in_scope {
    () => {
        "org_id = $1 AND workspace_id = $2 AND livemode = $3"
    };
}

mod agents;
mod analytics;
pub mod backup;
mod billing;
mod calls;
mod campaigns;
mod contacts;
mod db;
mod demo;
mod events;
mod keys;
mod limits;
mod messages;
pub mod oauth;
pub mod org_data;
mod phone_numbers;
mod reconcile;
mod recordings;
mod rollup;
mod tenancy;
mod users;
mod webhooks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dialtone_domain::tenancy::Scope;
use dialtone_domain::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db::{Db, FromRow, Query, Scalar, Sqlite, pg_error, query};

pub use billing::LedgerEntry;
pub use calls::{Apply, CallFilter, CarrierCall, DueCall, NewCall, SIMULATOR};
pub use campaigns::{NextRecipient, RunningCampaign};
pub use contacts::{ContactFilter, ContactTimeline};
pub use demo::DemoSummary;
pub use keys::{Heard, KeyChange, KeyChangeListener, NewKeyRow, UsageDelta};
pub use messages::{DueMessage, MessageReport, NewMessage};
pub use phone_numbers::Candidate;
pub use reconcile::OpenAtCarrier;
pub use recordings::{CarrierRecording, CarrierSegment, RecordingMedia};
pub use tenancy::{Organization, Workspace};
pub use users::{AuditEntry, AuditFilter, SessionUser, User};
pub use webhooks::{ClaimedDelivery, EndpointRow, NewEndpoint, Outcome as DeliveryOutcome};

/// SQLite migrations, embedded; `every_sqlite_migration_is_embedded` keeps the list whole.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (
        20261123000001,
        include_str!("../migrations/sqlite/20261123000001_foundation.sql"),
    ),
    (
        20261123000002,
        include_str!("../migrations/sqlite/20261123000002_agents.sql"),
    ),
    (
        20261123000003,
        include_str!("../migrations/sqlite/20261123000003_billing_numbers.sql"),
    ),
    (
        20261123000004,
        include_str!("../migrations/sqlite/20261123000004_calls.sql"),
    ),
    (
        20261123000005,
        include_str!("../migrations/sqlite/20261123000005_messages.sql"),
    ),
    (
        20261123000006,
        include_str!("../migrations/sqlite/20261123000006_campaigns.sql"),
    ),
    (
        20261123000007,
        include_str!("../migrations/sqlite/20261123000007_webhooks.sql"),
    ),
    (
        20261123000008,
        include_str!("../migrations/sqlite/20261123000008_webhook_rotation.sql"),
    ),
    (
        20261123000009,
        include_str!("../migrations/sqlite/20261123000009_dashboard.sql"),
    ),
    (
        20261127000010,
        include_str!("../migrations/sqlite/20261127000010_carriers.sql"),
    ),
    (
        20261127000011,
        include_str!("../migrations/sqlite/20261127000011_agent_stream.sql"),
    ),
    (
        20261127000012,
        include_str!("../migrations/sqlite/20261127000012_usage_rollup.sql"),
    ),
    (
        20261127000013,
        include_str!("../migrations/sqlite/20261127000013_ledger_workspace.sql"),
    ),
    (
        20261127000014,
        include_str!("../migrations/sqlite/20261127000014_signin_devices.sql"),
    ),
    (
        20261127000015,
        include_str!("../migrations/sqlite/20261127000015_event_log.sql"),
    ),
    (
        20261128000016,
        include_str!("../migrations/sqlite/20261128000016_key_limits.sql"),
    ),
    (
        20261128000017,
        include_str!("../migrations/sqlite/20261128000017_key_permission_usage.sql"),
    ),
    (
        20261128000018,
        include_str!("../migrations/sqlite/20261128000018_oauth.sql"),
    ),
    (
        20261128000024,
        include_str!("../migrations/sqlite/20261128000024_timeline_indexes.sql"),
    ),
];

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The longest a heavy read may take by default (`Store::set_query_budget`).
pub const DEFAULT_QUERY_BUDGET: Duration = Duration::from_secs(5);
/// Heavy reads (scans, searches, analytics) running at once per store; more wait.
const HEAVY_READS_AT_ONCE: usize = 4;

/// The database of a dialtone installation.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    heavy: Heavy,
}

/// How heavy reads are kept from stalling everything else.
#[derive(Debug, Clone)]
struct Heavy {
    /// Budget of one heavy read, in milliseconds.
    budget_ms: Arc<std::sync::atomic::AtomicU64>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Heavy {
    fn new() -> Heavy {
        Heavy {
            budget_ms: Arc::new(std::sync::atomic::AtomicU64::new(
                DEFAULT_QUERY_BUDGET.as_millis() as u64,
            )),
            slots: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS_AT_ONCE)),
        }
    }

    fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir` and migrates it.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(Error::internal)?;
        let sqlite = Sqlite::open(&data_dir.join("dialtone.db"))?;
        sqlite.migrate(SQLITE_MIGRATIONS).await?;
        Ok(Store {
            db: Db::Sqlite(Arc::new(sqlite)),
            heavy: Heavy::new(),
        })
    }

    /// Connects to PostgreSQL at `url` and migrates the database.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::validation("DATABASE_URL", format!("invalid DATABASE_URL: {e}")))?;
        // Migrations on a connection of their own: they may take longer than any
        // request's statement is allowed to.
        let migrator = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(pg_error)?;
        sqlx::migrate!("migrations/postgres")
            .run(&migrator)
            .await
            .map_err(Error::internal)?;
        migrator.close().await;
        // A backstop for every statement; heavy reads get the tighter query budget.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.options([("statement_timeout", "30s")]))
            .await
            .map_err(pg_error)?;
        Ok(Store {
            db: Db::Postgres(pool),
            heavy: Heavy::new(),
        })
    }

    /// The longest one heavy read (a scan, a search, analytics) may take before it is
    /// stopped with `Error::QueryTimeout` (default [`DEFAULT_QUERY_BUDGET`]).
    pub fn set_query_budget(&self, budget: Duration) {
        self.heavy.budget_ms.store(
            budget.as_millis().max(1) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A read that may be slow. It never runs on the caller's async worker: on SQLite
    /// it goes to a blocking thread, and at most a few run at once (the rest wait their
    /// turn), so one tenant's analytics cannot stall other requests; on both databases
    /// it is stopped when it exceeds the budget (SQLite's progress handler,
    /// PostgreSQL's `statement_timeout`).
    pub(crate) async fn fetch_all_heavy<R: FromRow + Send + 'static>(
        &self,
        q: Query,
    ) -> Result<Vec<R>> {
        let budget = self.heavy.budget();
        let _slot = self
            .heavy
            .slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable)?;
        match &self.db {
            Db::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.read_within::<R>(&q, budget))
                    .await
                    .map_err(Error::internal)?
            }
            Db::Postgres(_) => self.db.fetch_all_within(q, budget).await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.db
            .fetch_optional::<Scalar<i64>>(query("SELECT CAST(1 AS BIGINT)"))
            .await
            .map(|_| ())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(s) => s.close(),
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Reads an installation setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        self.db
            .fetch_optional::<Scalar<String>>(
                query("SELECT value FROM settings WHERE name = $1").bind(name),
            )
            .await
            .map(|v| v.map(|s| s.0))
    }

    /// Stores a setting unless one of that name exists; returns the value that holds.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        self.db
            .execute(
                query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(value),
            )
            .await?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_sqlite_migration_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<i64> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .split('_')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        files.sort();
        let embedded: Vec<i64> = super::SQLITE_MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(files, embedded);
    }
}
