//! Everything of one organization, table by table: read out for an export, erased for
//! good, counted for the checks.
//!
//! [`ORG_TABLES`] is the one list: each table holding rows of an organization, how its
//! rows are found (by `org_id`, or through the row they belong to), whether it is
//! exported (and which columns never leave: secrets and their digests) or deliberately
//! not, with the reason. It is in deletion order: a row is deleted before any row it
//! references. [`NOT_ORG_DATA`] names the tables that hold no organization's data.
//! [`uncovered`] compares both with the live schema: a table in neither list, or a
//! table with an `org_id` or `workspace_id` column declared as not organization data,
//! stops an export or an erasure before it starts (and fails the tests), so a future
//! table cannot be forgotten.

use dialtone_domain::{Error, Result};
use serde_json::{Map, Value as Json};

use crate::Store;
use crate::db::{FromRow, Row, Scalar, Value, query, query_built};

/// Whether a table's rows go into an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Into `<table>.jsonl`.
    File,
    /// Not exported, for this reason (the rows are still erased).
    Skip(&'static str),
}

/// A table holding rows of organizations.
#[derive(Debug, Clone, Copy)]
pub struct OrgTable {
    pub name: &'static str,
    /// The condition selecting the organization's rows; `$1` is the organization id.
    pub of_org: &'static str,
    /// A unique, ordered key (exports page through it).
    pub key: &'static [&'static str],
    pub export: Export,
    /// Columns that never leave the database (secrets, digests of secrets).
    pub omit: &'static [&'static str],
    /// Text columns holding JSON (stored as text on SQLite, `jsonb` on PostgreSQL),
    /// exported as JSON values.
    pub json: &'static [&'static str],
}

impl OrgTable {
    /// The export file of this table, if it is exported.
    pub fn file(&self) -> Option<String> {
        match self.export {
            Export::File => Some(format!("{}.jsonl", self.name)),
            Export::Skip(_) => None,
        }
    }
}

const fn t(
    name: &'static str,
    of_org: &'static str,
    key: &'static [&'static str],
    export: Export,
) -> OrgTable {
    OrgTable {
        name,
        of_org,
        key,
        export,
        omit: &[],
        json: &[],
    }
}

const BY_ORG: &str = "org_id = $1";
const ID: &[&str] = &["id"];

