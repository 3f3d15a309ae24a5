//! The one way the store talks to a database, whichever it is.
//!
//! A query is written once ([`query`], with `$1` placeholders) and rows are read once
//! ([`FromRow`], by column name). [`Db`] runs it on PostgreSQL through sqlx, or on
//! SQLite through rusqlite *on the calling thread*: SQLite is a library, a point read
//! takes microseconds, and in WAL mode readers never wait for a lock, so handing the
//! work to another thread (as sqlx-sqlite does, with several thread hops per query)
//! cost more than the query (profiled: see docs/PERFORMANCE.md).
//!
//! SQLite shape: one writer connection behind an async mutex (so writes queue without
//! blocking a thread; transactions are `BEGIN IMMEDIATE`), and a small pool of
//! read-only connections. Every SQLite placeholder must be bound: an unbound `$n` is
//! an error, not a silent NULL.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_domain::time::Timestamp;
use dialtone_domain::{Error, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value as Json};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgPool, Postgres, Row as _};

/// Idle read-only SQLite connections kept open.
const SQLITE_READERS_KEPT: usize = 8;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound value. Each variant keeps its SQL type even when NULL, as PostgreSQL wants.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Int32(Option<i32>),
    Bool(Option<bool>),
    Time(Option<Timestamp>),
    Blob(Option<Vec<u8>>),
    Json(Option<Json>),
}

/// Things that can be bound to a placeholder.
pub(crate) trait ToValue {
    fn to_value(self) -> Value;
}

macro_rules! to_value {
    ($($t:ty => $variant:ident, $conv:expr;)*) => {$(
        impl ToValue for $t {
            fn to_value(self) -> Value {
                Value::$variant(Some($conv(self)))
            }
        }
        impl ToValue for Option<$t> {
            fn to_value(self) -> Value {
                Value::$variant(self.map($conv))
            }
        }
    )*};
}

to_value! {
    String => Text, |v| v;
    &str => Text, |v: &str| v.to_owned();
    &String => Text, |v: &String| v.clone();
    i64 => Int, |v| v;
    i32 => Int32, |v| v;
    bool => Bool, |v| v;
    Timestamp => Time, |v| v;
    &[u8] => Blob, |v: &[u8]| v.to_vec();
    Json => Json, |v| v;
}

impl ToValue for Value {
    fn to_value(self) -> Value {
        self
    }
}

impl ToValue for &Option<String> {
    fn to_value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for &Map<String, Json> {
    fn to_value(self) -> Value {
        Value::Json(Some(Json::Object(self.clone())))
    }
}

impl ToValue for Map<String, Json> {
    fn to_value(self) -> Value {
        Value::Json(Some(Json::Object(self)))
    }
}

/// SQLite keeps times as text that sorts like the time: `2026-11-23T10:00:00.000Z`.
fn sqlite_time(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self {
            Value::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(Some(i)) => ToSqlOutput::Owned(V::Integer(*i)),
            Value::Int32(Some(i)) => ToSqlOutput::Owned(V::Integer(i64::from(*i))),
            Value::Bool(Some(b)) => ToSqlOutput::Owned(V::Integer(i64::from(*b))),
            Value::Time(Some(t)) => ToSqlOutput::Owned(V::Text(sqlite_time(t))),
            Value::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Json(Some(j)) => ToSqlOutput::Owned(V::Text(j.to_string())),
            _ => ToSqlOutput::Owned(V::Null),
        })
    }
}

type PgQuery = sqlx::query::Query<'static, Postgres, PgArguments>;

