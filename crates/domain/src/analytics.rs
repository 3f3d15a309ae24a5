//! Usage analytics: calls, answers, misses, minutes, messages and cost over a time
//! range, in day or hour buckets, optionally grouped.

use crate::error::{Error, Result, Validator};
use crate::time::{Timestamp, rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Hour,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Hour => "hour",
        }
    }

    /// Characters of a stored time that name its bucket (`2026-11-23` or `2026-11-23T10`).
    pub fn prefix_len(self) -> i32 {
        match self {
            Granularity::Day => 10,
            Granularity::Hour => 13,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Direction,
    Agent,
    PhoneNumber,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Direction => "direction",
            GroupBy::Agent => "agent",
            GroupBy::PhoneNumber => "phone_number",
        }
    }
}

/// A validated `GET /v1/analytics/usage` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRequest {
    pub from: Timestamp,
    pub to: Timestamp,
    pub granularity: Granularity,
    pub group_by: Option<GroupBy>,
}

impl UsageRequest {
    /// Defaults: the last 30 days, by day, ungrouped. At most 366 days by day or 31 by hour.
    pub fn new(
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        granularity: Option<&str>,
        group_by: Option<&str>,
        now: Timestamp,
    ) -> Result<Self> {
        // `to` is exclusive: by default it is just after now, so what happened in this
        // very millisecond counts.
        let to = to.unwrap_or(now + chrono::TimeDelta::milliseconds(1));
        let from = from.unwrap_or(to - chrono::TimeDelta::days(30));
        let granularity = match granularity {
            None | Some("day") => Granularity::Day,
            Some("hour") => Granularity::Hour,
            Some(_) => {
                return Err(Error::validation(
                    "granularity",
                    "granularity must be day or hour",
                ));
            }
        };
        let group_by = match group_by {
            None => None,
            Some("direction") => Some(GroupBy::Direction),
            Some("agent") => Some(GroupBy::Agent),
            Some("phone_number") => Some(GroupBy::PhoneNumber),
            Some(_) => {
                return Err(Error::validation(
                    "group_by",
                    "group_by must be direction, agent or phone_number",
                ));
            }
        };
        let mut v = Validator::new();
        v.check(from < to, "from", "from must be before to");
        let max_days = match granularity {
            Granularity::Day => 366,
            Granularity::Hour => 31,
        };
        v.check(
            to - from <= chrono::TimeDelta::days(max_days),
            "to",
            format!("the range may span at most {max_days} days at this granularity"),
        );
        v.finish()?;
        Ok(UsageRequest {
            from,
            to,
            granularity,
            group_by,
        })
    }
}

/// One bucket (and group) of usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UsageBucket {
    /// Start of the day or hour (UTC).
    pub period_start: String,
    /// The group's value (a direction, agent id or phone number id) when grouped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub calls: i64,
    pub answered: i64,
    /// Calls that ended without an answer (busy, no answer, failed, canceled).
    pub missed: i64,
    /// Billable minutes (each started minute).
    pub minutes: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    /// In cents.
    pub cost: i64,
}

impl UsageBucket {
    pub fn add(&mut self, o: &UsageBucket) {
        self.calls += o.calls;
        self.answered += o.answered;
        self.missed += o.missed;
        self.minutes += o.minutes;
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.cost += o.cost;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[schema(example = "usage_report")]
    pub object: &'static str,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    pub granularity: &'static str,
    pub group_by: Option<&'static str>,
    pub currency: &'static str,
    /// Sums over the whole range.
    pub totals: UsageBucket,
    /// Buckets with any activity, oldest first.
    pub data: Vec<UsageBucket>,
}

/// `2026-11-23` or `2026-11-23T10` → `2026-11-23T00:00:00Z` / `2026-11-23T10:00:00Z`.
pub fn period_start(bucket: &str) -> String {
    match bucket.len() {
        10 => format!("{bucket}T00:00:00Z"),
        13 => format!("{bucket}:00:00Z"),
        _ => bucket.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_default_and_validate() {
        let now = crate::time::now();
        let r = UsageRequest::new(None, None, None, None, now).expect("valid");
        assert_eq!(r.to - r.from, chrono::TimeDelta::days(30));
        assert!(r.to > now);
        assert!(UsageRequest::new(Some(now), Some(now), None, None, now).is_err());
        assert!(UsageRequest::new(None, None, Some("week"), None, now).is_err());
        assert!(UsageRequest::new(None, None, Some("hour"), None, now).is_ok());
        assert!(
            UsageRequest::new(
                Some(now - chrono::TimeDelta::days(40)),
                None,
                Some("hour"),
                None,
                now
            )
            .is_err()
        );
        assert!(UsageRequest::new(None, None, None, Some("colour"), now).is_err());
        assert_eq!(period_start("2026-11-23T10"), "2026-11-23T10:00:00Z");
    }
}
