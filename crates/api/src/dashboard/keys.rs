//! Settings → API Keys: the list (active keys, then revoked and expired ones), the
//! `+ New API Key` dialog, the one-time reveal, revoke and rotate, each key's limits
//! and today's consumption (owners and admins set limits through
//! [`crate::keys::update_key`]), and the audit log. Without scripts the new-key
//! button opens the form on the page (`?new=1`), and Revoke, Rotate, Restrict and
//! Set limits each open a page of their own holding the dialog's form (`GET
//! /dashboard/keys/{id}/revoke|rotate|restrict|limits`), which posts to the same route.
//!
//! Keys are created and rotated by [`crate::keys::KeyIssuer`] with
//! [`Actor::User`], revoked by [`crate::keys::revoke_key`]: the API's rules, cap and
//! cache eviction, never a row written here.

use std::collections::HashMap;

use super::Query;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::auth::{Actor, ApiKey, KeyRequest, KeyUpdate, plan_rotation};
use dialtone_domain::id::looks_like;
use dialtone_domain::least_privilege::{self, PermissionUse};
use dialtone_domain::limits::{Consumption, KeyLimits};
use dialtone_domain::page::PageRequest;
use dialtone_domain::permissions::Resource;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::now;
use dialtone_domain::users::Action;
use dialtone_domain::{Error, Result};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::chart::{BarChart, Noun, Size};
use super::pages::confirm;
use super::session::{Nav, Session};
use super::{DashError, DashResult, Form, render_status, see_other, when};
use crate::keys::{CreatedKey, issuer, revoke_key, rotate_key, rotate_key_narrowed, update_key};
use crate::state::AppState;

/// One key as a row of the list.
struct KeyRow {
    id: String,
    name: String,
    read_only: bool,
    test: bool,
    scope: &'static str,
    /// The workspace's name, or "all workspaces".
    scope_detail: String,
    redacted: String,
    created: String,
    created_by: String,
    last_used: String,
    requests_30d: i64,
    /// Requests per day over the same 30 days (active keys only).
    requests_chart: Option<BarChart>,
    last_ip: String,
    status: &'static str,
    ended: String,
    expires: String,
    /// "used only contacts:read and calls:read in 30 days", "not used in 30 days"…
    usage_summary: String,
    /// The least-privilege suggestion (comma-separated) when it narrows the key.
    narrow_to: Option<String>,
    /// An OAuth grant (an app connected by OAuth) rather than a key.
    oauth: bool,
    /// The key's limits in words ("No limits" when none).
    limits: String,
    /// What it placed today (UTC) and its calls running now.
    today: String,
    /// The limits form's values (empty: no limit).
    lim_concurrent: String,
    lim_minutes: String,
    lim_messages: String,
    lim_spend: String,
    lim_countries: String,
}

/// The secret of a key just made, shown this once.
struct Reveal {
    name: String,
    secret: String,
    redacted: String,
    read_only: bool,
    test: bool,
    /// The key it replaces, for a rotation.
    replaces: Option<String>,
}

struct PermRow {
    resource: &'static str,
    label: &'static str,
    writable: bool,
    /// `none`, `read` or `write`.
    level: String,
}

/// What the new-key form holds (kept when it comes back with an error).
struct NewKeyForm {
    name: String,
    test: bool,
    read_only: bool,
    workspace_id: String,
    expires_in: String,
    perms: Vec<PermRow>,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    detail: String,
    ip: String,
}

/// A secret scanner's report of a key found in public (the last 30 days).
struct LeakRow {
    at: String,
    by: String,
    /// The key, where it was found and what was done (the audit entry's words).
    detail: String,
}

/// Which dialog of a key's row a page stands in for (without scripts).
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyDialog {
    Rotate,
    Restrict,
    Limits,
}

/// One key's dialog as a page of its own: the same fields, posted to the same route.
#[derive(Template)]
#[template(path = "key_dialog.html")]
struct KeyDialogPage {
    nav: Nav,
    k: KeyRow,
    /// `rotate`, `restrict` or `limits`: which fields the page holds.
    kind: &'static str,
    title: String,
    action: String,
    button: &'static str,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    nav: Nav,
    active: Vec<KeyRow>,
    inactive: Vec<KeyRow>,
    active_count: usize,
    cap: usize,
    cap_pct: usize,
    at_cap: bool,
    can_manage: bool,
    created: Option<Reveal>,
    form: NewKeyForm,
    form_error: Option<String>,
    open_form: bool,
    workspaces: Vec<(String, String)>,
    audit: Vec<AuditRow>,
    leaks: Vec<LeakRow>,
    notice: Option<String>,
    page_error: Option<String>,
}

