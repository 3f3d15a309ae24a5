//! `/v1/billing`: the wallet and monthly invoices.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use dialtone_domain::Error;
use dialtone_domain::billing::{Invoice, Wallet, invoice_month};

use dialtone_domain::page::Page;

use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::state::AppState;

/// Retrieve the wallet
///
/// The balance (in cents) that live calls, messages and numbers are paid from. Test
/// keys see the test wallet, which nothing charges.
#[utoipa::path(get, path = "/v1/billing/wallet", tag = "billing",
    responses((status = 200, description = "The wallet", body = Wallet)))]
pub async fn wallet(State(state): State<AppState>, t: Tenant) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(state.store.scoped(&t.scope).wallet().await?))
}

/// List invoices
///
/// One per month with charges, newest first: calls, messages and numbers, summed
/// from the wallet's ledger. The current month is `open`. A workspace key sees its
/// workspace's usage only; organization-wide totals need an organization key.
#[utoipa::path(get, path = "/v1/billing/invoices", tag = "billing",
    responses((status = 200, description = "Invoices, newest first (one page: every month)", body = Page<Invoice>)))]
pub async fn invoices(State(state): State<AppState>, t: Tenant) -> ApiResult<impl IntoResponse> {
    let data = state
        .store
        .scoped(&t.scope)
        .invoices(whole_organization(&t))
        .await?;
    Ok(axum::Json(
        serde_json::json!({ "data": data, "meta": { "next_cursor": null, "has_more": false } }),
    ))
}

/// Retrieve an invoice
///
/// A workspace key sees its workspace's lines only.
#[utoipa::path(get, path = "/v1/billing/invoices/{id}", tag = "billing",
    params(("id" = String, Path, description = "inv_YYYYMM")),
    responses((status = 200, description = "The invoice", body = Invoice)))]
pub async fn invoice(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let not_found = || Error::NotFound {
        resource: "invoice",
    };
    invoice_month(&id).ok_or_else(not_found)?;
    let found = state
        .store
        .scoped(&t.scope)
        .invoices(whole_organization(&t))
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(not_found)?;
    Ok(axum::Json(found))
}

/// Organization-wide totals need an organization key; a workspace key's invoices add
/// up its own workspace's usage only.
fn whole_organization(t: &Tenant) -> bool {
    t.principal.workspace_id.is_none()
}
