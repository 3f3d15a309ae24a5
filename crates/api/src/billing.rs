//! `/v1/billing`: the wallet.

use axum::extract::State;
use axum::response::IntoResponse;
use dialtone_domain::billing::Wallet;

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