fn label(r: Resource) -> &'static str {
    match r {
        Resource::Contacts => "Contacts",
        Resource::Conversations => "Conversations",
        Resource::Messages => "Messages",
        Resource::Notes => "Notes",
        Resource::Calls => "Calls, transcripts, recordings",
        Resource::Agents => "Agents",
        Resource::Campaigns => "Campaigns",
        Resource::PhoneNumbers => "Phone numbers",
        Resource::Webhooks => "Webhooks",
        Resource::ApiKeys => "API keys",
        Resource::Analytics => "Analytics",
        Resource::Billing => "Billing",
    }
}

impl NewKeyForm {
    fn blank(session: &Session) -> Self {
        NewKeyForm {
            name: String::new(),
            test: session.mode == Mode::Test,
            read_only: false,
            workspace_id: session.workspace_id.clone(),
            expires_in: "never".to_owned(),
            perms: Resource::ALL
                .iter()
                .map(|&r| PermRow {
                    resource: r.as_str(),
                    label: label(r),
                    writable: r.writable(),
                    level: if r.writable() { "write" } else { "read" }.to_owned(),
                })
                .collect(),
        }
    }

    fn from_form(session: &Session, f: &Form) -> Self {
        let mut form = NewKeyForm::blank(session);
        form.name = f.get("name").unwrap_or("").to_owned();
        form.test = f.get("mode") == Some("test");
        form.read_only = f.checked("read_only");
        form.workspace_id = f.get("workspace_id").unwrap_or("").to_owned();
        form.expires_in = f.get("expires_in").unwrap_or("never").to_owned();
        for p in &mut form.perms {
            // A field left out keeps its default (full access), as the API does.
            let asked = f.get(&format!("perm_{}", p.resource)).unwrap_or(&p.level);
            p.level = match asked {
                "write" if p.writable && !form.read_only => "write",
                "write" | "read" => "read",
                _ => "none",
            }
            .to_owned();
        }
        form
    }

    /// The request the API would receive for this form.
    fn to_request(&self) -> Result<KeyRequest> {
        let chosen: Vec<String> = self
            .perms
            .iter()
            .filter(|p| p.level != "none")
            .map(|p| format!("{}:{}", p.resource, p.level))
            .collect();
        let everything = self.perms.iter().all(|p| {
            p.level
                == if p.writable && !self.read_only {
                    "write"
                } else {
                    "read"
                }
        });
        let expires_at = match self.expires_in.as_str() {
            "never" | "" => None,
            days => {
                let days: i64 = days
                    .parse()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| {
                        Error::validation("expires_in", "Pick an expiry from the list.")
                    })?;
                Some(now() + chrono::TimeDelta::days(days))
            }
        };
        Ok(KeyRequest {
            name: self.name.clone(),
            read_only: self.read_only,
            mode: Some(if self.test { Mode::Test } else { Mode::Live }),
            permissions: if everything { None } else { Some(chosen) },
            workspace_id: Some(self.workspace_id.clone()).filter(|w| !w.is_empty()),
            expires_at,
            ..KeyRequest::default()
        })
    }
}

