//! dialtone as the OAuth 2.1 authorization server of its own `/mcp` (MCP authorization).
//!
//! Metadata (RFC 9728 protected resource, RFC 8414 authorization server), Dynamic
//! Client Registration (RFC 7591), Client ID Metadata Documents (fetched through the
//! webhook SSRF guard), the authorization endpoint (which hands over to the dashboard's
//! consent page, [`crate::dashboard`]'s `consent`), and the token endpoint
//! (authorization code + PKCE S256, refresh tokens rotated at each use; a reused code or
//! refresh token revokes the grant). Tokens are bound to the `/mcp` resource
//! (RFC 8707): [`crate::auth::authenticate`] refuses them on `/v1` except for the MCP
//! server's own in-process calls. The rules are `dialtone_domain::oauth`; a grant is an
//! API key row (`oauth_client_id` set), so revocation, caps and the audit log are a key's.
//!
//! Errors here use OAuth's shape (`{"error", "error_description"}`, RFC 6749 §5.2),
//! which OAuth clients parse, not the `/v1` error body.

use std::net::IpAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dialtone_domain::Error;
use dialtone_domain::id::new_id;
use dialtone_domain::oauth::{self as rules, OAuthError, TokenKind};
use dialtone_domain::permissions::{Permission, Permissions};
use dialtone_domain::time::{Timestamp, now};
use dialtone_store::oauth::{NewTokens, OAuthClient, Redeemed, Refreshed};
use serde_json::{Value, json};

use crate::dashboard::Form;
use crate::error::ApiError;
use crate::state::AppState;

/// The longest a client metadata document may be.
const MAX_METADATA_DOCUMENT: usize = 64 * 1024;
/// How long fetching a client metadata document may take.
const METADATA_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched client metadata document is trusted before it is fetched again.
const METADATA_DOCUMENT_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// Redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;
const CLIENT_NAME_MAX: usize = 100;

/// The OAuth routes; all but `/oauth/authorize` (a top-level navigation) with CORS
/// for browser-based clients ([`crate::cors::oauth`]). Mounted only when `/mcp` is.
pub fn routes() -> Router<AppState> {
    // Each route answers `OPTIONS` itself (the CORS layer answers preflights there):
    // the server-wide 405 fallback would otherwise take them, outside the layer.
    let fetched = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata).options(preflight),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata).options(preflight),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata).options(preflight),
        )
        .route("/oauth/register", post(register).options(preflight))
        .route("/oauth/token", post(token).options(preflight))
        .layer(crate::cors::oauth());
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .merge(fetched)
}

/// `OPTIONS` without a preflight (no `Origin`): nothing to say.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// This server's public base URL (`public_url`, else from `Host`): the issuer.
pub(crate) fn issuer(state: &AppState, headers: &HeaderMap) -> String {
    crate::calls::base_url(state, headers)
}

/// The protected resource tokens are bound to: `{issuer}/mcp`.
pub(crate) fn resource_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/mcp", issuer(state, headers))
}

/// The protected resource metadata URL a challenge points to.
fn metadata_url(state: &AppState, headers: &HeaderMap) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        issuer(state, headers)
    )
}

fn with_challenge(mut resp: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// An `/mcp` refusal; a 401 carries the `WWW-Authenticate` challenge that starts
/// discovery, naming the first scope a client should ask for (read-only,
/// [`rules::FIRST_SCOPE`]).
pub(crate) fn challenge(state: &AppState, headers: &HeaderMap, err: ApiError) -> Response {
    let unauthorized = matches!(err.0, Error::Unauthorized);
    let resp = err.into_response();
    if !unauthorized {
        return resp;
    }
    let value = format!(
        "Bearer resource_metadata=\"{}\", scope=\"{}\"",
        metadata_url(state, headers),
        rules::FIRST_SCOPE
    );
    with_challenge(resp, &value)
}

/// The step-up refusal (MCP authorization, scope challenge handling; RFC 6750 §3.1):
/// 403 with `error="insufficient_scope"` and the scope to ask for — what the token
/// holds plus `needed` — so the client re-authorizes for it. `refused` is
/// [`Principal::require`](dialtone_domain::auth::Principal::require)'s error; the body
/// is the API's 403.
pub(crate) fn insufficient_scope(
    state: &AppState,
    headers: &HeaderMap,
    granted: Permissions,
    needed: Permission,
    tool: &str,
    refused: Error,
) -> Response {
    let value = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\", \
         error_description=\"The tool {tool} needs the {needed} permission, which this \
         authorization does not include\"",
        rules::step_up_scope(granted, needed),
        metadata_url(state, headers),
    );
    with_challenge(ApiError(refused).into_response(), &value)
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An OAuth error answer (RFC 6749 §5.2): 401 for `invalid_client`, else 400.
pub(crate) fn oauth_error(e: OAuthError) -> Response {
    let status = if e.code == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    no_store(
        (
            status,
            axum::Json(json!({ "error": e.code, "error_description": e.description })),
        )
            .into_response(),
    )
}

fn internal(e: Error) -> Response {
    // Storage trouble: the API's own mapping (503 or a logged 500), never details.
    ApiError(e).into_response()
}

async fn resource_metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    axum::Json(json!({
        "resource": resource_url(&state, &headers),
        "authorization_servers": [issuer(&state, &headers)],
        "scopes_supported": rules::scopes_supported(),
        "bearer_methods_supported": ["header"],
        "resource_name": "dialtone",
    }))
    .into_response()
}