fn bind_pg(q: PgQuery, v: Value) -> PgQuery {
    match v {
        Value::Text(v) => q.bind(v),
        Value::Int(v) => q.bind(v),
        Value::Int32(v) => q.bind(v),
        Value::Bool(v) => q.bind(v),
        Value::Time(v) => q.bind(v),
        Value::Blob(v) => q.bind(v),
        Value::Json(v) => q.bind(v.map(sqlx::types::Json)),
    }
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// A statement over tenant data, with the scope already bound to `$1` (org), `$2`
/// (workspace) and `$3` (mode), as [`in_scope!`](crate) expects.
pub(crate) fn scope_query(s: &dialtone_domain::tenancy::Scope, sql: &'static str) -> Query {
    query(sql)
        .bind(&s.org_id)
        .bind(&s.workspace_id)
        .bind(s.livemode())
}

/// A statement assembled at run time. Only for SQL built from fixed fragments and
/// `$n` placeholders (optional filters, multi-row inserts): never from input text.
pub(crate) fn query_built(sql: String) -> Query {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

impl Query {
    pub(crate) fn bind(mut self, v: impl ToValue) -> Self {
        self.args.push(v.to_value());
        self
    }

    fn pg(self) -> PgQuery {
        let q = match self.sql {
            Cow::Borrowed(sql) => sqlx::query(sql),
            Cow::Owned(sql) => sqlx::query(sqlx::AssertSqlSafe(sql)),
        };
        self.args.into_iter().fold(q, bind_pg)
    }

    /// Binds `$n` (written `?n` for SQLite, see [`sqlite_sql`]) by its number.
    fn bind_sqlite(&self, stmt: &mut rusqlite::CachedStatement<'_>) -> Result<()> {
        for n in 1..=stmt.parameter_count() {
            let v = self
                .args
                .get(n - 1)
                .ok_or_else(|| internal(format!("${n} of {:?} is not bound", self.sql)))?;
            stmt.raw_bind_parameter(n, v).map_err(sqlite_error)?;
        }
        Ok(())
    }
}

/// The SQLite spelling of a statement: `$n` becomes `?n`, which SQLite numbers `n`
/// directly (it treats `$n` as a name, and looking names up is linear per parameter).
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn internal(message: String) -> Error {
    Error::internal(std::io::Error::other(message))
}

/// A row of either database, read by column name (or index).
pub(crate) enum Row<'a> {
    Pg(&'a PgRow),
    Sqlite(&'a rusqlite::Row<'a>),
}

/// A column index both drivers understand: a name or a position.
pub(crate) trait Idx:
    sqlx::ColumnIndex<PgRow> + rusqlite::RowIndex + Copy + std::fmt::Debug
{
}
impl Idx for &str {}
impl Idx for usize {}

impl Row<'_> {
    pub(crate) fn get<T: Column>(&self, i: impl Idx) -> Result<T> {
        match self {
            Row::Pg(r) => T::pg(r, i),
            Row::Sqlite(r) => T::sqlite(r, i),
        }
    }
}

/// A Rust type a column decodes into, on both databases.
pub(crate) trait Column: Sized {
    fn pg(r: &PgRow, i: impl Idx) -> Result<Self>;
    fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self>;
}

macro_rules! column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn pg(r: &PgRow, i: impl Idx) -> Result<Self> {
                r.try_get(i).map_err(pg_error)
            }
            fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self> {
                r.get(i).map_err(sqlite_error)
            }
        }
    )*};
}

column!(
    String,
    Option<String>,
    i64,
    Option<i64>,
    i32,
    Option<i32>,
    bool,
    Vec<u8>
);

fn parse_time(s: &str) -> Result<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| internal(format!("stored time {s:?} is invalid: {e}")))
}

impl Column for Timestamp {
    fn pg(r: &PgRow, i: impl Idx) -> Result<Self> {
        r.try_get(i).map_err(pg_error)
    }
    fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self> {
        parse_time(&r.get::<_, String>(i).map_err(sqlite_error)?)
    }
}

impl Column for Option<Timestamp> {
    fn pg(r: &PgRow, i: impl Idx) -> Result<Self> {
        r.try_get(i).map_err(pg_error)
    }
    fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self> {
        r.get::<_, Option<String>>(i)
            .map_err(sqlite_error)?
            .map(|s| parse_time(&s))
            .transpose()
    }
}

impl Column for Map<String, Json> {
    fn pg(r: &PgRow, i: impl Idx) -> Result<Self> {
        r.try_get::<sqlx::types::Json<Map<String, Json>>, _>(i)
            .map(|j| j.0)
            .map_err(pg_error)
    }
    fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self> {
        let text: String = r.get(i).map_err(sqlite_error)?;
        serde_json::from_str(&text).map_err(Error::internal)
    }
}

impl Column for Json {
    fn pg(r: &PgRow, i: impl Idx) -> Result<Self> {
        r.try_get::<sqlx::types::Json<Json>, _>(i)
            .map(|j| j.0)
            .map_err(pg_error)
    }
    fn sqlite(r: &rusqlite::Row<'_>, i: impl Idx) -> Result<Self> {
        let text: String = r.get(i).map_err(sqlite_error)?;
        serde_json::from_str(&text).map_err(Error::internal)
    }
}

