//! `/v1/webhooks`, `/v1/hooks`, and the SSRF guard of the delivery client
//! (the delivery worker is `workers::delivery`).
//!
//! Addresses are checked when an endpoint is saved or re-enabled (its host is
//! resolved; a loopback, private, link-local or otherwise reserved address is a 422,
//! see [`is_forbidden`]), and on every delivery: the client's resolver drops such
//! addresses, and its connector refuses a connection whose peer is one (IP literals
//! never reach a resolver), before the request is sent. `--webhook-allow-private`
//! lifts these checks.
//! Redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dialtone_domain::idempotency::{Idem, IdempotencyKey};
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::time::now;
use dialtone_domain::webhooks::{
    CreatedWebhook, Delivery, HookInput, WebhookEndpoint, WebhookInput, WebhookPatch,
    check_caller_secret, check_events, check_url_shape, generate_secret,
};
use dialtone_domain::{Error, Result};
use dialtone_store::{EndpointRow, NewEndpoint};
use secrecy::{ExposeSecret, SecretString};

use crate::auth::Tenant;
use crate::error::{ApiResult, Json, JsonBytes, Query};
use crate::shared::{
    Deleted, PageQuery, answer, checked_id, early_replay, idempotency_key, respond, same_answer,
    stored_json,
};
use crate::state::AppState;

/// Addresses a webhook may not reach unless the operator allows private targets:
/// everything but public unicast. IPv6 is allowed only in global unicast (`2000::/3`)
/// minus its special blocks, and wherever an IPv6 address carries an IPv4 one
/// (mapped, 6to4) that IPv4 address is checked too; forms that translate to IPv4
/// elsewhere (IPv4-compatible `::/96`, `::ffff:0:0:0/96`, NAT64, Teredo) are refused.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                // IETF protocol assignments, 192.0.0.0/24.
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                // 6to4 relay anycast, 192.88.99.0/24.
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                // Benchmarking, 198.18.0.0/15.
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let s = a.segments();
            // Outside global unicast: ::/96 (IPv4-compatible, loopback, unspecified),
            // ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard
            // 100::/64, unique local fc00::/7, link-local, site-local fec0::/10,
            // multicast.
            if (s[0] & 0xe000) != 0x2000 {
                return true;
            }
            // IETF protocol assignments 2001::/23 (Teredo 2001::/32, benchmarking,
            // ORCHID), documentation 2001:db8::/32 and 3fff::/20, SRv6 5f00::/16.
            if (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8))
                || (s[0] == 0x3fff && s[1] < 0x1000)
                || s[0] == 0x5f00
            {
                return true;
            }
            // 6to4, 2002::/16: the IPv4 address in bits 16 to 48.
            if s[0] == 0x2002 {
                let v4 = std::net::Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                );
                return is_forbidden(IpAddr::V4(v4));
            }
            false
        }
    }
}

fn refused(message: impl Into<String>) -> Error {
    Error::Unprocessable {
        field: "url",
        message: message.into(),
    }
}

/// Checks a webhook URL: shape, then (unless private targets are allowed) every
/// address its host resolves to.
pub async fn check_url(url: &str, allow_private: bool) -> Result<()> {
    check_url_shape(url)?;
    let parsed =
        reqwest::Url::parse(url).map_err(|_| Error::validation("url", "url is not a valid URL"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| Error::validation("url", "url has no host"))?;
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| refused(format!("{host} does not resolve")))?
        .collect();
    if addrs.is_empty() {
        return Err(refused(format!("{host} does not resolve")));
    }
    if addrs.iter().any(|a| is_forbidden(a.ip())) {
        return Err(refused(
            "url resolves to a loopback, private or reserved address; webhooks must reach a public address",
        ));
    }
    Ok(())
}

/// The resolver of the delivery client: public addresses only.
#[derive(Debug, Clone, Copy)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuses a connection whose peer is not a public address: the address actually
/// connected to, for IP literals (which no resolver sees) and names alike, before a
/// byte of the request is sent.
#[derive(Debug, Clone, Copy)]
struct PublicPeersLayer;

impl<S> tower::Layer<S> for PublicPeersLayer {
    type Service = PublicPeers<S>;

    fn layer(&self, inner: S) -> PublicPeers<S> {
        PublicPeers { inner }
    }
}

