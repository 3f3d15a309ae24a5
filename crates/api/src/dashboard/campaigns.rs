//! Campaigns of the current workspace and mode, newest first and paged by an
//! "older" link: start one from a CSV upload (a `multipart/form-data` form; the file
//! read by the domain's [`RecipientsCsv`](dialtone_domain::campaigns::RecipientsCsv),
//! its column of numbers and first rows shown on a preview page before anything is
//! created), follow its progress (a small fragment htmx polls; a refresh link without
//! scripts), pause, resume, cancel (confirmed on a page of its own) and list its calls.
//! Creation is `POST /v1/campaigns`' own [`crate::campaigns::start_campaign`], status
//! changes the store's `set_campaign_status`; every change is audited.

use super::Query;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use dialtone_domain::calls::TEST_FROM_NUMBER;
use dialtone_domain::campaigns::{Campaign, CreateCampaign, RecipientsCsv};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Action;
use dialtone_domain::{Error, Result};
use dialtone_store::CallFilter;
use serde::Deserialize;

use super::numbers::agent_names;
use super::pages::{PAGE, confirm, done, explain, form_error, older_link, render_with};
use super::session::{Nav, Session, audit};
use super::{DashResult, Form, render, see_other, when};
use crate::campaigns::{campaign_id, start_campaign};
use crate::state::AppState;

/// Rows of the file shown on the preview page.
const PREVIEW_ROWS: usize = 10;

struct CampaignView {
    id: String,
    name: String,
    agent_id: String,
    agent_name: String,
    from: String,
    status: String,
    status_reason: String,
    total: i64,
    pending: i64,
    in_progress: i64,
    completed: i64,
    failed: i64,
    done: i64,
    percent: i64,
    /// Still moving: the progress fragment keeps polling.
    live: bool,
    can_pause: bool,
    can_resume: bool,
    can_cancel: bool,
    created: String,
}

fn view(c: &Campaign, agents: &[(String, String)]) -> CampaignView {
    let p = c.progress;
    let done = p.completed + p.failed;
    CampaignView {
        id: c.id.clone(),
        name: c.name.clone(),
        agent_id: c.agent_id.clone(),
        agent_name: agents
            .iter()
            .find(|(id, _)| *id == c.agent_id)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| c.agent_id.clone()),
        from: c.from.clone(),
        status: c.status.clone(),
        status_reason: c.status_reason.clone().unwrap_or_default(),
        total: p.total,
        pending: p.pending,
        in_progress: p.in_progress,
        completed: p.completed,
        failed: p.failed,
        done,
        percent: if p.total > 0 {
            (done * 100 / p.total).clamp(0, 100)
        } else {
            0
        },
        live: matches!(c.status.as_str(), "running" | "paused"),
        can_pause: c.status == "running",
        can_resume: c.status == "paused",
        can_cancel: matches!(c.status.as_str(), "running" | "paused"),
        created: when(Some(c.created_at)),
    }
}

/// The numbers a campaign may call from: the test number in test mode, then the
/// workspace's active numbers.
async fn from_numbers(state: &AppState, session: &Session) -> Result<Vec<String>> {
    let page = PageRequest::new(Some(100), None)?;
    let mut owned = state
        .store
        .scoped(&session.scope())
        .list_numbers(Some("active"), &page)
        .await?;
    owned.truncate(100);
    let mut numbers: Vec<String> = Vec::new();
    if session.mode == Mode::Test {
        numbers.push(TEST_FROM_NUMBER.to_owned());
    }
    numbers.extend(owned.into_iter().map(|n| n.number));
    Ok(numbers)
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    campaigns: Vec<CampaignView>,
    /// The link to the next, older page.
    next: Option<String>,
    /// Showing an older page: a link back to the newest.
    paged: bool,
    /// A bad cursor, explained.
    error: Option<String>,
    agents: Vec<(String, String)>,
    numbers: Vec<String>,
    name: String,
    agent_id: String,
    from: String,
    form_error: Option<String>,
    can_manage: bool,
}

