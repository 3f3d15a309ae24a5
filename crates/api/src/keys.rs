//! API keys: the service that issues, rotates and revokes them (used by the REST
//! routes here and by the operator CLI), and the `/v1/api-keys` and `/v1/me` routes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dialtone_domain::auth::{
    Actor, ApiKey, KeyRequest, KeyUpdate, Principal, plan_key_update, plan_narrowed_rotation,
    plan_new_key, plan_revocation, plan_rotation,
};
use dialtone_domain::id::{looks_like, new_id};
use dialtone_domain::idempotency::{Idem, IdempotencyKey, Outcome};
use dialtone_domain::keys::{KeyDigester, generate};
use dialtone_domain::least_privilege::{KeyUsageView, window_start_day};
use dialtone_domain::limits::KeyLimits;
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, now, rfc3339};
use dialtone_domain::{Error, Result};
use dialtone_store::{NewKeyRow, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, ClientIp};
use crate::error::{ApiResult, JsonBytes, Query};
use crate::shared::{PageQuery, answer, early_replay, idempotency_key, stored_json};
use crate::state::AppState;

/// Issues keys: generates the token, stores only its digest, enforces the cap.
#[derive(Debug, Clone, Copy)]
pub struct KeyIssuer<'a> {
    pub store: &'a Store,
    pub digester: &'a KeyDigester,
    pub brand: &'a str,
    pub cap: usize,
    /// The requester's address, for the audit log (`None` at the command line).
    pub ip: Option<&'a str>,
}

/// A key just created: the only moment its secret exists outside the caller.
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl KeyIssuer<'_> {
    pub async fn create(
        &self,
        actor: Actor<'_>,
        org_id: &str,
        req: KeyRequest,
    ) -> Result<CreatedKey> {
        done(self.create_once(actor, org_id, req, None).await?)
    }

    /// [`KeyIssuer::create`] once per `Idempotency-Key` (see [`Once`]).
    pub async fn create_once(
        &self,
        actor: Actor<'_>,
        org_id: &str,
        mut req: KeyRequest,
        idem: Option<Once<'_>>,
    ) -> Result<Outcome<CreatedKey>> {
        if req.limits.is_none() {
            req.default_limits = self.store.org_key_limits(org_id).await?;
        }
        let spec = plan_new_key(actor, org_id, req, now())?;
        self.issue(&spec, None, idem).await
    }

    /// Replaces `old` with a new key of the same name, permissions and scope. The old
    /// key stays valid until revoked, or until `old_expires_at` when given.
    pub async fn rotate(
        &self,
        actor: Actor<'_>,
        old: &ApiKey,
        old_expires_at: Option<Timestamp>,
    ) -> Result<CreatedKey> {
        done(self.rotate_once(actor, old, old_expires_at, None).await?)
    }

    /// [`KeyIssuer::rotate`] once per `Idempotency-Key` (see [`Once`]).
    pub async fn rotate_once(
        &self,
        actor: Actor<'_>,
        old: &ApiKey,
        old_expires_at: Option<Timestamp>,
        idem: Option<Once<'_>>,
    ) -> Result<Outcome<CreatedKey>> {
        self.rotate_once_to(actor, old, old_expires_at, None, idem)
            .await
    }

    /// [`KeyIssuer::rotate_once`], the replacement restricted to `permissions` when
    /// given ([`plan_narrowed_rotation`]: narrowing only).
    pub async fn rotate_once_to(
        &self,
        actor: Actor<'_>,
        old: &ApiKey,
        old_expires_at: Option<Timestamp>,
        permissions: Option<&[String]>,
        idem: Option<Once<'_>>,
    ) -> Result<Outcome<CreatedKey>> {
        let at = now();
        if !old.is_active(at) {
            return Err(Error::Conflict {
                message: format!(
                    "API key {} is {} and cannot be rotated.",
                    old.id,
                    old.status(at)
                ),
                details: None,
            });
        }
        let spec = match permissions {
            None => plan_rotation(actor, old, at)?,
            Some(list) => plan_narrowed_rotation(actor, old, list, at)?,
        };
        let retire = old_expires_at.map(|t| {
            let t = t.max(at);
            (old.id.as_str(), old.expires_at.map_or(t, |e| e.min(t)))
        });
        self.issue(&spec, retire, idem).await
    }

    async fn issue(
        &self,
        spec: &dialtone_domain::auth::KeySpec,
        retire: Option<(&str, Timestamp)>,
        idem: Option<Once<'_>>,
    ) -> Result<Outcome<CreatedKey>> {
        let token = generate(self.brand, spec.mode);
        let digest = self.digester.digest(token.secret.expose_secret());
        let id = new_id("key");
        let row = NewKeyRow {
            id: &id,
            digest: &digest,
            prefix: &token.prefix,
            last_four: &token.last_four,
            ip: self.ip,
            oauth_client_id: None,
        };
        let idem = idem.map(|o| {
            (
                o.scope,
                Idem {
                    key: o.key,
                    answer: key_replay,
                },
            )
        });
        Ok(
            match self
                .store
                .insert_key_once(spec, row, self.cap, retire, idem)
                .await?
            {
                Outcome::Done(key) => Outcome::Done(CreatedKey {
                    key,
                    secret: token.secret,
                }),
                Outcome::Replay(stored) => Outcome::Replay(stored),
            },
        )
    }
}

