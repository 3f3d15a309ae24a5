//! Time as dialtone stores it: UTC, truncated to milliseconds.
//!
//! Truncating keeps the text form SQLite stores comparable byte by byte, and makes a
//! value read back equal to the value written on both databases.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    truncate(Utc::now())
}

pub fn truncate(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// Days since the Unix epoch, the bucket of usage counters.
pub fn epoch_day(t: Timestamp) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// Serde helper: RFC 3339 with millisecond precision and a `Z`, e.g. `2026-11-23T10:00:00.000Z`.
pub mod rfc3339 {
    use super::Timestamp;
    use chrono::SecondsFormat;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub mod option {
        use super::Timestamp;
        use chrono::SecondsFormat;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                None => s.serialize_none(),
            }
        }
    }
}
