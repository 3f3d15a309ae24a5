//! The organization's audit log: every change made in the dashboard (and key changes
//! over REST and the CLI), newest first, paged and filtered by actor, action and date.

use std::collections::HashMap;

use super::Query;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, TimeZone, Utc};
use dialtone_domain::page::PageRequest;
use dialtone_domain::{Error, Result};
use dialtone_store::AuditFilter;
use serde::Deserialize;

use super::pages::{PAGE, older_link};
use super::session::{Nav, Session};
use super::{DashResult, render_status, when};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    cursor: Option<String>,
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
    ip: String,
}

/// The kinds of action the filter offers (prefixes of the recorded names).
const ACTIONS: &[(&str, &str)] = &[
    ("api_key.", "API keys"),
    ("user.", "Sign-in and users"),
    ("webhook.", "Webhooks"),
    ("contact.", "Contacts"),
    ("note.", "Notes"),
    ("message.", "Messages"),
    ("phone_number.", "Phone numbers"),
    ("agent.", "Agents"),
];

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    rows: Vec<Row>,
    actors: Vec<(String, String)>,
    actions: Vec<(&'static str, &'static str)>,
    actor: String,
    action: String,
    from_date: String,
    to_date: String,
    error: Option<String>,
    next: Option<String>,
}

fn day(s: &str, field: &str, end: bool) -> Result<Option<chrono::DateTime<Utc>>> {
    if s.is_empty() {
        return Ok(None);
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::validation(field, "Dates look like 2026-11-23."))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t)))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> DashResult<Response> {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_owned();
    let (actor, action, from_date, to_date) = (
        text(&q.actor),
        text(&q.action),
        text(&q.from_date),
        text(&q.to_date),
    );
    let users = state.store.list_users(&session.org.id).await?;
    let who: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.clone(), u.email.clone()))
        .collect();
    let parsed = (|| -> Result<(AuditFilter, PageRequest)> {
        if !action.is_empty() && !ACTIONS.iter().any(|(a, _)| *a == action) {
            return Err(Error::validation("action", "Pick an action from the list."));
        }
        let filter = AuditFilter {
            actor: Some(actor.clone()).filter(|a| !a.is_empty()),
            action: Some(action.clone()).filter(|a| !a.is_empty()),
            at_or_after: day(&from_date, "from_date", false)?,
            before: day(&to_date, "to_date", true)?,
        };
        Ok((filter, PageRequest::new(Some(PAGE), q.cursor.as_deref())?))
    })();
    let (rows, error, next) = match parsed {
        Ok((filter, page)) => {
            let mut rows = state
                .store
                .audit_page(&session.org.id, &filter, &page)
                .await?;
            let more = rows.len() > PAGE as usize;
            rows.truncate(PAGE as usize);
            let next = older_link(
                "/dashboard/audit",
                &[
                    ("actor", &actor),
                    ("action", &action),
                    ("from_date", &from_date),
                    ("to_date", &to_date),
                ],
                more,
                rows.last().map(|r| r.id.as_str()),
            );
            (
                rows.into_iter()
                    .map(|e| Row {
                        at: when(Some(e.at)),
                        actor: who
                            .get(&e.actor)
                            .cloned()
                            .unwrap_or_else(|| super::keys::reporter_label(&e.actor)),
                        action: super::keys::action_label(&e.action),
                        target: e.target,
                        detail: e.detail,
                        ip: e.ip.unwrap_or_default(),
                    })
                    .collect(),
                None,
                next,
            )
        }
        Err(e) => (Vec::new(), Some(super::pages::explain(&e)), None),
    };
    // A bad filter or cursor: said on the page, as a 400 (as the API answers it).
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render_status(
        status,
        &AuditPage {
            nav: session.nav("audit", "/dashboard/audit"),
            rows,
            actors: users.into_iter().map(|u| (u.id, u.email)).collect(),
            actions: ACTIONS.to_vec(),
            actor,
            action,
            from_date,
            to_date,
            error,
            next,
        },
    ))
}