/// The `Idempotency-Key` of a key creation or rotation and the scope it is kept in
/// (the requesting key's workspace and mode).
#[derive(Debug, Clone, Copy)]
pub struct Once<'a> {
    pub scope: &'a Scope,
    pub key: &'a IdempotencyKey,
}

/// What a replay of a key creation or rotation answers: 200 and the key the first
/// request made, **without its secret** (a token is never stored anywhere, the
/// idempotency table included).
fn key_replay(key: &ApiKey) -> Result<(u16, String)> {
    stored_json(200, &ApiKeyView::new(key, key.created_at))
}

/// The effect of an issuer call made without an `Idempotency-Key`.
fn done(outcome: Outcome<CreatedKey>) -> Result<CreatedKey> {
    match outcome {
        Outcome::Done(created) => Ok(created),
        Outcome::Replay(_) => Err(Error::internal(std::io::Error::other(
            "a replay without an idempotency key",
        ))),
    }
}

pub use dialtone_domain::auth::ApiKeyView;

/// The answer to a creation or rotation: the key and, this once, its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKeyView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The full key. Shown only in this response; store it now.
    #[schema(example = "dt_live_4eC39HqLyjWDarjtT1zdp7dc3bW2Xk9Qa1B2c3")]
    pub secret: String,
}

impl CreatedKeyView {
    pub fn new(created: &CreatedKey) -> Self {
        CreatedKeyView {
            key: ApiKeyView::new(&created.key, now()),
            secret: created.secret.expose_secret().to_owned(),
        }
    }
}

/// `POST /v1/api-keys`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    #[schema(example = "Reporting script")]
    pub name: String,
    /// Every `:read` permission and nothing else.
    #[serde(default)]
    pub read_only: bool,
    /// `live` or `test`; defaults to the calling key's mode.
    pub mode: Option<String>,
    /// Defaults to full access, or every `:read` with `read_only`.
    pub permissions: Option<Vec<String>>,
    /// Scope the key to one workspace; omit for an organization key.
    pub workspace_id: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the key may place. Omitted: the calling key's own limits, and for a live
    /// key the organization's defaults too. At most the calling key's own (403).
    pub limits: Option<KeyLimits>,
}

