//! `/v1/phone-numbers`: search the carrier's inventory, buy (charged, idempotent),
//! configure routing, release.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Error;
use dialtone_domain::Result;
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::phone_numbers::{
    AvailableNumber, PhoneNumber, PurchaseInput, RoutingPatch, Search, Wanted,
};
use dialtone_store::Candidate;
use serde::{Deserialize, Serialize};

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{checked_id, created, idempotency_key};
use crate::state::AppState;

fn number_id(id: &str) -> Result<&str> {
    checked_id("pn", "phone_number", id)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListNumbersQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `active` (default), `released` or `all`.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailableQuery {
    /// `US` (default), `CA` or `GB`.
    pub country: Option<String>,
    /// `local` (default), `mobile` or `toll_free`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub number_type: Option<String>,
    pub area_code: Option<String>,
    /// 1 to 50, default 10.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailableList {
    pub data: Vec<AvailableNumber>,
}

/// List phone numbers
#[utoipa::path(get, path = "/v1/phone-numbers", tag = "phone_numbers", params(ListNumbersQuery),
    responses((status = 200, description = "Numbers, newest first", body = Page<PhoneNumber>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListNumbersQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let status = match q.status.as_deref() {
        None | Some("active") => Some("active"),
        Some("released") => Some("released"),
        Some("all") => None,
        Some(_) => {
            return Err(
                Error::validation("status", "status must be active, released or all").into(),
            );
        }
    };
    let rows = state
        .store
        .scoped(&t.scope)
        .list_numbers(status, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |n| &n.id)))
}

/// Search numbers to buy
#[utoipa::path(get, path = "/v1/phone-numbers/available", tag = "phone_numbers", params(AvailableQuery),
    responses((status = 200, description = "Numbers the carrier offers", body = AvailableList)))]
pub async fn available(Query(q): Query<AvailableQuery>) -> ApiResult<impl IntoResponse> {
    let search = Search::new(
        q.country.as_deref(),
        q.number_type.as_deref(),
        q.area_code.as_deref(),
        q.limit,
    )?;
    Ok(axum::Json(AvailableList {
        data: search.offer(search.limit),
    }))
}

/// Buy a phone number
///
/// In live mode the first month is charged to the wallet; a wallet that cannot pay
/// gets 402 `INSUFFICIENT_BALANCE` and nothing is bought. Send `Idempotency-Key` to
/// retry safely: a repeat returns the first answer and is charged once.
#[utoipa::path(post, path = "/v1/phone-numbers", tag = "phone_numbers", request_body = PurchaseInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The number, now yours", body = PhoneNumber),
              (status = 402, description = "The wallet cannot pay (INSUFFICIENT_BALANCE)", body = crate::error::ErrorBody),
              (status = 409, description = "The number is taken, or the key was used for another request", body = crate::error::ErrorBody)))]
pub async fn purchase(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<PurchaseInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/phone-numbers", &raw)?;
    let (wanted, routing) = input.checked()?;
    let candidates: Vec<Candidate> = match wanted {
        Wanted::Number {
            number,
            country,
            number_type,
        } => vec![Candidate {
            number,
            country: country.to_owned(),
            number_type,
        }],
        Wanted::Search(search) => search
            .offer(10)
            .into_iter()
            .map(|a| Candidate {
                number: a.number,
                country: a.country.to_owned(),
                number_type: a.number_type,
            })
            .collect(),
    };
    let outcome = state
        .store
        .scoped(&t.scope)
        .purchase_number(&candidates, &routing, idem.as_ref())
        .await?;
    created(outcome, idem.as_ref())
}

/// Retrieve a phone number
#[utoipa::path(get, path = "/v1/phone-numbers/{id}", tag = "phone_numbers",
    params(("id" = String, Path, description = "pn_…")),
    responses((status = 200, description = "The number", body = PhoneNumber)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .get_number(number_id(&id)?)
            .await?,
    ))
}

/// Configure a phone number
///
/// Name and routing: the agent that answers inbound calls, and a number to forward
/// to. `null` clears a field.
#[utoipa::path(patch, path = "/v1/phone-numbers/{id}", tag = "phone_numbers",
    params(("id" = String, Path, description = "pn_…")), request_body = RoutingPatch,
    responses((status = 200, description = "The number", body = PhoneNumber)))]
pub async fn configure(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Json(patch): Json<RoutingPatch>,
) -> ApiResult<impl IntoResponse> {
    let store = state.store.scoped(&t.scope);
    let current = store.get_number(number_id(&id)?).await?;
    let routing = patch.apply(&current)?;
    Ok(axum::Json(store.update_routing(&id, &routing).await?))
}

/// Release a phone number
///
/// The number stops being yours at once; the month paid is not refunded.
#[utoipa::path(delete, path = "/v1/phone-numbers/{id}", tag = "phone_numbers",
    params(("id" = String, Path, description = "pn_…")),
    responses((status = 200, description = "The released number", body = PhoneNumber)))]
pub async fn release(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .release_number(number_id(&id)?)
            .await?,
    ))
}
