//! Usage analytics, aggregated in the database.
//!
//! Whole hours come from the hourly rollup (`usage_rollup`, kept current by every
//! change: see `rollup.rs`), so a month of a million calls is a few hundred rows; the
//! partial hours at the edges of the range are read from the calls and messages
//! themselves, through their `created_at` indexes. Both are heavy reads: they run
//! off the request threads, within the store's time budget.

use std::collections::BTreeMap;

use dialtone_domain::Result;
use dialtone_domain::analytics::{UsageBucket, UsageRequest, period_start};
use dialtone_domain::time::Timestamp;

/// The start of the hour `t` is in.
fn floor_hour(t: Timestamp) -> Timestamp {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The first whole hour at or after `t`.
fn ceil_hour(t: Timestamp) -> Timestamp {
    let floor = floor_hour(t);
    if floor == t {
        t
    } else {
        floor + chrono::TimeDelta::hours(1)
    }
}

use crate::db::{FromRow, Row, query};
use crate::{Scoped, rollup};

struct Bucket(String, Option<String>, UsageBucket);

impl FromRow for Bucket {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Bucket(
            r.get("bucket")?,
            r.get("grp")?,
            UsageBucket {
                calls: r.get("calls")?,
                answered: r.get("answered")?,
                missed: r.get("missed")?,
                minutes: r.get("minutes")?,
                messages_in: r.get("messages_in")?,
                messages_out: r.get("messages_out")?,
                cost: r.get("cost")?,
                ..UsageBucket::default()
            },
        ))
    }
}

/// The bucket of a row's `created_at`: the first `$6` characters of its UTC text form.
macro_rules! bucket {
    (sqlite) => {
        "substr(created_at, 1, $6)"
    };
    (postgres) => {
        "substr(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24'), 1, $6)"
    };
}

/// Whole hours from the rollup (`$10` ≤ hour < `$11`, hours as `2026-11-27T18`), and
/// the partial hours at the edges from the calls and messages themselves (`$4`–`$5`
/// and `$8`–`$9`), in one statement: one round trip, one budget.
macro_rules! usage {
    ($dialect:tt) => {
        concat!(
            "SELECT substr(hour, 1, $6) AS bucket, CASE $7 WHEN 'direction' THEN direction \
             WHEN 'agent' THEN NULLIF(agent_id, '') WHEN 'phone_number' THEN NULLIF(phone_number_id, '') \
             ELSE NULL END AS grp, \
             CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(answered) AS BIGINT) AS answered, \
             CAST(SUM(missed) AS BIGINT) AS missed, CAST(SUM(minutes) AS BIGINT) AS minutes, \
             CAST(SUM(messages_in) AS BIGINT) AS messages_in, \
             CAST(SUM(messages_out) AS BIGINT) AS messages_out, CAST(SUM(cost) AS BIGINT) AS cost \
             FROM usage_rollup WHERE ",
            in_scope!(),
            " AND hour >= $10 AND hour < $11 GROUP BY 1, 2 \
             UNION ALL SELECT ",
            bucket!($dialect),
            " AS bucket, CASE $7 WHEN 'direction' THEN direction WHEN 'agent' THEN agent_id \
             WHEN 'phone_number' THEN phone_number_id ELSE NULL END AS grp, \
             CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(SUM(CASE WHEN status IN ('busy', 'no_answer', 'failed', 'canceled') THEN 1 ELSE 0 END) AS BIGINT) AS missed, \
             CAST(SUM((duration_seconds + 59) / 60) AS BIGINT) AS minutes, \
             CAST(0 AS BIGINT) AS messages_in, CAST(0 AS BIGINT) AS messages_out, \
             CAST(SUM(cost) AS BIGINT) AS cost \
             FROM calls WHERE ",
            in_scope!(),
            " AND ((created_at >= $4 AND created_at < $5) OR (created_at >= $8 AND created_at < $9)) \
             GROUP BY 1, 2 \
             UNION ALL SELECT ",
            bucket!($dialect),
            " AS bucket, CASE $7 WHEN 'direction' THEN direction WHEN 'phone_number' THEN phone_number_id \
             ELSE NULL END AS grp, \
             CAST(0 AS BIGINT) AS calls, CAST(0 AS BIGINT) AS answered, CAST(0 AS BIGINT) AS missed, \
             CAST(0 AS BIGINT) AS minutes, \
             CAST(SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) AS BIGINT) AS messages_in, \
             CAST(SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END) AS BIGINT) AS messages_out, \
             CAST(SUM(cost) AS BIGINT) AS cost \
             FROM messages WHERE ",
            in_scope!(),
            " AND ((created_at >= $4 AND created_at < $5) OR (created_at >= $8 AND created_at < $9)) \
             GROUP BY 1, 2"
        )
    };
}

impl Scoped<'_> {
    /// Usage buckets of this scope (oldest first) and their totals.
    pub async fn usage(&self, req: &UsageRequest) -> Result<(UsageBucket, Vec<UsageBucket>)> {
        let s = self.scope;
        let db = &self.store.db;
        let group = req.group_by.map(|g| g.as_str());
        let (from, to) = (req.from, req.to);
        // The whole hours inside [from, to) come from the rollup; the rest from the rows.
        let (first_hour, end_hour) = (ceil_hour(from), floor_hour(to));
        let (whole, head, tail) = if first_hour < end_hour {
            ((first_hour, end_hour), (from, first_hour), (end_hour, to))
        } else {
            ((to, to), (from, to), (to, to))
        };
        let rows: Vec<Bucket> = self
            .store
            .fetch_all_heavy(
                query(db.dialect(usage!(sqlite), usage!(postgres)))
                    .bind(&s.org_id)
                    .bind(&s.workspace_id)
                    .bind(s.livemode())
                    .bind(head.0)
                    .bind(head.1)
                    .bind(req.granularity.prefix_len())
                    .bind(group)
                    .bind(tail.0)
                    .bind(tail.1)
                    .bind(rollup::hour(whole.0))
                    .bind(rollup::hour(whole.1)),
            )
            .await?;
        let mut merged: BTreeMap<(String, Option<String>), UsageBucket> = BTreeMap::new();
        for Bucket(bucket, grp, usage) in rows {
            // Messages have no agent: they count in the ungrouped bucket.
            merged.entry((bucket, grp)).or_default().add(&usage);
        }
        let mut totals = UsageBucket::default();
        let data = merged
            .into_iter()
            .map(|((bucket, group), mut u)| {
                totals.add(&u);
                u.period_start = period_start(&bucket);
                u.group = group;
                u
            })
            .collect();
        Ok((totals, data))
    }
}
