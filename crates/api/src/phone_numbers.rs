//! `/v1/phone-numbers`: search the carrier's inventory, buy (charged, idempotent),
//! import a number the carrier account already owns, configure routing, release.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::Error;
use dialtone_domain::Result;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::phone_numbers::{
    AvailableNumber, ImportInput, PhoneNumber, PurchaseInput, RoutingPatch, Search, Wanted,
};
use dialtone_domain::tenancy::Scope;
use dialtone_store::Candidate;
use dialtone_telephony::{Carrier, NumberHooks, NumberSearch, OwnedNumber};

use crate::carrier::carrier_error;
use serde::{Deserialize, Serialize};

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{checked_id, created, idempotency_key};
use crate::state::AppState;

pub(crate) fn number_id(id: &str) -> Result<&str> {
    checked_id("pn", "phone_number", id)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListNumbersQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `active` (default), `released` or `all`.
    #[param(pattern = "^(active|released|all)$")]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailableQuery {
    /// `US` (default), `CA` or `GB`.
    #[param(pattern = "^(US|CA|GB)$")]
    pub country: Option<String>,
    /// `local` (default), `mobile` or `toll_free`.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = "^(local|mobile|toll_free)$")]
    pub number_type: Option<String>,
    pub area_code: Option<String>,
    /// Digits the number must contain (1 to 7), e.g. `2024`.
    pub contains: Option<String>,
    /// 1 to 50, default 10.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailableList {
    pub data: Vec<AvailableNumber>,
}

/// List phone numbers
///
/// Numbers of the workspace and mode; `status` selects `active` (default), `released`
/// or `all`. Cursor-paged.
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
///
/// The inventory of the mode's carrier: Twilio's for live keys when live mode uses
/// Twilio, the simulator's otherwise.
#[utoipa::path(get, path = "/v1/phone-numbers/available", tag = "phone_numbers", params(AvailableQuery),
    responses((status = 200, description = "Numbers the carrier offers", body = AvailableList)))]
pub async fn available(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<AvailableQuery>,
) -> ApiResult<impl IntoResponse> {
    let search = Search::new(
        q.country.as_deref(),
        q.number_type.as_deref(),
        q.area_code.as_deref(),
        q.limit,
    )?;
    let data = search_available(&state, &t.scope, search, q.contains.as_deref()).await?;
    Ok(axum::Json(AvailableList { data }))
}

/// The numbers the mode's carrier offers (`GET /v1/phone-numbers/available`, and the
/// dashboard's search): `contains` is 1 to 7 digits.
pub(crate) async fn search_available(
    state: &AppState,
    scope: &Scope,
    search: Search,
    contains: Option<&str>,
) -> Result<Vec<AvailableNumber>> {
    let contains = match contains.map(str::trim) {
        Some(d) if (1..=7).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => {
            Some(d.to_owned())
        }
        Some(_) => {
            return Err(Error::validation(
                "contains",
                "contains must be 1 to 7 digits",
            ));
        }
        None => None,
    };
    Ok(match real_carrier(state, scope) {
        Some(carrier) => carrier
            .search_numbers(&NumberSearch { search, contains })
            .await
            .map_err(carrier_error)?,
        None => match contains {
            Some(digits) => search.offer_containing(search.limit, &digits),
            None => search.offer(search.limit),
        },
    })
}

/// Live mode's carrier when it is a real one (numbers are then bought there).
fn real_carrier<'a>(state: &'a AppState, scope: &Scope) -> Option<&'a dyn Carrier> {
    if !scope.livemode() {
        return None;
    }
    state
        .carriers
        .live()
        .filter(|c| c.name() != dialtone_store::SIMULATOR)
}

/// 402 before anything is asked of the carrier when the wallet cannot pay `cost`.
async fn can_pay(store: &dialtone_store::Scoped<'_>, cost: i64) -> Result<()> {
    let balance = store.wallet().await?.balance;
    if balance < cost {
        return Err(Error::InsufficientBalance {
            needed: cost,
            balance,
        });
    }
    Ok(())
}

/// A number the carrier now holds for the account, as the store records it.
fn carried(carrier: &dyn Carrier, owned: &OwnedNumber) -> Candidate {
    Candidate {
        number: owned.number.clone(),
        country: owned.country.clone(),
        number_type: owned.number_type,
        carrier: owned.sid.clone().map(|sid| (carrier.name(), sid)),
    }
}

/// Where a number's calls and messages reach dialtone.
fn number_hooks(state: &AppState) -> Result<NumberHooks> {
    let base = crate::carrier::public_url(state)?;
    Ok(NumberHooks {
        voice_url: Some(format!("{base}/carrier/twilio/voice")),
        sms_url: Some(format!("{base}/carrier/twilio/sms")),
        status_callback: Some(format!("{base}/carrier/twilio/status")),
    })
}

/// Buy a phone number
///
/// In live mode the first month is charged to the wallet; a wallet that cannot pay
/// gets 402 `INSUFFICIENT_BALANCE` and nothing is bought. With Twilio as the live
/// carrier the number is bought on the operator's Twilio account, its calls and
/// messages pointed at dialtone. Send `Idempotency-Key` to retry safely: a repeat
/// returns the first answer and is charged once.
#[utoipa::path(post, path = "/v1/phone-numbers", tag = "phone_numbers", request_body = PurchaseInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The number, now yours", body = PhoneNumber),
              (status = 402, description = "The wallet cannot pay (INSUFFICIENT_BALANCE)", body = crate::error::ErrorBody),
              (status = 409, description = "The number is taken, or the key was used for another request", body = crate::error::ErrorBody),
              (status = 502, description = "The carrier refused (CARRIER_ERROR)", body = crate::error::ErrorBody)))]