async fn server_metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let iss = issuer(&state, &headers);
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "registration_endpoint": format!("{iss}/oauth/register"),
        "scopes_supported": rules::scopes_supported(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    }))
    .into_response()
}

// ---- clients ----

fn client_name(v: Option<&Value>) -> Result<String, OAuthError> {
    let name = match v {
        None | Some(Value::Null) => "MCP client".to_owned(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => {
            return Err(OAuthError::new(
                "invalid_client_metadata",
                "client_name must be a string",
            ));
        }
    };
    if name.is_empty()
        || name.chars().count() > CLIENT_NAME_MAX
        || name.chars().any(char::is_control)
    {
        return Err(OAuthError::new(
            "invalid_client_metadata",
            format!("client_name must be 1 to {CLIENT_NAME_MAX} printable characters"),
        ));
    }
    Ok(name)
}

fn redirect_uris(v: Option<&Value>) -> Result<Vec<String>, OAuthError> {
    let list = v.and_then(Value::as_array).ok_or_else(|| {
        OAuthError::new(
            "invalid_redirect_uri",
            "redirect_uris must be a list of URIs",
        )
    })?;
    if list.is_empty() || list.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            "invalid_redirect_uri",
            format!("redirect_uris must hold 1 to {MAX_REDIRECT_URIS} URIs"),
        ));
    }
    list.iter()
        .map(|u| {
            let u = u.as_str().ok_or_else(|| {
                OAuthError::new("invalid_redirect_uri", "each redirect URI must be a string")
            })?;
            rules::check_redirect_uri(u)?;
            Ok(u.to_owned())
        })
        .collect()
}

/// A registration refused for volume: 429 with `Retry-After`, in OAuth's error shape.
fn too_many(retry_after_secs: u64, description: String) -> Response {
    let mut resp = oauth_error(OAuthError::new("temporarily_unavailable", description));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// Whether a registration may go ahead: at most `oauth_registrations_per_hour` per
/// client address (the API's rate limiter, shared through Redis when configured), and
/// at most `oauth_max_unused_clients` registered clients nobody has authorized yet
/// (pruned a day after registration).
async fn admit_registration(state: &AppState, ip: Option<IpAddr>) -> Result<(), Response> {
    if let Some(ip) = ip {
        let d = state
            .registration_limiter
            .check(&format!("oauth-register:{ip}"))
            .await;
        if !d.allowed {
            return Err(too_many(
                d.retry_after_secs,
                format!(
                    "too many client registrations from this address; at most {} an hour",
                    state.config.oauth_registrations_per_hour
                ),
            ));
        }
    }
    let unused = state
        .store
        .count_unused_oauth_clients()
        .await
        .map_err(internal)?;
    if unused >= state.config.oauth_max_unused_clients {
        return Err(too_many(
            3600,
            "too many registered clients are waiting to be authorized; try again later".to_owned(),
        ));
    }
    Ok(())
}

/// `POST /oauth/register` (RFC 7591): a public client (no secret; PKCE protects the
/// code), whatever authentication method was asked for.
async fn register(State(state): State<AppState>, req: Request) -> Response {
    let ip = crate::auth::client_ip(&state, &req);
    if let Err(refused) = admit_registration(&state, ip).await {
        return refused;
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), state.config.max_body_bytes).await else {
        return oauth_error(OAuthError::new(
            "invalid_client_metadata",
            "the body could not be read (at most the server's body limit)",
        ));
    };
    let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error(OAuthError::new(
            "invalid_client_metadata",
            "the body must be a JSON object of client metadata",
        ));
    };
    let (name, uris) = match (
        client_name(meta.get("client_name")),
        redirect_uris(meta.get("redirect_uris")),
    ) {
        (Ok(n), Ok(u)) => (n, u),
        (Err(e), _) | (_, Err(e)) => return oauth_error(e),
    };
    let at = now();
    let client = OAuthClient {
        id: new_id("oacl"),
        name,
        redirect_uris: uris,
        registration: "dynamic".to_owned(),
        created_at: at,
        fetched_at: None,
    };
    if let Err(e) = state.store.save_oauth_client(&client).await {
        return internal(e);
    }
    no_store(
        (
            StatusCode::CREATED,
            axum::Json(json!({
                "client_id": client.id,
                "client_id_issued_at": at.timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            })),
        )
            .into_response(),
    )
}