/// A struct read from a row.
pub(crate) trait FromRow: Sized {
    fn from_row(r: &Row<'_>) -> Result<Self>;
}

/// `impl FromRow` for a struct whose fields are named like its columns.
macro_rules! from_row {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl $crate::db::FromRow for $name {
            fn from_row(r: &$crate::db::Row<'_>) -> dialtone_domain::Result<Self> {
                Ok($name { $($field: r.get(stringify!($field))?),* })
            }
        }
    };
}
pub(crate) use from_row;

/// The first column of a row: for `SELECT count(*)`-like queries.
pub(crate) struct Scalar<T>(pub T);

impl<T: Column> FromRow for Scalar<T> {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        r.get(0usize).map(Scalar)
    }
}

/// Maps a PostgreSQL error: unreachable → 503, unique violation → 409, else 500.
pub(crate) fn pg_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %e, "database unavailable");
            Error::Unavailable
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => unique_violation(),
        // Connection exceptions and the server shutting down: unavailable, not a bug.
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }) =>
        {
            tracing::warn!(error = %db, "database unavailable");
            Error::Unavailable
        }
        // statement_timeout: the read went over its budget.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => Error::QueryTimeout,
        other => Error::internal(other),
    }
}

/// Maps a SQLite error: busy or locked → 503, unique violation → 409, else 500.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            unique_violation()
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked
            ) =>
        {
            tracing::warn!(error = %e, "database busy");
            Error::Unavailable
        }
        // The progress handler stopped a read over its budget.
        rusqlite::Error::SqliteFailure(f, _) if f.code == ffi::ErrorCode::OperationInterrupted => {
            Error::QueryTimeout
        }
        _ => Error::internal(e),
    }
}

/// The error a unique constraint gives; callers expecting one give it a better message.
fn unique_violation() -> Error {
    Error::Conflict {
        message: "A record with these values already exists.".to_owned(),
        details: None,
    }
}

/// The longest any SQLite read may run (heavy reads have a tighter budget).
const READ_BACKSTOP: Duration = Duration::from_secs(30);

thread_local! {
    /// When the read running on this thread must stop; reads run on the thread that
    /// asks, so the progress handler of its connection finds it here.
    static READ_DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

fn past_read_deadline() -> bool {
    READ_DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() > t))
}

pub(crate) struct Sqlite {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    /// Signalled when a transaction that queued webhook deliveries commits (SQLite has
    /// one node, so an in-process signal reaches every worker that could claim them).
    deliveries_queued: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
        .map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite_error)
}