/// Every table with rows of an organization, in deletion order (children first).
pub const ORG_TABLES: &[OrgTable] = &[
    t(
        "webhook_attempts",
        "delivery_id IN (SELECT d.id FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE e.org_id = $1)",
        ID,
        Export::File,
    ),
    t(
        "webhook_deliveries",
        "endpoint_id IN (SELECT id FROM webhook_endpoints WHERE org_id = $1)",
        ID,
        Export::File,
    ),
    OrgTable {
        omit: &["secret_sealed", "previous_secret_sealed"],
        ..t("webhook_endpoints", BY_ORG, ID, Export::File)
    },
    t(
        "transcript_segments",
        "call_id IN (SELECT id FROM calls WHERE org_id = $1)",
        &["call_id", "segment_key"],
        Export::File,
    ),
    OrgTable {
        json: &["segments"],
        ..t("transcripts", BY_ORG, &["call_id"], Export::File)
    },
    t("recordings", BY_ORG, ID, Export::File),
    t(
        "campaign_recipients",
        "campaign_id IN (SELECT id FROM campaigns WHERE org_id = $1)",
        &["campaign_id", "position"],
        Export::File,
    ),
    t("notes", BY_ORG, ID, Export::File),
    t("messages", BY_ORG, ID, Export::File),
    OrgTable {
        json: &["metadata"],
        ..t("calls", BY_ORG, ID, Export::File)
    },
    t("campaigns", BY_ORG, ID, Export::File),
    t("conversations", BY_ORG, ID, Export::File),
    OrgTable {
        json: &["custom_fields"],
        ..t("contacts", BY_ORG, ID, Export::File)
    },
    t("agents", BY_ORG, ID, Export::File),
    t("phone_numbers", BY_ORG, ID, Export::File),
    OrgTable {
        json: &["data"],
        ..t("events", BY_ORG, ID, Export::File)
    },
    t(
        "idempotency_keys",
        BY_ORG,
        &["workspace_id", "livemode", "idem_key"],
        Export::Skip(
            "stored replies to retried requests: a cache, and a reply may hold a secret \
             shown once (a new key's token, a new webhook's signing secret)",
        ),
    ),
    t(
        "usage_rollup",
        BY_ORG,
        &[
            "workspace_id",
            "livemode",
            "hour",
            "direction",
            "agent_id",
            "phone_number_id",
        ],
        Export::Skip("hourly sums derived from calls and messages, which are exported"),
    ),
    t("wallet_transactions", BY_ORG, ID, Export::File),
    t("wallets", BY_ORG, &["livemode"], Export::File),
    OrgTable {
        omit: &["code_digest"],
        ..t(
            "oauth_codes",
            "key_id IN (SELECT id FROM api_keys WHERE org_id = $1)",
            &["code_digest"],
            Export::Skip("OAuth authorization codes: digests, good for ten minutes"),
        )
    },
    OrgTable {
        omit: &["token_digest"],
        ..t(
            "oauth_tokens",
            "key_id IN (SELECT id FROM api_keys WHERE org_id = $1)",
            &["token_digest"],
            Export::Skip("OAuth access and refresh tokens: digests of secrets, nothing made"),
        )
    },
    t(
        "api_key_permission_usage",
        "key_id IN (SELECT id FROM api_keys WHERE org_id = $1)",
        &["key_id", "day", "permission"],
        Export::File,
    ),
    t(
        "api_key_usage",
        "key_id IN (SELECT id FROM api_keys WHERE org_id = $1)",
        &["key_id", "day"],
        Export::File,
    ),
    OrgTable {
        omit: &["token_digest"],
        ..t("api_keys", BY_ORG, ID, Export::File)
    },
    OrgTable {
        omit: &["token_digest"],
        ..t(
            "user_sessions",
            "user_id IN (SELECT id FROM users WHERE org_id = $1)",
            &["token_digest"],
            Export::Skip("dashboard sign-in sessions: digests of session tokens, nothing made"),
        )
    },
    t(
        "login_failures",
        "email IN (SELECT email FROM users WHERE org_id = $1)",
        ID,
        Export::Skip("failed sign-ins of the organization's users: throttling records"),
    ),
    t("audit_log", BY_ORG, ID, Export::File),
    OrgTable {
        omit: &["password_hash"],
        ..t("users", BY_ORG, ID, Export::File)
    },
    t("workspaces", BY_ORG, ID, Export::File),
    t("organizations", "id = $1", ID, Export::File),
];

/// Tables that hold no organization's data, and why.
pub const NOT_ORG_DATA: &[(&str, &str)] = &[
    ("settings", "installation settings"),
    (
        "oauth_clients",
        "OAuth clients (a name and redirect URIs an application published about itself), \
         registered before anyone signs in; a grant to one is an organization's API key row",
    ),
    ("setup_tokens", "the installation's first-run setup link"),
    ("_migrations", "applied migrations (SQLite)"),
    ("_sqlx_migrations", "applied migrations (PostgreSQL)"),
    ("sqlite_sequence", "SQLite's AUTOINCREMENT counters"),
    (
        "api_key_changes",
        "the key-change feed other servers read to evict revoked keys from their \
         caches: an erasure revokes every key first and leaves those records (a key id \
         and a time, no data) for the feed, which forgets them after a day",
    ),
];

/// A column of the live schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaColumn {
    pub table: String,
    pub column: String,
    /// As the database names it (`BOOLEAN`, `text`, `jsonb`, …).
    pub data_type: String,
}

struct SchemaRow(SchemaColumn);
impl FromRow for SchemaRow {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(SchemaRow(SchemaColumn {
            table: r.get("table_name")?,
            column: r.get("column_name")?,
            data_type: r.get("data_type")?,
        }))
    }
}

