//! `/mcp`: the MCP server ([`dialtone_mcp`]) over streamable HTTP.
//!
//! Its tools make ordinary `/v1` requests with the caller's key, here in-process
//! through the same router (authentication, scopes, rate limits and usage included),
//! so a tool can do exactly what the key could do over REST.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use dialtone_domain::{Error, oauth};
use dialtone_mcp::{
    ApiRequest, ApiResponse, Backend, Caller, ClientAddr, Confirmations, DialtoneMcp, KeySource,
    PlainCall, Unreachable, bearer_caller,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::ExposeSecret;
use tower::ServiceExt;

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest answer a tool reads from the API in one request.
const MAX_API_ANSWER: usize = 8 * 1024 * 1024;

/// The REST router, called in-process.
#[derive(Clone)]
pub struct InProcess {
    router: Router,
}

impl Backend for InProcess {
    async fn send(&self, caller: &Caller, req: ApiRequest) -> Result<ApiResponse, Unreachable> {
        let unreachable = |e: &dyn std::fmt::Display| Unreachable(e.to_string());
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", caller.key.expose_secret()))
                .map_err(|_| Unreachable("the API key is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let mut builder = Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header(header::AUTHORIZATION, authorization);
        if let Some(host) = &caller.host {
            builder = builder.header(header::HOST, host);
        }
        if let Some(key) = &req.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        if let Some(ws) = &caller.workspace {
            builder = builder.header("dialtone-workspace", ws);
        }
        let body = match &req.body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(v).map_err(|e| unreachable(&e))?)
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).map_err(|e| unreachable(&e))?;
        if let Some(addr) = caller.client_addr {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let bytes = axum::body::to_bytes(response.into_body(), MAX_API_ANSWER)
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(ApiResponse {
            status,
            bytes: bytes.into(),
            replayed,
        })
    }
}

/// The `/mcp` route. `api` is the authenticated `/v1` router the tools call.
pub fn routes(state: &AppState, api: Router) -> Router<AppState> {
    let backend = InProcess { router: api };
    let writes = state.config.mcp_allow_writes;
    // The same secret on every node: a preview made on one node confirms on another.
    let secret = state.digester.digest("dialtone mcp confirmation tokens v1");
    // One handler (and one set of spent tokens) shared by every session.
    let mcp = DialtoneMcp::new(
        backend,
        KeySource::Bearer,
        writes,
        Confirmations::new(secret),
    );
    let direct = mcp.clone();
    // A tool's answer is one message: sent as `application/json` rather than a
    // one-event SSE stream when the protocol allows it (the current, stateless
    // revision; handshake sessions keep their streams).
    let mut config = StreamableHttpServerConfig::default().with_json_response(true);
    if !state.config.mcp_allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(state.config.mcp_allowed_hosts.clone());
    }
    let plain = Arc::new(PlainCalls {
        mcp: direct,
        state: state.clone(),
        allowed_hosts: config.allowed_hosts.clone(),
        enabled: state.config.mcp_plain_calls,
    });
    let service = StreamableHttpService::new(
        move || Ok(mcp.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let owners = SessionOwners::default();
    let state = state.clone();
    Router::new()
        .route_service("/mcp", service)
        .layer(from_fn(move |req: Request, next: Next| {
            let (state, owners, plain) = (state.clone(), owners.clone(), plain.clone());
            async move { check_key(&state, &owners, &plain, req, next).await }
        }))
}

/// The current revision's plain `tools/call`s, answered without rmcp's per-request
/// service ([`dialtone_mcp::stateless`]).
struct PlainCalls {
    mcp: DialtoneMcp<InProcess>,
    state: AppState,
    /// rmcp's Host allow-list, applied the same way.
    allowed_hosts: Vec<String>,
    enabled: bool,
}

/// The largest body a plain call may have (a tool's arguments are a few hundred bytes).
const MAX_PLAIN_CALL: u64 = 64 * 1024;

impl PlainCalls {
    /// The answer to `req` if it is a plain call, else `req` back for rmcp (its body
    /// read into memory, when that was needed to tell).
    async fn answer(&self, req: Request) -> Result<Response, Request> {
        let candidate = self.enabled
            && req.method() == axum::http::Method::POST
            && req
                .headers()
                .get("mcp-method")
                .is_some_and(|m| m == "tools/call")
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n <= MAX_PLAIN_CALL);
        if !candidate {
            return Err(req);
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_PLAIN_CALL as usize).await else {
            return Ok(ApiError(Error::validation(
                "body",
                "the request body could not be read",
            ))
            .into_response());
        };
        let Some(call) = PlainCall::recognise(&parts.headers, &bytes, &self.allowed_hosts) else {
            return Err(Request::from_parts(parts, Body::from(bytes)));
        };
        self.state.metrics.mcp_plain_call();
        let addr = parts.extensions.get::<ClientAddr>().map(|a| a.0);
        let answer = self
            .mcp
            .answer(call, bearer_caller(&parts.headers, addr))
            .await;
        Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            answer,
        )
            .into_response())
    }
}