#[derive(Debug, Clone)]
struct PublicPeers<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, R> tower::Service<R> for PublicPeers<S>
where
    S: tower::Service<R>,
    S::Response: hyper_util::client::legacy::connect::Connection + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<S::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let conn = connecting.await.map_err(Into::into)?;
            check_peer(peer_of(&conn))?;
            Ok(conn)
        })
    }
}

/// The address a connection reached.
fn peer_of(conn: &impl hyper_util::client::legacy::connect::Connection) -> Option<SocketAddr> {
    let mut extras = axum::http::Extensions::new();
    conn.connected().get_extras(&mut extras);
    extras
        .get::<hyper_util::client::legacy::connect::HttpInfo>()
        .map(|info| info.remote_addr())
}

fn check_peer(peer: Option<SocketAddr>) -> std::result::Result<(), BoxError> {
    match peer {
        Some(addr) if !is_forbidden(addr.ip()) => Ok(()),
        Some(addr) => Err(format!(
            "refused to connect to {}: a loopback, private or reserved address (webhooks must reach a public address)",
            addr.ip()
        )
        .into()),
        None => Err("refused to connect: the peer address is unknown".into()),
    }
}

/// Installs the process's TLS crypto provider (ring) once; any HTTPS client needs it.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client deliveries go through: no redirects, a timeout, and (unless
/// private targets are allowed) public addresses only: names resolve to public
/// addresses only, and every connection's peer address is checked (IP literals
/// included); no proxy (it would be the peer).
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    install_tls_provider();
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("dialtone-webhooks/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        b = b
            .dns_resolver(Arc::new(PublicOnly))
            .connector_layer(PublicPeersLayer)
            .no_proxy();
    }
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// The id of a webhook endpoint (`whk_…`) as every `/v1/webhooks/{id}` route and the
/// dashboard's webhook pages take it. A REST hook (`hook_…`, kind `hook`, made by
/// `POST /v1/hooks`) is not a webhook endpoint: those routes answer 404 for it, exactly
/// as for an id that does not exist; only `DELETE /v1/hooks/{id}` reaches it.
pub(crate) fn endpoint_id(id: &str) -> Result<&str> {
    if dialtone_domain::id::looks_like("whk", id) {
        Ok(id)
    } else {
        Err(Error::NotFound {
            resource: "webhook_endpoint",
        })
    }
}

/// What a replay of an endpoint's creation or secret rotation answers: the endpoint
/// without its secret (stored answers never hold one), 200.
fn endpoint_replay(row: &EndpointRow) -> Result<(u16, String)> {
    stored_json(200, &row.to_endpoint())
}

/// The `Idem` of a request whose replay answers the endpoint without its secret.
fn secretless(key: Option<&IdempotencyKey>) -> Option<Idem<'_, EndpointRow>> {
    key.map(|key| Idem {
        key,
        answer: endpoint_replay,
    })
}

/// Checks a new endpoint as `POST /v1/webhooks` and `POST /v1/hooks` do (events,
/// description, caller secret, the URL's shape and SSRF guard) and seals its secret:
/// the row to insert and the secret to show once. The dashboard creates through it too.
pub(crate) async fn new_endpoint(
    state: &AppState,
    kind: &'static str,
    input: WebhookInput,
) -> Result<(NewEndpoint, SecretString)> {
    let WebhookInput {
        url,
        events,
        secret,
        description,
        active,
    } = input;
    let events = check_events(&events)?;
    if let Some(d) = &description {
        let mut v = dialtone_domain::error::Validator::new();
        v.max_len(
            "description",
            Some(d),
            dialtone_domain::webhooks::DESCRIPTION_MAX,
        );
        v.finish()?;
    }
    let secret = match secret {
        Some(s) => {
            check_caller_secret(&s)?;
            SecretString::from(s)
        }
        None => generate_secret(),
    };
    check_url(&url, state.config.webhook_allow_private).await?;
    Ok((
        NewEndpoint {
            kind,
            url,
            events,
            description,
            secret_sealed: state.secret_box.seal(&secret)?,
            active: active.unwrap_or(true),
        },
        secret,
    ))
}

