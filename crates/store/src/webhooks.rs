//! Webhook endpoints and the durable delivery queue.
//!
//! [`fan_out`] runs inside the transaction that records an event: a `pending`
//! delivery per interested endpoint (active or not: a disabled endpoint keeps its
//! events and catches up when re-enabled). Workers claim due deliveries with a lease
//! (`claimed_until`); PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so several nodes
//! share the queue without taking the same delivery; a lease that runs out (the worker
//! died) makes the delivery claimable again, so a `kill -9` loses nothing.

use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{Idem, Outcome as Once};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::webhooks::{Attempt, Delivery, WebhookEndpoint, wants};
use dialtone_domain::{Error, Result};
use serde_json::Value;

use crate::billing::{claim, done, finish};
use crate::db::{FromRow, Row, Tx, from_row, query, query_built, scope_query};
use crate::{Scoped, Store};

/// An endpoint as stored (its secret sealed).
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: String,
    pub workspace_id: String,
    pub livemode: bool,
    pub kind: String,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub secret_sealed: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
from_row!(EndpointRow {
    id,
    workspace_id,
    livemode,
    kind,
    url,
    events,
    description,
    secret_sealed,
    active,
    disabled_reason,
    created_at,
    updated_at,
});

macro_rules! endpoint_columns {
    () => {
        "SELECT id, workspace_id, livemode, kind, url, events, description, secret_sealed, active, \
         disabled_reason, created_at, updated_at FROM webhook_endpoints "
    };
}

impl EndpointRow {
    pub fn event_list(&self) -> Vec<String> {
        self.events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn to_endpoint(&self) -> WebhookEndpoint {
        WebhookEndpoint {
            id: self.id.clone(),
            object: "webhook_endpoint",
            workspace_id: self.workspace_id.clone(),
            livemode: self.livemode,
            url: self.url.clone(),
            events: self.event_list(),
            description: self.description.clone(),
            active: self.active,
            disabled_reason: self.disabled_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A new endpoint, checked by the caller (URL safety, events, sealed secret).
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub kind: &'static str,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret_sealed: String,
    pub active: bool,
}

/// Queues a delivery of event `event_id` to every endpoint of `scope` that wants it.
pub(crate) async fn fan_out(
    tx: &mut Tx,
    scope: &Scope,
    event_id: &str,
    event_type: &str,
) -> Result<()> {
    let endpoints: Vec<EndpointRow> = tx
        .fetch_all(
            query(concat!(endpoint_columns!(), "WHERE ", in_scope!()))
                .bind(&scope.org_id)
                .bind(&scope.workspace_id)
                .bind(scope.livemode()),
        )
        .await?;
    let at = now();
    for e in endpoints
        .iter()
        .filter(|e| wants(&e.event_list(), event_type))
    {
        // A disabled endpoint's deliveries wait for it to be enabled (which wakes).
        if e.active {
            tx.wake_deliveries_on_commit();
        }
        tx.execute(
            query(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)",
            )
            .bind(new_id("dlv"))
            .bind(&e.id)
            .bind(event_id)
            .bind(at),
        )
        .await?;
    }
    Ok(())
}

/// A delivery a worker holds, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret_sealed: String,
    /// The secret before a rotation, still signing until `previous_secret_expires_at`.
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub attempts: i64,
    pub event_id: String,
    pub event_type: String,
    pub event_created_at: Timestamp,
    pub livemode: bool,
    pub data: Value,
}

impl FromRow for ClaimedDelivery {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(ClaimedDelivery {
            id: r.get("id")?,
            endpoint_id: r.get("endpoint_id")?,
            url: r.get("url")?,
            secret_sealed: r.get("secret_sealed")?,
            previous_secret_sealed: r.get("previous_secret_sealed")?,
            previous_secret_expires_at: r.get("previous_secret_expires_at")?,
            attempts: r.get("attempts")?,
            event_id: r.get("event_id")?,
            event_type: r.get("event_type")?,
            event_created_at: r.get("event_created_at")?,
            livemode: r.get("livemode")?,
            data: r.get("data")?,
        })
    }
}

