//! Per-key limits on calls, messages and money: what they are, how they are checked
//! when set, how a key's limits contain another's, which country a number dials, and
//! the decision to place a call or send a message given what the key used today.
//!
//! A day is the UTC calendar day of creation: calls and messages a key placed today
//! count, whatever their state. Minutes and spend are a hard cap: a finished call
//! counts its billed minutes (capped by its reservation, as it is charged), a call
//! still running counts the minutes reserved for it, and a new call may only reserve
//! what is left, at most an hour (the carrier ends it there). Spend is priced the same in both modes
//! (`CALL_PER_MINUTE` a minute, `PER_SEGMENT` a message segment), so a test key
//! refuses exactly where a live key would.

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::billing::CALL_PER_MINUTE;
use crate::error::{Error, Result, Validator};
use crate::messages::PER_SEGMENT;

/// The most a call placed under a minutes or spend limit may last, in minutes: what
/// is reserved for it while it runs, so other calls of the key can share the day's
/// budget (the first call of the day does not reserve all of it).
pub const MAX_RESERVED_MINUTES: i64 = 60;

/// The largest number a limit may hold.
pub const LIMIT_MAX: i64 = 1_000_000_000;

/// What one API key may place. Every field is optional: `null` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// Calls of this key not yet ended (queued, ringing or in progress).
    #[schema(example = 5, minimum = 0, maximum = 1_000_000_000)]
    pub max_concurrent_calls: Option<i64>,
    /// Minutes of calls placed today (UTC): billed minutes of ended calls plus the
    /// minutes reserved for running ones.
    #[schema(example = 120, minimum = 0, maximum = 1_000_000_000)]
    pub max_call_minutes_per_day: Option<i64>,
    /// Messages sent today (UTC).
    #[schema(example = 500, minimum = 0, maximum = 1_000_000_000)]
    pub max_messages_per_day: Option<i64>,
    /// Cents of calls and messages placed today (UTC), at list price: minutes as
    /// counted above, message segments.
    #[schema(example = 1000, minimum = 0, maximum = 1_000_000_000)]
    pub max_spend_cents_per_day: Option<i64>,
    /// ISO 3166-1 alpha-2 codes of the countries calls and messages may go to,
    /// decided from the E.164 number (libphonenumber's metadata).
    #[schema(example = json!(["US", "CA"]))]
    pub allowed_destination_countries: Option<Vec<String>>,
}

/// The names of the limits, as errors and events name them.
pub const MAX_CONCURRENT_CALLS: &str = "max_concurrent_calls";
pub const MAX_CALL_MINUTES_PER_DAY: &str = "max_call_minutes_per_day";
pub const MAX_MESSAGES_PER_DAY: &str = "max_messages_per_day";
pub const MAX_SPEND_CENTS_PER_DAY: &str = "max_spend_cents_per_day";
pub const ALLOWED_DESTINATION_COUNTRIES: &str = "allowed_destination_countries";