async fn create_endpoint(
    state: &AppState,
    t: &Tenant,
    kind: &'static str,
    input: WebhookInput,
    idem: Option<&IdempotencyKey>,
) -> ApiResult<Response> {
    let store = state.store.scoped(&t.scope);
    if let Some(replayed) = early_replay(&store, idem).await? {
        return Ok(replayed);
    }
    let (new, secret) = new_endpoint(state, kind, input).await?;
    let outcome = store.create_endpoint_once(new, secretless(idem)).await?;
    answer(outcome, idem, |row| {
        (
            StatusCode::CREATED,
            axum::Json(CreatedWebhook {
                endpoint: row.to_endpoint(),
                secret: secret.expose_secret().to_owned(),
            }),
        )
            .into_response()
    })
}

/// Create a webhook endpoint
///
/// Events reach `url` signed two ways (see the `webhook-signature` and
/// `X-Dialtone-Signature` headers). Without `secret`, a `whsec_…` one is generated and
/// shown only in this answer.
///
/// Takes an `Idempotency-Key`. The secret is never stored, so a retry with the same
/// key and body creates nothing and answers **200** with the endpoint the first
/// request created, **without `secret`** (`Idempotent-Replayed: true`). If the first
/// answer was lost with a generated secret, rotate it
/// (`POST /v1/webhooks/{id}/rotate-secret`).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe; a replay answers 200 without the secret")),
    responses((status = 201, description = "The endpoint, with its secret", body = CreatedWebhook),
              (status = 200, description = "A replay (same Idempotency-Key and body): the endpoint the first request created, without its secret", body = WebhookEndpoint),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody),
              (status = 422, description = "The URL reaches a private or reserved address", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<WebhookInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/webhooks", &raw)?;
    create_endpoint(&state, &t, "webhook", input, idem.as_ref()).await
}

/// List webhook endpoints
///
/// Endpoints of the workspace and mode, with their events and state (`active`, and
/// `disabled_reason` when dialtone turned one off). Never their signing secrets. Cursor-paged.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, description = "Endpoints, newest first", body = Page<WebhookEndpoint>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_endpoints("webhook", &page)
        .await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |e| &e.id).map(|e| e.to_endpoint()),
    ))
}

/// Retrieve a webhook endpoint
///
/// Its URL, events and state; never the signing secret.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "whk_…")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpoint)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .get_endpoint(endpoint_id(&id)?)
            .await?
            .to_endpoint(),
    ))
}

/// Update a webhook endpoint
///
/// `active: true` re-enables an endpoint dialtone disabled; the events kept meanwhile
/// are then delivered.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "whk_…")),
    request_body = WebhookPatch,
    responses((status = 200, description = "The endpoint", body = WebhookEndpoint),
              (status = 422, description = "The URL reaches a private or reserved address", body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        patch_endpoint(&state, &t.scope, &id, patch)
            .await?
            .to_endpoint(),
    ))
}

/// Applies a patch as `PATCH /v1/webhooks/{id}` does: a new URL, or a re-enabled
/// endpoint's old one, passes the SSRF guard again. The dashboard's enable/disable too.
pub(crate) async fn patch_endpoint(
    state: &AppState,
    scope: &dialtone_domain::tenancy::Scope,
    id: &str,
    patch: WebhookPatch,
) -> Result<EndpointRow> {
    let store = state.store.scoped(scope);
    let current = store.get_endpoint(endpoint_id(id)?).await?;
    if current.kind != "webhook" {
        return Err(Error::NotFound {
            resource: "webhook_endpoint",
        });
    }
    let url_checked = patch.url.is_some();
    let url = match patch.url {
        Some(url) => {
            check_url(&url, state.config.webhook_allow_private).await?;
            url
        }
        None => current.url.clone(),
    };
    let events = match patch.events {
        Some(e) => check_events(&e)?,
        None => current.event_list(),
    };
    let description = match patch.description {
        Some(d) => d,
        None => current.description.clone(),
    };
    let active = patch.active.unwrap_or(current.active);
    if active && !current.active && !url_checked {
        // Re-enabled: its URL was checked under the rules of its day; check it again.
        check_url(&url, state.config.webhook_allow_private).await?;
    }
    let row = store
        .update_endpoint(id, &url, &events, description.as_deref(), active)
        .await?;
    Ok(row)
}

/// Delete a webhook endpoint
///
/// Nothing more is delivered to it, including deliveries still queued.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "whk_…")),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub async fn delete(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    state
        .store
        .scoped(&t.scope)
        .delete_endpoint(endpoint_id(&id)?, "webhook")
        .await?;
    Ok(axum::Json(Deleted::new(id, "webhook_endpoint")))
}

