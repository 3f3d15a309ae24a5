//! `/v1/agents`: voice agents.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dialtone_domain::Result;
use dialtone_domain::agents::{Agent, AgentInput, AgentPatch};
use dialtone_domain::page::{Page, PageRequest};

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, Query};
use crate::shared::{Deleted, PageQuery, checked_id};
use crate::state::AppState;

fn agent_id(id: &str) -> Result<&str> {
    checked_id("agt", "agent", id)
}

/// List agents
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
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentInput,
    responses((status = 201, description = "The new agent", body = Agent)))]
pub async fn create(
    State(state): State<AppState>,
    t: Tenant,
    Json(input): Json<AgentInput>,
) -> ApiResult<impl IntoResponse> {
    let fields = input.into_fields()?;
    let agent = state.store.scoped(&t.scope).create_agent(fields).await?;
    Ok((StatusCode::CREATED, axum::Json(agent)))
}

/// Retrieve an agent
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
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "agt_…")),
    responses((status = 200, description = "Deleted", body = Deleted)))]
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