/// Claims due deliveries in one statement: `$1` now, `$2` how many, `$3` the lease's end.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET status = 'in_flight', claimed_until = $3, updated_at = $1 \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE e.active AND d.next_attempt_at <= $1 \
             AND (d.status = 'pending' OR (d.status = 'in_flight' AND d.claimed_until < $1)) \
             ORDER BY d.next_attempt_at LIMIT $2",
            $lock,
            ") RETURNING id"
        )
    };
}

/// `($first, $first+1, …)`: `n` placeholders for an `IN` list or a row of values.
fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

/// `UPDATE … WHERE id IN (…)` over `ids`, after the `fixed` arguments (`$1`…).
fn update_in(sql: &str, fixed: Vec<crate::db::Value>, ids: &[&str]) -> crate::db::Query {
    let mut q = query_built(format!(
        "{sql} {}",
        placeholders(fixed.len() + 1, ids.len())
    ));
    for v in fixed {
        q = q.bind(v);
    }
    for id in ids {
        q = q.bind(*id);
    }
    q
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Try again at this time.
    Retry(Timestamp),
    /// Every retry used.
    Failed,
    /// The receiver answered 410: disable the endpoint, keep the delivery for later.
    Gone,
}

impl Store {
    /// Claims up to `limit` due deliveries for `lease` (then they can be claimed again).
    /// One statement takes them (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent
    /// workers never take the same one), one more reads what sending them needs.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<ClaimedDelivery>> {
        let at = now();
        let mut tx = self.db.begin().await?;
        let ids: Vec<crate::db::Scalar<String>> = tx
            .fetch_all(
                query(
                    self.db
                        .dialect(claim!(""), claim!(" FOR UPDATE OF d SKIP LOCKED")),
                )
                .bind(at)
                .bind(limit)
                .bind(at + lease),
            )
            .await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut q = query_built(format!(
            "SELECT d.id, d.endpoint_id, e.url, e.secret_sealed, e.previous_secret_sealed, \
             e.previous_secret_expires_at, d.attempts, d.event_id, \
             v.event_type, v.created_at AS event_created_at, v.livemode, v.data \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN events v ON v.id = d.event_id WHERE d.id IN {}",
            placeholders(1, ids.len())
        ));
        for id in ids {
            q = q.bind(id.0);
        }
        let claimed: Vec<ClaimedDelivery> = tx.fetch_all(q).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Logs an attempt and moves the delivery on.
    /// An endpoint failing for longer than `disable_after` is disabled (`failing`).
    pub async fn finish_attempt(
        &self,
        d: &ClaimedDelivery,
        attempt: &Attempt,
        outcome: &Outcome,
        disable_after: chrono::TimeDelta,
    ) -> Result<()> {
        self.finish_attempts(
            &[(d.clone(), attempt.clone(), outcome.clone())],
            disable_after,
        )
        .await
    }