/// List an endpoint's deliveries
///
/// Each with every attempt: time, status code, duration, the first 4 KB of the answer,
/// and the error if the request failed.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "whk_…"), PageQuery),
    responses((status = 200, description = "Deliveries, newest first", body = Page<Delivery>)))]
pub async fn deliveries(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_deliveries(endpoint_id(&id)?, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |d| &d.id)))
}

/// Subscribe a REST hook
///
/// Zapier-style: one URL, one event type. The answer's `id` unsubscribes it.
///
/// Takes an `Idempotency-Key`: a retry with the same key and body subscribes nothing
/// and answers **200** with the first subscription, **without `secret`**
/// (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/hooks", tag = "webhooks", request_body = HookInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe; a replay answers 200 without the secret")),
    responses((status = 201, description = "The subscription", body = CreatedWebhook),
              (status = 200, description = "A replay (same Idempotency-Key and body): the first subscription, without its secret", body = WebhookEndpoint),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn subscribe(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<HookInput>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/hooks", &raw)?;
    let input = WebhookInput {
        url: input.url,
        events: vec![input.event],
        secret: None,
        description: None,
        active: Some(true),
    };
    create_endpoint(&state, &t, "hook", input, idem.as_ref()).await
}

/// Unsubscribe a REST hook
///
/// As Zapier does when a Zap is turned off; nothing more is delivered to it.
#[utoipa::path(delete, path = "/v1/hooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "hook_…")),
    responses((status = 200, description = "Deleted", body = Deleted)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = checked_id("hook", "hook", &id)?.to_owned();
    state
        .store
        .scoped(&t.scope)
        .delete_endpoint(&id, "hook")
        .await
        .map_err(|e| match e {
            // Said as for an id that is not a hook's at all.
            Error::NotFound { .. } => Error::NotFound { resource: "hook" },
            other => other,
        })?;
    Ok(axum::Json(Deleted::new(id, "hook")))
}

/// `POST /v1/webhooks/{id}/recover`
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverInput {
    /// RFC 3339: failed deliveries created since then are queued again.
    #[schema(value_type = String, format = DateTime)]
    pub since: chrono::DateTime<chrono::Utc>,
}

/// A delivery queued again (`POST …/deliveries/{delivery_id}/redeliver`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Redelivery {
    #[schema(example = "webhook_delivery")]
    pub object: &'static str,
    #[schema(example = "dlv_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "pending")]
    pub status: &'static str,
}

/// Failed deliveries queued again (`POST /v1/webhooks/{id}/recover`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Recovery {
    #[schema(example = "webhook_recovery")]
    pub object: &'static str,
    /// How many deliveries were queued again.
    #[schema(example = 3)]
    pub queued: u64,
}

/// A test event queued for one endpoint (`POST /v1/webhooks/{id}/test`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TestEventQueued {
    #[schema(example = "event")]
    pub object: &'static str,
    #[schema(example = "evt_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "webhook.test")]
    pub event_type: &'static str,
}

#[allow(clippy::ptr_arg)] // a stored answer's maker: `fn(&T)` with T = String
fn redelivery(id: &String) -> Result<(u16, String)> {
    let body = Redelivery {
        object: "webhook_delivery",
        id: id.clone(),
        status: "pending",
    };
    stored_json(202, &body)
}

fn recovery(queued: &u64) -> Result<(u16, String)> {
    let body = Recovery {
        object: "webhook_recovery",
        queued: *queued,
    };
    stored_json(202, &body)
}

#[allow(clippy::ptr_arg)] // a stored answer's maker: `fn(&T)` with T = String
fn test_event(id: &String) -> Result<(u16, String)> {
    let body = TestEventQueued {
        object: "event",
        id: id.clone(),
        event_type: "webhook.test",
    };
    stored_json(202, &body)
}