struct Draft {
    name: String,
    agent_id: String,
    from: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    cursor: Option<String>,
}

async fn campaigns_page(
    state: &AppState,
    session: &Session,
    cursor: Option<&str>,
    status: StatusCode,
    draft: Draft,
    form_error: Option<String>,
) -> DashResult<Response> {
    let agents = agent_names(state, session).await?;
    let (campaigns, next, error, status) = match PageRequest::new(Some(PAGE), cursor) {
        Ok(page) => {
            let mut rows = state
                .store
                .scoped(&session.scope())
                .list_campaigns(&page)
                .await?;
            let more = rows.len() > PAGE as usize;
            rows.truncate(PAGE as usize);
            let next = older_link(
                "/dashboard/campaigns",
                &[],
                more,
                rows.last().map(|c| c.id.as_str()),
            );
            (
                rows.iter().map(|c| view(c, &agents)).collect(),
                next,
                None,
                status,
            )
        }
        // A cursor that is not one the page gave: said on the page, as a 400.
        Err(e) => (Vec::new(), None, Some(explain(&e)), StatusCode::BAD_REQUEST),
    };
    Ok(render_with(
        status,
        &CampaignsPage {
            nav: session.nav("campaigns", "/dashboard/campaigns"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == Mode::Test,
            campaigns,
            next,
            paged: cursor.is_some_and(|c| !c.is_empty()),
            error,
            numbers: from_numbers(state, session).await?,
            agents,
            name: draft.name,
            agent_id: draft.agent_id,
            from: draft.from,
            form_error,
            can_manage: session.can(Action::ManageCampaigns),
        },
    ))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let draft = Draft {
        name: String::new(),
        agent_id: String::new(),
        from: String::new(),
    };
    campaigns_page(
        &state,
        &session,
        q.cursor.as_deref(),
        StatusCode::OK,
        draft,
        None,
    )
    .await
}

/// The fields of a `multipart/form-data` body (read by `multer`), text and files
/// alike (a file's content must be UTF-8: the flag says one was not, and it is left
/// out). NUL characters are dropped, as [`Form::parse`] does.
async fn multipart(headers: &HeaderMap, body: Bytes) -> Result<(Form, bool)> {
    const MAX_FIELDS: usize = 20;
    let not_a_form = || {
        Error::validation(
            "recipients_csv",
            "Send the form as multipart/form-data with the CSV file attached.",
        )
    };
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(not_a_form)?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(body.len() as u64));
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut fields = Vec::new();
    let mut not_utf8 = false;
    while let Some(field) = parts.next_field().await.map_err(|_| not_a_form())? {
        if fields.len() >= MAX_FIELDS {
            return Err(not_a_form());
        }
        let name = field.name().ok_or_else(not_a_form)?.replace('\0', "");
        let value = field.bytes().await.map_err(|_| not_a_form())?;
        match std::str::from_utf8(&value) {
            Ok(value) => fields.push((name, value.replace('\0', ""))),
            Err(_) => not_utf8 = true,
        }
    }
    Ok((Form(fields), not_utf8))
}

/// The campaign a submitted form describes.
fn input(f: &Form) -> CreateCampaign {
    CreateCampaign {
        name: f.get("name").unwrap_or_default().to_owned(),
        agent_id: f.text("agent_id").unwrap_or_default().to_owned(),
        recipients: None,
        recipients_csv: Some(f.get("recipients_csv").unwrap_or_default().to_owned()),
        from: f.text("from").map(str::to_owned),
    }
}

fn draft(f: &Form) -> Draft {
    Draft {
        name: f.get("name").unwrap_or_default().to_owned(),
        agent_id: f.text("agent_id").unwrap_or_default().to_owned(),
        from: f.text("from").unwrap_or_default().to_owned(),
    }
}

struct ColumnView {
    name: String,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "campaign_preview.html")]