    /// Logs attempts and moves their deliveries on, all in one transaction (each
    /// attempt with its outcome: a failure records none of them, and their leases
    /// bring the deliveries back). `done` is in the order the attempts ended; for an
    /// endpoint with several, the last decides whether it is failing. An endpoint
    /// failing for longer than `disable_after` is disabled (`failing`); one that
    /// answered 410 is disabled (`gone`).
    pub async fn finish_attempts(
        &self,
        done: &[(ClaimedDelivery, Attempt, Outcome)],
        disable_after: chrono::TimeDelta,
    ) -> Result<()> {
        // Statements stay well under SQLite's and PostgreSQL's placeholder limits.
        const CHUNK: usize = 128;
        if done.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut tx = self.db.begin().await?;
        for chunk in done.chunks(CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| placeholders(i * 7 + 1, 7))
                .collect();
            let mut q = query_built(format!(
                "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, duration_ms, \
                 response_body, error) VALUES {}",
                rows.join(", ")
            ));
            for (d, attempt, _) in chunk {
                q = q
                    .bind(new_id("att"))
                    .bind(&d.id)
                    .bind(attempt.attempted_at)
                    .bind(attempt.status_code)
                    .bind(attempt.duration_ms)
                    .bind(&attempt.response_body)
                    .bind(&attempt.error);
            }
            tx.execute(q).await?;
        }
        // Deliveries, one statement per (status, next attempt) shared by several.
        let mut moves: Vec<((&str, Timestamp), Vec<&str>)> = Vec::new();
        for (d, _, outcome) in done {
            let to = match outcome {
                Outcome::Succeeded => ("succeeded", at),
                Outcome::Retry(when) => ("pending", *when),
                Outcome::Failed => ("failed", at),
                Outcome::Gone => ("pending", at),
            };
            match moves.iter_mut().find(|(m, _)| *m == to) {
                Some((_, ids)) => ids.push(&d.id),
                None => moves.push((to, vec![&d.id])),
            }
        }
        for ((status, next), ids) in &moves {
            for ids in ids.chunks(CHUNK) {
                tx.execute(update_in(
                    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                     claimed_until = NULL, updated_at = $3 WHERE id IN",
                    vec![
                        crate::db::ToValue::to_value(*status),
                        crate::db::ToValue::to_value(*next),
                        crate::db::ToValue::to_value(at),
                    ],
                    ids,
                ))
                .await?;
            }
        }
        // Endpoints: each one's last outcome says whether it is failing. Rows change
        // only when something changes (a success on a healthy endpoint writes nothing,
        // so concurrent deliveries to one endpoint do not queue on its row).
        let mut last: Vec<(&str, bool)> = Vec::new();
        let mut gone: Vec<&str> = Vec::new();
        for (d, _, outcome) in done {
            let ok = *outcome == Outcome::Succeeded;
            match last.iter_mut().find(|(e, _)| *e == d.endpoint_id) {
                Some((_, was)) => *was = ok,
                None => last.push((&d.endpoint_id, ok)),
            }
            if *outcome == Outcome::Gone && !gone.contains(&d.endpoint_id.as_str()) {
                gone.push(&d.endpoint_id);
            }
        }
        let healthy: Vec<&str> = last.iter().filter(|(_, ok)| *ok).map(|(e, _)| *e).collect();
        let failing: Vec<&str> = last
            .iter()
            .filter(|(_, ok)| !*ok)
            .map(|(e, _)| *e)
            .collect();
        for ids in healthy.chunks(CHUNK) {
            tx.execute(update_in(
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE failing_since IS NOT NULL AND id IN",
                Vec::new(),
                ids,
            ))
            .await?;
        }
        for ids in failing.chunks(CHUNK) {
            tx.execute(update_in(
                "UPDATE webhook_endpoints SET failing_since = $1 WHERE failing_since IS NULL AND id IN",
                vec![crate::db::ToValue::to_value(at)],
                ids,
            ))
            .await?;
            // An endpoint that has only failed for `disable_after` is disabled; its events wait.
            tx.execute(update_in(
                "UPDATE webhook_endpoints SET active = false, disabled_reason = 'failing', updated_at = $1 \
                 WHERE active AND failing_since < $2 AND id IN",
                vec![
                    crate::db::ToValue::to_value(at),
                    crate::db::ToValue::to_value(at - disable_after),
                ],
                ids,
            ))
            .await?;
        }
        for ids in gone.chunks(CHUNK) {
            tx.execute(update_in(
                "UPDATE webhook_endpoints SET active = false, disabled_reason = 'gone', updated_at = $1 WHERE id IN",
                vec![crate::db::ToValue::to_value(at)],
                ids,
            ))
            .await?;
        }
        tx.commit().await
    }

    /// The in-process signal of queued deliveries on SQLite (`None` on PostgreSQL,
    /// where [`Store::key_change_listener`] hears them from every node).
    pub fn deliveries_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.db.deliveries_signal()
    }

    /// Deliveries waiting (for the metrics): how many, and the oldest's age.
    pub async fn queue_depth(&self) -> Result<(i64, Option<Timestamp>)> {
        struct Depth(i64, Option<Timestamp>);
        impl FromRow for Depth {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(Depth(r.get("n")?, r.get("oldest")?))
            }
        }
        let d: Option<Depth> = self
            .db
            .fetch_optional(query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(created_at) AS oldest FROM webhook_deliveries \
                 WHERE status IN ('pending', 'in_flight')",
            ))
            .await?;
        Ok(d.map_or((0, None), |d| (d.0, d.1)))
    }
}