/// Which key opened each handshake-era session on this node: a session id is only
/// good with the key that started it.
#[derive(Clone, Default)]
struct SessionOwners(Arc<Mutex<HashMap<String, (String, Instant)>>>);

impl SessionOwners {
    const KEEP: Duration = Duration::from_secs(24 * 3600);

    fn owner(&self, session: &str) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(session).map(|(key, _)| key.clone())
    }

    fn record(&self, session: String, key_id: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < Self::KEEP);
        }
        map.insert(session, (key_id, Instant::now()));
    }
}

/// Refuses a request without a valid key with the API's 401, before any MCP
/// processing, refuses a session id presented with another key than the one that
/// opened it (404, as for an unknown session), and notes the client's address.
async fn check_key(
    state: &AppState,
    owners: &SessionOwners,
    plain: &PlainCalls,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(credential) = auth::bearer(req.headers()) else {
        return crate::oauth::challenge(state, req.headers(), ApiError(Error::Unauthorized));
    };
    let via_oauth = oauth::is_token(credential, oauth::TokenKind::Access);
    let verified = if via_oauth {
        auth::verify_oauth(state, credential).await
    } else {
        auth::verify(state, credential).await
    };
    let principal = match verified {
        Ok(p) => p,
        Err((_, e)) => return crate::oauth::challenge(state, req.headers(), ApiError(e)),
    };
    if via_oauth {
        req = match crate::step_up::check(state, &principal, req).await {
            Ok(req) => req,
            Err(refusal) => return refusal,
        };
    }
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && owners
            .owner(id)
            .is_some_and(|owner| owner != principal.key_id)
    {
        return ApiError(Error::NotFound {
            resource: "MCP session",
        })
        .into_response();
    }
    if let Some(ip) = auth::client_ip(state, &req) {
        req.extensions_mut()
            .insert(ClientAddr(SocketAddr::new(ip, 0)));
    }
    if session.is_none() {
        req = match plain.answer(req).await {
            Ok(answer) => return answer,
            Err(req) => req,
        };
    }
    let response = next.run(req).await;
    if session.is_none()
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        owners.record(id.to_owned(), principal.key_id.clone());
    }
    response
}

const SESSION_HEADER: &str = "mcp-session-id";

#[cfg(test)]
mod tests {
    use dialtone_mcp::catalog::{TOOLS, rest_routes};

    use crate::router::table;

    /// `{id}`, `{contact_id}` … all become `{}`.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                c if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_tool_needs_exactly_the_permission_of_the_route_it_calls() {
        let routes = table();
        for tool in TOOLS {
            for (method, path) in rest_routes(tool) {
                let route = routes
                    .iter()
                    .find(|r| r.method.as_str() == method && shape(r.path) == shape(path))
                    .unwrap_or_else(|| panic!("{}: no route {method} {path}", tool.name));
                assert_eq!(route.permission, tool.permission, "{}", tool.name);
            }
        }
    }
}