struct PreviewPage {
    nav: Nav,
    name: String,
    agent_id: String,
    agent_name: String,
    from: String,
    csv: String,
    delimiter: &'static str,
    columns: Vec<ColumnView>,
    column: usize,
    count: usize,
    rows: Vec<(String, String)>,
}

/// The preview: the file read as the campaign will read it, the column of numbers
/// and the first rows; nothing is created until the confirm form is sent.
pub(crate) async fn preview(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> DashResult<Response> {
    let (f, not_utf8) = match multipart(&headers, body).await {
        Ok(v) => v,
        Err(e) => {
            // Without the fields the CSRF token cannot be read: refuse like a bad token.
            session.check_csrf(&Form::default())?;
            return Err(e.into());
        }
    };
    session.check_csrf(&f)?;
    session.authorize(Action::ManageCampaigns)?;
    let input = input(&f);
    let checked = async {
        if not_utf8 {
            return Err(Error::validation(
                "recipients_csv",
                "The file is not UTF-8 text: save it as \"CSV UTF-8\" and upload it again.",
            ));
        }
        input.checked()?;
        let agents = agent_names(&state, &session).await?;
        let agent_name = agents
            .iter()
            .find(|(id, _)| *id == input.agent_id)
            .map(|(_, name)| name.clone())
            .ok_or_else(|| Error::validation("agent_id", "Choose one of your agents."))?;
        let scope = session.scope();
        let store = state.store.scoped(&scope);
        let (_, from) =
            crate::calls::resolve_from(&store, scope.livemode(), input.from.as_deref()).await?;
        let file = RecipientsCsv::read(input.recipients_csv.as_deref().unwrap_or_default())
            .map_err(|d| Error::Validation {
                message: d.message.clone(),
                details: vec![d],
            })?;
        Ok::<_, Error>((agent_name, from, file))
    }
    .await;
    let (agent_name, from, file) = match checked {
        Ok(v) => v,
        Err(e) => {
            let (status, message) = form_error(e)?;
            return campaigns_page(&state, &session, None, status, draft(&f), Some(message)).await;
        }
    };
    let columns = match &file.headers {
        Some(h) => h
            .iter()
            .enumerate()
            .map(|(i, name)| ColumnView {
                name: name.clone(),
                chosen: i == file.column,
            })
            .collect(),
        None => Vec::new(),
    };
    let recipients = input.checked().map(|(_, r)| r.len()).unwrap_or_default();
    Ok(render(&PreviewPage {
        nav: session.nav("campaigns", "/dashboard/campaigns"),
        name: input.name.trim().to_owned(),
        agent_id: input.agent_id.clone(),
        agent_name,
        from,
        csv: input.recipients_csv.clone().unwrap_or_default(),
        delimiter: match file.delimiter {
            b';' => "semicolon (;)",
            b'\t' => "tab",
            _ => "comma (,)",
        },
        columns,
        column: file.column + 1,
        count: recipients,
        rows: file.numbers.into_iter().take(PREVIEW_ROWS).collect(),
    }))
}

/// The confirm form of the preview: creates the campaign, running.
pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageCampaigns)?;
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    match start_campaign(&store, scope.livemode(), None, &input(&f), None)
        .await
        .and_then(done)
    {
        Ok(c) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "campaign.created",
                &c.id,
                &format!(
                    "Started campaign {} ({} recipients{})",
                    c.name,
                    c.progress.total,
                    if scope.livemode() { "" } else { ", test mode" }
                ),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/campaigns/{}", c.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            campaigns_page(&state, &session, None, status, draft(&f), Some(message)).await
        }
    }
}

struct CallRow {
    id: String,
    to: String,
    status: &'static str,
    duration: String,
    created: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    nav: Nav,
    c: CampaignView,
    calls: Vec<CallRow>,
    form_error: Option<String>,
    can_manage: bool,
}

#[derive(Template)]
#[template(path = "campaign_progress.html")]
struct ProgressFragment {
    nav: Nav,
    c: CampaignView,
    can_manage: bool,
}

