//! Per-key limits at the moment a call or message is stored: the key's limits and
//! today's consumption read in the transaction that creates the call or message, with
//! the key row locked (a no-op update: a row lock on PostgreSQL, so nodes queue per
//! key; SQLite transactions are already serialized), then
//! `domain::limits::check_call` / `check_message` decide. The first refusal of a key
//! on a UTC day is recorded (`api_key.limit_reached` and an audit entry) in a
//! transaction of its own, since the refused one is rolled back.

use dialtone_domain::Result;
use dialtone_domain::error::Error;
use dialtone_domain::events::{ApiKeyLimitHit, EventType};
use dialtone_domain::limits::{Consumption, KeyLimits};
use dialtone_domain::time::{Timestamp, epoch_day, now};

use crate::Store;
use crate::db::{Scalar, Tx, from_row, query};

/// The audit action (and event type) of a key's first refusal of a day.
const LIMIT_REACHED: &str = "api_key.limit_reached";

struct ConsumptionRow {
    active_calls: i64,
    call_minutes: i64,
    messages: i64,
    segments: i64,
}
from_row!(ConsumptionRow {
    active_calls,
    call_minutes,
    messages,
    segments,
});

/// Minutes a call counts for: billed minutes once ended (capped by its reservation,
/// as it is charged), its reserved minutes while it runs.
const CONSUMPTION: &str = "SELECT \
    CAST((SELECT COUNT(*) FROM calls WHERE api_key_id = $1 \
          AND status IN ('queued', 'ringing', 'in_progress')) AS BIGINT) AS active_calls, \
    CAST((SELECT COALESCE(SUM(CASE WHEN status IN ('queued', 'ringing', 'in_progress') \
            THEN (COALESCE(reserved_seconds, 0) + 59) / 60 \
            ELSE (CASE WHEN reserved_seconds IS NOT NULL AND reserved_seconds < duration_seconds \
                  THEN reserved_seconds ELSE duration_seconds END + 59) / 60 END), 0) \
          FROM calls WHERE api_key_id = $1 AND created_at >= $2) AS BIGINT) AS call_minutes, \
    CAST((SELECT COUNT(*) FROM messages WHERE api_key_id = $1 AND created_at >= $2) \
         AS BIGINT) AS messages, \
    CAST((SELECT COALESCE(SUM(segments), 0) FROM messages WHERE api_key_id = $1 \
          AND created_at >= $2) AS BIGINT) AS segments";

/// The start of the UTC day of `at`.
pub fn day_start(at: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp(epoch_day(at) * 86_400, 0).unwrap_or(at)
}

impl From<ConsumptionRow> for Consumption {
    fn from(r: ConsumptionRow) -> Self {
        Consumption {
            active_calls: r.active_calls,
            call_minutes: r.call_minutes,
            messages: r.messages,
            spend_cents: r
                .call_minutes
                .saturating_mul(dialtone_domain::billing::CALL_PER_MINUTE)
                .saturating_add(
                    r.segments
                        .saturating_mul(dialtone_domain::messages::PER_SEGMENT),
                ),
        }
    }
}

/// The limits of a key, read in `tx`; with limits set, the key row is locked and
/// today's consumption read too. `None` for a key without limits (nothing locked).
async fn limits_in_tx(
    tx: &mut Tx,
    key_id: &str,
    at: Timestamp,
) -> Result<Option<(KeyLimits, Consumption)>> {
    let stored = tx
        .fetch_optional::<Scalar<Option<String>>>(
            query("SELECT limits FROM api_keys WHERE id = $1").bind(key_id),
        )
        .await?;
    let Some(Scalar(Some(text))) = stored else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    tx.execute(query("UPDATE api_keys SET limits = limits WHERE id = $1").bind(key_id))
        .await?;
    // Read again under the lock: a change that committed meanwhile counts.
    let text = tx
        .fetch_optional::<Scalar<Option<String>>>(
            query("SELECT limits FROM api_keys WHERE id = $1").bind(key_id),
        )
        .await?
        .and_then(|s| s.0);
    let limits = KeyLimits::from_stored(text.as_deref())?;
    let used = tx
        .fetch_optional::<ConsumptionRow>(query(CONSUMPTION).bind(key_id).bind(day_start(at)))
        .await?
        .map_or_else(Consumption::default, Consumption::from);
    Ok(Some((limits, used)))
}