/// Why a client could not be loaded.
pub(crate) enum ClientError {
    OAuth(OAuthError),
    Store(Error),
}

/// The client `client_id` names: a registered one, or a Client ID Metadata Document
/// (an `https` URL, fetched through the webhook SSRF guard, cached ten minutes).
pub(crate) async fn load_client(
    state: &AppState,
    client_id: &str,
) -> Result<OAuthClient, ClientError> {
    let unknown = || {
        ClientError::OAuth(OAuthError::new(
            "invalid_client",
            "client_id is not a registered client",
        ))
    };
    let stored = state
        .store
        .get_oauth_client(client_id)
        .await
        .map_err(ClientError::Store)?;
    let is_document = client_id.starts_with("https://") || client_id.starts_with("http://");
    if !is_document {
        return stored.ok_or_else(unknown);
    }
    if let Some(c) = &stored
        && c.fetched_at
            .is_some_and(|t| t + METADATA_DOCUMENT_TTL > now())
    {
        return Ok(c.clone());
    }
    let fetched = fetch_metadata_document(state, client_id)
        .await
        .map_err(ClientError::OAuth)?;
    let client = OAuthClient {
        created_at: stored.map_or(fetched.created_at, |c| c.created_at),
        ..fetched
    };
    state
        .store
        .save_oauth_client(&client)
        .await
        .map_err(ClientError::Store)?;
    Ok(client)
}

/// Fetches and checks a Client ID Metadata Document: https only, public addresses only
/// (unless the operator allows private webhook targets), no redirects, 64 KiB, its
/// `client_id` equal to its URL. Two test-only settings no flag or variable sets relax
/// this for a document on loopback (`127.0.0.1` or `localhost`) and nothing else:
/// `oauth_metadata_allow_http_loopback` accepts plain http there, and
/// `oauth_metadata_test_root` accepts https there, verified against that root alone.
async fn fetch_metadata_document(state: &AppState, url: &str) -> Result<OAuthClient, OAuthError> {
    let refused = |why: String| OAuthError::new("invalid_client", why);
    let config = &state.config;
    let http_loopback = config.oauth_metadata_allow_http_loopback && on_loopback(url, "http");
    let test_root = config
        .oauth_metadata_test_root
        .as_deref()
        .filter(|_| on_loopback(url, "https"));
    if !http_loopback {
        rules::check_client_id_url(url)?;
    }
    let allow_private = config.webhook_allow_private || http_loopback || test_root.is_some();
    crate::webhooks::check_url(url, allow_private)
        .await
        .map_err(|e| {
            refused(format!(
                "the client metadata document cannot be fetched: {e}"
            ))
        })?;
    let client = match test_root {
        Some(pem) => test_root_client(pem)
            .map_err(|e| refused(format!("the test root certificate is unusable: {e}")))?,
        None => crate::webhooks::client(METADATA_FETCH_TIMEOUT, allow_private),
    };
    let resp = client
        .get(url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|_| refused("the client metadata document could not be fetched".to_owned()))?;
    if !resp.status().is_success() {
        return Err(refused(format!(
            "fetching the client metadata document answered {}",
            resp.status().as_u16()
        )));
    }
    let mut body = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| refused("the client metadata document could not be read".to_owned()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA_DOCUMENT {
            return Err(refused(
                "the client metadata document is larger than 64 KiB".to_owned(),
            ));
        }
    }
    let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&body) else {
        return Err(refused(
            "the client metadata document is not a JSON object".to_owned(),
        ));
    };
    if meta.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(refused(
            "the client metadata document's client_id is not its own URL".to_owned(),
        ));
    }
    let name = client_name(meta.get("client_name")).map_err(|e| refused(e.description))?;
    let uris = redirect_uris(meta.get("redirect_uris")).map_err(|e| refused(e.description))?;
    let at = now();
    Ok(OAuthClient {
        id: url.to_owned(),
        name,
        redirect_uris: uris,
        registration: "metadata_document".to_owned(),
        created_at: at,
        fetched_at: Some(at),
    })
}

