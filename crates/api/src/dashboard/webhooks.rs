//! Webhooks: the endpoints of the current workspace and mode, their events, recent
//! deliveries with their attempts, redeliver, test ping and secret rotation (the new
//! secret shown once), creating an endpoint (the event picker lists
//! [`EventType::ALL`], the URL passes the API's checks and SSRF guard, the secret is
//! shown once) and enable/disable. Everything goes through the same functions as
//! `/v1/webhooks` ([`crate::webhooks::new_endpoint`], [`crate::webhooks::patch_endpoint`]).
//! Without scripts, Rotate secret asks on a page of its own that posts to the same route.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::Error;
use dialtone_domain::events::EventType;
use dialtone_domain::idempotency::Outcome;
use dialtone_domain::page::PageRequest;
use dialtone_domain::users::Action;
use dialtone_domain::webhooks::{WebhookInput, WebhookPatch};
use dialtone_store::EndpointRow;
use secrecy::ExposeSecret;

use super::pages::ask;
use super::session::{Nav, Session, audit};
use super::{DashError, DashResult, Form, render_status, see_other, when};
use crate::state::AppState;
use crate::webhooks::endpoint_id;

struct EndpointView {
    id: String,
    url: String,
    description: String,
    events: Vec<String>,
    active: bool,
    disabled_reason: String,
    created: String,
}

fn view(e: &EndpointRow) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone().unwrap_or_default(),
        events: e.event_list(),
        active: e.active,
        disabled_reason: e.disabled_reason.clone().unwrap_or_default(),
        created: when(Some(e.created_at)),
    }
}

struct DeliveryView {
    id: String,
    event_type: String,
    event_id: String,
    status: String,
    attempts: usize,
    last_code: String,
    last_error: String,
    created: String,
    next_attempt: String,
}

/// One box of the event picker.
struct EventChoice {
    name: &'static str,
    description: &'static str,
    checked: bool,
}

/// The new-endpoint form as submitted (kept when it comes back with an error).
#[derive(Default)]
struct NewEndpointForm {
    url: String,
    description: String,
    events: Vec<String>,
}

impl NewEndpointForm {
    fn from_form(f: &Form) -> Self {
        NewEndpointForm {
            url: f.get("url").unwrap_or("").trim().to_owned(),
            description: f.get("description").unwrap_or("").trim().to_owned(),
            events: f.all("events"),
        }
    }

    /// The picker: every type of the domain's one list, then `*`.
    fn choices(&self) -> Vec<EventChoice> {
        EventType::ALL
            .iter()
            .map(|e| EventChoice {
                name: e.as_str(),
                description: e.description(),
                checked: self.events.iter().any(|x| x == e.as_str()),
            })
            .collect()
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    workspace: String,
    endpoints: Vec<EndpointView>,
    can_manage: bool,
    form: NewEndpointForm,
    choices: Vec<EventChoice>,
    all_events: bool,
    form_error: Option<String>,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct EndpointPage {
    nav: Nav,
    endpoint: EndpointView,
    deliveries: Vec<DeliveryView>,
    can_manage: bool,
    secret: Option<String>,
    notice: Option<String>,
    /// What rotating the signing secret does (the dialog's words).
    rotate_words: &'static str,
}

pub(crate) async fn page(State(state): State<AppState>, session: Session) -> DashResult<Response> {
    list_page(
        &state,
        &session,
        StatusCode::OK,
        NewEndpointForm::default(),
        None,
    )
    .await
}

async fn list_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    form: NewEndpointForm,
    form_error: Option<String>,
) -> DashResult<Response> {
    let scope = session.scope();
    let page = PageRequest::new(Some(100), None)?;
    let mut endpoints = state
        .store
        .scoped(&scope)
        .list_endpoints("webhook", &page)
        .await?;
    endpoints.truncate(100);
    Ok(render_status(
        status,
        &WebhooksPage {
            nav: session.nav("webhooks", "/dashboard/webhooks"),
            workspace: session.workspace_name().to_owned(),
            endpoints: endpoints.iter().map(view).collect(),
            can_manage: session.can(Action::ManageWebhooks),
            choices: form.choices(),
            all_events: form.events.iter().any(|e| e == "*"),
            form,
            form_error,
        },
    ))
}

/// The words of a refused input, for the form.
fn form_message(e: &Error) -> String {
    match e {
        Error::Validation { details, .. } if !details.is_empty() => details
            .iter()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// `POST /dashboard/webhooks`: a new endpoint, checked and created as
/// `POST /v1/webhooks` does; its page then shows the signing secret once.
pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageWebhooks)?;
    let form = NewEndpointForm::from_form(&f);
    let input = WebhookInput {
        url: form.url.clone(),
        events: form.events.clone(),
        secret: None,
        description: Some(form.description.clone()).filter(|d| !d.is_empty()),
        active: None,
    };
    let (new, secret) = match crate::webhooks::new_endpoint(&state, "webhook", input).await {
        Ok(v) => v,
        Err(e @ (Error::Validation { .. } | Error::Unprocessable { .. })) => {
            let status = crate::error::status_of(&e);
            return list_page(&state, &session, status, form, Some(form_message(&e))).await;
        }
        Err(e) => return Err(DashError(e)),
    };
    let scope = session.scope();
    let row = match state
        .store
        .scoped(&scope)
        .create_endpoint_once(new, None)
        .await?
    {
        Outcome::Done(row) => row,
        Outcome::Replay(_) => {
            return Err(DashError(Error::internal(std::io::Error::other(
                "a replay without an idempotency key",
            ))));
        }
    };
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "webhook.created",
        &row.id,
        &format!(
            "Created endpoint {} for {}",
            row.url,
            row.event_list().join(", ")
        ),
        &session.ip,
    )
    .await;
    endpoint_page(
        &state,
        &session,
        &row.id,
        Some(secret.expose_secret().to_owned()),
        Some(
            "Endpoint created. Events of the chosen types are delivered to it from now on."
                .to_owned(),
        ),
    )
    .await
}