impl KeyLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == KeyLimits::default()
    }

    /// Checks every field (naming each one at fault, under `field.`) and returns the
    /// limits normalized: country codes upper-cased, sorted and unique.
    pub fn validated(mut self, field: &str) -> Result<KeyLimits> {
        let mut v = Validator::new();
        for (name, value) in self.numbers() {
            if let Some(n) = value {
                v.check(
                    (0..=LIMIT_MAX).contains(&n),
                    &format!("{field}.{name}"),
                    format!("{name} must be between 0 and {LIMIT_MAX}"),
                );
            }
        }
        if let Some(list) = self.allowed_destination_countries.take() {
            let mut codes = BTreeSet::new();
            for code in &list {
                let upper = code.to_ascii_uppercase();
                if upper.len() == 2 && phonenumber::country::Id::from_str(&upper).is_ok() {
                    codes.insert(upper);
                } else {
                    v.push(
                        &format!("{field}.{ALLOWED_DESTINATION_COUNTRIES}"),
                        format!(
                            "{code:?} is not an ISO 3166-1 alpha-2 country code with phone numbers"
                        ),
                    );
                }
            }
            self.allowed_destination_countries = Some(codes.into_iter().collect());
        }
        v.finish()?;
        Ok(self)
    }

    fn numbers(&self) -> [(&'static str, Option<i64>); 4] {
        [
            (MAX_CONCURRENT_CALLS, self.max_concurrent_calls),
            (MAX_CALL_MINUTES_PER_DAY, self.max_call_minutes_per_day),
            (MAX_MESSAGES_PER_DAY, self.max_messages_per_day),
            (MAX_SPEND_CENTS_PER_DAY, self.max_spend_cents_per_day),
        ]
    }

    /// The first limit of `self` that is wider than `outer`'s (a limit `outer` has and
    /// `self` lacks, a larger number, a country outside `outer`'s list), or `None`
    /// when `self` is within `outer`.
    pub fn first_wider_than(&self, outer: &KeyLimits) -> Option<&'static str> {
        for ((name, mine), (_, theirs)) in self.numbers().into_iter().zip(outer.numbers()) {
            if let Some(limit) = theirs
                && mine.is_none_or(|m| m > limit)
            {
                return Some(name);
            }
        }
        if let Some(allowed) = &outer.allowed_destination_countries {
            let within = self
                .allowed_destination_countries
                .as_ref()
                .is_some_and(|mine| mine.iter().all(|c| allowed.contains(c)));
            if !within {
                return Some(ALLOWED_DESTINATION_COUNTRIES);
            }
        }
        None
    }

    /// The narrowest of both: each limit the smaller, countries in both lists.
    pub fn intersect(&self, other: &KeyLimits) -> KeyLimits {
        let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let countries = match (
            &self.allowed_destination_countries,
            &other.allowed_destination_countries,
        ) {
            (Some(a), Some(b)) => Some(a.iter().filter(|c| b.contains(c)).cloned().collect()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        KeyLimits {
            max_concurrent_calls: min(self.max_concurrent_calls, other.max_concurrent_calls),
            max_call_minutes_per_day: min(
                self.max_call_minutes_per_day,
                other.max_call_minutes_per_day,
            ),
            max_messages_per_day: min(self.max_messages_per_day, other.max_messages_per_day),
            max_spend_cents_per_day: min(
                self.max_spend_cents_per_day,
                other.max_spend_cents_per_day,
            ),
            allowed_destination_countries: countries,
        }
    }

    /// Stored form (JSON text); `None` when no limit is set.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads the stored form; an empty or absent value is "no limits".
    pub fn from_stored(text: Option<&str>) -> Result<KeyLimits> {
        match text {
            None | Some("") => Ok(KeyLimits::default()),
            Some(t) => serde_json::from_str(t).map_err(Error::internal),
        }
    }
}

/// The ISO 3166-1 alpha-2 code of the country an E.164 number dials, when
/// libphonenumber's metadata places it in one (`+1 415…` is `US`, `+1 416…` `CA`).
pub fn destination_country(e164: &str) -> Option<String> {
    let number = phonenumber::parse(None, e164).ok()?;
    let id = number.country().id()?;
    Some(id.as_ref().to_owned())
}

/// What a key placed today (UTC), and its calls not yet ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Consumption {
    /// Calls of the key not yet ended.
    pub active_calls: i64,
    /// Minutes of today's calls: billed minutes of ended calls, reserved minutes of
    /// running ones.
    pub call_minutes: i64,
    /// Messages sent today.
    pub messages: i64,
    /// Cents of today's calls and messages at list price.
    pub spend_cents: i64,
}

fn exceeded(
    limit: &'static str,
    value: serde_json::Value,
    current: serde_json::Value,
    message: String,
) -> Error {
    Error::KeyLimitExceeded {
        limit,
        value,
        current,
        message,
    }
}

