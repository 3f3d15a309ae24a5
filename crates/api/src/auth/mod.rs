//! Bearer-key authentication for every `/v1` route.
//!
//! [`authenticate`] is a middleware: it parses the `Authorization` header, checks the
//! token's checksum (a typo never reaches the database), finds the key by digest in
//! the [`cache::KeyCache`] or the store, refuses revoked and expired keys with the one
//! 401 body, applies the per-key rate limit, counts usage in memory, and puts the
//! [`Principal`] in the request's extensions. [`Tenant`] then resolves the workspace a
//! request acts in. Permissions are checked per route by [`crate::router`].

pub mod cache;
pub mod ratelimit;
pub mod usage;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dialtone_domain::auth::Principal;
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::now;
use dialtone_domain::{Error, Result};
use dialtone_domain::{keys, oauth};

use crate::error::ApiError;
use crate::state::AppState;

/// The header an organization-level key uses to name a workspace.
pub const WORKSPACE_HEADER: &str = "dialtone-workspace";

/// How authentication ended (a metrics label; never shown to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    RateLimited,
    /// The key could not be checked (database unavailable): 503, not 401.
    Error,
}

impl AuthOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Ok => "ok",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Malformed => "malformed",
            AuthOutcome::Unknown => "unknown",
            AuthOutcome::Revoked => "revoked",
            AuthOutcome::Expired => "expired",
            AuthOutcome::RateLimited => "rate_limited",
            AuthOutcome::Error => "error",
        }
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

/// Resolves a bearer credential to the key's principal.
pub async fn verify(
    state: &AppState,
    credential: &str,
) -> Result<Arc<Principal>, (AuthOutcome, Error)> {
    let unauthorized = |o| (o, Error::Unauthorized);
    let parsed = keys::parse(credential).ok_or(unauthorized(AuthOutcome::Malformed))?;
    let digest = state.digester.digest(parsed.token);
    let at = now();
    let principal = match state.key_cache.get(&digest) {
        Some(p) => p,
        None => {
            let generation = state.key_cache.generation();
            let (key, default_ws) = state
                .store
                .find_key_by_digest(&digest)
                .await
                .map_err(|e| (AuthOutcome::Error, e))?
                .ok_or(unauthorized(AuthOutcome::Unknown))?;
            if key.revoked_at.is_some() {
                return Err(unauthorized(AuthOutcome::Revoked));
            }
            let p = Arc::new(Principal::from_key(&key, default_ws));
            if p.is_active(at) {
                state.key_cache.insert(generation, digest, p.clone());
            }
            p
        }
    };
    if !principal.is_active(at) {
        return Err(unauthorized(AuthOutcome::Expired));
    }
    if parsed.key_id.is_some_and(|id| id != principal.key_id) || parsed.mode != principal.mode {
        return Err(unauthorized(AuthOutcome::Unknown));
    }
    Ok(principal)
}

/// Marks a request the MCP server makes in-process on behalf of its caller: only such
/// requests may carry an OAuth access token to `/v1` (tokens are bound to `/mcp`).
#[derive(Debug, Clone, Copy)]
pub struct ViaMcp;

/// Resolves an OAuth access token (`{brand}_oat_…`) to its grant's principal. The
/// principal expires with the token (one hour) or the grant, whichever is first; a
/// revoked grant is refused like a revoked key.
pub async fn verify_oauth(
    state: &AppState,
    credential: &str,
) -> Result<Arc<Principal>, (AuthOutcome, Error)> {
    let unauthorized = |o| (o, Error::Unauthorized);
    if !oauth::is_token(credential, oauth::TokenKind::Access) {
        return Err(unauthorized(AuthOutcome::Malformed));
    }
    let digest = state.digester.digest(credential);
    let at = now();
    let principal = match state.key_cache.get(&digest) {
        Some(p) => p,
        None => {
            let generation = state.key_cache.generation();
            let grant = state
                .store
                .find_oauth_access(&digest)
                .await
                .map_err(|e| (AuthOutcome::Error, e))?
                .ok_or(unauthorized(AuthOutcome::Unknown))?;
            if grant.key.revoked_at.is_some() {
                return Err(unauthorized(AuthOutcome::Revoked));
            }
            let mut p = Principal::from_key(&grant.key, grant.default_workspace_id);
            p.expires_at = Some(
                p.expires_at
                    .map_or(grant.expires_at, |e| e.min(grant.expires_at)),
            );
            let p = Arc::new(p);
            if p.is_active(at) {
                state.key_cache.insert(generation, digest, p.clone());
            }
            p
        }
    };
    if !principal.is_active(at) {
        return Err(unauthorized(AuthOutcome::Expired));
    }
    Ok(principal)
}

pub(crate) fn client_ip(state: &AppState, req: &Request) -> Option<IpAddr> {
    client_ip_of(state, req.headers(), req.extensions())
}

/// The client's address: `X-Forwarded-For` behind a trusted proxy, else the socket's.
pub(crate) fn client_ip_of(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<IpAddr> {
    if state.config.trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Middleware: authenticate, rate-limit and count the request.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let outcome = match bearer(req.headers()) {
        None => Err((AuthOutcome::Missing, Error::Unauthorized)),
        // An OAuth access token is for `/mcp` only: its in-process calls, never a
        // client's own `/v1` request (RFC 8707 audience binding).
        Some(credential) if oauth::is_token(credential, oauth::TokenKind::Access) => {
            if req.extensions().get::<ViaMcp>().is_some() {
                verify_oauth(&state, credential).await
            } else {
                Err((AuthOutcome::Unknown, Error::Unauthorized))
            }
        }
        Some(credential) => verify(&state, credential).await,
    };
    let principal = match outcome {
        Ok(p) => p,
        Err((o, e)) => {
            state.metrics.auth(o);
            return ApiError(e).into_response();
        }
    };
    let decision = state.rate_limiter.check(&principal.key_id).await;
    if !decision.allowed {
        state.metrics.auth(AuthOutcome::RateLimited);
        let mut resp = ApiError(Error::RateLimited {
            retry_after_secs: decision.retry_after_secs,
        })
        .into_response();
        decision.write_headers(resp.headers_mut());
        return resp;
    }
    state.metrics.auth(AuthOutcome::Ok);
    let ip = client_ip(&state, &req);
    state.usage.record(&principal.key_id, ip, now());
    req.extensions_mut().insert(principal);
    req.extensions_mut()
        .insert(ClientIp(ip.map(|ip| ip.to_string())));
    let mut resp = next.run(req).await;
    decision.write_headers(resp.headers_mut());
    resp
}

/// The client's address as [`authenticate`] saw it (behind `--trust-proxy`, from
/// `X-Forwarded-For`), for the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientIp(pub Option<String>);

impl ClientIp {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The authenticated key of a request (put there by [`authenticate`]).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError(Error::Unauthorized))
    }
}

/// The caller and the tenant it acts in (its workspace, or the one named by the
/// `Dialtone-Workspace` header for an organization key).
#[derive(Debug, Clone)]
pub struct Tenant {
    pub principal: Arc<Principal>,
    pub scope: Scope,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        let requested = match parts.headers.get(WORKSPACE_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Error::validation(
                    "Dialtone-Workspace",
                    "Dialtone-Workspace must be a workspace id",
                )
            })?),
        };
        let scope = principal.scope(requested)?;
        if principal.workspace_id.is_none() && requested.is_some() {
            state
                .check_workspace(&scope.org_id, &scope.workspace_id)
                .await?;
        }
        Ok(Tenant { principal, scope })
    }
}

/// Sets a header value from a number.
pub(crate) fn header_num(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}
