//! The call log of the current workspace and mode, filtered by status, direction and
//! date range, under charts of calls and minutes per day over the last 30 days (the
//! usage report of [`crate::analytics::report`], unfiltered), and one call with its
//! transcript and a recording player. Reads go through the same scoped store calls as
//! `/v1/calls`.

use super::Query;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, TimeZone, Utc};
use dialtone_domain::Error;
use dialtone_domain::analytics::UsageRequest;
use dialtone_domain::calls::{Call, CallStatus, Direction};
use dialtone_domain::page::{PageRequest, encode_cursor};
use dialtone_store::CallFilter;
use serde::Deserialize;

use super::analytics::{daily_chart, midnight};
use super::chart::{BarChart, Noun};
use super::session::{Nav, Session};
use super::{DashResult, render, render_status, when};
use crate::state::AppState;

const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallsQuery {
    status: Option<String>,
    direction: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    cursor: Option<String>,
}

struct CallView {
    id: String,
    direction: &'static str,
    status: &'static str,
    from: String,
    to: String,
    duration: String,
    created: String,
    end_reason: String,
}

fn duration(secs: i64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

fn call_view(c: &Call) -> CallView {
    CallView {
        id: c.id.clone(),
        direction: c.direction.as_str(),
        status: c.status.as_str(),
        from: c.from.clone(),
        to: c.to.clone(),
        duration: duration(c.duration_seconds),
        created: when(Some(c.created_at)),
        end_reason: c.end_reason.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    calls: Vec<CallView>,
    statuses: Vec<&'static str>,
    status: String,
    direction: String,
    from_date: String,
    to_date: String,
    error: Option<String>,
    next: Option<String>,
    /// Calls and minutes per day, the last 30 days.
    charts: Vec<BarChart>,
}

fn day(s: Option<&str>, field: &str, end: bool) -> Result<Option<chrono::DateTime<Utc>>, Error> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::validation(field, "Dates look like 2026-11-23."))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t)))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<CallsQuery>,
) -> DashResult<Response> {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let status = nonempty(&q.status);
    let direction = nonempty(&q.direction);
    let parsed = (|| -> Result<(CallFilter, PageRequest), Error> {
        let filter = CallFilter {
            status: status.as_deref().map(CallStatus::parse).transpose()?,
            direction: direction.as_deref().map(Direction::parse).transpose()?,
            created_after: day(q.from_date.as_deref(), "from_date", false)?,
            created_before: day(q.to_date.as_deref(), "to_date", true)?,
            ..CallFilter::default()
        };
        Ok((filter, PageRequest::new(Some(PAGE), q.cursor.as_deref())?))
    })();
    let (calls, error, next) = match parsed {
        Ok((filter, page)) => {
            let scope = session.scope();
            let mut rows = state
                .store
                .scoped(&scope)
                .list_calls(&filter, &page)
                .await?;
            let more = rows.len() > PAGE as usize;
            rows.truncate(PAGE as usize);
            let next = if more {
                rows.last().map(|c| {
                    let mut qs = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in [
                        ("status", &status),
                        ("direction", &direction),
                        ("from_date", &q.from_date),
                        ("to_date", &q.to_date),
                    ] {
                        if let Some(v) = v {
                            qs.append_pair(k, v);
                        }
                    }
                    qs.append_pair("cursor", &encode_cursor(&c.id));
                    format!("/dashboard/calls?{}", qs.finish())
                })
            } else {
                None
            };
            (rows.iter().map(call_view).collect(), None, next)
        }
        Err(e) => (Vec::new(), Some(e.to_string()), None),
    };
    // A bad filter or cursor: said on the page, as a 400 (as the API answers it).
    let code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let charts = last_30_days(&state, &session).await?;
    Ok(render_status(
        code,
        &CallsPage {
            charts,
            nav: session.nav("calls", "/dashboard/calls"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == dialtone_domain::tenancy::Mode::Test,
            calls,
            statuses: CallStatus::ALL.iter().map(|s| s.as_str()).collect(),
            status: status.unwrap_or_default(),
            direction: direction.unwrap_or_default(),
            from_date: q.from_date.unwrap_or_default(),
            to_date: q.to_date.unwrap_or_default(),
            error,
            next,
        },
    ))
}

/// Calls and billable minutes per day (UTC), today and the 29 days before it.
async fn last_30_days(state: &AppState, session: &Session) -> DashResult<Vec<BarChart>> {
    const DAYS: u32 = 30;
    let at = dialtone_domain::time::now();
    let first = at.date_naive() - chrono::TimeDelta::days(i64::from(DAYS) - 1);
    let req = UsageRequest::new(Some(midnight(first)), None, Some("day"), None, at)?;
    let report = crate::analytics::report(state, &session.scope(), &req).await?;
    Ok(vec![
        daily_chart(
            "Calls per day, last 30 days",
            Noun("call", "calls"),
            first,
            DAYS,
            &report,
            |b| b.calls,
        ),
        daily_chart(
            "Billable minutes per day, last 30 days",
            Noun("minute", "minutes"),
            first,
            DAYS,
            &report,
            |b| b.minutes,
        ),
    ])
}

struct SegmentView {
    speaker: String,
    at: String,
    text: String,
}

struct RecordingView {
    id: String,
    duration: String,
    src: String,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    nav: Nav,
    call: CallView,
    answered: String,
    ended: String,
    segments: Vec<SegmentView>,
    recordings: Vec<RecordingView>,
}

pub(crate) async fn call(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    if !dialtone_domain::id::looks_like("call", &id) {
        return Err(Error::NotFound { resource: "call" }.into());
    }
    let scope = session.scope();
    let scoped = state.store.scoped(&scope);
    let call = scoped.get_call(&id).await?;
    let segments = match scoped.get_transcript(&id).await {
        Ok(t) => t
            .segments
            .into_iter()
            .map(|s| SegmentView {
                speaker: s.speaker,
                at: duration(s.start_seconds),
                text: s.text,
            })
            .collect(),
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let page = PageRequest::new(Some(10), None)?;
    let recordings = scoped
        .list_recordings(Some(&id), &page)
        .await?
        .into_iter()
        .take(10)
        .map(|r| {
            let expires = (dialtone_domain::time::now() + chrono::TimeDelta::hours(1)).timestamp();
            RecordingView {
                src: format!(
                    "/v1/recordings/{}/media?expires={expires}&signature={}",
                    r.id,
                    crate::calls::media_signature(&state, &r.id, expires)
                ),
                id: r.id,
                duration: duration(r.duration_seconds),
            }
        })
        .collect();
    Ok(render(&CallPage {
        nav: session.nav("calls", "/dashboard/calls"),
        answered: when(call.answered_at),
        ended: when(call.ended_at),
        call: call_view(&call),
        segments,
        recordings,
    }))
}