fn check_destination(limits: &KeyLimits, to: &str) -> Result<()> {
    let Some(allowed) = &limits.allowed_destination_countries else {
        return Ok(());
    };
    let country = destination_country(to);
    if country.as_ref().is_some_and(|c| allowed.contains(c)) {
        return Ok(());
    }
    let named = country.as_deref().unwrap_or("no known country");
    Err(exceeded(
        ALLOWED_DESTINATION_COUNTRIES,
        serde_json::json!(allowed),
        serde_json::json!(country),
        format!(
            "This API key may only reach {}; {to} is in {named}.",
            if allowed.is_empty() {
                "no country".to_owned()
            } else {
                allowed.join(", ")
            }
        ),
    ))
}

fn at_limit(name: &'static str, limit: i64, current: i64, what: &str) -> Error {
    exceeded(
        name,
        serde_json::json!(limit),
        serde_json::json!(current),
        format!("This API key's limit {name} ({limit}) is reached: {current} {what}."),
    )
}

/// Decides whether a key with `limits`, having used `used`, may place a call to `to`.
/// `Ok(Some(seconds))`: the most the call may last (what is left of the day's
/// minutes and spend, at most [`MAX_RESERVED_MINUTES`]), `Ok(None)`: no such cap;
/// else 403 `KEY_LIMIT_EXCEEDED`.
pub fn check_call(limits: &KeyLimits, used: &Consumption, to: &str) -> Result<Option<i64>> {
    check_destination(limits, to)?;
    if let Some(max) = limits.max_concurrent_calls
        && used.active_calls >= max
    {
        return Err(at_limit(
            MAX_CONCURRENT_CALLS,
            max,
            used.active_calls,
            "calls in progress",
        ));
    }
    let mut cap: Option<i64> = None;
    if let Some(max) = limits.max_call_minutes_per_day {
        let left = max - used.call_minutes;
        if left < 1 {
            return Err(at_limit(
                MAX_CALL_MINUTES_PER_DAY,
                max,
                used.call_minutes,
                "minutes today",
            ));
        }
        cap = Some(left * 60);
    }
    if let Some(max) = limits.max_spend_cents_per_day {
        let left_minutes = (max - used.spend_cents) / CALL_PER_MINUTE;
        if left_minutes < 1 {
            return Err(at_limit(
                MAX_SPEND_CENTS_PER_DAY,
                max,
                used.spend_cents,
                "cents today",
            ));
        }
        cap = Some(cap.map_or(left_minutes * 60, |c| c.min(left_minutes * 60)));
    }
    Ok(cap.map(|c| c.min(MAX_RESERVED_MINUTES * 60)))
}