/// Whether `url` is `scheme://127.0.0.1…` or `scheme://localhost…` (no user info).
fn on_loopback(url: &str, scheme: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == scheme
            && u.username().is_empty()
            && u.password().is_none()
            && matches!(u.host_str(), Some("127.0.0.1" | "localhost"))
    })
}

/// The client of a test's loopback metadata document (`oauth_metadata_test_root`):
/// as the webhook client, no redirects and a timeout, but trusting `pem` alone.
fn test_root_client(pem: &str) -> reqwest::Result<reqwest::Client> {
    crate::webhooks::install_tls_provider();
    let root = reqwest::Certificate::from_pem(pem.as_bytes())?;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(METADATA_FETCH_TIMEOUT)
        .no_proxy()
        .tls_certs_only([root])
        .build()
}

// ---- the authorization request ----

/// A checked authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub requested: Permissions,
    pub resource: String,
    pub issuer: String,
}

/// How a bad authorization request is answered.
pub(crate) enum Refusal {
    /// The client or redirect URI cannot be trusted: shown on a page, never redirected.
    Page(String),
    /// Sent back to the client's redirect URI.
    Redirect(Response),
    Store(Error),
}

/// Where the authorization response goes: `redirect_uri` with `code` or `error`,
/// `state` and `iss` (RFC 9207).
pub(crate) fn redirect_to(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state_param: Option<&str>,
    iss: &str,
) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    if let Some(s) = state_param {
        query.append_pair("state", s);
    }
    query.append_pair("iss", iss);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}{}", query.finish());
    see_other(&location)
}

/// A 303 to `location`; a location that is not a valid header value (it cannot be:
/// every part was checked or encoded) is a 400, never a panic.
fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => oauth_error(OAuthError::invalid_request(
            "the redirect location is not valid",
        )),
    }
}

/// The dashboard's policy for the consent page, whose form is answered by a redirect
/// to the client: browsers check that target against the page's `form-action`.
pub(crate) fn consent_policy(redirect_uri: &str) -> Option<HeaderValue> {
    let target = form_action_source(redirect_uri);
    HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self'; form-action 'self' {target}; frame-ancestors 'none'; base-uri 'none'"
    ))
    .ok()
}

/// The CSP source a redirect URI's target is: its origin, or its private-use scheme.
fn form_action_source(uri: &str) -> String {
    let source = match uri.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            format!("{scheme}://{}", &rest[..end])
        }
        None => format!("{}:", uri.split(':').next().unwrap_or("")),
    };
    // Never anything that could end the directive or the header.
    source.replace([';', ',', '\'', ' '], "")
}

