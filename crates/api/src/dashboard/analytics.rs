//! Analytics: the usage report of the workspace and mode the dashboard looks at, for a
//! range of days chosen in a GET form (default: the last 30 days), as charts (calls,
//! answered, minutes, messages per day) with the table of the same numbers beneath.
//!
//! The report is [`crate::analytics::report`], the operation `GET /v1/analytics/usage`
//! answers with, for a request validated by [`UsageRequest::new`] (so the range rules
//! are the API's). Every member may look; nothing here changes anything.

use super::Query;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use dialtone_domain::analytics::{UsageBucket, UsageReport, UsageRequest};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};
use serde::Deserialize;

use super::chart::{BarChart, Noun, Size, thousands};
use super::pages::{dollars, explain};
use super::session::{Nav, Session};
use super::{DashResult, render_status};
use crate::state::AppState;

/// Days shown when the form names none: today and the 29 before it.
const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnalyticsQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

struct RowView {
    day: String,
    group: String,
    calls: String,
    answered: String,
    missed: String,
    minutes: String,
    messages_in: String,
    messages_out: String,
    cost: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    from: String,
    to: String,
    group_by: String,
    error: Option<String>,
    charts: Vec<BarChart>,
    rows: Vec<RowView>,
    totals: Option<RowView>,
}

/// The UTC day a bucket starts on (`2026-11-23T00:00:00Z` → 2026-11-23).
pub(crate) fn bucket_day(b: &UsageBucket) -> Option<NaiveDate> {
    b.period_start
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The start (00:00 UTC) of `day`.
pub(crate) fn midnight(day: NaiveDate) -> Timestamp {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

/// A day-granularity chart of one number of a report's buckets (groups summed).
pub(crate) fn daily_chart(
    title: &str,
    noun: Noun,
    first: NaiveDate,
    days: u32,
    report: &UsageReport,
    value: impl Fn(&UsageBucket) -> i64,
) -> BarChart {
    BarChart::daily(
        title,
        noun,
        first,
        days,
        report
            .data
            .iter()
            .filter_map(|b| Some((bucket_day(b)?, value(b)))),
        Size::Large,
    )
}

/// The days a form may name: both databases store these times alike.
const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a day");
const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 30).expect("a day");

fn date(field: &str, text: Option<&str>, default: NaiveDate) -> Result<NaiveDate> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map_err(|_| Error::validation(field, format!("{field}: dates look like 2026-11-23.")))?;
    if !(FIRST_DAY..=LAST_DAY).contains(&d) {
        return Err(Error::validation(
            field,
            format!("{field}: pick a day from {FIRST_DAY} to {LAST_DAY}."),
        ));
    }
    Ok(d)
}

/// The request a form asks for: whole UTC days from `from` through `to` (default: the
/// 30 days ending with `to`, itself today by default), by day.
fn request(q: &AnalyticsQuery, today: NaiveDate) -> Result<(UsageRequest, NaiveDate, u32)> {
    let to = date("to", q.to.as_deref(), today)?;
    let from = date(
        "from",
        q.from.as_deref(),
        (to - TimeDelta::days(DEFAULT_DAYS - 1)).max(FIRST_DAY),
    )?;
    let end = to
        .succ_opt()
        .ok_or_else(|| Error::validation("to", "to: that day is out of range."))?;
    let group_by = q.group_by.as_deref().filter(|g| !g.is_empty());
    // The API's rules: from before to, at most 366 days, a known grouping.
    let req = UsageRequest::new(
        Some(midnight(from)),
        Some(midnight(end)),
        Some("day"),
        group_by,
        now(),
    )?;
    let days = u32::try_from((end - from).num_days()).unwrap_or(1);
    Ok((req, from, days))
}