/// A key's limits in words: `2 calls at once · 60 min/day · US, CA`.
fn limits_text(l: &KeyLimits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = l.max_concurrent_calls {
        parts.push(format!("{n} calls at once"));
    }
    if let Some(n) = l.max_call_minutes_per_day {
        parts.push(format!("{n} min/day"));
    }
    if let Some(n) = l.max_messages_per_day {
        parts.push(format!("{n} messages/day"));
    }
    if let Some(n) = l.max_spend_cents_per_day {
        parts.push(format!("${}.{:02}/day", n / 100, n % 100));
    }
    if let Some(c) = &l.allowed_destination_countries {
        parts.push(if c.is_empty() {
            "no destination".to_owned()
        } else {
            format!("to {}", c.join(", "))
        });
    }
    if parts.is_empty() {
        "No limits".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// Today's consumption in words.
fn today_text(c: &Consumption) -> String {
    format!(
        "Today: {} running · {} min · {} msgs · ${}.{:02}",
        c.active_calls,
        c.call_minutes,
        c.messages,
        c.spend_cents / 100,
        c.spend_cents % 100
    )
}

fn row(
    k: &ApiKey,
    at: dialtone_domain::time::Timestamp,
    who: &HashMap<String, String>,
    ws: &HashMap<String, String>,
) -> KeyRow {
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    KeyRow {
        oauth: k.oauth_client_id.is_some(),
        limits: limits_text(&k.limits),
        today: String::new(),
        lim_concurrent: num(k.limits.max_concurrent_calls),
        lim_minutes: num(k.limits.max_call_minutes_per_day),
        lim_messages: num(k.limits.max_messages_per_day),
        lim_spend: num(k.limits.max_spend_cents_per_day),
        lim_countries: k
            .limits
            .allowed_destination_countries
            .as_ref()
            .map(|c| c.join(", "))
            .unwrap_or_default(),
        id: k.id.clone(),
        name: k.name.clone(),
        read_only: k.read_only(),
        test: k.mode == Mode::Test,
        scope: if k.workspace_id.is_some() {
            "Workspace"
        } else {
            "Organization"
        },
        scope_detail: match &k.workspace_id {
            None => "all workspaces".to_owned(),
            Some(w) => ws.get(w).cloned().unwrap_or_else(|| w.clone()),
        },
        redacted: k.masked(),
        created: when(Some(k.created_at)),
        created_by: who.get(&k.created_by).cloned().unwrap_or_else(|| {
            match k.created_by.as_str() {
                "cli" => "Operator (CLI)".to_owned(),
                other => other.to_owned(),
            }
        }),
        last_used: k
            .last_used_at
            .map_or_else(|| "Never".to_owned(), |t| when(Some(t))),
        requests_30d: k.requests_30d,
        requests_chart: None,
        last_ip: k.last_ip.clone().unwrap_or_else(|| "—".to_owned()),
        status: k.status(at),
        ended: when(k.revoked_at.or(k.expires_at)),
        expires: k
            .expires_at
            .map_or_else(|| "Never".to_owned(), |t| when(Some(t))),
        usage_summary: String::new(),
        narrow_to: None,
    }
}

/// A key's requests per day over the 30-day window that starts on the day `since`
/// (days since the epoch, as `api_key_usage` counts them: UTC).
fn requests_chart(since: i64, days: &[(i64, i64)]) -> BarChart {
    let date = |day: i64| {
        chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
            .unwrap_or_default()
            .date_naive()
    };
    BarChart::daily(
        &format!(
            "Requests per day, last {} days",
            least_privilege::WINDOW_DAYS
        ),
        Noun("request", "requests"),
        date(since),
        u32::try_from(least_privilege::WINDOW_DAYS).unwrap_or(30),
        days.iter().map(|&(day, n)| (date(day), n)),
        Size::Spark,
    )
}

/// What a key's 30 days of use say about its permissions (see
/// [`dialtone_domain::least_privilege`]), into its row.
fn with_usage(mut row: KeyRow, k: &ApiKey, used: &[PermissionUse]) -> KeyRow {
    let suggested = least_privilege::suggest(used.iter().map(|u| u.permission), k.permissions);
    let days = least_privilege::WINDOW_DAYS;
    row.usage_summary = if suggested.is_empty() {
        if k.requests_30d == 0 {
            format!("not used in {days} days")
        } else {
            format!("used no permission in {days} days (only /v1/me or events)")
        }
    } else if least_privilege::narrows(&suggested, k.permissions) {
        row.narrow_to = Some(
            suggested
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        format!(
            "used only {} in {days} days",
            least_privilege::sentence(&suggested)
        )
    } else {
        format!("used every permission it holds in {days} days")
    };
    row
}

pub(crate) fn action_label(action: &str) -> String {
    match action {
        "api_key.created" => "Created key",
        "api_key.revoked" => "Revoked key",
        "api_key.rotated" => "Rotated key",
        "user.signed_in" => "Signed in",
        "user.signed_out" => "Signed out",
        "user.created" => "Created user",
        "webhook.tested" => "Sent test event",
        "webhook.redelivered" => "Redelivered event",
        "webhook.secret_rotated" => "Rotated webhook secret",
        "webhook.created" => "Created webhook endpoint",
        "webhook.enabled" => "Enabled webhook endpoint",
        "webhook.disabled" => "Disabled webhook endpoint",
        "api_key.leaked" => "Key reported leaked",
        "contact.created" => "Created contact",
        "contact.updated" => "Edited contact",
        "contact.deleted" => "Deleted contact",
        "note.created" => "Added note",
        "message.sent" => "Sent message",
        "phone_number.purchased" => "Bought number",
        "phone_number.routed" => "Routed number",
        "phone_number.released" => "Released number",
        "agent.created" => "Created agent",
        "agent.updated" => "Edited agent",
        "agent.deleted" => "Deleted agent",
        "api_key.updated" => "Changed key",
        "api_key.limit_reached" => "Key limit reached",
        other => other,
    }
    .to_owned()
}

pub(crate) fn reporter_label(actor: &str) -> String {
    match actor {
        crate::secret_scanning::REPORTER => "GitHub secret scanning".to_owned(),
        other => other.to_owned(),
    }
}

#[derive(Default)]
struct PageState {
    created: Option<Reveal>,
    form: Option<NewKeyForm>,
    form_error: Option<String>,
    notice: Option<String>,
    /// A refused action outside the modal (e.g. a rotation at the cap).
    page_error: Option<String>,
}

async fn keys_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    s: PageState,
) -> DashResult<Response> {
    let at = now();
    // Every active key (at most the cap) and the newest revoked or expired ones.
    let mut keys = Vec::new();
    let mut page = PageRequest::new(Some(100), None)?;
    for _ in 0..5 {
        let batch = state
            .store
            .list_keys(&session.org.id, None, None, &page)
            .await?;
        let more = batch.len() > 100;
        keys.extend(batch.into_iter().take(100));
        match (more, keys.last()) {
            (true, Some(last)) => page.before_id = Some(last.id.clone()),
            _ => break,
        }
    }
    for k in &mut keys {
        state.usage.merge_into(k);
    }
    let since = least_privilege::window_start_day(at);
    let mut daily = state
        .store
        .daily_requests_of_org(&session.org.id, since)
        .await?;
    let mut used = state
        .store
        .permission_usage_of_org(&session.org.id, since)
        .await?;
    for k in &keys {
        state
            .usage
            .merge_permissions(&k.id, since, used.entry(k.id.clone()).or_default());
    }
    let users = state.store.list_users(&session.org.id).await?;
    let mut who: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.clone(), u.email.clone()))
        .collect();
    for k in &keys {
        who.entry(k.id.clone())
            .or_insert_with(|| format!("API key “{}”", k.name));
    }
    let ws: HashMap<String, String> = session
        .workspaces
        .iter()
        .map(|w| (w.id.clone(), w.name.clone()))
        .collect();
    let (active, inactive): (Vec<&ApiKey>, Vec<&ApiKey>) =
        keys.iter().partition(|k| k.is_active(at));
    let audit = state
        .store
        .list_audit(&session.org.id, 25)
        .await?
        .into_iter()
        .map(|e| AuditRow {
            at: when(Some(e.at)),
            actor: who
                .get(&e.actor)
                .cloned()
                .unwrap_or_else(|| reporter_label(&e.actor)),
            action: action_label(&e.action),
            detail: e.detail,
            ip: e.ip.unwrap_or_default(),
        })
        .collect();
    let leaks = state
        .store
        .leak_reports(&session.org.id, at - chrono::TimeDelta::days(30))
        .await?
        .into_iter()
        .map(|e| LeakRow {
            at: when(Some(e.at)),
            by: reporter_label(&e.actor),
            detail: e.detail,
        })
        .collect();
    let mut active_rows = Vec::with_capacity(active.len());
    for k in &active {
        let uses = used.get(&k.id).map_or(&[][..], Vec::as_slice);
        let mut r = with_usage(row(k, at, &who, &ws), k, uses);
        r.today = today_text(&state.store.key_consumption(&k.id).await?);
        let mut days = daily.remove(&k.id).unwrap_or_default();
        state.usage.merge_daily(&k.id, since, &mut days);
        r.requests_chart = Some(requests_chart(since, &days));
        active_rows.push(r);
    }
    let cap = state.config.key_cap;
    let open_form = s.form.is_some();
    let page = KeysPage {
        nav: session.nav("keys", "/dashboard/keys"),
        active_count: active.len(),
        at_cap: active.len() >= cap,
        active: active_rows,
        inactive: inactive.iter().map(|k| row(k, at, &who, &ws)).collect(),
        cap,
        cap_pct: (active.len() * 100)
            .checked_div(cap)
            .unwrap_or(100)
            .min(100),
        can_manage: session.can(Action::ManageKeys),
        created: s.created,
        form: s.form.unwrap_or_else(|| NewKeyForm::blank(session)),
        form_error: s.form_error,
        open_form,
        workspaces: session
            .workspaces
            .iter()
            .map(|w| (w.id.clone(), w.name.clone()))
            .collect(),
        audit,
        leaks,
        notice: s.notice,
        page_error: s.page_error,
    };
    Ok(render_status(status, &page))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Notice {
    /// The id of a key just revoked here (shown only if it is this
    /// organization's and revoked: the URL cannot put words on the page).
    revoked: Option<String>,
    /// `?new=1`: the new-key form rendered open (what the button does without
    /// scripts).
    new: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<Notice>,
) -> DashResult<Response> {
    let mut notice = None;
    if let Some(id) = q.revoked
        && let Ok(key) = org_key(&state, &session, &id).await
        && key.revoked_at.is_some()
    {
        notice = Some(format!(
            "The key “{}” is revoked. Requests with it now get 401 Unauthorized.",
            key.name
        ));
    }
    let form =
        (q.new.is_some() && session.can(Action::ManageKeys)).then(|| NewKeyForm::blank(&session));
    keys_page(
        &state,
        &session,
        StatusCode::OK,
        PageState {
            created: None,
            form,
            form_error: None,
            notice,
            page_error: None,
        },
    )
    .await
}

fn reveal(c: &CreatedKey, replaces: Option<String>) -> Reveal {
    Reveal {
        name: c.key.name.clone(),
        secret: c.secret.expose_secret().to_owned(),
        redacted: c.key.masked(),
        read_only: c.key.read_only(),
        test: c.key.mode == Mode::Test,
        replaces,
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageKeys)?;
    let form = NewKeyForm::from_form(&session, &f);
    let result = match form.to_request() {
        Ok(req) => {
            issuer(&state, Some(&session.ip))
                .create(Actor::User(&session.user.id), &session.org.id, req)
                .await
        }
        Err(e) => Err(e),
    };
    let created = match result {
        Ok(c) => c,
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. } | Error::Forbidden { .. })) => {
            let status = crate::error::status_of(&e);
            let message = match &e {
                Error::Validation { details, .. } if !details.is_empty() => details
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            return keys_page(
                &state,
                &session,
                status,
                PageState {
                    created: None,
                    form: Some(form),
                    form_error: Some(message),
                    notice: None,
                    page_error: None,
                },
            )
            .await;
        }
        Err(e) => return Err(DashError(e)),
    };
    tracing::info!(key_id = %created.key.id, by = %session.user.id, "api key created in the dashboard");
    keys_page(
        &state,
        &session,
        StatusCode::OK,
        PageState {
            created: Some(reveal(&created, None)),
            form: None,
            form_error: None,
            notice: None,
            page_error: None,
        },
    )
    .await
}