/// `PATCH /v1/api-keys/{id}`: a new name and/or new limits.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    #[schema(example = "Reporting script")]
    pub name: Option<String>,
    /// The key's limits, replaced whole: a field left out (or `null`) is no limit.
    pub limits: Option<KeyLimits>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// When the old key stops working: `now` or an RFC 3339 time. Omit to keep it
    /// valid until you revoke it.
    #[schema(value_type = Option<String>, example = "now")]
    pub old_key_expires_at: Option<String>,
    /// Restrict the replacement to these permissions, which must all be the old key's
    /// (a rotation only narrows; e.g. the `suggested_permissions` of
    /// `GET /v1/api-keys/{id}/usage`). Omit to keep the old key's permissions.
    #[schema(example = json!(["contacts:read", "calls:read"]))]
    pub permissions: Option<Vec<String>>,
}

/// The calling key, as `GET /v1/me` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    #[schema(example = "api_key")]
    pub object: &'static str,
    pub key_id: String,
    pub organization_id: String,
    /// The key's workspace, or `null` for an organization key.
    pub workspace_id: Option<String>,
    /// Where an organization key acts without a `Dialtone-Workspace` header.
    pub default_workspace_id: String,
    pub scope: &'static str,
    pub mode: Mode,
    pub livemode: bool,
    pub read_only: bool,
    pub permissions: Vec<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl MeView {
    pub fn new(p: &Principal) -> Self {
        MeView {
            object: "api_key",
            key_id: p.key_id.clone(),
            organization_id: p.org_id.clone(),
            workspace_id: p.workspace_id.clone(),
            default_workspace_id: p.default_workspace_id.clone(),
            scope: if p.workspace_id.is_some() {
                "workspace"
            } else {
                "organization"
            },
            mode: p.mode,
            livemode: p.mode.is_live(),
            read_only: !p.permissions.has_any_write(),
            permissions: p.permissions.to_strings(),
            expires_at: p.expires_at,
        }
    }
}

pub(crate) fn issuer<'a>(state: &'a AppState, ip: Option<&'a str>) -> KeyIssuer<'a> {
    KeyIssuer {
        store: &state.store,
        digester: &state.digester,
        brand: &state.config.key_brand,
        cap: state.config.key_cap,
        ip,
    }
}

/// Revokes `key` if `actor` may ([`plan_revocation`]): the row (and the change feed
/// other nodes follow), then this node's cache, before anyone is answered. The REST
/// route and the dashboard both revoke through here; the actor and `ip` go to the
/// audit log with the revocation.
pub async fn revoke_key(
    state: &AppState,
    actor: Actor<'_>,
    key: &ApiKey,
    ip: Option<&str>,
) -> Result<ApiKey> {
    plan_revocation(actor, key)?;
    let revoked = state
        .store
        .revoke_key(&key.org_id, &key.id, &actor.label(), ip)
        .await?;
    state.key_cache.evict(&key.id);
    Ok(revoked)
}

/// Rotates `old` (see [`KeyIssuer::rotate`]) and drops it from this node's cache, so
/// a new expiry applies at once. Used by the REST route and the dashboard.
pub async fn rotate_key(
    state: &AppState,
    actor: Actor<'_>,
    old: &ApiKey,
    old_expires_at: Option<Timestamp>,
    ip: Option<&str>,
) -> Result<CreatedKey> {
    done(rotate_key_once(state, actor, old, old_expires_at, ip, None).await?)
}

/// [`rotate_key`] once per `Idempotency-Key`.
pub async fn rotate_key_once(
    state: &AppState,
    actor: Actor<'_>,
    old: &ApiKey,
    old_expires_at: Option<Timestamp>,
    ip: Option<&str>,
    idem: Option<Once<'_>>,
) -> Result<Outcome<CreatedKey>> {
    rotate_key_to(state, actor, old, old_expires_at, None, ip, idem).await
}

/// [`rotate_key`] into a key restricted to `permissions` (narrowing only).
pub async fn rotate_key_narrowed(
    state: &AppState,
    actor: Actor<'_>,
    old: &ApiKey,
    old_expires_at: Option<Timestamp>,
    permissions: &[String],
    ip: Option<&str>,
) -> Result<CreatedKey> {
    done(
        rotate_key_to(
            state,
            actor,
            old,
            old_expires_at,
            Some(permissions),
            ip,
            None,
        )
        .await?,
    )
}