/// What the schema has that [`ORG_TABLES`] and [`NOT_ORG_DATA`] do not account for:
/// a table in neither list, or a table with an `org_id` or `workspace_id` column
/// declared as not organization data. Empty when everything is covered.
pub fn uncovered(schema: &[SchemaColumn]) -> Vec<String> {
    let mut out = Vec::new();
    let mut tables: Vec<&str> = schema.iter().map(|c| c.table.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    for table in tables {
        let tenant_column = schema
            .iter()
            .any(|c| c.table == table && matches!(c.column.as_str(), "org_id" | "workspace_id"));
        let org_table = ORG_TABLES.iter().any(|t| t.name == table);
        let not_org = NOT_ORG_DATA.iter().any(|(t, _)| *t == table);
        if !org_table && !not_org {
            out.push(format!(
                "table {table} is neither exported and erased with an organization nor \
                 declared as holding no organization's data (crates/store/src/org_data.rs)"
            ));
        } else if not_org && tenant_column {
            out.push(format!(
                "table {table} has an org_id or workspace_id column but is declared as \
                 holding no organization's data"
            ));
        }
    }
    out
}

/// A column whose values never leave the database, whether or not a table lists it.
fn never_exported(table: &OrgTable, column: &str) -> bool {
    table.omit.contains(&column)
        || (!column.ends_with("_at")
            && ["secret", "digest", "password", "token"]
                .iter()
                .any(|w| column.contains(w)))
}

/// A column value as either database gives it, before it is made JSON.
enum Raw {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Time(dialtone_domain::time::Timestamp),
    Json(Json),
    Bytes,
}

/// A row read without knowing its table: column names and values.
struct AnyRow(Vec<(String, Raw)>);

impl FromRow for AnyRow {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let mut out = Vec::new();
        match r {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                let stmt = r.as_ref();
                for i in 0..stmt.column_count() {
                    let name = stmt
                        .column_name(i)
                        .map_err(crate::db::sqlite_error)?
                        .to_owned();
                    let v = match r.get_ref(i).map_err(crate::db::sqlite_error)? {
                        ValueRef::Null => Raw::Null,
                        ValueRef::Integer(n) => Raw::Int(n),
                        ValueRef::Real(f) => Raw::Real(f),
                        ValueRef::Text(t) => Raw::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(_) => Raw::Bytes,
                    };
                    out.push((name, v));
                }
            }
            Row::Pg(r) => {
                use sqlx::{Column as _, Row as _, TypeInfo as _};
                let pg = crate::db::pg_error;
                for (i, c) in r.columns().iter().enumerate() {
                    let v = match c.type_info().name() {
                        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => r
                            .try_get::<Option<String>, _>(i)
                            .map_err(pg)?
                            .map(Raw::Text),
                        "INT8" => r.try_get::<Option<i64>, _>(i).map_err(pg)?.map(Raw::Int),
                        "INT4" => r
                            .try_get::<Option<i32>, _>(i)
                            .map_err(pg)?
                            .map(|n| Raw::Int(n.into())),
                        "INT2" => r
                            .try_get::<Option<i16>, _>(i)
                            .map_err(pg)?
                            .map(|n| Raw::Int(n.into())),
                        "FLOAT8" => r.try_get::<Option<f64>, _>(i).map_err(pg)?.map(Raw::Real),
                        "BOOL" => r.try_get::<Option<bool>, _>(i).map_err(pg)?.map(Raw::Bool),
                        "TIMESTAMPTZ" => r
                            .try_get::<Option<dialtone_domain::time::Timestamp>, _>(i)
                            .map_err(pg)?
                            .map(Raw::Time),
                        "JSON" | "JSONB" => r
                            .try_get::<Option<sqlx::types::Json<Json>>, _>(i)
                            .map_err(pg)?
                            .map(|j| Raw::Json(j.0)),
                        "BYTEA" => Some(Raw::Bytes),
                        other => {
                            return Err(Error::internal(std::io::Error::other(format!(
                                "column {} has a type an export cannot write: {other}",
                                c.name()
                            ))));
                        }
                    };
                    out.push((c.name().to_owned(), v.unwrap_or(Raw::Null)));
                }
            }
        }
        Ok(AnyRow(out))
    }
}