async fn org_key(state: &AppState, session: &Session, id: &str) -> Result<ApiKey> {
    if !looks_like("key", id) {
        return Err(Error::NotFound {
            resource: "API key",
        });
    }
    state.store.get_key(&session.org.id, id).await
}

/// The revocation asked as a page of its own: what the Revoke button leads to without
/// scripts (with them, the same words in a dialog).
pub(crate) async fn revoke_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageKeys)?;
    let key = org_key(&state, &session, &id).await?;
    if key.revoked_at.is_some() {
        return Ok(see_other(&format!("/dashboard/keys?revoked={}", key.id)));
    }
    Ok(confirm(
        &session,
        "keys",
        &format!("/dashboard/keys/{}/revoke", key.id),
        format!("Revoke “{}”?", key.name),
        format!(
            "Revocation is immediate and permanent. Every application using {} gets \
             401 Unauthorized on its next request. There is no grace period and it cannot \
             be undone.",
            key.masked()
        ),
        "Revoke key",
        "/dashboard/keys",
    ))
}

/// The refusal of a rotation the POST would refuse (the key revoked or expired, an
/// OAuth grant, nothing left to restrict): said on the keys page, as a 409.
async fn not_rotatable(
    state: &AppState,
    session: &Session,
    message: String,
) -> DashResult<Response> {
    keys_page(
        state,
        session,
        StatusCode::CONFLICT,
        PageState {
            page_error: Some(message),
            ..PageState::default()
        },
    )
    .await
}

