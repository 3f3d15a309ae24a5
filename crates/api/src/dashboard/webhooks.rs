//! Webhooks: the endpoints of the current workspace and mode, their events, recent
//! deliveries with their attempts, redeliver, test ping and secret rotation (the new
//! secret shown once). Everything goes through the same store calls as `/v1/webhooks`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::page::PageRequest;
use dialtone_domain::users::Action;
use dialtone_store::EndpointRow;
use secrecy::ExposeSecret;

use super::session::{Nav, Session, audit};
use super::{DashResult, Form, render, render_status, see_other, when};
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

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    workspace: String,
    endpoints: Vec<EndpointView>,
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
}

pub(crate) async fn page(State(state): State<AppState>, session: Session) -> DashResult<Response> {
    let scope = session.scope();
    let page = PageRequest::new(Some(100), None)?;
    let mut endpoints = state
        .store
        .scoped(&scope)
        .list_endpoints("webhook", &page)
        .await?;
    endpoints.truncate(100);
    Ok(render(&WebhooksPage {
        nav: session.nav("webhooks", "/dashboard/webhooks"),
        workspace: session.workspace_name().to_owned(),
        endpoints: endpoints.iter().map(view).collect(),
    }))
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