/// Whether the key may place a call to `to` now, in `tx` (which then stores it):
/// `Some(seconds)` caps the call's reservation.
pub(crate) async fn check_call(
    tx: &mut Tx,
    key_id: &str,
    to: &str,
    at: Timestamp,
) -> Result<Option<i64>> {
    match limits_in_tx(tx, key_id, at).await? {
        None => Ok(None),
        Some((limits, used)) => dialtone_domain::limits::check_call(&limits, &used, to),
    }
}

/// Whether the key may send a message of `segments` segments to `to` now, in `tx`.
pub(crate) async fn check_message(
    tx: &mut Tx,
    key_id: &str,
    to: &str,
    segments: i64,
    at: Timestamp,
) -> Result<()> {
    match limits_in_tx(tx, key_id, at).await? {
        None => Ok(()),
        Some((limits, used)) => {
            dialtone_domain::limits::check_message(&limits, &used, to, segments)
        }
    }
}

impl Store {
    /// What a key placed today (UTC) and its calls not yet ended (the dashboard).
    pub async fn key_consumption(&self, key_id: &str) -> Result<Consumption> {
        Ok(self
            .db
            .fetch_optional::<ConsumptionRow>(
                query(CONSUMPTION).bind(key_id).bind(day_start(now())),
            )
            .await?
            .map_or_else(Consumption::default, Consumption::from))
    }

    /// Records a key's refusal (`err`, a `KEY_LIMIT_EXCEEDED`) when it is the key's
    /// first of the UTC day: the `api_key.limit_reached` event and an audit entry, in
    /// one transaction with the key row locked, so concurrent refusals on any node
    /// record it once. Other refusals of the day change nothing.
    pub async fn note_limit_reached(&self, key_id: &str, err: &Error) -> Result<()> {
        let Error::KeyLimitExceeded {
            limit,
            value,
            current,
            ..
        } = err
        else {
            return Ok(());
        };
        let at = now();
        let mut tx = self.db.begin().await?;
        tx.execute(query("UPDATE api_keys SET limits = limits WHERE id = $1").bind(key_id))
            .await?;
        let key = crate::keys::key_in_tx(&mut tx, key_id).await?;
        let seen = tx
            .fetch_optional::<Scalar<String>>(
                query(
                    "SELECT id FROM audit_log WHERE org_id = $1 AND action = $2 AND target = $3 \
                     AND at >= $4 LIMIT 1",
                )
                .bind(&key.org_id)
                .bind(LIMIT_REACHED)
                .bind(key_id)
                .bind(day_start(at)),
            )
            .await?;
        if seen.is_some() {
            return Ok(());
        }
        let scope = crate::keys::key_event_scope(&mut tx, &key).await?;
        let object = serde_json::to_value(ApiKeyLimitHit {
            object: "api_key_limit",
            key: dialtone_domain::auth::ApiKeyView::new(&key, at),
            limit: (*limit).to_owned(),
            value: value.clone(),
            current: current.clone(),
            day: at.format("%Y-%m-%d").to_string(),
        })
        .map_err(Error::internal)?;
        crate::calls::record_event(&mut tx, &scope, EventType::ApiKeyLimitReached, object).await?;
        crate::users::audit_in_tx(
            &mut tx,
            &key.org_id,
            key_id,
            LIMIT_REACHED,
            key_id,
            &format!(
                "{} reached its limit {limit} ({value}) at {current}: what goes over it is refused (403 KEY_LIMIT_EXCEEDED)",
                key.describe()
            ),
            None,
        )
        .await?;
        tx.commit().await
    }
}