/// Rotate, Restrict and Set limits without scripts: the dialog's form on a page of
/// its own, for owners and admins (the POST's role check), refused as its POST would
/// refuse it.
async fn key_dialog(
    state: &AppState,
    session: &Session,
    id: &str,
    dialog: KeyDialog,
) -> DashResult<Response> {
    session.authorize(Action::ManageKeys)?;
    let mut key = org_key(state, session, id).await?;
    state.usage.merge_into(&mut key);
    let at = now();
    let ws: HashMap<String, String> = session
        .workspaces
        .iter()
        .map(|w| (w.id.clone(), w.name.clone()))
        .collect();
    let mut k = row(&key, at, &HashMap::new(), &ws);
    if dialog != KeyDialog::Limits {
        // The checks of the rotation itself, before anything is asked.
        if !key.is_active(at) {
            let message = format!(
                "API key {} is {} and cannot be rotated.",
                key.id,
                key.status(at)
            );
            return not_rotatable(state, session, message).await;
        }
        match plan_rotation(Actor::User(&session.user.id), &key, at) {
            Ok(_) => {}
            Err(Error::Conflict { message, .. }) => {
                return not_rotatable(state, session, message).await;
            }
            Err(e) => return Err(DashError(e)),
        }
    }
    let (kind, title, action, button) = match dialog {
        KeyDialog::Rotate => (
            "rotate",
            format!("Rotate “{}”", key.name),
            "rotate",
            "Rotate key",
        ),
        KeyDialog::Restrict => {
            let since = least_privilege::window_start_day(at);
            let mut used = state
                .store
                .permission_usage_of_org(&session.org.id, since)
                .await?
                .remove(&key.id)
                .unwrap_or_default();
            state.usage.merge_permissions(&key.id, since, &mut used);
            k = with_usage(k, &key, &used);
            if k.narrow_to.is_none() {
                let message = format!(
                    "“{}” {}: there is nothing to restrict.",
                    key.name, k.usage_summary
                );
                return not_rotatable(state, session, message).await;
            }
            (
                "restrict",
                format!("Restrict “{}” to what it uses", key.name),
                "rotate",
                "Rotate into a restricted key",
            )
        }
        KeyDialog::Limits => {
            k.today = today_text(&state.store.key_consumption(&key.id).await?);
            (
                "limits",
                format!("Limits of “{}”", key.name),
                "limits",
                "Save limits",
            )
        }
    };
    let here = format!("/dashboard/keys/{}/{}", key.id, kind);
    Ok(render_status(
        StatusCode::OK,
        &KeyDialogPage {
            nav: session.nav("keys", &here),
            k,
            kind,
            title,
            action: format!("/dashboard/keys/{}/{action}", key.id),
            button,
        },
    ))
}