/// [`rotate_key_once`] into a key restricted to `permissions` when given (narrowing
/// only): the REST route's `permissions` and the dashboard's "rotate into a key
/// restricted to what it used".
pub async fn rotate_key_to(
    state: &AppState,
    actor: Actor<'_>,
    old: &ApiKey,
    old_expires_at: Option<Timestamp>,
    permissions: Option<&[String]>,
    ip: Option<&str>,
    idem: Option<Once<'_>>,
) -> Result<Outcome<CreatedKey>> {
    let created = issuer(state, ip)
        .rotate_once_to(actor, old, old_expires_at, permissions, idem)
        .await?;
    state.key_cache.evict(&old.id);
    Ok(created)
}

/// Changes a key's name and/or limits if `actor` may ([`plan_key_update`]): the row
/// (audited, on the change feed) and this node's cache. The REST route and the
/// dashboard both change keys through here.
pub async fn update_key(
    state: &AppState,
    actor: Actor<'_>,
    key: &ApiKey,
    update: KeyUpdate,
    ip: Option<&str>,
) -> Result<ApiKey> {
    let update = plan_key_update(actor, key, update)?;
    let updated = state
        .store
        .update_key(&key.org_id, &key.id, &update, &actor.label(), ip)
        .await?;
    state.key_cache.evict(&key.id);
    Ok(updated)
}

/// Loads a key the caller may see, with this node's unflushed usage merged in.
async fn visible_key(state: &AppState, caller: &Principal, id: &str) -> Result<ApiKey> {
    let not_found = Error::NotFound {
        resource: "api_key",
    };
    if !looks_like("key", id) {
        return Err(not_found);
    }
    let mut key = state.store.get_key(&caller.org_id, id).await?;
    if !caller.can_see_key(&key) {
        return Err(not_found);
    }
    state.usage.merge_into(&mut key);
    Ok(key)
}

/// Identify the calling key
///
/// The key that made this request: its organization, workspace (or organization
/// scope), mode and permissions. Any valid key may call it; clients use it to learn what
/// they may do.
#[utoipa::path(get, path = "/v1/me", tag = "api_keys",
    responses((status = 200, description = "The calling key", body = MeView)))]
pub async fn me(Caller(p): Caller) -> impl IntoResponse {
    axum::Json(MeView::new(&p))
}

