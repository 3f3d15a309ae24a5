//! Every route of the server, in one table.
//!
//! Each `/v1` route is declared once in [`v1`] with the permission it needs; the
//! router enforces that permission before the handler runs (so a read-only key gets
//! 403 before any body is read), the OpenAPI test checks the table against the
//! document, and the permission tests iterate over [`table`]: a new route cannot
//! escape either.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use dialtone_domain::Error;
use dialtone_domain::auth::Principal;
use dialtone_domain::id::new_id;
use dialtone_domain::permissions::{Permission, Resource};
use std::sync::Arc;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{
    agents, analytics, auth, billing, calls, campaigns, contacts, events, keys, messages, metrics,
    openapi, ops, phone_numbers, webhooks,
};

/// One `/v1` route: its method, path template and the permission it needs
/// (`None`: any valid key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub permission: Option<Permission>,
}

struct Route {
    spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, permission: Option<Permission>, h: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let handler = match method.as_str() {
        "GET" => get(h),
        "POST" => post(h),
        "PATCH" => patch(h),
        "PUT" => put(h),
        _ => delete(h),
    };
    Route {
        spec: RouteSpec {
            method,
            path,
            permission,
        },
        handler,
    }
}

fn v1() -> Vec<Route> {
    use Method as M;
    use Resource::*;
    let read = |r| Some(Permission::read(r));
    let write = |r| Some(Permission::write(r));
    vec![
        route(M::GET, "/v1/me", None, keys::me),
        route(M::GET, "/v1/api-keys", read(ApiKeys), keys::list),
        route(M::POST, "/v1/api-keys", write(ApiKeys), keys::create),
        route(M::GET, "/v1/api-keys/{id}", read(ApiKeys), keys::get),
        route(
            M::GET,
            "/v1/api-keys/{id}/usage",
            read(ApiKeys),
            keys::usage,
        ),
        route(M::DELETE, "/v1/api-keys/{id}", write(ApiKeys), keys::revoke),
        route(M::PATCH, "/v1/api-keys/{id}", write(ApiKeys), keys::update),
        route(
            M::POST,
            "/v1/api-keys/{id}/rotate",
            write(ApiKeys),
            keys::rotate,
        ),
        route(M::GET, "/v1/contacts", read(Contacts), contacts::list),
        route(M::POST, "/v1/contacts", write(Contacts), contacts::create),
        route(M::GET, "/v1/contacts/{id}", read(Contacts), contacts::get),
        route(
            M::PATCH,
            "/v1/contacts/{id}",
            write(Contacts),
            contacts::update,
        ),
        route(
            M::PUT,
            "/v1/contacts/{id}",
            write(Contacts),
            contacts::replace,
        ),
        route(
            M::DELETE,
            "/v1/contacts/{id}",
            write(Contacts),
            contacts::delete,
        ),
        route(
            M::GET,
            "/v1/contacts/{id}/notes",
            read(Notes),
            contacts::list_notes,
        ),
        route(
            M::POST,
            "/v1/contacts/{id}/notes",
            write(Notes),
            contacts::create_note,
        ),
        route(M::GET, "/v1/agents", read(Agents), agents::list),
        route(M::POST, "/v1/agents", write(Agents), agents::create),
        route(M::GET, "/v1/agents/{id}", read(Agents), agents::get),
        route(M::PATCH, "/v1/agents/{id}", write(Agents), agents::update),
        route(M::DELETE, "/v1/agents/{id}", write(Agents), agents::delete),
        route(
            M::GET,
            "/v1/phone-numbers",
            read(PhoneNumbers),
            phone_numbers::list,
        ),
        route(
            M::GET,
            "/v1/phone-numbers/available",
            read(PhoneNumbers),
            phone_numbers::available,
        ),
        route(
            M::POST,
            "/v1/phone-numbers",
            write(PhoneNumbers),
            phone_numbers::purchase,
        ),
        route(
            M::POST,
            "/v1/phone-numbers/import",
            write(PhoneNumbers),
            phone_numbers::import,
        ),
        route(
            M::GET,
            "/v1/phone-numbers/{id}",
            read(PhoneNumbers),
            phone_numbers::get,
        ),
        route(
            M::PATCH,
            "/v1/phone-numbers/{id}",
            write(PhoneNumbers),
            phone_numbers::configure,
        ),
        route(
            M::DELETE,
            "/v1/phone-numbers/{id}",
            write(PhoneNumbers),
            phone_numbers::release,
        ),
        route(M::GET, "/v1/campaigns", read(Campaigns), campaigns::list),
        route(
            M::POST,
            "/v1/campaigns",
            write(Campaigns),
            campaigns::create,
        ),
        route(
            M::GET,
            "/v1/campaigns/{id}",
            read(Campaigns),
            campaigns::get,
        ),
        route(
            M::PATCH,
            "/v1/campaigns/{id}",
            write(Campaigns),
            campaigns::update,
        ),
        route(
            M::GET,
            "/v1/campaigns/{id}/calls",
            read(Campaigns),
            campaigns::calls,
        ),
        route(
            M::GET,
            "/v1/analytics/usage",
            read(Analytics),
            analytics::usage,
        ),
        route(
            M::GET,
            "/v1/billing/invoices",
            read(Billing),
            billing::invoices,
        ),
        route(
            M::GET,
            "/v1/billing/invoices/{id}",
            read(Billing),
            billing::invoice,
        ),
        route(M::GET, "/v1/billing/wallet", read(Billing), billing::wallet),
        route(M::GET, "/v1/calls", read(Calls), calls::list),
        route(M::POST, "/v1/calls", write(Calls), calls::place),
        route(M::GET, "/v1/calls/{id}", read(Calls), calls::get),
        route(
            M::POST,
            "/v1/calls/{id}/hangup",
            write(Calls),
            calls::hangup,
        ),
        route(
            M::GET,
            "/v1/calls/{id}/transcript",
            read(Calls),
            calls::transcript,
        ),
        route(M::GET, "/v1/call-logs", read(Calls), calls::list_logs),
        route(M::GET, "/v1/call-logs/{id}", read(Calls), calls::get_log),
        route(
            M::GET,
            "/v1/recordings",
            read(Calls),
            calls::list_recordings,
        ),
        route(
            M::GET,
            "/v1/recordings/{id}",
            read(Calls),
            calls::get_recording,
        ),
        route(
            M::GET,
            "/v1/conversations",
            read(Conversations),
            calls::list_conversations,
        ),
        route(
            M::GET,
            "/v1/conversations/{id}",
            read(Conversations),
            calls::get_conversation,
        ),
        route(
            M::GET,
            "/v1/conversations/{id}/messages",
            read(Messages),
            messages::conversation_messages,
        ),
        route(
            M::GET,
            "/v1/conversations/{id}/notes",
            read(Notes),
            messages::list_notes,
        ),
        route(
            M::POST,
            "/v1/conversations/{id}/notes",
            write(Notes),
            messages::create_note,
        ),
        route(M::GET, "/v1/messages", read(Messages), messages::list),
        route(M::POST, "/v1/messages", write(Messages), messages::send),
        route(M::GET, "/v1/messages/{id}", read(Messages), messages::get),
        route(M::GET, "/v1/webhooks", read(Webhooks), webhooks::list),
        route(M::POST, "/v1/webhooks", write(Webhooks), webhooks::create),
        route(M::GET, "/v1/webhooks/{id}", read(Webhooks), webhooks::get),
        route(
            M::PATCH,
            "/v1/webhooks/{id}",
            write(Webhooks),
            webhooks::update,
        ),
        route(
            M::DELETE,
            "/v1/webhooks/{id}",
            write(Webhooks),
            webhooks::delete,
        ),
        route(
            M::GET,
            "/v1/webhooks/{id}/deliveries",
            read(Webhooks),
            webhooks::deliveries,
        ),
        route(M::POST, "/v1/hooks", write(Webhooks), webhooks::subscribe),
        route(
            M::DELETE,
            "/v1/hooks/{id}",
            write(Webhooks),
            webhooks::unsubscribe,
        ),
        route(
            M::POST,
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            write(Webhooks),
            webhooks::redeliver,
        ),
        route(
            M::POST,
            "/v1/webhooks/{id}/recover",
            write(Webhooks),
            webhooks::recover,
        ),
        route(
            M::POST,
            "/v1/webhooks/{id}/test",
            write(Webhooks),
            webhooks::test,
        ),
        route(
            M::POST,
            "/v1/webhooks/{id}/rotate-secret",
            write(Webhooks),
            webhooks::rotate_secret,
        ),
        route(M::GET, "/v1/event-types", None, events::event_types),
        route(M::GET, "/v1/events", None, events::list),
        route(M::GET, "/v1/events/{id}", None, events::get),
    ]
}

