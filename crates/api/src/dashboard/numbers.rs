//! Phone numbers of the current workspace and mode: search the carrier's inventory,
//! buy (the monthly price shown before and charged as the API charges it), route to
//! an agent, release (confirmed on a page of its own). Buying, searching and
//! releasing are `/v1/phone-numbers`' own operations
//! ([`crate::phone_numbers::buy`], [`crate::phone_numbers::search_available`],
//! [`crate::phone_numbers::release_number`]); every change is audited.

use super::Query;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::Result;
use dialtone_domain::page::PageRequest;
use dialtone_domain::phone_numbers::{PhoneNumber, PurchaseInput, RoutingPatch, Search};
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Action;
use serde::Deserialize;

use super::pages::{confirm, dollars, done, explain, form_error, render_with};
use super::session::{Nav, Session, audit};
use super::{DashResult, Form, see_other, when};
use crate::phone_numbers::number_id;
use crate::state::AppState;

struct NumberView {
    id: String,
    number: String,
    name: String,
    kind: &'static str,
    country: String,
    agent_id: String,
    agent_name: String,
    forward_to: String,
    price: String,
    status: String,
    created: String,
}

fn view(n: &PhoneNumber, agents: &[(String, String)]) -> NumberView {
    let agent_id = n.agent_id.clone().unwrap_or_default();
    NumberView {
        id: n.id.clone(),
        number: n.number.clone(),
        name: n.name.clone().unwrap_or_default(),
        kind: n.number_type.as_str(),
        country: n.country.clone(),
        agent_name: agents
            .iter()
            .find(|(id, _)| *id == agent_id)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| agent_id.clone()),
        agent_id,
        forward_to: n.forward_to.clone().unwrap_or_default(),
        price: dollars(n.monthly_cost),
        status: n.status.clone(),
        created: when(Some(n.created_at)),
    }
}

struct OfferView {
    number: String,
    country: &'static str,
    kind: &'static str,
    price: String,
    sms: bool,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    country: Option<String>,
    #[serde(rename = "type")]
    number_type: Option<String>,
    area_code: Option<String>,
    contains: Option<String>,
}

#[derive(Template)]
#[template(path = "numbers.html")]
struct NumbersPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    numbers: Vec<NumberView>,
    searched: bool,
    country: String,
    kind: String,
    area_code: String,
    contains: String,
    offers: Vec<OfferView>,
    search_error: Option<String>,
    buy_error: Option<String>,
    can_manage: bool,
}

/// The workspace's agents as (id, name), for the routing picker.
pub(super) async fn agent_names(
    state: &AppState,
    session: &Session,
) -> Result<Vec<(String, String)>> {
    let scope = session.scope();
    let page = PageRequest::new(Some(100), None)?;
    let mut agents = state.store.scoped(&scope).list_agents(&page).await?;
    agents.truncate(100);
    Ok(agents.into_iter().map(|a| (a.id, a.name)).collect())
}

