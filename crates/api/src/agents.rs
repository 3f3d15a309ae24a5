//! `/v1/agents`: voice agents.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Result;
use dialtone_domain::agents::{Agent, AgentInput, AgentPatch};
use dialtone_domain::page::{Page, PageRequest};

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{
    Deleted, PageQuery, checked_id, created, idempotency_key, same_answer, stored_json,
};
use crate::state::AppState;

fn agent_id(id: &str) -> Result<&str> {
    checked_id("agt", "agent", id)
}

/// List agents
///
/// Agents of the workspace and mode, newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(PageQuery),
    responses((status = 200, description = "Agents, newest first", body = Page<Agent>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state.store.scoped(&t.scope).list_agents(&page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |a| &a.id)))
}

/// Create an agent
///
/// Takes an `Idempotency-Key`: a retry with the same key and body answers the first
/// request's agent again (`Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The new agent", body = Agent),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<AgentInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/agents", &raw)?;
    let fields = input.into_fields()?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .create_agent_once(fields, same_answer(idem.as_ref(), |a| stored_json(201, a)))
        .await?;
    created(outcome, idem.as_ref())
}

/// Retrieve an agent
///
/// Its prompt, voice, language, greeting and `stream_url`.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "agt_…")),
    responses((status = 200, description = "The agent", body = Agent)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .get_agent(agent_id(&id)?)
            .await?,
    ))
}

/// Update an agent
///
/// Fields left out stay as they are; `null` clears a field (voice and language go
/// back to their defaults).
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "agt_…")), request_body = AgentPatch,
    responses((status = 200, description = "The updated agent", body = Agent)))]
pub async fn update(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Json(patch): Json<AgentPatch>,
) -> ApiResult<impl IntoResponse> {
    let store = state.store.scoped(&t.scope);
    let current = store.get_agent(agent_id(&id)?).await?;
    let fields = patch.apply(&current)?;
    Ok(axum::Json(store.update_agent(&id, fields).await?))
}

/// Delete an agent
///
/// Calls already placed, and completed or canceled campaigns, keep their record of the
/// agent. An agent that an active phone number routes to, or that a running or paused
/// campaign calls with, is not deleted: **409** `CONFLICT` naming them
/// (`details.phone_numbers`, `details.campaigns`). Route the numbers elsewhere
/// (`PATCH /v1/phone-numbers/{id}`) and cancel the campaigns first.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "agt_…")),
    responses((status = 200, description = "Deleted", body = Deleted),
              (status = 409, description = "Still used by active phone numbers or running or paused campaigns (CONFLICT, their ids in `details`)", body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    state
        .store
        .scoped(&t.scope)
        .delete_agent(agent_id(&id)?)
        .await?;
    Ok(axum::Json(Deleted::new(id, "agent")))
}