impl Sqlite {
    pub(crate) fn open(path: &Path) -> Result<Sqlite> {
        let writer = Connection::open(path).map_err(sqlite_error)?;
        configure(&writer)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_error)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_error)?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Mutex::new(Vec::new()),
            deliveries_queued: Arc::default(),
        })
    }

    fn take_reader(&self) -> Result<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sqlite_error)?;
        configure(&c)?;
        // Checked every few thousand virtual-machine steps (microseconds apart): a read
        // past its deadline is interrupted (`Error::QueryTimeout`).
        c.progress_handler(4_096, Some(past_read_deadline))
            .map_err(sqlite_error)?;
        Ok(c)
    }

    fn give_back(&self, c: Connection) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < SQLITE_READERS_KEPT {
            readers.push(c);
        }
    }

    /// Runs a read that may be slow on a pooled read-only connection, on this thread
    /// (the caller puts it on a blocking thread), stopped once `budget` has passed.
    pub(crate) fn read_within<R: FromRow>(&self, q: &Query, budget: Duration) -> Result<Vec<R>> {
        self.read_until(Instant::now() + budget, |c| sqlite_rows(c, q, None))
    }

    /// Runs a read on a pooled read-only connection, on this thread, within the
    /// backstop budget every read has.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.read_until(Instant::now() + READ_BACKSTOP, f)
    }

    fn read_until<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let c = self.take_reader()?;
        READ_DEADLINE.with(|d| d.set(Some(deadline)));
        let out = f(&c);
        READ_DEADLINE.with(|d| d.set(None));
        self.give_back(c);
        out
    }

    /// Applies the embedded migrations not yet applied, each in its own transaction.
    pub(crate) async fn migrate(&self, migrations: &[(i64, &str)]) -> Result<()> {
        let conn = self.writer.lock().await;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS _migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(sqlite_error)?;
        for (version, sql) in migrations {
            let applied: Option<i64> = conn
                .query_row(
                    "SELECT version FROM _migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(sqlite_error)?;
            if applied.is_some() {
                continue;
            }
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(sqlite_error)?;
            let result = conn.execute_batch(sql).and_then(|_| {
                conn.execute(
                    "INSERT INTO _migrations (version, applied_at) VALUES (?1, ?2)",
                    rusqlite::params![version, sqlite_time(&dialtone_domain::time::now())],
                )
            });
            match result {
                Ok(_) => conn.execute_batch("COMMIT").map_err(sqlite_error)?,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(sqlite_error(e));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn sqlite_rows<R: FromRow>(conn: &Connection, q: &Query, limit: Option<usize>) -> Result<Vec<R>> {
    let mut stmt = conn
        .prepare_cached(&sqlite_sql(&q.sql))
        .map_err(sqlite_error)?;
    q.bind_sqlite(&mut stmt)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        out.push(R::from_row(&Row::Sqlite(row))?);
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

fn sqlite_execute(conn: &Connection, q: &Query) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(&sqlite_sql(&q.sql))
        .map_err(sqlite_error)?;
    q.bind_sqlite(&mut stmt)?;
    stmt.raw_execute().map(|n| n as u64).map_err(sqlite_error)
}

/// The database of a store.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(Arc<Sqlite>),
    Postgres(PgPool),
}

impl Db {
    /// Picks the statement for this database, for the few places their SQL differs
    /// (time bucketing, row locking).
    pub(crate) fn dialect(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Db::Sqlite(_) => sqlite,
            Db::Postgres(_) => postgres,
        }
    }

    pub(crate) async fn fetch_all<R: FromRow>(&self, q: Query) -> Result<Vec<R>> {
        match self {
            Db::Sqlite(s) => s.read(|c| sqlite_rows(c, &q, None)),
            Db::Postgres(p) => {
                let rows = q.pg().fetch_all(p).await.map_err(pg_error)?;
                rows.iter().map(|r| R::from_row(&Row::Pg(r))).collect()
            }
        }
    }

    /// PostgreSQL: a read under a `statement_timeout` of `budget` (in a transaction of
    /// its own, so the setting ends with it).
    pub(crate) async fn fetch_all_within<R: FromRow>(
        &self,
        q: Query,
        budget: Duration,
    ) -> Result<Vec<R>> {
        let Db::Postgres(p) = self else {
            return self.fetch_all(q).await;
        };
        let mut tx = p.begin().await.map_err(pg_error)?;
        // SET takes no parameters; the value is a number this code formats.
        let set = format!(
            "SET LOCAL statement_timeout = {}",
            budget.as_millis().max(1)
        );
        sqlx::query(sqlx::AssertSqlSafe(set))
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        let rows = q.pg().fetch_all(&mut *tx).await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        rows.iter().map(|r| R::from_row(&Row::Pg(r))).collect()
    }

    pub(crate) async fn fetch_optional<R: FromRow>(&self, q: Query) -> Result<Option<R>> {
        match self {
            Db::Sqlite(s) => s.read(|c| sqlite_rows(c, &q, Some(1))).map(|mut v| v.pop()),
            Db::Postgres(p) => match q.pg().fetch_optional(p).await.map_err(pg_error)? {
                Some(r) => R::from_row(&Row::Pg(&r)).map(Some),
                None => Ok(None),
            },
        }
    }

    /// One statement that writes; returns the rows it changed.
    pub(crate) async fn execute(&self, q: Query) -> Result<u64> {
        match self {
            Db::Sqlite(s) => {
                let conn = s.writer.lock().await;
                sqlite_execute(&conn, &q)
            }
            Db::Postgres(p) => q
                .pg()
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                .map_err(pg_error),
        }
    }

    /// Starts a transaction; dropping it without [`Tx::commit`] rolls it back.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        match self {
            Db::Sqlite(s) => {
                let conn = s.writer.clone().lock_owned().await;
                conn.execute_batch("BEGIN IMMEDIATE")
                    .map_err(sqlite_error)?;
                Ok(Tx::Sqlite(SqliteTx {
                    conn,
                    open: true,
                    deliveries_queued: s.deliveries_queued.clone(),
                    wake: false,
                }))
            }
            Db::Postgres(p) => Ok(Tx::Pg(PgTx {
                tx: p.begin().await.map_err(pg_error)?,
                pool: p.clone(),
                wake: false,
            })),
        }
    }

    /// The in-process signal of queued deliveries (SQLite); `None` on PostgreSQL,
    /// where workers `LISTEN` on [`DELIVERIES_CHANNEL`] instead.
    pub(crate) fn deliveries_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        match self {
            Db::Sqlite(s) => Some(s.deliveries_queued.clone()),
            Db::Postgres(_) => None,
        }
    }

    /// Wakes the delivery workers of every node: deliveries were just queued by a
    /// statement already committed.
    pub(crate) async fn wake_deliveries(&self) {
        match self {
            Db::Sqlite(s) => s.deliveries_queued.notify_one(),
            Db::Postgres(p) => notify_deliveries(p).await,
        }
    }
}