pub async fn purchase(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<PurchaseInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/phone-numbers", &raw)?;
    created(
        buy(&state, &t.scope, input, idem.as_ref()).await?,
        idem.as_ref(),
    )
}

/// Buys a number as `POST /v1/phone-numbers` does (the dashboard's buy button too):
/// the simulator's inventory in test mode or without a real carrier; otherwise replay,
/// money and the choice first, the carrier buys, the row and the charge follow, and
/// the number is released again if they cannot.
pub(crate) async fn buy(
    state: &AppState,
    scope: &Scope,
    input: PurchaseInput,
    idem: Option<&IdempotencyKey>,
) -> Result<Outcome<PhoneNumber>> {
    let (wanted, routing) = input.checked()?;
    let store = state.store.scoped(scope);
    let Some(carrier) = real_carrier(state, scope) else {
        let candidates: Vec<Candidate> = match wanted {
            Wanted::Number {
                number,
                country,
                number_type,
            } => vec![Candidate {
                number,
                country: country.to_owned(),
                number_type,
                carrier: None,
            }],
            Wanted::Search(search) => search
                .offer(10)
                .into_iter()
                .map(|a| Candidate {
                    number: a.number,
                    country: a.country.to_owned(),
                    number_type: a.number_type,
                    carrier: None,
                })
                .collect(),
        };
        return store.purchase_number(&candidates, &routing, idem).await;
    };
    // A real carrier: replay, money and the choice first; the carrier buys; the row
    // and the charge follow, and the number is released again if they cannot.
    if let Some(key) = idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(Outcome::Replay(stored));
    }
    let wanted = match wanted {
        Wanted::Number {
            number,
            country,
            number_type,
        } => AvailableNumber {
            object: "available_phone_number",
            number,
            country,
            number_type,
            capabilities: dialtone_domain::phone_numbers::Capabilities {
                voice: true,
                sms: number_type.sms(),
            },
            monthly_cost: number_type.monthly_cost(),
            currency: dialtone_domain::billing::CURRENCY,
        },
        Wanted::Search(search) => carrier
            .search_numbers(&NumberSearch {
                search,
                contains: None,
            })
            .await
            .map_err(carrier_error)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Conflict {
                message: "The carrier has no number matching this search.".to_owned(),
                details: None,
            })?,
    };
    can_pay(&store, wanted.monthly_cost).await?;
    let owned = carrier
        .buy_number(&wanted, &number_hooks(state)?)
        .await
        .map_err(carrier_error)?;
    let candidate = carried(carrier, &owned);
    match store.purchase_number(&[candidate], &routing, idem).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            if let Some(sid) = &owned.sid
                && let Err(release) = carrier.release_number(sid).await
            {
                tracing::error!(number_sid = %sid, error = %release, "a number bought at the carrier could not be recorded nor released; release it by hand");
            }
            Err(e)
        }
    }
}

/// Import a phone number
///
/// Adopts a number your live carrier account (Twilio) already owns: its calls and
/// messages are pointed at dialtone, and it is charged as a bought number (the first
/// month now). Live keys only, with a real carrier configured; test mode has no
/// carrier account to import from. Send `Idempotency-Key` to retry safely.
#[utoipa::path(post, path = "/v1/phone-numbers/import", tag = "phone_numbers", request_body = ImportInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The number, now served by dialtone", body = PhoneNumber),
              (status = 400, description = "Not a number, or no carrier account to import from (VALIDATION_ERROR)", body = crate::error::ErrorBody),
              (status = 402, description = "The wallet cannot pay (INSUFFICIENT_BALANCE)", body = crate::error::ErrorBody),
              (status = 409, description = "The number is already in use here, or the key was used for another request", body = crate::error::ErrorBody),
              (status = 502, description = "The carrier refused: e.g. not a number of the account (CARRIER_ERROR)", body = crate::error::ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<ImportInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/phone-numbers/import", &raw)?;
    let store = state.store.scoped(&t.scope);
    if let Some(key) = &idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(crate::shared::replay(stored.replay_for(key)?));
    }
    let (number, routing) = input.checked()?;
    let Some(carrier) = real_carrier(&state, &t.scope) else {
        return Err(Error::validation(
            "phone_number",
            "importing needs a live key and a real carrier (--carrier twilio): there is no carrier account to import from",
        )
        .into());
    };
    let (_, number_type) = dialtone_domain::phone_numbers::classify(&number);
    can_pay(&store, number_type.monthly_cost()).await?;
    let owned = carrier
        .import_number(&number, &number_hooks(&state)?)
        .await
        .map_err(carrier_error)?;
    let candidate = carried(carrier, &owned);
    // The number stays the account's whatever happens here: nothing to undo.
    let outcome = store
        .purchase_number(&[candidate], &routing, idem.as_ref())
        .await?;
    created(outcome, idem.as_ref())
}

/// Retrieve a phone number
///
/// With its routing (`agent_id`, `forward_to`), capabilities and monthly cost.
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
    responses((status = 200, description = "The number", body = PhoneNumber),
              (status = 409, description = "The number was released (CONFLICT)", body = crate::error::ErrorBody)))]
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
    Ok(axum::Json(release_number(&state, &t.scope, &id).await?))
}

/// Releases a number as `DELETE /v1/phone-numbers/{id}` does (the dashboard too): at
/// the real carrier first when it holds it, then the row.
pub(crate) async fn release_number(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<PhoneNumber> {
    let store = state.store.scoped(scope);
    let id = number_id(id)?;
    if let Some(sid) = store.number_carrier_sid(id).await?
        && let Some(carrier) = real_carrier(state, scope)
    {
        carrier.release_number(&sid).await.map_err(carrier_error)?;
    }
    store.release_number(id).await
}
