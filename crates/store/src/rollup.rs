//! The hourly usage rollup (`usage_rollup`) that analytics reads: one row per scope,
//! hour of creation, direction, agent and number, kept current inside the transaction
//! of every change that moves a count (a call placed, answered, missed or completed; a
//! message stored or refunded), so it always agrees with the tables.

use dialtone_domain::Result;
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::Timestamp;

use crate::Store;
use crate::db::{Tx, query};

/// What a change adds to its hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub calls: i64,
    pub answered: i64,
    pub missed: i64,
    pub minutes: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    pub cost: i64,
}

/// Which row of the rollup a call or message counts in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    pub created_at: Timestamp,
    pub direction: &'a str,
    pub agent_id: Option<&'a str>,
    pub phone_number_id: Option<&'a str>,
}

/// The rollup's name for the hour of `at` (`2026-11-27T18`, UTC).
pub(crate) fn hour(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// Adds `d` to the row of `key`, inside `tx`.
pub(crate) async fn add(tx: &mut Tx, scope: &Scope, key: Key<'_>, d: Delta) -> Result<()> {
    if d == Delta::default() {
        return Ok(());
    }
    tx.execute(
        query(
            "INSERT INTO usage_rollup (org_id, workspace_id, livemode, hour, direction, agent_id, \
             phone_number_id, calls, answered, missed, minutes, messages_in, messages_out, cost) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (org_id, workspace_id, livemode, hour, direction, agent_id, phone_number_id) \
             DO UPDATE SET calls = usage_rollup.calls + excluded.calls, \
             answered = usage_rollup.answered + excluded.answered, \
             missed = usage_rollup.missed + excluded.missed, \
             minutes = usage_rollup.minutes + excluded.minutes, \
             messages_in = usage_rollup.messages_in + excluded.messages_in, \
             messages_out = usage_rollup.messages_out + excluded.messages_out, \
             cost = usage_rollup.cost + excluded.cost",
        )
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(hour(key.created_at))
        .bind(key.direction)
        .bind(key.agent_id.unwrap_or(""))
        .bind(key.phone_number_id.unwrap_or(""))
        .bind(d.calls)
        .bind(d.answered)
        .bind(d.missed)
        .bind(d.minutes)
        .bind(d.messages_in)
        .bind(d.messages_out)
        .bind(d.cost),
    )
    .await?;
    Ok(())
}

macro_rules! rebuild_calls {
    ($hour:literal) => {
        concat!(
            "INSERT INTO usage_rollup (org_id, workspace_id, livemode, hour, direction, agent_id, \
             phone_number_id, calls, answered, missed, minutes, cost) \
             SELECT org_id, workspace_id, livemode, ",
            $hour,
            ", direction, COALESCE(agent_id, ''), COALESCE(phone_number_id, ''), COUNT(*), \
             SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN status IN ('busy', 'no_answer', 'failed', 'canceled') THEN 1 ELSE 0 END), \
             SUM((duration_seconds + 59) / 60), SUM(cost) \
             FROM calls WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 \
             GROUP BY 1, 2, 3, 4, 5, 6, 7"
        )
    };
}

macro_rules! rebuild_messages {
    ($hour:literal) => {
        concat!(
            "INSERT INTO usage_rollup (org_id, workspace_id, livemode, hour, direction, agent_id, \
             phone_number_id, messages_in, messages_out, cost) \
             SELECT org_id, workspace_id, livemode, ",
            $hour,
            ", direction, '', COALESCE(phone_number_id, ''), \
             SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END), SUM(cost) \
             FROM messages WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 \
             GROUP BY 1, 2, 3, 4, 5, 6, 7 \
             ON CONFLICT (org_id, workspace_id, livemode, hour, direction, agent_id, phone_number_id) \
             DO UPDATE SET messages_in = usage_rollup.messages_in + excluded.messages_in, \
             messages_out = usage_rollup.messages_out + excluded.messages_out, \
             cost = usage_rollup.cost + excluded.cost"
        )
    };
}

/// Recounts a scope's rollup from its calls and messages, in one transaction: after
/// rows were written in bulk (`dialtone demo`), not through the operations that keep
/// it current.
pub(crate) async fn rebuild(store: &Store, scope: &Scope) -> Result<()> {
    let db = &store.db;
    let mut tx = db.begin().await?;
    tx.execute(
        query("DELETE FROM usage_rollup WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3")
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode()),
    )
    .await?;
    for sql in [
        db.dialect(
            rebuild_calls!("substr(created_at, 1, 13)"),
            rebuild_calls!("to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"),
        ),
        db.dialect(
            rebuild_messages!("substr(created_at, 1, 13)"),
            rebuild_messages!("to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"),
        ),
    ] {
        tx.execute(
            query(sql)
                .bind(&scope.org_id)
                .bind(&scope.workspace_id)
                .bind(scope.livemode()),
        )
        .await?;
    }
    tx.commit().await
}