/// `POST /dashboard/webhooks/{id}/active`: enable (`active=1`, the URL checked again
/// as the API does) or disable (`active=0`).
pub(crate) async fn set_active(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageWebhooks)?;
    let active = match f.get("active") {
        Some("1") => true,
        Some("0") => false,
        _ => {
            return Err(DashError(Error::validation(
                "active",
                "active must be 1 (enable) or 0 (disable)",
            )));
        }
    };
    let row = crate::webhooks::patch_endpoint(
        &state,
        &session.scope(),
        &id,
        WebhookPatch {
            url: None,
            events: None,
            description: None,
            active: Some(active),
        },
    )
    .await?;
    let (action, detail) = if active {
        ("webhook.enabled", format!("Enabled endpoint {}", row.url))
    } else {
        ("webhook.disabled", format!("Disabled endpoint {}", row.url))
    };
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        action,
        &row.id,
        &detail,
        &session.ip,
    )
    .await;
    Ok(see_other(&format!("/dashboard/webhooks/{}", row.id)))
}

async fn endpoint_page(
    state: &AppState,
    session: &Session,
    id: &str,
    secret: Option<String>,
    notice: Option<String>,
) -> DashResult<Response> {
    let scope = session.scope();
    let scoped = state.store.scoped(&scope);
    let endpoint = scoped.get_endpoint(endpoint_id(id)?).await?;
    let page = PageRequest::new(Some(25), None)?;
    let mut deliveries = scoped.list_deliveries(&endpoint.id, &page).await?;
    deliveries.truncate(25);
    let here = format!("/dashboard/webhooks/{}", endpoint.id);
    Ok(render_status(
        StatusCode::OK,
        &EndpointPage {
            nav: session.nav("webhooks", &here),
            endpoint: view(&endpoint),
            deliveries: deliveries
                .into_iter()
                .map(|d| {
                    let last = d.attempts.last();
                    DeliveryView {
                        id: d.id,
                        event_type: d.event_type,
                        event_id: d.event_id,
                        attempts: d.attempts.len(),
                        last_code: last
                            .and_then(|a| a.status_code)
                            .map_or_else(|| "—".to_owned(), |c| c.to_string()),
                        last_error: last.and_then(|a| a.error.clone()).unwrap_or_default(),
                        next_attempt: if d.status == "pending" {
                            when(Some(d.next_attempt_at))
                        } else {
                            String::new()
                        },
                        status: d.status,
                        created: when(Some(d.created_at)),
                    }
                })
                .collect(),
            can_manage: session.can(Action::ManageWebhooks),
            secret,
            notice,
            rotate_words: ROTATE_SECRET_WORDS,
        },
    ))
}

pub(crate) async fn endpoint(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    endpoint_page(&state, &session, &id, None, None).await
}

pub(crate) async fn test(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageWebhooks)?;
    let scope = session.scope();
    let event = state
        .store
        .scoped(&scope)
        .test_endpoint(endpoint_id(&id)?)
        .await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "webhook.tested",
        &id,
        &format!("Sent test event {event}"),
        &session.ip,
    )
    .await;
    Ok(see_other(&format!("/dashboard/webhooks/{id}")))
}

pub(crate) async fn redeliver(
    State(state): State<AppState>,
    session: Session,
    Path((id, delivery_id)): Path<(String, String)>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageWebhooks)?;
    let scope = session.scope();
    state
        .store
        .scoped(&scope)
        .redeliver(endpoint_id(&id)?, &delivery_id)
        .await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "webhook.redelivered",
        &id,
        &format!("Queued delivery {delivery_id} again"),
        &session.ip,
    )
    .await;
    Ok(see_other(&format!("/dashboard/webhooks/{id}")))
}

/// `GET /dashboard/webhooks/{id}/rotate-secret`: the rotation asked on a page of its
/// own, what Rotate secret opens without scripts (with them, the same words in a
/// dialog). Owners and admins, as the POST.
pub(crate) async fn rotate_secret_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageWebhooks)?;
    let scope = session.scope();
    let endpoint = state
        .store
        .scoped(&scope)
        .get_endpoint(endpoint_id(&id)?)
        .await?;
    let back = format!("/dashboard/webhooks/{}", endpoint.id);
    Ok(ask(
        &session,
        "webhooks",
        &format!("{back}/rotate-secret"),
        format!("Rotate the signing secret of {}?", endpoint.url),
        ROTATE_SECRET_WORDS.to_owned(),
        "Rotate secret",
        &back,
    ))
}

/// What a rotation of the signing secret does, in its dialog and on its page.
const ROTATE_SECRET_WORDS: &str = "A new secret is generated and shown once. For 24 hours \
     deliveries are signed with both, so your receiver can switch without losing events.";

pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageWebhooks)?;
    let (_, secret, until) =
        crate::webhooks::rotate_endpoint_secret(&state, &session.scope(), &id).await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "webhook.secret_rotated",
        &id,
        "Rotated the signing secret (the old one signs too for 24 hours)",
        &session.ip,
    )
    .await;
    endpoint_page(
        &state,
        &session,
        &id,
        Some(secret.expose_secret().to_owned()),
        Some(format!(
            "New signing secret. The previous one keeps signing too until {}.",
            when(Some(until))
        )),
    )
    .await
}