/// Checks an authorization request's parameters (from the query or the consent form).
pub(crate) async fn check_request(
    state: &AppState,
    headers: &HeaderMap,
    p: &Form,
) -> Result<AuthRequest, Refusal> {
    if !state.config.mcp_enabled {
        return Err(Refusal::Page(
            "This server does not serve MCP over HTTP, so no app can be given access.".into(),
        ));
    }
    let client_id = p.get("client_id").ok_or_else(|| {
        Refusal::Page("The request names no client (client_id is missing).".into())
    })?;
    let client = match load_client(state, client_id).await {
        Ok(c) => c,
        Err(ClientError::Store(e)) => return Err(Refusal::Store(e)),
        Err(ClientError::OAuth(e)) => return Err(Refusal::Page(e.description)),
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(u)
            if client
                .redirect_uris
                .iter()
                .any(|r| rules::redirect_matches(r, u)) =>
        {
            u.to_owned()
        }
        Some(_) => {
            return Err(Refusal::Page(
                "The redirect URI is not one this client registered.".into(),
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(Refusal::Page("redirect_uri is missing.".into())),
    };
    let iss = issuer(state, headers);
    let st = p.get("state").map(str::to_owned);
    let back = |e: OAuthError| {
        Refusal::Redirect(redirect_to(
            &redirect_uri,
            &[("error", e.code), ("error_description", &e.description)],
            st.as_deref(),
            &iss,
        ))
    };
    if p.get("response_type") != Some("code") {
        return Err(back(OAuthError::new(
            "unsupported_response_type",
            "response_type must be code",
        )));
    }
    rules::check_challenge(p.get("code_challenge"), p.get("code_challenge_method"))
        .map_err(&back)?;
    let ours = resource_url(state, headers);
    let resource = match p.get("resource") {
        None => ours,
        Some(r) if rules::resource_matches(&ours, r) => ours,
        Some(_) => {
            return Err(back(OAuthError::new(
                "invalid_target",
                format!("this server only issues tokens for {ours}"),
            )));
        }
    };
    let requested = rules::parse_scope(p.get("scope")).map_err(&back)?;
    Ok(AuthRequest {
        client,
        redirect_uri,
        state: st.clone(),
        code_challenge: p.get("code_challenge").unwrap_or_default().to_owned(),
        requested,
        resource,
        issuer: iss,
    })
}

/// `GET /oauth/authorize`: on to the consent page, which signs the person in first.
async fn authorize(uri: Uri) -> Response {
    let query = uri.query().unwrap_or("");
    see_other(&format!("/dashboard/oauth/authorize?{query}"))
}

// ---- tokens ----

/// Issues an access and a refresh token; only their digests are stored.
fn new_pair(state: &AppState) -> (String, String) {
    let brand = &state.config.key_brand;
    (
        rules::generate_token(brand, TokenKind::Access),
        rules::generate_token(brand, TokenKind::Refresh),
    )
}

fn token_answer(access: &str, refresh: &str, permissions: Permissions) -> Response {
    no_store(
        axum::Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": rules::ACCESS_TOKEN_LIFETIME.num_seconds(),
            "refresh_token": refresh,
            "scope": rules::scope_string(permissions),
        }))
        .into_response(),
    )
}

/// Revokes a grant through the key revocation path (change feed, every node's cache).
async fn revoke_grant(state: &AppState, key_id: &str, why: &str) {
    match state.store.oauth_grant(key_id).await {
        Ok(Some(key)) => {
            if let Err(e) = state.store.revoke_key(&key.org_id, key_id, why, None).await {
                tracing::warn!(error = %e, key_id, "could not revoke an OAuth grant");
            }
            state.key_cache.evict(key_id);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, key_id, "could not revoke an OAuth grant"),
    }
}

/// `POST /oauth/token`: `authorization_code` (with the PKCE verifier) or
/// `refresh_token` (rotated; a reused one revokes the grant).
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let result = match form.get("grant_type") {
        Some("authorization_code") => code_grant(&state, &headers, &form).await,
        Some("refresh_token") => refresh_grant(&state, &headers, &form).await,
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )
        .into()),
        None => Err(OAuthError::invalid_request("grant_type is missing").into()),
    };
    match result {
        Ok(r) => r,
        Err(TokenError::OAuth(e)) => oauth_error(e),
        Err(TokenError::Store(e)) => internal(e),
    }
}

enum TokenError {
    OAuth(OAuthError),
    Store(Error),
}

impl From<OAuthError> for TokenError {
    fn from(e: OAuthError) -> Self {
        TokenError::OAuth(e)
    }
}

impl From<Error> for TokenError {
    fn from(e: Error) -> Self {
        TokenError::Store(e)
    }
}

fn check_resource(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<(), OAuthError> {
    let ours = resource_url(state, headers);
    match form.get("resource") {
        Some(r) if !rules::resource_matches(&ours, r) => Err(OAuthError::new(
            "invalid_target",
            format!("this server only issues tokens for {ours}"),
        )),
        _ => Ok(()),
    }
}

fn pair_rows<'a>(
    access: &'a dialtone_domain::keys::Digest,
    refresh: &'a dialtone_domain::keys::Digest,
    resource: &'a str,
    at: Timestamp,
) -> NewTokens<'a> {
    NewTokens {
        access,
        access_expires_at: at + rules::ACCESS_TOKEN_LIFETIME,
        refresh,
        refresh_expires_at: at + rules::REFRESH_TOKEN_LIFETIME,
        resource,
    }
}