/// The `/v1` route table.
pub fn table() -> Vec<RouteSpec> {
    v1().into_iter().map(|r| r.spec).collect()
}

/// Refuses a request whose key lacks `permission`; counts the permission exercised
/// (in memory, for least privilege) when it has it.
async fn require(state: AppState, permission: Permission, req: Request, next: Next) -> Response {
    let allowed = req.extensions().get::<Arc<Principal>>().map(|p| {
        p.require(permission).inspect(|()| {
            state
                .usage
                .record_permission(&p.key_id, permission, dialtone_domain::time::now())
        })
    });
    match allowed {
        Some(Ok(())) => next.run(req).await,
        Some(Err(e)) => ApiError(e).into_response(),
        None => ApiError(Error::Unauthorized).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError(Error::NotFound { resource: "route" })
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}

#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&new_id("req"))
            .ok()
            .map(RequestId::new)
    }
}

/// The whole application: public routes, authenticated `/v1`, and the layers every
/// request passes (request id, sensitive-header redaction, tracing, metrics, body limit).
pub fn build(state: AppState) -> Router {
    let mut api = Router::new();
    for r in v1() {
        let mut handler = r.handler;
        if let Some(p) = r.spec.permission {
            handler = handler.route_layer(from_fn_with_state(
                state.clone(),
                move |State(s): State<AppState>, req: Request, next: Next| require(s, p, req, next),
            ));
        }
        api = api.route(r.spec.path, handler);
    }
    let api = api.layer(from_fn_with_state(state.clone(), auth::authenticate));
    let mcp = if state.config.mcp_enabled {
        let in_process =
            api.clone()
                .with_state(state.clone())
                .layer(axum::middleware::map_request(
                    |mut req: Request| async move {
                        req.extensions_mut().insert(auth::ViaMcp);
                        req
                    },
                ));
        crate::mcp::routes(&state, in_process)
            .layer(crate::cors::mcp())
            // dialtone is the authorization server of `/mcp` only: no `/mcp`, no OAuth.
            .merge(crate::oauth::routes())
    } else {
        Router::new()
    };
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi::json))
        .merge(crate::reference::routes())
        .route("/v1/recordings/{id}/media", get(calls::media))
        .merge(api)
        .merge(mcp)
        .merge(crate::dashboard::routes(state.clone()))
        .merge(crate::twilio::routes())
        // Signed by the reporter, not by an API key: outside the bearer-auth layer.
        .merge(crate::secret_scanning::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: query strings and headers are never logged, nor the
                // secret in a dashboard setup link.
                let path = req.uri().path();
                let path = if path.starts_with("/setup/") { "/setup/…" } else { path };
                tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
            })
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .with_state(state)
}