fn row(day: String, group: String, b: &UsageBucket) -> RowView {
    RowView {
        day,
        group,
        calls: thousands(b.calls),
        answered: thousands(b.answered),
        missed: thousands(b.missed),
        minutes: thousands(b.minutes),
        messages_in: thousands(b.messages_in),
        messages_out: thousands(b.messages_out),
        cost: dollars(b.cost),
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AnalyticsQuery>,
) -> DashResult<Response> {
    let today = now().date_naive();
    let mut page = AnalyticsPage {
        nav: session.nav("analytics", "/dashboard/analytics"),
        workspace: session.workspace_name().to_owned(),
        test_mode: session.mode == dialtone_domain::tenancy::Mode::Test,
        from: q.from.clone().unwrap_or_default().replace('\0', ""),
        to: q.to.clone().unwrap_or_default().replace('\0', ""),
        group_by: q.group_by.clone().unwrap_or_default(),
        error: None,
        charts: Vec::new(),
        rows: Vec::new(),
        totals: None,
    };
    let (req, first, days) = match request(&q, today) {
        Ok(r) => r,
        Err(e) => {
            let status = crate::error::status_of(&e);
            page.error = Some(explain(&e));
            return Ok(render_status(status, &page));
        }
    };
    let last = first + TimeDelta::days(i64::from(days) - 1);
    page.from = first.format("%Y-%m-%d").to_string();
    page.to = last.format("%Y-%m-%d").to_string();
    let report = crate::analytics::report(&state, &session.scope(), &req).await?;
    let range = format!("{} to {}", page.from, page.to);
    page.charts = vec![
        daily_chart(
            &format!("Calls per day, {range}"),
            Noun("call", "calls"),
            first,
            days,
            &report,
            |b| b.calls,
        ),
        daily_chart(
            &format!("Answered calls per day, {range}"),
            Noun("answered call", "answered calls"),
            first,
            days,
            &report,
            |b| b.answered,
        ),
        daily_chart(
            &format!("Billable minutes per day, {range}"),
            Noun("minute", "minutes"),
            first,
            days,
            &report,
            |b| b.minutes,
        ),
        daily_chart(
            &format!("Messages per day (in and out), {range}"),
            Noun("message", "messages"),
            first,
            days,
            &report,
            |b| b.messages_in + b.messages_out,
        ),
    ];
    let grouped = req.group_by.is_some();
    page.rows = report
        .data
        .iter()
        .map(|b| {
            let group = match (&b.group, grouped) {
                (Some(g), _) => g.clone(),
                (None, true) => "(none)".to_owned(),
                (None, false) => String::new(),
            };
            row(
                bucket_day(b).map_or_else(|| b.period_start.clone(), |d| d.to_string()),
                group,
                b,
            )
        })
        .collect();
    page.totals = Some(row("Total".to_owned(), String::new(), &report.totals));
    Ok(render_status(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: &str, to: &str) -> AnalyticsQuery {
        AnalyticsQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            group_by: None,
        }
    }

    #[test]
    fn the_form_asks_for_whole_days_within_the_apis_rules() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("day");
        let (req, first, days) = request(&AnalyticsQuery::default(), today).expect("default");
        assert_eq!((first.to_string(), days), ("2026-10-30".to_owned(), 30));
        assert_eq!(req.to.to_rfc3339(), "2026-11-29T00:00:00+00:00");
        let (req, _, days) = request(&q("2026-11-28", "2026-11-28"), today).expect("one day");
        assert_eq!(days, 1);
        assert_eq!(req.to - req.from, TimeDelta::days(1));
        assert!(
            request(&q("2026-11-28", "2026-11-27"), today).is_err(),
            "to before from"
        );
        assert!(
            request(&q("2024-01-01", "2026-11-28"), today).is_err(),
            "over 366 days"
        );
        assert!(request(&q("yesterday", ""), today).is_err());
        assert!(request(&q("2026-11-01\0", ""), today).is_err());
        assert!(request(&q("", "+262142-12-31"), today).is_err());
        assert!(request(&q("1969-12-31", "1970-01-01"), today).is_err());
        assert!(request(&q("", "9999-12-31"), today).is_err());
        let (_, first, days) = request(&q("", "1970-01-05"), today).expect("near the start");
        assert_eq!((first, days), (FIRST_DAY, 5));
        let bad = AnalyticsQuery {
            group_by: Some("colour".into()),
            ..AnalyticsQuery::default()
        };
        assert!(request(&bad, today).is_err());
    }
}
