//! `/v1/analytics/usage`, and [`report`], the operation behind it (the dashboard's
//! calls and analytics pages call it too).

use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_domain::analytics::{UsageReport, UsageRequest};
use dialtone_domain::billing::CURRENCY;
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::{now, truncate};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::error::{ApiResult, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// RFC 3339; default 30 days before `to`.
    #[param(value_type = Option<String>)]
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    #[param(value_type = Option<String>)]
    pub to: Option<DateTime<Utc>>,
    /// `day` (default) or `hour`.
    #[param(pattern = "^(day|hour)$")]
    pub granularity: Option<String>,
    /// `direction`, `agent` or `phone_number`.
    #[param(pattern = "^(direction|agent|phone_number)$")]
    pub group_by: Option<String>,
}

/// Usage over a time range
///
/// Calls, answered, missed, billable minutes, messages in and out, and cost (cents),
/// per day or hour, optionally grouped. Buckets without activity are left out.
#[utoipa::path(get, path = "/v1/analytics/usage", tag = "analytics", params(UsageQuery),
    responses((status = 200, description = "The usage report", body = UsageReport)))]
pub async fn usage(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<UsageQuery>,
) -> ApiResult<impl IntoResponse> {
    let req = UsageRequest::new(
        q.from.map(truncate),
        q.to.map(truncate),
        q.granularity.as_deref(),
        q.group_by.as_deref(),
        now(),
    )?;
    Ok(axum::Json(report(&state, &t.scope, &req).await?))
}

/// The usage report of `scope` for a validated request: what `GET /v1/analytics/usage`
/// answers, and what the dashboard's calls and analytics pages draw and list.
pub(crate) async fn report(
    state: &AppState,
    scope: &Scope,
    req: &UsageRequest,
) -> dialtone_domain::Result<UsageReport> {
    let (mut totals, data) = state.store.scoped(scope).usage(req).await?;
    totals.period_start = req.from.to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(UsageReport {
        object: "usage_report",
        from: req.from,
        to: req.to,
        granularity: req.granularity.as_str(),
        group_by: req.group_by.map(|g| g.as_str()),
        currency: CURRENCY,
        totals,
        data,
    })
}