/// Create an API key
///
/// The answer holds `secret`, the full key, this once. A key can only create keys
/// within its own permissions, mode, workspace and lifetime.
///
/// Takes an `Idempotency-Key`, kept per requesting key's workspace and mode. Secrets
/// are never stored, so a retry with the same key and body creates nothing and
/// answers **200** with the key the first request created, **without `secret`**
/// (`Idempotent-Replayed: true`). If the first answer was lost, revoke that key (or
/// rotate it) and use the new secret.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api_keys", request_body = CreateKeyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe; a replay answers 200 without the secret")),
    responses((status = 201, description = "The new key, with its secret", body = CreatedKeyView),
              (status = 200, description = "A replay (same Idempotency-Key and body): the key the first request created, without its secret", body = ApiKeyView),
              (status = 409, description = "The organization's key limit is reached, or the Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ip: ClientIp,
    headers: HeaderMap,
    JsonBytes(body, raw): JsonBytes<CreateKeyBody>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/api-keys", &raw)?;
    let scope = p.scope(None)?;
    if let Some(replayed) = early_replay(&state.store.scoped(&scope), idem.as_ref()).await? {
        return Ok(replayed);
    }
    let req = KeyRequest {
        name: body.name,
        read_only: body.read_only,
        mode: body.mode.as_deref().map(str::parse).transpose()?,
        permissions: body.permissions,
        workspace_id: body.workspace_id,
        expires_at: body.expires_at.map(dialtone_domain::time::truncate),
        limits: body.limits,
        default_limits: KeyLimits::default(),
    };
    let outcome = issuer(&state, ip.as_deref())
        .create_once(
            Actor::Key(&p),
            &p.org_id,
            req,
            idem.as_ref().map(|key| Once { scope: &scope, key }),
        )
        .await?;
    answer(outcome, idem.as_ref(), |created| {
        tracing::info!(key_id = %created.key.id, by = %p.key_id, "api key created");
        (
            StatusCode::CREATED,
            axum::Json(CreatedKeyView::new(&created)),
        )
            .into_response()
    })
}

/// List API keys
///
/// Keys this key may see: a workspace key sees its workspace's keys, a test key test
/// keys. Never their secrets: only `last_four`, with usage (`last_used_at`, `last_used_ip`,
/// `requests_30d`). Cursor-paged.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api_keys", params(PageQuery),
    responses((status = 200, description = "Keys, newest first", body = Page<ApiKeyView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let mode = (p.mode == Mode::Test).then_some(Mode::Test);
    let keys = state
        .store
        .list_keys(&p.org_id, p.workspace_id.as_deref(), mode, &page)
        .await?;
    let at = now();
    let page = Page::from_rows(keys, &page, |k| &k.id).map(|mut k| {
        state.usage.merge_into(&mut k);
        ApiKeyView::new(&k, at)
    });
    Ok(axum::Json(page))
}

/// Retrieve an API key
///
/// Its permissions, scope, mode, expiry, state and usage; never the secret.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api_keys",
    params(("id" = String, Path, description = "key_…")),
    responses((status = 200, description = "The key", body = ApiKeyView)))]
pub async fn get(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let key = visible_key(&state, &p, &id).await?;
    Ok(axum::Json(ApiKeyView::new(&key, now())))
}

/// Update an API key
///
/// Renames a key and/or replaces its limits (`limits` is replaced whole: a field
/// left out is no limit). A key may narrow its own limits, never widen them; it may
/// give another key (within its reach, as for revocation) limits within its own
/// (403 `INSUFFICIENT_PERMISSIONS`). Nothing else of a key changes: permissions,
/// scope and mode are fixed (rotate into a new key instead). The new limits apply to
/// the next call or message. Audited.
#[utoipa::path(patch, path = "/v1/api-keys/{id}", tag = "api_keys", request_body = UpdateKeyBody,
    params(("id" = String, Path, description = "key_…")),
    responses((status = 200, description = "The key after the change", body = ApiKeyView),
              (status = 409, description = "The key is revoked (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    JsonBytes(body, _raw): JsonBytes<UpdateKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let target = visible_key(&state, &p, &id).await?;
    let update = KeyUpdate {
        name: body.name,
        limits: body.limits,
    };
    let mut key = update_key(&state, Actor::Key(&p), &target, update, ip.as_deref()).await?;
    state.usage.merge_into(&mut key);
    tracing::info!(key_id = %id, by = %p.key_id, "api key updated");
    Ok(axum::Json(ApiKeyView::new(&key, now())))
}

/// Revoke an API key
///
/// Immediate and permanent: the next request with the key gets 401. A key may always
/// revoke itself; otherwise only keys within its reach — no permission it lacks, its
/// own workspace (a workspace key cannot revoke an organization key), and not a live
/// key from a test key (403 `INSUFFICIENT_PERMISSIONS` names what is missing).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api_keys",
    params(("id" = String, Path, description = "key_…")),
    responses((status = 200, description = "The revoked key", body = ApiKeyView)))]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(p): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let target = visible_key(&state, &p, &id).await?;
    let key = revoke_key(&state, Actor::Key(&p), &target, ip.as_deref()).await?;
    tracing::info!(key_id = %id, by = %p.key_id, "api key revoked");
    Ok(axum::Json(ApiKeyView::new(&key, now())))
}