/// Redeliver an event
///
/// Queues the delivery's event again for this endpoint (a new delivery, same event id).
///
/// Takes an `Idempotency-Key`: a retry with the same key queues nothing more and
/// answers the first delivery again (`Idempotent-Replayed: true`). Without a key,
/// each request queues one more delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "whk_…"), ("delivery_id" = String, Path, description = "dlv_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, description = "Queued", body = Redelivery),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn redeliver(
    State(state): State<AppState>,
    t: Tenant,
    Path((id, delivery_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = format!("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver");
    let idem = idempotency_key(&headers, "POST", &path, b"")?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .redeliver_once(
            endpoint_id(&id)?,
            &delivery_id,
            same_answer(idem.as_ref(), redelivery),
        )
        .await?;
    answer(outcome, idem.as_ref(), |d| respond(redelivery(&d)))
}

/// Recover failed deliveries
///
/// Queues again every failed delivery of this endpoint created since `since`.
///
/// Takes an `Idempotency-Key`: a retry with the same key and body queues nothing more
/// and answers the first count again (`Idempotent-Replayed: true`). Without a key, each
/// request queues the failed deliveries again.
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path, description = "whk_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = RecoverInput,
    responses((status = 202, description = "How many deliveries were queued again", body = Recovery),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn recover(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<RecoverInput>,
) -> ApiResult<Response> {
    let path = format!("/v1/webhooks/{id}/recover");
    let idem = idempotency_key(&headers, "POST", &path, &raw)?;
    let since = dialtone_domain::time::truncate(input.since);
    let outcome = state
        .store
        .scoped(&t.scope)
        .recover_once(
            endpoint_id(&id)?,
            since,
            same_answer(idem.as_ref(), recovery),
        )
        .await?;
    answer(outcome, idem.as_ref(), |n| respond(recovery(&n)))
}

/// Send a test event
///
/// A `webhook.test` event to this endpoint only.
///
/// Takes an `Idempotency-Key`: a retry with the same key sends no second event and
/// answers the first one again (`Idempotent-Replayed: true`). Without a key, each
/// request sends one more test event.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "whk_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, description = "Queued", body = TestEventQueued),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = format!("/v1/webhooks/{id}/test");
    let idem = idempotency_key(&headers, "POST", &path, b"")?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .test_endpoint_once(endpoint_id(&id)?, same_answer(idem.as_ref(), test_event))
        .await?;
    answer(outcome, idem.as_ref(), |e| respond(test_event(&e)))
}

/// Gives an endpoint a new signing secret; the old one keeps signing too for 24 hours
/// (returned). Used by the REST route (once per `idem`) and the dashboard.
pub(crate) async fn rotate_endpoint_secret(
    state: &AppState,
    scope: &dialtone_domain::tenancy::Scope,
    id: &str,
) -> Result<(
    dialtone_store::EndpointRow,
    SecretString,
    dialtone_domain::time::Timestamp,
)> {
    let secret = generate_secret();
    let until = now() + chrono::TimeDelta::hours(24);
    let row = state
        .store
        .scoped(scope)
        .rotate_endpoint_secret(endpoint_id(id)?, &state.secret_box.seal(&secret)?, until)
        .await?;
    Ok((row, secret, until))
}

/// The answer to a secret rotation: the endpoint and its new secret, which a replay
/// (same `Idempotency-Key`) leaves out: it is never stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RotatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The new signing secret, shown only in the first answer; absent from a replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Rotate an endpoint's secret
///
/// Answers the new `whsec_…` secret, once. For 24 hours the old secret signs too
/// (`webhook-signature` carries both), so receivers can switch without losing events.
///
/// Takes an `Idempotency-Key`: a retry with the same key rotates nothing (the secrets
/// stay as the first request left them, so the original secret keeps its 24 hours) and
/// answers the endpoint **without `secret`** (`Idempotent-Replayed: true`), since the
/// secret is never stored. Without a key, each request rotates again, and the secret
/// before the latest one stops signing.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "whk_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe; a replay answers without the secret")),
    responses((status = 200, description = "The endpoint, with its new secret (left out of a replay)", body = RotatedWebhook),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = format!("/v1/webhooks/{id}/rotate-secret");
    let idem = idempotency_key(&headers, "POST", &path, b"")?;
    let store = state.store.scoped(&t.scope);
    let id = endpoint_id(&id)?;
    let secret = generate_secret();
    let until = now() + chrono::TimeDelta::hours(24);
    let outcome = store
        .rotate_endpoint_secret_once(
            id,
            &state.secret_box.seal(&secret)?,
            until,
            secretless(idem.as_ref()),
        )
        .await?;
    answer(outcome, idem.as_ref(), |row| {
        axum::Json(RotatedWebhook {
            endpoint: row.to_endpoint(),
            secret: Some(secret.expose_secret().to_owned()),
        })
        .into_response()
    })
}