async fn code_grant(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, TokenError> {
    let bad = |m: &str| TokenError::OAuth(OAuthError::invalid_grant(m));
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let client_id = form
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is missing (PKCE)"))?;
    if !rules::is_token(code, TokenKind::Code) {
        return Err(bad("the authorization code is not valid"));
    }
    check_resource(state, headers, form)?;
    let at = now();
    let stored = match state
        .store
        .redeem_oauth_code(&state.digester.digest(code), at)
        .await?
    {
        Redeemed::Fresh(c) => c,
        Redeemed::Reused(c) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it granted.
            revoke_grant(state, &c.key_id, "oauth: authorization code reused").await;
            return Err(bad(
                "the authorization code was already used; the grant it made is revoked",
            ));
        }
        Redeemed::Expired => return Err(bad("the authorization code has expired")),
        Redeemed::Unknown => return Err(bad("the authorization code is not valid")),
    };
    if stored.client_id != client_id {
        return Err(bad("the authorization code was issued to another client"));
    }
    if form
        .get("redirect_uri")
        .is_some_and(|r| r != stored.redirect_uri)
    {
        return Err(bad(
            "redirect_uri differs from the one of the authorization request",
        ));
    }
    if !rules::verify_pkce(verifier, &stored.code_challenge) {
        return Err(bad("code_verifier does not match the code_challenge"));
    }
    let Some(grant) = state.store.oauth_grant(&stored.key_id).await? else {
        return Err(bad("the grant no longer exists"));
    };
    if !grant.is_active(at) {
        return Err(bad("the grant was revoked"));
    }
    let (access, refresh) = new_pair(state);
    let (a, r) = (
        state.digester.digest(&access),
        state.digester.digest(&refresh),
    );
    state
        .store
        .insert_oauth_tokens(&grant.id, pair_rows(&a, &r, &stored.resource, at), at)
        .await?;
    Ok(token_answer(&access, &refresh, grant.permissions))
}

async fn refresh_grant(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, TokenError> {
    let bad = |m: &str| TokenError::OAuth(OAuthError::invalid_grant(m));
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let client_id = form
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
    if !rules::is_token(presented, TokenKind::Refresh) {
        return Err(bad("the refresh token is not valid"));
    }
    check_resource(state, headers, form)?;
    let at = now();
    let (access, refresh) = new_pair(state);
    let (a, r) = (
        state.digester.digest(&access),
        state.digester.digest(&refresh),
    );
    let rotated = state
        .store
        .rotate_oauth_refresh(
            &state.digester.digest(presented),
            client_id,
            pair_rows(&a, &r, "", at),
            at,
        )
        .await?;
    match rotated {
        Refreshed::Rotated { key_id, .. } => {
            let Some(grant) = state.store.oauth_grant(&key_id).await? else {
                return Err(bad("the grant no longer exists"));
            };
            Ok(token_answer(&access, &refresh, grant.permissions))
        }
        Refreshed::Reused { key_id } => {
            // A spent refresh token presented again: stolen or replayed. The whole
            // grant goes (OAuth 2.1 §4.3.1, refresh token rotation).
            revoke_grant(state, &key_id, "oauth: refresh token reused").await;
            Err(bad(
                "the refresh token was already used; the grant is revoked",
            ))
        }
        Refreshed::Expired => Err(bad("the refresh token has expired")),
        Refreshed::Unknown => Err(bad("the refresh token is not valid")),
    }
}

#[cfg(test)]
mod tests {
    use super::on_loopback;

    #[test]
    fn only_a_loopback_host_with_the_scheme_asked_counts_as_loopback() {
        assert!(on_loopback("https://127.0.0.1:8443/c.json", "https"));
        assert!(on_loopback("https://localhost:8443/c.json", "https"));
        assert!(on_loopback("http://127.0.0.1:9/c.json", "http"));
        assert!(!on_loopback("http://127.0.0.1:9/c.json", "https"));
        assert!(!on_loopback("https://127.0.0.1:9/c.json", "http"));
        // The host after user info is what is connected to.
        assert!(!on_loopback(
            "https://127.0.0.1:1@evil.example/c.json",
            "https"
        ));
        assert!(!on_loopback("https://u@127.0.0.1:1/c.json", "https"));
        assert!(!on_loopback("https://10.0.0.1/c.json", "https"));
        assert!(!on_loopback(
            "https://localhost.evil.example/c.json",
            "https"
        ));
        assert!(!on_loopback("not a url", "https"));
    }
}