/// Rotate an API key
///
/// Issues a replacement with the same name, permissions and scope. The old key keeps
/// working until you revoke it, or until `old_key_expires_at`. With `permissions`, the
/// replacement holds only those, which must all be the old key's (400 otherwise): rotate
/// into the `suggested_permissions` of the key's usage to drop what it never uses.
///
/// Takes an `Idempotency-Key`, kept per requesting key's workspace and mode: a retry
/// with the same key and body makes no second replacement (and moves no expiry) and
/// answers **200** with the replacement the first request made, **without `secret`**
/// (`Idempotent-Replayed: true`), since secrets are never stored.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api_keys",
    params(("id" = String, Path, description = "key_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe; a replay answers 200 without the secret")),
    request_body(content = Option<RotateKeyBody>),
    responses((status = 201, description = "The replacement key, with its secret", body = CreatedKeyView),
              (status = 200, description = "A replay (same Idempotency-Key and body): the replacement the first request made, without its secret", body = ApiKeyView),
              (status = 409, description = "The key cannot be rotated (revoked or expired), or the Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    Caller(p): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let idem = idempotency_key(
        &headers,
        "POST",
        &format!("/v1/api-keys/{id}/rotate"),
        &body,
    )?;
    let scope = p.scope(None)?;
    if let Some(replayed) = early_replay(&state.store.scoped(&scope), idem.as_ref()).await? {
        return Ok(replayed);
    }
    let body: RotateKeyBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKeyBody::default()
    } else {
        crate::error::parse_object(&body)?
    };
    let old_expires_at = match body.old_key_expires_at.as_deref() {
        None => None,
        Some("now") => Some(now()),
        Some(t) => Some(dialtone_domain::time::truncate(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| {
                    Error::validation(
                        "old_key_expires_at",
                        "old_key_expires_at must be \"now\" or an RFC 3339 time",
                    )
                })?
                .with_timezone(&chrono::Utc),
        )),
    };
    let old = visible_key(&state, &p, &id).await?;
    let outcome = rotate_key_to(
        &state,
        Actor::Key(&p),
        &old,
        old_expires_at,
        body.permissions.as_deref(),
        ip.as_deref(),
        idem.as_ref().map(|key| Once { scope: &scope, key }),
    )
    .await?;
    answer(outcome, idem.as_ref(), |created| {
        tracing::info!(key_id = %id, new_key_id = %created.key.id, by = %p.key_id, "api key rotated");
        (
            StatusCode::CREATED,
            axum::Json(CreatedKeyView::new(&created)),
        )
            .into_response()
    })
}

/// A key's requests per permission exercised in the last 30 days (stored counts of
/// every node plus this node's unflushed ones) and the least-privilege suggestion.
pub async fn key_usage(state: &AppState, key: &ApiKey) -> Result<KeyUsageView> {
    let since = window_start_day(now());
    let mut used = state.store.permission_usage(&key.id, since).await?;
    state.usage.merge_permissions(&key.id, since, &mut used);
    Ok(KeyUsageView::new(&key.id, key.permissions, used))
}

/// Retrieve an API key's usage by permission
///
/// What the key's requests of the last 30 days needed: each permission exercised
/// (the one its route requires) with its request count and last use, and
/// `suggested_permissions`, the smallest set that would have allowed every one of
/// them (`write` implies `read`). Routes any key may call (`/v1/me`, the event log)
/// need no permission and are not listed. Counts are written in batches, summed across
/// nodes; this node's unwritten counts are included. Same visibility as
/// `GET /v1/api-keys/{id}`.
#[utoipa::path(get, path = "/v1/api-keys/{id}/usage", tag = "api_keys",
    params(("id" = String, Path, description = "key_…")),
    responses((status = 200, description = "The key's usage by permission and the least-privilege suggestion", body = KeyUsageView)))]
pub async fn usage(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let key = visible_key(&state, &p, &id).await?;
    Ok(axum::Json(key_usage(&state, &key).await?))
}