/// Where an export page stopped: the key values of its last row.
#[derive(Debug, Clone)]
pub struct ExportCursor(Vec<Value>);

/// One page of a table's rows of an organization, as JSON objects.
#[derive(Debug)]
pub struct ExportPage {
    pub rows: Vec<Map<String, Json>>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<ExportCursor>,
}

/// How many rows of each table are deleted with an organization.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erased {
    pub organization_id: String,
    /// Keys revoked before the erasure (through the revocation path: change feed,
    /// `NOTIFY`, audit).
    pub revoked_keys: Vec<String>,
    /// Table and rows deleted, in deletion order.
    pub deleted: Vec<(String, u64)>,
}

fn time_text(t: &dialtone_domain::time::Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A catalog name safe to splice into SQL (the names come from the schema itself).
fn identifier(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(name)
    } else {
        Err(Error::internal(std::io::Error::other(format!(
            "unexpected table or column name {name:?}"
        ))))
    }
}

impl Store {
    /// Every column of every table of the live schema.
    pub async fn schema_columns(&self) -> Result<Vec<SchemaColumn>> {
        let sql = self.db.dialect(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.cid",
            "SELECT CAST(table_name AS TEXT) AS table_name, \
             CAST(column_name AS TEXT) AS column_name, CAST(data_type AS TEXT) AS data_type \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
        );
        let rows: Vec<SchemaRow> = self.db.fetch_all(query(sql)).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Refuses (with what is missing) when the schema has a table [`ORG_TABLES`] and
    /// [`NOT_ORG_DATA`] do not account for.
    pub async fn check_org_coverage(&self) -> Result<()> {
        let missing = uncovered(&self.schema_columns().await?);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::internal(std::io::Error::other(missing.join("; "))))
        }
    }

    /// The newest migration applied to the database.
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        let sql = self.db.dialect(
            "SELECT max(version) FROM _migrations",
            "SELECT max(version) FROM _sqlx_migrations",
        );
        Ok(self
            .db
            .fetch_optional::<Scalar<Option<i64>>>(query(sql))
            .await?
            .and_then(|s| s.0))
    }

    /// SQLite's booleans are integers: the columns of `table` declared `BOOLEAN`, so
    /// an export writes them as booleans (PostgreSQL's come as booleans already).
    async fn boolean_columns(&self, table: &str) -> Result<Vec<String>> {
        if self.backend() == crate::Backend::Postgres {
            return Ok(Vec::new());
        }
        let rows: Vec<Scalar<String>> = self
            .db
            .fetch_all(
                query("SELECT name FROM pragma_table_info($1) WHERE upper(type) = 'BOOLEAN'")
                    .bind(table),
            )
            .await?;
        Ok(rows.into_iter().map(|s| s.0).collect())
    }

    /// Up to `limit` rows of `table` belonging to `org_id`, after `after`, in key
    /// order, as JSON objects without the columns that never leave (secrets, digests):
    /// times as RFC 3339 UTC with milliseconds, booleans as booleans and JSON columns
    /// as JSON, the same on both databases.
    pub async fn org_export_page(
        &self,
        org_id: &str,
        table: &OrgTable,
        after: Option<&ExportCursor>,
        limit: usize,
    ) -> Result<ExportPage> {
        let booleans = self.boolean_columns(table.name).await?;
        let booleans: Vec<&str> = booleans.iter().map(String::as_str).collect();
        let name = identifier(table.name)?;
        let keys = table
            .key
            .iter()
            .map(|k| identifier(k))
            .collect::<Result<Vec<_>>>()?;
        let mut sql = format!("SELECT * FROM {name} WHERE ({})", table.of_org);
        let mut n = 1;
        if after.is_some() {
            let holes: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&format!(
                " AND ({}) > ({})",
                keys.join(", "),
                holes.join(", ")
            ));
            n += keys.len();
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT ${}", keys.join(", "), n + 1));
        let mut q = query_built(sql).bind(org_id);
        if let Some(c) = after {
            for v in &c.0 {
                q = q.bind(v.clone());
            }
        }
        let q = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<AnyRow> = self.db.fetch_all(q).await?;
        let mut next = None;
        if rows.len() >= limit
            && let Some(last) = rows.last()
        {
            let mut values = Vec::new();
            for k in &keys {
                let raw = last.0.iter().find(|(c, _)| c == k).map(|(_, v)| v);
                values.push(match raw {
                    Some(Raw::Text(s)) => Value::Text(Some(s.clone())),
                    Some(Raw::Int(i)) if booleans.contains(k) => Value::Bool(Some(*i != 0)),
                    Some(Raw::Int(i)) => Value::Int(Some(*i)),
                    Some(Raw::Bool(b)) => Value::Bool(Some(*b)),
                    Some(Raw::Time(t)) => Value::Time(Some(*t)),
                    _ => {
                        return Err(Error::internal(std::io::Error::other(format!(
                            "{}: key column {k} cannot page an export",
                            table.name
                        ))));
                    }
                });
            }
            next = Some(ExportCursor(values));
        }
        let mut out = Vec::with_capacity(rows.len());
        for AnyRow(cols) in rows {
            let mut obj = Map::new();
            for (col, raw) in cols {
                if never_exported(table, &col) {
                    continue;
                }
                let v = match raw {
                    Raw::Null => Json::Null,
                    Raw::Int(i) if booleans.contains(&col.as_str()) => Json::Bool(i != 0),
                    Raw::Int(i) => Json::from(i),
                    Raw::Real(f) => Json::from(f),
                    Raw::Bool(b) => Json::Bool(b),
                    Raw::Text(s) if table.json.contains(&col.as_str()) => {
                        serde_json::from_str(&s).map_err(Error::internal)?
                    }
                    Raw::Text(s) => Json::String(s),
                    Raw::Time(t) => Json::String(time_text(&t)),
                    Raw::Json(j) => j,
                    // Binary columns are digests: never exported.
                    Raw::Bytes => continue,
                };
                obj.insert(col, v);
            }
            out.push(obj);
        }
        Ok(ExportPage { rows: out, next })
    }

    /// Rows of `org_id` in each table of [`ORG_TABLES`].
    pub async fn org_row_counts(&self, org_id: &str) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for table in ORG_TABLES {
            let sql = format!(
                "SELECT CAST(count(*) AS BIGINT) FROM {} WHERE {}",
                identifier(table.name)?,
                table.of_org
            );
            let n = self
                .db
                .fetch_optional::<Scalar<i64>>(query_built(sql).bind(org_id))
                .await?
                .map_or(0, |s| s.0);
            out.push((table.name.to_owned(), n));
        }
        Ok(out)
    }

    /// Rows of every table of the schema (for checks: nothing else changed).
    pub async fn table_row_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut tables: Vec<String> = self
            .schema_columns()
            .await?
            .into_iter()
            .map(|c| c.table)
            .collect();
        tables.dedup();
        let mut out = Vec::new();
        for table in tables {
            let sql = format!(
                "SELECT CAST(count(*) AS BIGINT) FROM {}",
                identifier(&table)?
            );
            let n = self
                .db
                .fetch_optional::<Scalar<i64>>(query_built(sql))
                .await?
                .map_or(0, |s| s.0);
            out.push((table, n));
        }
        Ok(out)
    }

    /// Rows of `table` whose `column` (compared as text) is one of `values`: for
    /// checks that nothing anywhere still mentions an erased organization's ids.
    pub async fn count_rows_with(
        &self,
        table: &str,
        column: &str,
        values: &[String],
    ) -> Result<i64> {
        if values.is_empty() {
            return Ok(0);
        }
        let holes: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT CAST(count(*) AS BIGINT) FROM {} WHERE CAST({} AS TEXT) IN ({})",
            identifier(table)?,
            identifier(column)?,
            holes.join(", ")
        );
        let mut q = query_built(sql);
        for v in values {
            q = q.bind(v.as_str());
        }
        Ok(self
            .db
            .fetch_optional::<Scalar<i64>>(q)
            .await?
            .map_or(0, |s| s.0))
    }

    /// Erases an organization: first every key still active is revoked through the
    /// revocation path (the change feed and `NOTIFY` reach every server's cache), then
    /// every row of the organization in every table of [`ORG_TABLES`] is deleted, in
    /// one transaction, children first, which also puts every deleted key on the change
    /// feed. Refuses to start when the schema has a table
    /// the list does not account for.
    pub async fn erase_org(&self, org_id: &str) -> Result<Erased> {
        self.check_org_coverage().await?;
        self.get_org(org_id).await?;
        let active: Vec<Scalar<String>> = self
            .db
            .fetch_all(
                query(
                    "SELECT id FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL ORDER BY id",
                )
                .bind(org_id),
            )
            .await?;
        let mut revoked_keys = Vec::new();
        for Scalar(key_id) in active {
            self.revoke_key(org_id, &key_id, "cli", None).await?;
            revoked_keys.push(key_id);
        }
        let mut tx = self.db.begin().await?;
        // A large organization may take longer than any request's statement may.
        let unbounded = self.db.dialect("", "SET LOCAL statement_timeout = 0");
        if !unbounded.is_empty() {
            tx.execute(query(unbounded)).await?;
        }
        // Every key about to go (one made since the revocations too) is announced on
        // the change feed, so no server keeps it cached.
        tx.execute(
            query(
                "INSERT INTO api_key_changes (key_id, changed_at) \
                 SELECT id, $2 FROM api_keys WHERE org_id = $1",
            )
            .bind(org_id)
            .bind(dialtone_domain::time::now()),
        )
        .await?;
        let mut deleted = Vec::new();
        for table in ORG_TABLES {
            let sql = format!(
                "DELETE FROM {} WHERE {}",
                identifier(table.name)?,
                table.of_org
            );
            let n = tx.execute(query_built(sql).bind(org_id)).await?;
            deleted.push((table.name.to_owned(), n));
        }
        tx.commit().await?;
        Ok(Erased {
            organization_id: org_id.to_owned(),
            revoked_keys,
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(table: &str, column: &str) -> SchemaColumn {
        SchemaColumn {
            table: table.into(),
            column: column.into(),
            data_type: "TEXT".into(),
        }
    }

    #[test]
    fn a_new_table_is_not_forgotten() {
        let mut schema = vec![col("contacts", "org_id"), col("settings", "name")];
        assert!(uncovered(&schema).is_empty());
        schema.push(col("future_things", "workspace_id"));
        let missing = uncovered(&schema);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("future_things"));
        // A table declared as holding nothing of an organization must not grow one.
        let schema = vec![col("settings", "org_id")];
        assert_eq!(uncovered(&schema).len(), 1);
    }

    #[test]
    fn secrets_never_leave() {
        let users = ORG_TABLES
            .iter()
            .find(|t| t.name == "users")
            .expect("users");
        assert!(never_exported(users, "password_hash"));
        let hooks = ORG_TABLES
            .iter()
            .find(|t| t.name == "webhook_endpoints")
            .expect("webhook_endpoints");
        assert!(never_exported(hooks, "secret_sealed"));
        assert!(never_exported(hooks, "previous_secret_sealed"));
        assert!(!never_exported(hooks, "previous_secret_expires_at"));
        assert!(never_exported(hooks, "some_new_token"));
        assert!(!never_exported(hooks, "url"));
    }

    #[test]
    fn every_table_is_listed_once() {
        let mut names: Vec<&str> = ORG_TABLES.iter().map(|t| t.name).collect();
        names.extend(NOT_ORG_DATA.iter().map(|(t, _)| *t));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