/// Decides whether a key with `limits`, having used `used`, may send a message of
/// `segments` segments to `to`.
pub fn check_message(
    limits: &KeyLimits,
    used: &Consumption,
    to: &str,
    segments: i64,
) -> Result<()> {
    check_destination(limits, to)?;
    if let Some(max) = limits.max_messages_per_day
        && used.messages >= max
    {
        return Err(at_limit(
            MAX_MESSAGES_PER_DAY,
            max,
            used.messages,
            "messages today",
        ));
    }
    if let Some(max) = limits.max_spend_cents_per_day
        && used.spend_cents + segments * PER_SEGMENT > max
    {
        return Err(at_limit(
            MAX_SPEND_CENTS_PER_DAY,
            max,
            used.spend_cents,
            "cents today",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(json: serde_json::Value) -> KeyLimits {
        serde_json::from_value::<KeyLimits>(json)
            .expect("parse")
            .validated("limits")
            .expect("valid")
    }

    #[test]
    fn countries_come_from_the_number() {
        for (number, country) in [
            ("+14155550100", "US"),
            ("+14165550100", "CA"),
            ("+442071838750", "GB"),
            ("+33142685300", "FR"),
            ("+4930901820", "DE"),
            ("+81312345678", "JP"),
        ] {
            assert_eq!(
                destination_country(number).as_deref(),
                Some(country),
                "{number}"
            );
        }
        assert_eq!(destination_country("not a number"), None);
    }

    #[test]
    fn validation_names_each_field_and_normalizes_countries() {
        let ok = limits(serde_json::json!({"allowed_destination_countries": ["us", "FR", "US"]}));
        assert_eq!(
            ok.allowed_destination_countries,
            Some(vec!["FR".to_owned(), "US".to_owned()])
        );
        let bad = KeyLimits {
            max_concurrent_calls: Some(-1),
            allowed_destination_countries: Some(vec!["XX".into(), "USA".into()]),
            ..KeyLimits::default()
        }
        .validated("limits")
        .expect_err("invalid");
        let Error::Validation { details, .. } = bad else {
            panic!("{bad:?}")
        };
        assert_eq!(details.len(), 3);
        assert_eq!(details[0].field, "limits.max_concurrent_calls");
    }

    #[test]
    fn containment_and_intersection() {
        let outer = limits(
            serde_json::json!({"max_concurrent_calls": 5, "allowed_destination_countries": ["US", "CA"]}),
        );
        let inner = limits(
            serde_json::json!({"max_concurrent_calls": 3, "allowed_destination_countries": ["US"]}),
        );
        assert_eq!(inner.first_wider_than(&outer), None);
        assert_eq!(outer.first_wider_than(&inner), Some(MAX_CONCURRENT_CALLS));
        assert_eq!(
            KeyLimits::default().first_wider_than(&outer),
            Some(MAX_CONCURRENT_CALLS)
        );
        let more = limits(
            serde_json::json!({"max_concurrent_calls": 3, "max_messages_per_day": 10, "allowed_destination_countries": ["US"]}),
        );
        assert_eq!(more.first_wider_than(&inner), None);
        assert_eq!(outer.intersect(&more), more);
    }

    #[test]
    fn calls_at_each_edge() {
        let l = limits(
            serde_json::json!({"max_concurrent_calls": 2, "max_call_minutes_per_day": 10, "max_spend_cents_per_day": 30}),
        );
        let mut used = Consumption {
            active_calls: 1,
            call_minutes: 4,
            ..Consumption::default()
        };
        assert_eq!(
            check_call(&l, &used, "+14155550100").expect("ok"),
            Some(360)
        );
        used.active_calls = 2;
        assert!(matches!(
            check_call(&l, &used, "+14155550100"),
            Err(Error::KeyLimitExceeded {
                limit: MAX_CONCURRENT_CALLS,
                ..
            })
        ));
        used.active_calls = 0;
        used.call_minutes = 10;
        assert!(matches!(
            check_call(&l, &used, "+14155550100"),
            Err(Error::KeyLimitExceeded {
                limit: MAX_CALL_MINUTES_PER_DAY,
                ..
            })
        ));
        used.call_minutes = 0;
        used.spend_cents = 29;
        assert!(matches!(
            check_call(&l, &used, "+14155550100"),
            Err(Error::KeyLimitExceeded {
                limit: MAX_SPEND_CENTS_PER_DAY,
                ..
            })
        ));
        used.spend_cents = 28;
        assert_eq!(check_call(&l, &used, "+14155550100").expect("ok"), Some(60));
        // A large budget: a call reserves at most an hour of it.
        let big = limits(serde_json::json!({"max_call_minutes_per_day": 600}));
        let fresh = Consumption::default();
        assert_eq!(
            check_call(&big, &fresh, "+14155550100").expect("ok"),
            Some(3600)
        );
    }

    #[test]
    fn messages_at_each_edge() {
        let l = limits(
            serde_json::json!({"max_messages_per_day": 3, "max_spend_cents_per_day": 5, "allowed_destination_countries": ["GB"]}),
        );
        let used = Consumption {
            messages: 2,
            spend_cents: 3,
            ..Consumption::default()
        };
        assert!(check_message(&l, &used, "+442071838750", 2).is_ok());
        assert!(check_message(&l, &used, "+442071838750", 3).is_err());
        assert!(matches!(
            check_message(&l, &used, "+14155550100", 1),
            Err(Error::KeyLimitExceeded {
                limit: ALLOWED_DESTINATION_COUNTRIES,
                ..
            })
        ));
        let full = Consumption {
            messages: 3,
            ..used
        };
        assert!(matches!(
            check_message(&l, &full, "+442071838750", 1),
            Err(Error::KeyLimitExceeded {
                limit: MAX_MESSAGES_PER_DAY,
                ..
            })
        ));
    }
}