struct AttemptRow(Attempt);
impl FromRow for AttemptRow {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(AttemptRow(Attempt {
            attempted_at: r.get("attempted_at")?,
            status_code: r.get("status_code")?,
            duration_ms: r.get("duration_ms")?,
            response_body: r.get("response_body")?,
            error: r.get("error")?,
        }))
    }
}

struct DeliveryRow {
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    status: String,
    next_attempt_at: Timestamp,
    created_at: Timestamp,
}
from_row!(DeliveryRow {
    id,
    endpoint_id,
    event_id,
    event_type,
    status,
    next_attempt_at,
    created_at
});

/// An endpoint of this scope, read inside `tx`.
async fn endpoint_in_tx(tx: &mut Tx, s: &Scope, id: &str) -> Result<EndpointRow> {
    tx.fetch_optional(
        scope_query(
            s,
            concat!(endpoint_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
        )
        .bind(id),
    )
    .await?
    .ok_or(Error::NotFound {
        resource: "webhook_endpoint",
    })
}

impl Scoped<'_> {
    pub async fn create_endpoint(&self, e: NewEndpoint) -> Result<EndpointRow> {
        done(self.create_endpoint_once(e, None).await?)
    }

    /// Creates an endpoint once per `Idempotency-Key`: a retry gets the stored answer.
    pub async fn create_endpoint_once(
        &self,
        e: NewEndpoint,
        idem: Option<Idem<'_, EndpointRow>>,
    ) -> Result<Once<EndpointRow>> {
        let s = self.scope;
        let id = new_id(if e.kind == "hook" { "hook" } else { "whk" });
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Once::Replay(stored));
        }
        tx.execute(
                query(
                    "INSERT INTO webhook_endpoints (id, org_id, workspace_id, livemode, kind, url, events, \
                     description, secret_sealed, active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
                )
                .bind(&id)
                .bind(&s.org_id)
                .bind(&s.workspace_id)
                .bind(s.livemode())
                .bind(e.kind)
                .bind(&e.url)
                .bind(format!(",{},", e.events.join(",")))
                .bind(&e.description)
                .bind(&e.secret_sealed)
                .bind(e.active)
                .bind(now()),
            )
            .await?;
        let row = endpoint_in_tx(&mut tx, s, &id).await?;
        finish(idem, &mut tx, s, &row).await?;
        tx.commit().await?;
        Ok(Once::Done(row))
    }

    pub async fn get_endpoint(&self, id: &str) -> Result<EndpointRow> {
        let s = self.scope;
        self.store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(endpoint_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "webhook_endpoint",
            })
    }

    pub async fn list_endpoints(&self, kind: &str, page: &PageRequest) -> Result<Vec<EndpointRow>> {
        let s = self.scope;
        self.store
            .db
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        endpoint_columns!(),
                        "WHERE ",
                        in_scope!(),
                        " AND kind = $4 AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                    ),
                )
                .bind(kind)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await
    }

    /// Replaces url, events, description and active (re-enabling clears the reason).
    pub async fn update_endpoint(
        &self,
        id: &str,
        url: &str,
        events: &[String],
        description: Option<&str>,
        active: bool,
    ) -> Result<EndpointRow> {
        let s = self.scope;
        let done = self
            .store
            .db
            .execute(
                scope_query(s, concat!(
                    "UPDATE webhook_endpoints SET url = $5, events = $6, description = $7, active = $8, \
                     disabled_reason = CASE WHEN $8 THEN NULL ELSE disabled_reason END, updated_at = $9 WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(id)
                .bind(url)
                .bind(format!(",{},", events.join(",")))
                .bind(description)
                .bind(active)
                .bind(now()),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "webhook_endpoint",
            });
        }
        if active {
            // Deliveries that waited behind a disabled endpoint are due now.
            self.store.db.wake_deliveries().await;
        }
        self.get_endpoint(id).await
    }

    pub async fn delete_endpoint(&self, id: &str, kind: &str) -> Result<()> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        let done = tx
            .execute(
                scope_query(
                    s,
                    concat!(
                        "DELETE FROM webhook_endpoints WHERE ",
                        in_scope!(),
                        " AND id = $4 AND kind = $5"
                    ),
                )
                .bind(id)
                .bind(kind),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "webhook_endpoint",
            });
        }
        tx.commit().await
    }

    /// A new secret; the previous one keeps signing until `overlap_until`.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &str,
        sealed: &str,
        overlap_until: Timestamp,
    ) -> Result<EndpointRow> {
        done(
            self.rotate_endpoint_secret_once(id, sealed, overlap_until, None)
                .await?,
        )
    }

    /// Rotates once per `Idempotency-Key`: a retry gets the stored answer and the
    /// secrets stay as the first request left them.
    pub async fn rotate_endpoint_secret_once(
        &self,
        id: &str,
        sealed: &str,
        overlap_until: Timestamp,
        idem: Option<Idem<'_, EndpointRow>>,
    ) -> Result<Once<EndpointRow>> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Once::Replay(stored));
        }
        let updated = tx
            .execute(
                scope_query(
                    s,
                    concat!(
                        "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
                     previous_secret_expires_at = $5, secret_sealed = $6, updated_at = $7 WHERE ",
                        in_scope!(),
                        " AND id = $4"
                    ),
                )
                .bind(id)
                .bind(overlap_until)
                .bind(sealed)
                .bind(now()),
            )
            .await?;
        if updated == 0 {
            return Err(Error::NotFound {
                resource: "webhook_endpoint",
            });
        }
        let row = endpoint_in_tx(&mut tx, s, id).await?;
        finish(idem, &mut tx, s, &row).await?;
        tx.commit().await?;
        Ok(Once::Done(row))
    }

    /// Queues the event of one delivery again, for the same endpoint.
    pub async fn redeliver(&self, endpoint_id: &str, delivery_id: &str) -> Result<String> {
        done(self.redeliver_once(endpoint_id, delivery_id, None).await?)
    }

    /// Redelivers once per `Idempotency-Key` (answers the new delivery's id).
    pub async fn redeliver_once(
        &self,
        endpoint_id: &str,
        delivery_id: &str,
        idem: Option<Idem<'_, String>>,
    ) -> Result<Once<String>> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Once::Replay(stored));
        }
        endpoint_in_tx(&mut tx, s, endpoint_id).await?;
        let event = tx
            .fetch_optional::<crate::db::Scalar<String>>(
                query("SELECT event_id FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2")
                    .bind(delivery_id)
                    .bind(endpoint_id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "webhook_delivery",
            })?;
        let id = new_id("dlv");
        let at = now();
        tx.execute(
            query(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)",
            )
            .bind(&id)
            .bind(endpoint_id)
            .bind(&event.0)
            .bind(at),
        )
        .await?;
        tx.wake_deliveries_on_commit();
        finish(idem, &mut tx, s, &id).await?;
        tx.commit().await?;
        Ok(Once::Done(id))
    }

    /// Queues again every failed delivery of the endpoint created since `since`.
    pub async fn recover(&self, endpoint_id: &str, since: Timestamp) -> Result<u64> {
        done(self.recover_once(endpoint_id, since, None).await?)
    }

    /// Recovers once per `Idempotency-Key` (answers how many were queued).
    pub async fn recover_once(
        &self,
        endpoint_id: &str,
        since: Timestamp,
        idem: Option<Idem<'_, u64>>,
    ) -> Result<Once<u64>> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Once::Replay(stored));
        }
        endpoint_in_tx(&mut tx, s, endpoint_id).await?;
        let failed: Vec<crate::db::Scalar<String>> = tx
            .fetch_all(
                query(
                    "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'failed' \
                     AND created_at >= $2 ORDER BY id",
                )
                .bind(endpoint_id)
                .bind(since),
            )
            .await?;
        let at = now();
        for event in &failed {
            tx.execute(
                query(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
                     next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)",
                )
                .bind(new_id("dlv"))
                .bind(endpoint_id)
                .bind(&event.0)
                .bind(at),
            )
            .await?;
            tx.wake_deliveries_on_commit();
        }
        let queued = failed.len() as u64;
        finish(idem, &mut tx, s, &queued).await?;
        tx.commit().await?;
        Ok(Once::Done(queued))
    }

    /// Sends a `webhook.test` event to this endpoint only.
    pub async fn test_endpoint(&self, endpoint_id: &str) -> Result<String> {
        done(self.test_endpoint_once(endpoint_id, None).await?)
    }

    /// Sends the test event once per `Idempotency-Key` (answers the event's id).
    pub async fn test_endpoint_once(
        &self,
        endpoint_id: &str,
        idem: Option<Idem<'_, String>>,
    ) -> Result<Once<String>> {
        let s = self.scope;
        let at = now();
        let event_id = new_id("evt");
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Once::Replay(stored));
        }
        let endpoint = endpoint_in_tx(&mut tx, s, endpoint_id).await?;
        tx.execute(
            query(
                "INSERT INTO events (id, org_id, workspace_id, livemode, event_type, data, created_at) \
                 VALUES ($1, $2, $3, $4, 'webhook.test', $5, $6)",
            )
            .bind(&event_id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(serde_json::json!({ "object": { "object": "webhook_test", "endpoint_id": endpoint.id } }))
            .bind(at),
        )
        .await?;
        tx.execute(
            query(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)",
            )
            .bind(new_id("dlv"))
            .bind(&endpoint.id)
            .bind(&event_id)
            .bind(at),
        )
        .await?;
        tx.wake_deliveries_on_commit();
        finish(idem, &mut tx, s, &event_id).await?;
        tx.commit().await?;
        Ok(Once::Done(event_id))
    }

    /// Deliveries of an endpoint, newest first, each with its attempts.
    pub async fn list_deliveries(
        &self,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<Delivery>> {
        self.get_endpoint(endpoint_id).await?;
        let rows: Vec<DeliveryRow> = self
            .store
            .db
            .fetch_all(
                query(
                    "SELECT d.id, d.endpoint_id, d.event_id, v.event_type, d.status, d.next_attempt_at, d.created_at \
                     FROM webhook_deliveries d JOIN events v ON v.id = d.event_id \
                     WHERE d.endpoint_id = $1 AND ($2 IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3",
                )
                .bind(endpoint_id)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let attempts: Vec<AttemptRow> = self
                .store
                .db
                .fetch_all(
                    query(
                        "SELECT attempted_at, status_code, duration_ms, response_body, error \
                         FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
                    )
                    .bind(&r.id),
                )
                .await?;
            out.push(Delivery {
                id: r.id,
                object: "webhook_delivery",
                endpoint_id: r.endpoint_id,
                event_id: r.event_id,
                event_type: r.event_type,
                status: r.status,
                attempts: attempts.into_iter().map(|a| a.0).collect(),
                next_attempt_at: r.next_attempt_at,
                created_at: r.created_at,
            });
        }
        Ok(out)
    }
}
