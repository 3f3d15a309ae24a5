//! The event log a customer re-syncs from (`GET /v1/events`): events of one scope,
//! newest first, within what [`plan_log_read`](dialtone_domain::events::plan_log_read)
//! decided (the types the key may see, the retention window, the asked time range).
//!
//! Events are written by `calls::record_event` (and the webhook test ping), in the
//! transaction of their cause; this module only reads them.

use dialtone_domain::events::{Event, EventData, LogRead};
use dialtone_domain::page::PageRequest;
use dialtone_domain::time::Timestamp;
use dialtone_domain::{Error, Result};
use serde_json::Value;

use crate::Scoped;
use crate::db::{FromRow, Query, Row, query_built, scope_query};

struct EventRow(Event);

impl FromRow for EventRow {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let data: Value = r.get("data")?;
        Ok(EventRow(Event {
            id: r.get("id")?,
            object: "event",
            event_type: r.get("event_type")?,
            created_at: r.get("created_at")?,
            livemode: r.get("livemode")?,
            data: EventData {
                object: data.get("object").cloned().unwrap_or(Value::Null),
            },
        }))
    }
}

/// `SELECT … WHERE` scope, window and asked range; `$1`–`$6` bound by [`log_query`].
const LOG_HEAD: &str = concat!(
    "SELECT id, event_type, data, livemode, created_at FROM events WHERE ",
    in_scope!(),
    " AND id >= $4 AND created_at >= $5 AND ($6 IS NULL OR created_at < $6)"
);

/// The statement of a log read: [`LOG_HEAD`], the type list, then `tail`, whose
/// `tail_args` arguments (`$7`…) `bind_tail` binds; the types are numbered after them.
fn log_query(
    s: &Scoped<'_>,
    read: &LogRead,
    tail: &str,
    tail_args: usize,
    bind_tail: impl FnOnce(Query) -> Query,
) -> Query {
    let types = read.types.as_deref().unwrap_or_default();
    let type_list = if read.types.is_some() {
        let first = 7 + tail_args;
        let list: Vec<String> = (first..first + types.len())
            .map(|n| format!("${n}"))
            .collect();
        format!(" AND event_type IN ({})", list.join(", "))
    } else {
        String::new()
    };
    let scope = s.scope();
    let q = query_built(format!("{LOG_HEAD}{type_list}{tail}"))
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(read.id_floor())
        .bind(read.created_from)
        .bind(read.created_before);
    types.iter().fold(bind_tail(q), |q, t| q.bind(t.as_str()))
}

impl Scoped<'_> {
    /// One page of the event log, newest first. The scope index serves every type
    /// and `events_type` one type; a list of types walks the window and filters, so
    /// it takes a heavy-read slot.
    pub async fn event_log(&self, read: &LogRead, page: &PageRequest) -> Result<Vec<Event>> {
        if read.is_empty() {
            return Ok(Vec::new());
        }
        let q = log_query(
            self,
            read,
            " AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8",
            2,
            |q| q.bind(&page.before_id).bind(page.fetch_limit()),
        );
        let rows: Vec<EventRow> = if read.types.as_ref().is_some_and(|t| t.len() > 1) {
            self.store.fetch_all_heavy(q).await?
        } else {
            self.store.db.fetch_all(q).await?
        };
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// One event of the log: absent (404) when it is another scope's, older than the
    /// window, or of a type the key may not see.
    pub async fn event_in_log(&self, id: &str, read: &LogRead) -> Result<Event> {
        let not_found = Error::NotFound { resource: "event" };
        if read.is_empty() {
            return Err(not_found);
        }
        let q = log_query(self, read, " AND id = $7", 1, |q| q.bind(id));
        let row: Option<EventRow> = self.store.db.fetch_optional(q).await?;
        row.map(|r| r.0).ok_or(not_found)
    }

    /// Moves an event of this scope back to `at`, its id too (ids follow creation
    /// time), and returns the new id: how tests make an event older than the log's
    /// window. Not for an event with deliveries (they refer to its id).
    #[doc(hidden)]
    pub async fn backdate_event(&self, id: &str, at: Timestamp) -> Result<String> {
        let new_id = dialtone_domain::id::new_id_at("evt", at.timestamp_millis());
        let done = self
            .store
            .db
            .execute(
                scope_query(
                    self.scope,
                    concat!(
                        "UPDATE events SET id = $5, created_at = $6 WHERE ",
                        in_scope!(),
                        " AND id = $4"
                    ),
                )
                .bind(id)
                .bind(&new_id)
                .bind(at),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound { resource: "event" });
        }
        Ok(new_id)
    }
}