/// `GET /dashboard/keys/{id}/rotate`: what Rotate opens without scripts.
pub(crate) async fn rotate_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    key_dialog(&state, &session, &id, KeyDialog::Rotate).await
}

/// `GET /dashboard/keys/{id}/restrict`: what Restrict opens without scripts (it posts
/// to the rotation with the suggested permissions).
pub(crate) async fn restrict_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    key_dialog(&state, &session, &id, KeyDialog::Restrict).await
}

/// `GET /dashboard/keys/{id}/limits`: what Set limits opens without scripts.
pub(crate) async fn limits_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    key_dialog(&state, &session, &id, KeyDialog::Limits).await
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageKeys)?;
    let key = org_key(&state, &session, &id).await?;
    if key.revoked_at.is_some() {
        // Already revoked (another tab, a resubmitted form): nothing happens twice.
        return Ok(see_other(&format!("/dashboard/keys?revoked={}", key.id)));
    }
    let key = revoke_key(
        &state,
        Actor::User(&session.user.id),
        &key,
        Some(&session.ip),
    )
    .await?;
    tracing::info!(key_id = %key.id, by = %session.user.id, "api key revoked in the dashboard");
    Ok(see_other(&format!("/dashboard/keys?revoked={}", key.id)))
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageKeys)?;
    let old = org_key(&state, &session, &id).await?;
    let old_expires_at = match f.get("old_key_expires").unwrap_or("keep") {
        "now" => Some(now()),
        "1h" => Some(now() + chrono::TimeDelta::hours(1)),
        "24h" => Some(now() + chrono::TimeDelta::hours(24)),
        _ => None,
    };
    // "Restrict to what it uses": the suggestion shown in the key's row, narrowing only.
    let narrow_to: Option<Vec<String>> = f
        .text("permissions")
        .map(|list| list.split(',').map(|p| p.trim().to_owned()).collect());
    let rotated = match &narrow_to {
        None => {
            rotate_key(
                &state,
                Actor::User(&session.user.id),
                &old,
                old_expires_at,
                Some(&session.ip),
            )
            .await
        }
        Some(list) => {
            rotate_key_narrowed(
                &state,
                Actor::User(&session.user.id),
                &old,
                old_expires_at,
                list,
                Some(&session.ip),
            )
            .await
        }
    };
    let created = match rotated {
        Ok(c) => c,
        // A restriction that would widen the key (a stale or edited form).
        Err(e @ Error::Validation { .. }) => {
            let message = match &e {
                Error::Validation { details, .. } if !details.is_empty() => details
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            return keys_page(
                &state,
                &session,
                crate::error::status_of(&e),
                PageState {
                    page_error: Some(message),
                    ..PageState::default()
                },
            )
            .await;
        }
        // At the cap, or the key is no longer active: say so on the keys page.
        Err(Error::Conflict { message, .. }) => {
            return keys_page(
                &state,
                &session,
                StatusCode::CONFLICT,
                PageState {
                    page_error: Some(message),
                    ..PageState::default()
                },
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    let until = match old_expires_at {
        None => "keeps working until revoked".to_owned(),
        Some(t) => format!("stops working at {}", when(Some(t))),
    };
    keys_page(
        &state,
        &session,
        StatusCode::OK,
        PageState {
            created: Some(reveal(
                &created,
                Some(match &narrow_to {
                    None => format!("{} — the old key {until}", old.masked()),
                    Some(_) => format!(
                        "{} — the new key holds only {}; the old key {until}",
                        old.masked(),
                        created.key.permissions.to_csv().replace(',', ", ")
                    ),
                }),
            )),
            form: None,
            form_error: None,
            notice: None,
            page_error: None,
        },
    )
    .await
}

/// The limits form of one key: each number empty for no limit, the countries
/// comma- or space-separated (empty: anywhere).
fn limits_from_form(f: &Form) -> Result<KeyLimits> {
    let mut bad = Vec::new();
    let mut num = |field: &str| -> Option<i64> {
        let v = f.get(field).unwrap_or("").trim();
        if v.is_empty() {
            return None;
        }
        match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                bad.push(field.to_owned());
                Some(-1)
            }
        }
    };
    let limits = KeyLimits {
        max_concurrent_calls: num("max_concurrent_calls"),
        max_call_minutes_per_day: num("max_call_minutes_per_day"),
        max_messages_per_day: num("max_messages_per_day"),
        max_spend_cents_per_day: num("max_spend_cents_per_day"),
        allowed_destination_countries: {
            let text = f.get("allowed_destination_countries").unwrap_or("");
            let codes: Vec<String> = text
                .split([',', ' '])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            (!codes.is_empty()).then_some(codes)
        },
    };
    if let Some(field) = bad.first() {
        return Err(Error::validation(
            format!("limits.{field}"),
            format!("{field} must be a whole number, or empty for no limit"),
        ));
    }
    Ok(limits)
}

/// Sets one key's limits (owners and admins; CSRF-checked; audited by the store).
pub(crate) async fn limits(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageKeys)?;
    let key = org_key(&state, &session, &id).await?;
    let result = match limits_from_form(&f) {
        Ok(l) => {
            let update = KeyUpdate {
                name: None,
                limits: Some(l),
            };
            update_key(
                &state,
                Actor::User(&session.user.id),
                &key,
                update,
                Some(&session.ip),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let (status, s) = match result {
        Ok(k) => (
            StatusCode::OK,
            PageState {
                notice: Some(format!(
                    "Limits of “{}” saved: {}.",
                    k.name,
                    limits_text(&k.limits)
                )),
                ..PageState::default()
            },
        ),
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. })) => {
            let message = match &e {
                Error::Validation { details, .. } if !details.is_empty() => details
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            (
                crate::error::status_of(&e),
                PageState {
                    page_error: Some(message),
                    ..PageState::default()
                },
            )
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(key_id = %key.id, by = %session.user.id, "api key limits set in the dashboard");
    keys_page(&state, &session, status, s).await
}