async fn load(state: &AppState, session: &Session, id: &str) -> DashResult<CampaignView> {
    let c = state
        .store
        .scoped(&session.scope())
        .get_campaign(campaign_id(id)?)
        .await?;
    let agents = agent_names(state, session).await?;
    Ok(view(&c, &agents))
}

async fn campaign_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    form_error: Option<String>,
) -> DashResult<Response> {
    let c = load(state, session, id).await?;
    let filter = CallFilter {
        campaign_id: Some(c.id.clone()),
        ..CallFilter::default()
    };
    let page = PageRequest::new(Some(50), None)?;
    let mut calls = state
        .store
        .scoped(&session.scope())
        .list_calls(&filter, &page)
        .await?;
    calls.truncate(50);
    Ok(render_with(
        status,
        &CampaignPage {
            nav: session.nav("campaigns", &format!("/dashboard/campaigns/{}", c.id)),
            calls: calls
                .iter()
                .map(|k| CallRow {
                    id: k.id.clone(),
                    to: k.to.clone(),
                    status: k.status.as_str(),
                    duration: format!("{}:{:02}", k.duration_seconds / 60, k.duration_seconds % 60),
                    created: when(Some(k.created_at)),
                })
                .collect(),
            c,
            form_error,
            can_manage: session.can(Action::ManageCampaigns),
        },
    ))
}

pub(crate) async fn campaign(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    campaign_page(&state, &session, &id, StatusCode::OK, None).await
}

/// The progress fragment htmx polls every two seconds while the campaign moves.
pub(crate) async fn progress(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    let c = load(&state, &session, &id).await?;
    Ok(render(&ProgressFragment {
        nav: session.nav("campaigns", &format!("/dashboard/campaigns/{}", c.id)),
        c,
        can_manage: session.can(Action::ManageCampaigns),
    }))
}

async fn change_status(
    state: &AppState,
    session: &Session,
    id: &str,
    to: &str,
) -> DashResult<Response> {
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let changed = match campaign_id(id) {
        Ok(id) => store.set_campaign_status(id, to).await,
        Err(e) => Err(e),
    };
    match changed {
        Ok(c) => {
            let (action, verb) = match to {
                "paused" => ("campaign.paused", "Paused"),
                "running" => ("campaign.resumed", "Resumed"),
                _ => ("campaign.canceled", "Canceled"),
            };
            audit(
                state,
                &session.org.id,
                &session.user.id,
                action,
                &c.id,
                &format!("{verb} campaign {}", c.name),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/campaigns/{}", c.id)))
        }
        Err(e @ (Error::Conflict { .. } | Error::Validation { .. })) => {
            campaign_page(
                state,
                session,
                id,
                crate::error::status_of(&e),
                Some(explain(&e)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Pause (`status=paused`) or resume (`status=running`).
pub(crate) async fn set_status(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageCampaigns)?;
    let to = match f.text("status") {
        Some(s @ ("paused" | "running")) => s.to_owned(),
        _ => {
            let e = Error::validation("status", "Choose pause or resume.");
            return campaign_page(
                &state,
                &session,
                &id,
                crate::error::status_of(&e),
                Some(explain(&e)),
            )
            .await;
        }
    };
    change_status(&state, &session, &id, &to).await
}

pub(crate) async fn cancel_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageCampaigns)?;
    let c = load(&state, &session, &id).await?;
    Ok(confirm(
        &session,
        "campaigns",
        &format!("/dashboard/campaigns/{}/cancel", c.id),
        format!("Cancel campaign {}?", c.name),
        format!(
            "No more calls are placed ({} recipients not called yet); calls in progress finish. \
             A canceled campaign cannot be resumed.",
            c.pending
        ),
        "Cancel campaign",
        &format!("/dashboard/campaigns/{}", c.id),
    ))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageCampaigns)?;
    change_status(&state, &session, &id, "canceled").await
}
