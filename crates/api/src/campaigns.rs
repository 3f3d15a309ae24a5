//! `/v1/campaigns`, and the runner that calls each campaign's recipients through the
//! same path as `POST /v1/calls` (simulator, charges, events).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Result;
use dialtone_domain::calls::Call;
use dialtone_domain::campaigns::{Campaign, CreateCampaign, UpdateCampaign};
use dialtone_domain::page::{Page, PageRequest};
use dialtone_store::CallFilter;

use crate::auth::Tenant;
use crate::calls::resolve_from;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{PageQuery, checked_id, created, idempotency_key, replay};
use crate::state::AppState;

pub(crate) fn campaign_id(id: &str) -> Result<&str> {
    checked_id("cmp", "campaign", id)
}

/// Create a campaign
///
/// An agent calls every recipient (a JSON list or CSV), two calls at a time. The
/// campaign starts `running`; progress counts are on the object.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CreateCampaign,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The campaign, running", body = Campaign),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<CreateCampaign>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/campaigns", &raw)?;
    let store = state.store.scoped(&t.scope);
    if let Some(key) = &idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(replay(stored.replay_for(key)?));
    }
    created(
        start_campaign(
            &store,
            t.scope.livemode(),
            Some(&t.principal.key_id),
            &input,
            idem.as_ref(),
        )
        .await?,
        idem.as_ref(),
    )
}

/// Checks a new campaign (name, agent, recipients from a list or CSV, the number to
/// call from) and creates it running: what `POST /v1/campaigns` and the dashboard's
/// form both do. `key_id` is the key creating it, whose limits its calls obey (none
/// for a dashboard user).
pub(crate) async fn start_campaign(
    store: &dialtone_store::Scoped<'_>,
    live: bool,
    key_id: Option<&str>,
    input: &CreateCampaign,
    idem: Option<&dialtone_domain::idempotency::IdempotencyKey>,
) -> Result<dialtone_domain::idempotency::Outcome<Campaign>> {
    let (name, recipients) = input.checked()?;
    let from = resolve_from(store, live, input.from.as_deref()).await?;
    store
        .create_campaign(key_id, &name, &input.agent_id, from, &recipients, idem)
        .await
}

/// List campaigns
///
/// Newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", params(PageQuery),
    responses((status = 200, description = "Campaigns, newest first", body = Page<Campaign>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state.store.scoped(&t.scope).list_campaigns(&page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |c| &c.id)))
}

/// Retrieve a campaign
///
/// With its progress: recipients, calls placed, completed and failed.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path, description = "cmp_…")),
    responses((status = 200, description = "The campaign, with progress", body = Campaign)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .get_campaign(campaign_id(&id)?)
            .await?,
    ))
}

/// Pause, resume or cancel a campaign
///
/// `status`: `paused` stops placing new calls (calls in progress finish), `running`
/// resumes, `canceled` ends the campaign for good. A finished or canceled campaign
/// answers 409.
#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path, description = "cmp_…")),
    request_body = UpdateCampaign,
    responses((status = 200, description = "The campaign", body = Campaign),
              (status = 409, description = "Not allowed from the current status", body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Json(input): Json<UpdateCampaign>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .set_campaign_status(campaign_id(&id)?, &input.status)
            .await?,
    ))
}

/// List a campaign's calls
///
/// The calls the campaign placed, newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/campaigns/{id}/calls", tag = "campaigns",
    params(("id" = String, Path, description = "cmp_…"), PageQuery),
    responses((status = 200, description = "Calls, newest first", body = Page<Call>)))]
pub async fn calls(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let store = state.store.scoped(&t.scope);
    store.get_campaign(campaign_id(&id)?).await?;
    let filter = CallFilter {
        campaign_id: Some(id),
        ..CallFilter::default()
    };
    let rows = store.list_calls(&filter, &page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |c| &c.id)))
}