async fn numbers_page(
    state: &AppState,
    session: &Session,
    q: SearchQuery,
    status: StatusCode,
    buy_error: Option<String>,
) -> DashResult<Response> {
    let scope = session.scope();
    let agents = agent_names(state, session).await?;
    let page = PageRequest::new(Some(100), None)?;
    let mut owned = state
        .store
        .scoped(&scope)
        .list_numbers(Some("active"), &page)
        .await?;
    owned.truncate(100);
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (country, kind, area_code, contains) = (
        nonempty(&q.country),
        nonempty(&q.number_type),
        nonempty(&q.area_code),
        nonempty(&q.contains),
    );
    let searched = q.country.is_some() || q.number_type.is_some();
    let (offers, search_error) = if searched {
        let found = match Search::new(
            country.as_deref(),
            kind.as_deref(),
            area_code.as_deref(),
            Some(10),
        ) {
            Ok(search) => {
                crate::phone_numbers::search_available(state, &scope, search, contains.as_deref())
                    .await
            }
            Err(e) => Err(e),
        };
        match found {
            Ok(list) => (
                list.into_iter()
                    .map(|a| OfferView {
                        price: dollars(a.monthly_cost),
                        sms: a.capabilities.sms,
                        number: a.number,
                        country: a.country,
                        kind: a.number_type.as_str(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => {
                let (refused, message) = form_error(e)?;
                (Vec::new(), Some((refused, message)))
            }
        }
    } else {
        (Vec::new(), None)
    };
    // A refused search: said on the page, with the API's status (400 for bad input)
    // unless the page already answers a refusal of its own.
    let (status, search_error) = match search_error {
        Some((refused, message)) if status.is_success() => (refused, Some(message)),
        Some((_, message)) => (status, Some(message)),
        None => (status, None),
    };
    Ok(render_with(
        status,
        &NumbersPage {
            nav: session.nav("numbers", "/dashboard/numbers"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == Mode::Test,
            numbers: owned.iter().map(|n| view(n, &agents)).collect(),
            searched,
            country: country.unwrap_or_else(|| "US".to_owned()),
            kind: kind.unwrap_or_else(|| "local".to_owned()),
            area_code: area_code.unwrap_or_default(),
            contains: contains.unwrap_or_default(),
            offers,
            search_error,
            buy_error,
            can_manage: session.can(Action::ManageNumbers),
        },
    ))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<SearchQuery>,
) -> DashResult<Response> {
    numbers_page(&state, &session, q, StatusCode::OK, None).await
}

pub(crate) async fn buy(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageNumbers)?;
    let text = |k: &str| f.text(k).map(str::to_owned);
    let input = PurchaseInput {
        number: text("number"),
        country: text("country"),
        number_type: text("type"),
        ..PurchaseInput::default()
    };
    let scope = session.scope();
    match crate::phone_numbers::buy(&state, &scope, input, None)
        .await
        .and_then(done)
    {
        Ok(n) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "phone_number.purchased",
                &n.id,
                &format!(
                    "Bought {} ({} a month{})",
                    n.number,
                    dollars(n.monthly_cost),
                    if scope.livemode() { "" } else { ", test mode" }
                ),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/numbers/{}", n.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            let q = SearchQuery {
                country: text("country"),
                number_type: text("type"),
                ..SearchQuery::default()
            };
            numbers_page(&state, &session, q, status, Some(message)).await
        }
    }
}

#[derive(Template)]
#[template(path = "number.html")]
struct NumberPage {
    nav: Nav,
    number: NumberView,
    agents: Vec<(String, String)>,
    form_error: Option<String>,
    can_manage: bool,
}

async fn number_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    form_error: Option<String>,
) -> DashResult<Response> {
    let scope = session.scope();
    let n = state
        .store
        .scoped(&scope)
        .get_number(number_id(id)?)
        .await?;
    let agents = agent_names(state, session).await?;
    Ok(render_with(
        status,
        &NumberPage {
            nav: session.nav("numbers", &format!("/dashboard/numbers/{}", n.id)),
            number: view(&n, &agents),
            agents,
            form_error,
            can_manage: session.can(Action::ManageNumbers) && n.status == "active",
        },
    ))
}

pub(crate) async fn number(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    number_page(&state, &session, &id, StatusCode::OK, None).await
}

/// Name and routing, as `PATCH /v1/phone-numbers/{id}` with every field given.
pub(crate) async fn route(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageNumbers)?;
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let current = store.get_number(number_id(&id)?).await?;
    let text = |k: &str| f.text(k).map(str::to_owned);
    let patch = RoutingPatch {
        name: Some(text("name")),
        agent_id: Some(text("agent_id")),
        forward_to: Some(text("forward_to")),
    };
    let updated = match patch.apply(&current) {
        Ok(routing) => store.update_routing(&current.id, &routing).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(n) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "phone_number.routed",
                &n.id,
                &format!(
                    "Routed {} to {}",
                    n.number,
                    n.agent_id.as_deref().unwrap_or("no agent")
                ),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/numbers/{}", n.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            number_page(&state, &session, &id, status, Some(message)).await
        }
    }
}

pub(crate) async fn release_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageNumbers)?;
    let scope = session.scope();
    let n = state
        .store
        .scoped(&scope)
        .get_number(number_id(&id)?)
        .await?;
    Ok(confirm(
        &session,
        "numbers",
        &format!("/dashboard/numbers/{}/release", n.id),
        format!("Release {}?", n.number),
        "The number stops being yours at once: calls and messages to it no longer reach you, \
         and the month paid is not refunded."
            .to_owned(),
        "Release number",
        &format!("/dashboard/numbers/{}", n.id),
    ))
}

pub(crate) async fn release(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageNumbers)?;
    let scope = session.scope();
    match crate::phone_numbers::release_number(&state, &scope, &id).await {
        Ok(n) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "phone_number.released",
                &n.id,
                &format!("Released {}", n.number),
                &session.ip,
            )
            .await;
            Ok(see_other("/dashboard/numbers"))
        }
        Err(e @ dialtone_domain::Error::Conflict { .. }) => {
            number_page(
                &state,
                &session,
                &id,
                crate::error::status_of(&e),
                Some(explain(&e)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
