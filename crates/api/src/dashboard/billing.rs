//! Billing for the current workspace and mode: the wallet's balance, its ledger
//! (paged, newest first) and the invoices by month with their lines. The same store
//! reads as `/v1/billing`; invoices here add up the workspace the dashboard looks at,
//! as a workspace key's do.

use super::Query;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Mode;
use serde::Deserialize;

use super::pages::{PAGE, dollars, older_link};
use super::session::{Nav, Session};
use super::{DashResult, render_status, when};
use crate::state::AppState;

struct LineView {
    description: String,
    quantity: i64,
    amount: String,
}

struct InvoiceView {
    id: String,
    period: String,
    status: &'static str,
    total: String,
    lines: Vec<LineView>,
}

struct LedgerView {
    at: String,
    kind: String,
    description: String,
    reference: String,
    amount: String,
    credit: bool,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    balance: String,
    updated: String,
    invoices: Vec<InvoiceView>,
    ledger: Vec<LedgerView>,
    error: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LedgerQuery {
    cursor: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<LedgerQuery>,
) -> DashResult<Response> {
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let wallet = store.wallet().await?;
    let invoices = store
        .invoices(false)
        .await?
        .into_iter()
        .map(|i| InvoiceView {
            period: format!("{} to {}", i.period_start, i.period_end),
            status: i.status,
            total: dollars(i.total),
            lines: i
                .lines
                .into_iter()
                .map(|l| LineView {
                    description: l.description,
                    quantity: l.quantity,
                    amount: dollars(l.amount),
                })
                .collect(),
            id: i.id,
        })
        .collect();
    let (ledger, error, next) = match PageRequest::new(Some(PAGE), q.cursor.as_deref()) {
        Ok(page) => {
            let mut rows = store.list_ledger(&page).await?;
            let more = rows.len() > PAGE as usize;
            rows.truncate(PAGE as usize);
            let next = older_link(
                "/dashboard/billing",
                &[],
                more,
                rows.last().map(|r| r.id.as_str()),
            );
            (
                rows.into_iter()
                    .map(|r| LedgerView {
                        at: when(Some(r.created_at)),
                        credit: r.amount > 0,
                        amount: dollars(r.amount),
                        kind: r.kind,
                        description: r.description,
                        reference: r.reference_id.unwrap_or_default(),
                    })
                    .collect(),
                None,
                next,
            )
        }
        Err(e) => (Vec::new(), Some(e.to_string()), None),
    };
    // A cursor that is not one the page gave: said on the page, as a 400.
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render_status(
        status,
        &BillingPage {
            nav: session.nav("billing", "/dashboard/billing"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == Mode::Test,
            balance: dollars(wallet.balance),
            updated: when(wallet.updated_at),
            invoices,
            ledger,
            error,
            next,
        },
    ))
}
