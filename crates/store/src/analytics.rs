//! Usage analytics, aggregated in the database.

use std::collections::BTreeMap;

use dialtone_domain::Result;
use dialtone_domain::analytics::{UsageBucket, UsageRequest, period_start};

use crate::Scoped;
use crate::db::{FromRow, Row, query};

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
        let mut merged: BTreeMap<(String, Option<String>), UsageBucket> = BTreeMap::new();
        for sql in [
            db.dialect(calls_usage!(sqlite), calls_usage!(postgres)),
            db.dialect(messages_usage!(sqlite), messages_usage!(postgres)),
        ] {
            let rows: Vec<Bucket> = db
                .fetch_all(
                    query(sql)
                        .bind(&s.org_id)
                        .bind(&s.workspace_id)
                        .bind(s.livemode())
                        .bind(req.from)
                        .bind(req.to)
                        .bind(req.granularity.prefix_len())
                        .bind(group),
                )
                .await?;
            for Bucket(bucket, grp, usage) in rows {
                // Messages have no agent: they count in the ungrouped bucket.
                merged.entry((bucket, grp)).or_default().add(&usage);
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
