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

/// A month of charges, summed from the wallet's ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Invoice {
    /// `inv_{YYYYMM}`.
    #[schema(example = "inv_202611")]
    pub id: String,
    #[schema(example = "invoice")]
    pub object: &'static str,
    pub livemode: bool,
    /// First day of the month (UTC).
    #[schema(example = "2026-11-01")]
    pub period_start: String,
    /// First day of the next month (UTC), exclusive.
    #[schema(example = "2026-12-01")]
    pub period_end: String,
    /// `open` for the current month, `finalized` for past ones.
    pub status: &'static str,
    pub currency: &'static str,
    /// In cents.
    pub total: i64,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    /// `call`, `message` or `phone_number`.
    pub kind: String,
    pub description: String,
    /// How many charges.
    pub quantity: i64,
    /// In cents.
    pub amount: i64,
}

/// `2026-11` ↔ `inv_202611`.
pub fn invoice_id(month: &str) -> String {
    format!("inv_{}", month.replace('-', ""))
}

/// The month (`2026-11`) an invoice id names, if it is one.
pub fn invoice_month(id: &str) -> Option<String> {
    let digits = id.strip_prefix("inv_")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = digits[4..].parse().ok()?;
    (1..=12)
        .contains(&month)
        .then(|| format!("{}-{}", &digits[..4], &digits[4..]))
}

/// The first day of the month after `2026-11` → `2026-12-01`.
pub fn next_month_start(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or((month, "1"));
    let (y, m): (i32, u32) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    if m >= 12 {
        format!("{}-01-01", y + 1)
    } else {
        format!("{y}-{:02}-01", m + 1)
    }
}

/// Builds an invoice from a month's ledger lines.
pub fn invoice(
    month: &str,
    livemode: bool,
    current_month: &str,
    lines: Vec<InvoiceLine>,
) -> Invoice {
    Invoice {
        id: invoice_id(month),
        object: "invoice",
        livemode,
        period_start: format!("{month}-01"),
        period_end: next_month_start(month),
        status: if month == current_month {
            "open"
        } else {
            "finalized"
        },
        currency: CURRENCY,
        total: lines.iter().map(|l| l.amount).sum(),
        lines,
    }
}

#[cfg(test)]
mod invoice_tests {
    use super::*;

    #[test]
    fn invoice_ids_and_months() {
        assert_eq!(invoice_id("2026-11"), "inv_202611");
        assert_eq!(invoice_month("inv_202611").as_deref(), Some("2026-11"));
        assert_eq!(invoice_month("inv_202613"), None);
        assert_eq!(invoice_month("inv_2026"), None);
        assert_eq!(next_month_start("2026-12"), "2027-01-01");
        assert_eq!(next_month_start("2026-02"), "2026-03-01");
    }
}