/// The PostgreSQL channel on which delivery workers are told that work was queued.
/// Only a hint: the queue is the source of truth, and every worker also polls it.
pub const DELIVERIES_CHANNEL: &str = "dialtone_deliveries";

/// `NOTIFY` on [`DELIVERIES_CHANNEL`], in a transaction of its own sent after the one
/// that queued the work has committed. `NOTIFY` serializes the commits of notifying
/// transactions (a cluster-wide lock held through the commit's WAL flush), so it is
/// kept out of the event's transaction and committed asynchronously: it is a hint,
/// and losing it only leaves the work to the poll.
async fn notify_deliveries(pool: &PgPool) {
    let sent = sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true),          pg_notify('dialtone_deliveries', '')",
    )
    .execute(pool)
    .await;
    if let Err(e) = sent {
        tracing::debug!(error = %e, "could not notify delivery workers; their poll will find the work");
    }
}

pub(crate) struct SqliteTx {
    conn: tokio::sync::OwnedMutexGuard<Connection>,
    open: bool,
    /// Signalled after `COMMIT` when `wake` (deliveries were queued in this transaction).
    deliveries_queued: Arc<tokio::sync::Notify>,
    wake: bool,
}

/// A PostgreSQL transaction, and whether to wake delivery workers once it commits.
pub(crate) struct PgTx {
    tx: sqlx::Transaction<'static, Postgres>,
    pool: PgPool,
    wake: bool,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A transaction on either database.
pub(crate) enum Tx {
    Sqlite(SqliteTx),
    Pg(PgTx),
}

impl Tx {
    /// Deliveries were queued in this transaction: wake the delivery workers once it
    /// commits (never if it rolls back).
    pub(crate) fn wake_deliveries_on_commit(&mut self) {
        match self {
            Tx::Sqlite(t) => t.wake = true,
            Tx::Pg(t) => t.wake = true,
        }
    }

    pub(crate) async fn fetch_all<R: FromRow>(&mut self, q: Query) -> Result<Vec<R>> {
        match self {
            Tx::Sqlite(t) => sqlite_rows(&t.conn, &q, None),
            Tx::Pg(t) => {
                let rows = q.pg().fetch_all(&mut *t.tx).await.map_err(pg_error)?;
                rows.iter().map(|r| R::from_row(&Row::Pg(r))).collect()
            }
        }
    }

    pub(crate) async fn fetch_optional<R: FromRow>(&mut self, q: Query) -> Result<Option<R>> {
        match self {
            Tx::Sqlite(t) => sqlite_rows(&t.conn, &q, Some(1)).map(|mut v| v.pop()),
            Tx::Pg(t) => match q.pg().fetch_optional(&mut *t.tx).await.map_err(pg_error)? {
                Some(r) => R::from_row(&Row::Pg(&r)).map(Some),
                None => Ok(None),
            },
        }
    }

    pub(crate) async fn execute(&mut self, q: Query) -> Result<u64> {
        match self {
            Tx::Sqlite(t) => sqlite_execute(&t.conn, &q),
            Tx::Pg(t) => q
                .pg()
                .execute(&mut *t.tx)
                .await
                .map(|r| r.rows_affected())
                .map_err(pg_error),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(mut t) => {
                t.conn.execute_batch("COMMIT").map_err(sqlite_error)?;
                t.open = false;
                if t.wake {
                    t.deliveries_queued.notify_one();
                }
                Ok(())
            }
            Tx::Pg(t) => {
                t.tx.commit().await.map_err(pg_error)?;
                if t.wake {
                    notify_deliveries(&t.pool).await;
                }
                Ok(())
            }
        }
    }
}
