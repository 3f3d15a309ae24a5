//! Money: the wallet each organization pays from, and what things cost.
//!
//! Amounts are integer cents of the wallet's currency (USD), as in Stripe's API. Only
//! live mode is charged; test mode has its own wallet that nothing debits.

use crate::error::{Error, Result};
use crate::time::{Timestamp, rfc3339};

pub const CURRENCY: &str = "usd";

/// Monthly price of a number, charged at purchase.
pub const LOCAL_NUMBER_MONTHLY: i64 = 115;
pub const MOBILE_NUMBER_MONTHLY: i64 = 150;
pub const TOLL_FREE_NUMBER_MONTHLY: i64 = 215;
/// Per started minute of a live call.
pub const CALL_PER_MINUTE: i64 = 2;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Wallet {
    #[schema(example = "wallet")]
    pub object: &'static str,
    pub livemode: bool,
    #[schema(example = "usd")]
    pub currency: &'static str,
    /// In cents.
    #[schema(example = 2500)]
    pub balance: i64,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    Credit,
    PhoneNumber,
    Call,
    Message,
}

impl Charge {
    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Credit => "credit",
            Charge::PhoneNumber => "phone_number",
            Charge::Call => "call",
            Charge::Message => "message",
        }
    }
}

/// Parses an amount in currency units with at most two decimals (`25`, `10.5`,
/// `0.99`) into cents.
pub fn parse_amount(s: &str) -> Result<i64> {
    let invalid = || {
        Error::validation(
            "amount",
            "amount must be a positive number with at most two decimals, e.g. 25.00",
        )
    };
    let (units, cents) = match s.trim().split_once('.') {
        Some((u, c)) if !c.is_empty() && c.len() <= 2 => (u, c),
        Some(_) => return Err(invalid()),
        None => (s.trim(), ""),
    };
    if units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !cents.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let units: i64 = units.parse().map_err(|_| invalid())?;
    let cents: i64 = format!("{cents:0<2}").parse().map_err(|_| invalid())?;
    let total = units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .ok_or_else(invalid)?;
    if total <= 0 {
        return Err(invalid());
    }
    Ok(total)
}

/// `2500` → `25.00`.
pub fn format_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_cents() {
        assert_eq!(parse_amount("25").ok(), Some(2500));
        assert_eq!(parse_amount("10.5").ok(), Some(1050));
        assert_eq!(parse_amount("0.99").ok(), Some(99));
        for bad in [
            "",
            "-1",
            "0",
            "1.234",
            "1.",
            ".5",
            "abc",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(format_amount(1050), "10.50");
        assert_eq!(format_amount(-5), "-0.05");
    }
}
