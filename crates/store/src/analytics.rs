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

/// Whole hours, from the rollup. `$4`, `$5`: the first and the end hour (`2026-11-27T18`).
const ROLLUP_USAGE: &str = concat!(
    "SELECT substr(hour, 1, $6) AS bucket, CASE $7 WHEN 'direction' THEN direction \
     WHEN 'agent' THEN NULLIF(agent_id, '') WHEN 'phone_number' THEN NULLIF(phone_number_id, '') \
     ELSE NULL END AS grp, \
     CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(answered) AS BIGINT) AS answered, \
     CAST(SUM(missed) AS BIGINT) AS missed, CAST(SUM(minutes) AS BIGINT) AS minutes, \
     CAST(SUM(messages_in) AS BIGINT) AS messages_in, \
     CAST(SUM(messages_out) AS BIGINT) AS messages_out, CAST(SUM(cost) AS BIGINT) AS cost \
     FROM usage_rollup WHERE ",
    in_scope!(),
    " AND hour >= $4 AND hour < $5 GROUP BY 1, 2"
);

macro_rules! calls_usage {
    ($dialect:tt) => {
        concat!(
            "SELECT ",
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
            " AND created_at >= $4 AND created_at < $5 GROUP BY 1, 2"
        )
    };
}

macro_rules! messages_usage {
    ($dialect:tt) => {
        concat!(
            "SELECT ",
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
            " AND created_at >= $4 AND created_at < $5 GROUP BY 1, 2"
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
        // The whole hours inside [from, to): from the rollup; the rest: from the rows.
        let first_hour = ceil_hour(from);
        let end_hour = floor_hour(to);
        let mut raw: Vec<(Timestamp, Timestamp)> = Vec::new();
        let mut whole = None;
        if first_hour < end_hour {
            whole = Some((first_hour, end_hour));
            if from < first_hour {
                raw.push((from, first_hour));
            }
            if end_hour < to {
                raw.push((end_hour, to));
            }
        } else {
            raw.push((from, to));
        }
        let mut merged: BTreeMap<(String, Option<String>), UsageBucket> = BTreeMap::new();
        let mut add = |rows: Vec<Bucket>| {
            for Bucket(bucket, grp, usage) in rows {
                // Messages have no agent: they count in the ungrouped bucket.
                merged.entry((bucket, grp)).or_default().add(&usage);
            }
        };
        if let Some((a, b)) = whole {
            add(self
                .store
                .fetch_all_heavy(
                    query(ROLLUP_USAGE)
                        .bind(&s.org_id)
                        .bind(&s.workspace_id)
                        .bind(s.livemode())
                        .bind(rollup::hour(a))
                        .bind(rollup::hour(b))
                        .bind(req.granularity.prefix_len())
                        .bind(group),
                )
                .await?);
        }
        for (a, b) in raw {
            for sql in [
                db.dialect(calls_usage!(sqlite), calls_usage!(postgres)),
                db.dialect(messages_usage!(sqlite), messages_usage!(postgres)),
            ] {
                add(self
                    .store
                    .fetch_all_heavy(
                        query(sql)
                            .bind(&s.org_id)
                            .bind(&s.workspace_id)
                            .bind(s.livemode())
                            .bind(a)
                            .bind(b)
                            .bind(req.granularity.prefix_len())
                            .bind(group),
                    )
                    .await?);
            }
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
