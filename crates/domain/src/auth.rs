//! Who is calling and what they may do: the one place permissions are decided.
//!
//! A [`Principal`] is an authenticated API key. REST handlers, MCP tools and the
//! dashboard all call [`Principal::require`] and [`Principal::scope`]; key creation and
//! rotation go through [`plan_new_key`], which enforces that a key can only create
//! keys within its own permissions, mode, scope and lifetime; revocation goes through
//! [`plan_revocation`], the same containment (a key may always revoke itself).

use crate::error::{Error, Result, Validator};
use crate::limits::KeyLimits;
use crate::permissions::{Permission, Permissions, Resource};
use crate::tenancy::{Mode, Scope};
use crate::time::{Timestamp, rfc3339};

/// An API key as stored (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    /// `None` for an organization-level key.
    pub workspace_id: Option<String>,
    pub name: String,
    pub mode: Mode,
    pub permissions: Permissions,
    /// `{brand}_{mode}_`, so the key can be shown as `dt_live_…abcd`.
    pub prefix: String,
    pub last_four: String,
    pub created_at: Timestamp,
    /// `key_…` of the key that created it, `user_…`, or `cli`.
    pub created_by: String,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The key this one replaced, when it came from a rotation.
    pub rotated_from: Option<String>,
    pub last_used_at: Option<Timestamp>,
    pub last_ip: Option<String>,
    pub requests_30d: i64,
    /// The OAuth client this key was granted to (an OAuth grant), `None` for an API key.
    pub oauth_client_id: Option<String>,
    /// What the key may place (calls, messages, money); empty: no limits.
    pub limits: KeyLimits,
}

impl ApiKey {
    pub fn read_only(&self) -> bool {
        !self.permissions.has_any_write()
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if !self.is_active(now) {
            "expired"
        } else {
            "active"
        }
    }

    /// What the key looks like after creation: `dt_live_…abcd`.
    /// How the audit log names it: `read-only live key “CRM” (dt_live_…abcd)`.
    pub fn describe(&self) -> String {
        let mut kind = Vec::new();
        if self.read_only() {
            kind.push("read-only");
        }
        kind.push(if self.mode == Mode::Test {
            "test"
        } else {
            "live"
        });
        let what = if self.oauth_client_id.is_some() {
            "OAuth grant"
        } else {
            "key"
        };
        format!(
            "{} {what} “{}” ({})",
            kind.join(" "),
            self.name,
            self.masked()
        )
    }

    pub fn masked(&self) -> String {
        format!("{}…{}", self.prefix, self.last_four)
    }
}

/// An API key as the API shows it: never the secret, only its last four characters.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    #[schema(example = "key_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "api_key")]
    pub object: &'static str,
    pub name: String,
    pub mode: Mode,
    pub livemode: bool,
    /// True when the key holds no `:write` permission.
    pub read_only: bool,
    #[schema(value_type = Vec<String>, example = json!(["contacts:read", "calls:read"]))]
    pub permissions: Vec<String>,
    /// `organization` for a key that works in every workspace, else `workspace`.
    pub scope: &'static str,
    pub workspace_id: Option<String>,
    #[schema(example = "abcd")]
    pub last_four: String,
    /// How the key is displayed after creation, e.g. `dt_live_…abcd`.
    pub redacted: String,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub created_by: String,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub rotated_from: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    pub last_ip: Option<String>,
    /// Authenticated requests in the last 30 days.
    pub requests_30d: i64,
    /// What the key may place; each `null` field is no limit.
    pub limits: KeyLimits,
}

impl ApiKeyView {
    pub fn new(key: &ApiKey, at: Timestamp) -> Self {
        ApiKeyView {
            id: key.id.clone(),
            object: "api_key",
            name: key.name.clone(),
            mode: key.mode,
            livemode: key.mode.is_live(),
            read_only: key.read_only(),
            permissions: key.permissions.to_strings(),
            scope: if key.workspace_id.is_some() {
                "workspace"
            } else {
                "organization"
            },
            workspace_id: key.workspace_id.clone(),
            last_four: key.last_four.clone(),
            redacted: key.masked(),
            status: key.status(at),
            created_at: key.created_at,
            created_by: key.created_by.clone(),
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            rotated_from: key.rotated_from.clone(),
            last_used_at: key.last_used_at,
            last_ip: key.last_ip.clone(),
            requests_30d: key.requests_30d,
            limits: key.limits.clone(),
        }
    }
}

/// The authenticated caller of a request: one active API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub org_id: String,
    /// `None` for an organization-level key.
    pub workspace_id: Option<String>,
    /// Where an organization-level key acts when no `Dialtone-Workspace` is sent.
    pub default_workspace_id: String,
    pub mode: Mode,
    pub permissions: Permissions,
    pub expires_at: Option<Timestamp>,
    /// The key's limits, to decide which limits it may give (enforcement reads the
    /// key row in the transaction that places a call or message).
    pub limits: KeyLimits,
}

impl Principal {
    pub fn from_key(key: &ApiKey, default_workspace_id: String) -> Self {
        Principal {
            key_id: key.id.clone(),
            org_id: key.org_id.clone(),
            workspace_id: key.workspace_id.clone(),
            default_workspace_id,
            mode: key.mode,
            permissions: key.permissions,
            expires_at: key.expires_at,
            limits: key.limits.clone(),
        }
    }

    /// Refuses with 403 `INSUFFICIENT_PERMISSIONS` unless the key holds `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.permissions.allows(p) {
            Ok(())
        } else {
            Err(Error::forbidden(p))
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// The scope a request acts in. `requested` is the `Dialtone-Workspace` header.
    ///
    /// A workspace key may only name its own workspace. For an organization key the
    /// caller must still check that the named workspace belongs to the organization.
    pub fn scope(&self, requested: Option<&str>) -> Result<Scope> {
        if let Some(asked) = requested
            && !crate::id::looks_like("ws", asked)
        {
            return Err(Error::validation(
                "Dialtone-Workspace",
                "Dialtone-Workspace must be a workspace id (ws_…)",
            ));
        }
        let workspace_id = match (&self.workspace_id, requested) {
            (Some(own), None) => own.clone(),
            (Some(own), Some(asked)) if asked == own => own.clone(),
            (Some(own), Some(_)) => {
                return Err(Error::Forbidden {
                    message: format!(
                        "This API key belongs to workspace {own} and cannot act in another workspace."
                    ),
                    required_permission: None,
                });
            }
            (None, None) => self.default_workspace_id.clone(),
            (None, Some(asked)) => asked.to_owned(),
        };
        Ok(Scope {
            org_id: self.org_id.clone(),
            workspace_id,
            mode: self.mode,
        })
    }

    /// Whether this key may see (and so manage) another key of its organization.
    /// Workspace keys see their workspace's keys; test keys see test keys only.
    pub fn can_see_key(&self, key: &ApiKey) -> bool {
        key.org_id == self.org_id
            && (self.workspace_id.is_none() || key.workspace_id == self.workspace_id)
            && (self.mode == Mode::Live || key.mode == Mode::Test)
    }
}

/// Who asks for a new key.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An operator at the command line: may create any key of the organization.
    Operator,
    /// A user of the dashboard: may create any key of their organization.
    User(&'a str),
    /// An API key with `api_keys:write`: only keys within its own reach.
    Key(&'a Principal),
}

impl Actor<'_> {
    pub fn label(&self) -> String {
        match self {
            Actor::Operator => "cli".to_owned(),
            Actor::User(id) => (*id).to_owned(),
            Actor::Key(p) => p.key_id.clone(),
        }
    }
}

/// A request for a new key, as the API, the CLI and the dashboard receive it.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    pub name: String,
    pub read_only: bool,
    pub mode: Option<Mode>,
    pub permissions: Option<Vec<String>>,
    pub workspace_id: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The key's limits; `None`: the creating key's own (a key creating a key), and
    /// for a live key the organization's defaults too.
    pub limits: Option<KeyLimits>,
    /// The organization's default limits for new live keys (filled by the issuer).
    pub default_limits: KeyLimits,
}

/// A key creation that passed every rule; storage still enforces the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub org_id: String,
    pub name: String,
    pub mode: Mode,
    pub permissions: Permissions,
    pub workspace_id: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub created_by: String,
    pub rotated_from: Option<String>,
    pub limits: KeyLimits,
}

pub const KEY_NAME_MAX: usize = 100;

/// Decides whether `actor` may create the key `req` asks for, and what it will be.
pub fn plan_new_key(
    actor: Actor<'_>,
    org_id: &str,
    req: KeyRequest,
    now: Timestamp,
) -> Result<KeySpec> {
    let name = req.name.trim().to_owned();
    let mut v = Validator::new();
    v.check(!name.is_empty(), "name", "name must not be empty");
    v.max_len("name", Some(&name), KEY_NAME_MAX);
    let mut permissions = match &req.permissions {
        None if req.read_only => Permissions::read_only(),
        None => Permissions::full(),
        Some(list) => match Permissions::parse_list(list.iter().map(String::as_str)) {
            Ok(p) => p,
            Err(Error::Validation { details, .. }) => {
                for d in details {
                    v.push(&d.field, d.message);
                }
                Permissions::NONE
            }
            Err(e) => return Err(e),
        },
    };
    if let Some(list) = &req.permissions {
        v.check(
            !list.is_empty(),
            "permissions",
            "permissions must not be empty",
        );
        if req.read_only && permissions.has_any_write() {
            v.push(
                "permissions",
                "a read-only key cannot hold a :write permission",
            );
        }
    }
    if let Some(e) = req.expires_at {
        v.check(e > now, "expires_at", "expires_at must be in the future");
    }
    let given = match req.limits.map(|l| l.validated("limits")).transpose() {
        Ok(l) => l,
        Err(Error::Validation { details, .. }) => {
            for d in details {
                v.push(&d.field, d.message);
            }
            None
        }
        Err(e) => return Err(e),
    };
    v.finish()?;

    let mut mode = req.mode.unwrap_or(Mode::Live);
    let mut workspace_id = req.workspace_id;
    let mut expires_at = req.expires_at;
    if let Actor::Key(p) = actor {
        if req.mode.is_none() {
            mode = p.mode;
        }
        if let Some(missing) = permissions.first_missing_from(p.permissions) {
            return Err(Error::Forbidden {
                message: format!(
                    "An API key can only create keys within its own permissions; this key lacks {missing}."
                ),
                required_permission: Some(missing),
            });
        }
        if p.mode == Mode::Test && mode == Mode::Live {
            return Err(scope_error("A test key cannot create a live key."));
        }
        if let Some(own) = &p.workspace_id {
            match &workspace_id {
                None => workspace_id = Some(own.clone()),
                Some(asked) if asked == own => {}
                Some(_) => {
                    return Err(scope_error(
                        "A workspace key can only create keys in its own workspace.",
                    ));
                }
            }
        }
        if let Some(limit) = p.expires_at {
            match expires_at {
                None => expires_at = Some(limit),
                Some(e) if e <= limit => {}
                Some(_) => {
                    return Err(scope_error(
                        "A key cannot create a key that outlives it (expires_at is later than this key's).",
                    ));
                }
            }
        }
    }
    let mut limits = match &given {
        Some(l) => l.clone(),
        None if mode == Mode::Live => req.default_limits,
        None => KeyLimits::default(),
    };
    if let Actor::Key(p) = actor {
        match &given {
            Some(l) => {
                if let Some(wider) = l.first_wider_than(&p.limits) {
                    return Err(scope_error(&format!(
                        "An API key can only give a key it creates limits within its own; {wider} is wider than this key's."
                    )));
                }
            }
            None => limits = limits.intersect(&p.limits),
        }
    }
    permissions = Permissions::from_iter(permissions.iter());
    Ok(KeySpec {
        org_id: org_id.to_owned(),
        name,
        mode,
        permissions,
        workspace_id,
        expires_at,
        created_by: actor.label(),
        rotated_from: None,
        limits,
    })
}

/// An OAuth grant has no key secret to replace (its tokens rotate by themselves): it
/// is revoked and the app connected again, never rotated into an API key.
fn refuse_grant(old: &ApiKey) -> Result<()> {
    if old.oauth_client_id.is_some() {
        return Err(Error::Conflict {
            message: "An OAuth grant cannot be rotated: revoke it and connect the app again."
                .to_owned(),
            details: None,
        });
    }
    Ok(())
}

/// The replacement of `old` in a rotation: same name, mode, permissions and scope,
/// subject to the same rules as any new key.
pub fn plan_rotation(actor: Actor<'_>, old: &ApiKey, now: Timestamp) -> Result<KeySpec> {
    refuse_grant(old)?;
    let req = KeyRequest {
        name: old.name.clone(),
        read_only: false,
        mode: Some(old.mode),
        permissions: Some(old.permissions.to_strings()),
        workspace_id: old.workspace_id.clone(),
        expires_at: old.expires_at.filter(|e| *e > now),
        limits: Some(old.limits.clone()),
        default_limits: KeyLimits::default(),
    };
    let mut spec = plan_new_key(actor, &old.org_id, req, now)?;
    spec.rotated_from = Some(old.id.clone());
    Ok(spec)
}

/// A rotation of `old` into a key restricted to `permissions`: narrowing only. Every
/// permission asked for must be one `old` holds (else a 400 on `permissions`); the rest
/// is [`plan_rotation`]: same name, mode, scope and expiry, and the rules of any new key.
/// A key acting must also hold everything `old` holds ([`plan_revocation`]'s reach).
pub fn plan_narrowed_rotation(
    actor: Actor<'_>,
    old: &ApiKey,
    permissions: &[String],
    now: Timestamp,
) -> Result<KeySpec> {
    refuse_grant(old)?;
    // A key may only narrow keys it could revoke: otherwise narrowing with the old
    // key expiring would retire a key beyond its reach.
    plan_revocation(actor, old)?;
    let asked = Permissions::parse_list(permissions.iter().map(String::as_str))?;
    if let Some(extra) = asked.first_missing_from(old.permissions) {
        return Err(Error::validation(
            "permissions",
            format!(
                "A rotation can only narrow a key: {} does not hold {extra}.",
                old.id
            ),
        ));
    }
    let req = KeyRequest {
        name: old.name.clone(),
        read_only: false,
        mode: Some(old.mode),
        permissions: Some(permissions.to_vec()),
        workspace_id: old.workspace_id.clone(),
        expires_at: old.expires_at.filter(|e| *e > now),
        limits: Some(old.limits.clone()),
        default_limits: KeyLimits::default(),
    };
    let mut spec = plan_new_key(actor, &old.org_id, req, now)?;
    spec.rotated_from = Some(old.id.clone());
    Ok(spec)
}

/// Decides whether `actor` may revoke `key`: the same containment as creating it.
///
/// A key may always revoke itself. Otherwise a key may only revoke keys within its
/// own reach: no permission it lacks, its own workspace when it is a workspace key
/// (never an organization key or another workspace's), and test keys only when it is
/// a test key. Operators and dashboard users (whose role was checked by
/// [`crate::users::authorize`]) may revoke any key of their organization.
pub fn plan_revocation(actor: Actor<'_>, key: &ApiKey) -> Result<()> {
    let Actor::Key(p) = actor else {
        return Ok(());
    };
    if p.key_id == key.id {
        return Ok(());
    }
    if p.org_id != key.org_id {
        return Err(Error::NotFound {
            resource: "api_key",
        });
    }
    if let Some(missing) = key.permissions.first_missing_from(p.permissions) {
        return Err(Error::Forbidden {
            message: format!(
                "An API key can only revoke keys within its own permissions; this key lacks {missing}."
            ),
            required_permission: Some(missing),
        });
    }
    if p.mode == Mode::Test && key.mode == Mode::Live {
        return Err(scope_error("A test key cannot revoke a live key."));
    }
    if let Some(own) = &p.workspace_id {
        match &key.workspace_id {
            Some(ws) if ws == own => {}
            None => {
                return Err(scope_error(
                    "A workspace key cannot revoke an organization key.",
                ));
            }
            Some(_) => {
                return Err(scope_error(
                    "A workspace key can only revoke keys in its own workspace.",
                ));
            }
        }
    }
    Ok(())
}

/// A change to an existing key (`PATCH /v1/api-keys/{id}`, the dashboard): its name
/// and its limits. `None` leaves a field as it is; limits are replaced whole.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub limits: Option<KeyLimits>,
}

/// Decides whether `actor` may change `key` as `update` asks, and returns the update
/// checked (name trimmed, limits validated and normalized).
///
/// A key may rename itself and narrow its own limits, never widen them. Another key
/// must be within its reach (the containment of [`plan_revocation`]) and gets limits
/// within the actor's own. Operators and dashboard owners and admins (whose role was
/// checked by [`crate::users::authorize`]) may set any limits.
pub fn plan_key_update(actor: Actor<'_>, key: &ApiKey, update: KeyUpdate) -> Result<KeyUpdate> {
    let mut v = Validator::new();
    let name = update.name.map(|n| n.trim().to_owned());
    if let Some(n) = &name {
        v.check(!n.is_empty(), "name", "name must not be empty");
        v.max_len("name", Some(n), KEY_NAME_MAX);
    }
    let limits = match update.limits.map(|l| l.validated("limits")).transpose() {
        Ok(l) => l,
        Err(Error::Validation { details, .. }) => {
            for d in details {
                v.push(&d.field, d.message);
            }
            None
        }
        Err(e) => return Err(e),
    };
    v.finish()?;
    if let Actor::Key(p) = actor {
        let own = p.key_id == key.id;
        if !own {
            plan_revocation(actor, key)?;
        }
        if let Some(l) = &limits {
            let outer = if own { &key.limits } else { &p.limits };
            if let Some(wider) = l.first_wider_than(outer) {
                return Err(scope_error(&if own {
                    format!(
                        "An API key can only narrow its own limits; {wider} would be wider than it is."
                    )
                } else {
                    format!(
                        "An API key can only give another key limits within its own; {wider} is wider than this key's."
                    )
                }));
            }
        }
    }
    Ok(KeyUpdate { name, limits })
}

fn scope_error(message: &str) -> Error {
    Error::Forbidden {
        message: message.to_owned(),
        required_permission: None,
    }
}

/// The permission an operation on a resource needs.
pub fn needs(resource: Resource, write: bool) -> Permission {
    if write {
        Permission::write(resource)
    } else {
        Permission::read(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;

    fn principal(perms: Permissions, ws: Option<&str>, mode: Mode) -> Principal {
        Principal {
            key_id: "key_a".into(),
            org_id: "org_a".into(),
            workspace_id: ws.map(str::to_owned),
            default_workspace_id: "ws_default".into(),
            mode,
            permissions: perms,
            expires_at: None,
            limits: KeyLimits::default(),
        }
    }

    fn req(perms: Option<&[&str]>) -> KeyRequest {
        KeyRequest {
            name: "k".into(),
            permissions: perms.map(|p| p.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_to_full_access_and_read_only_toggle_means_every_read() {
        let spec = plan_new_key(Actor::Operator, "org_a", req(None), now()).expect("ok");
        assert!(spec.permissions.is_full());
        let mut r = req(None);
        r.read_only = true;
        let spec = plan_new_key(Actor::Operator, "org_a", r, now()).expect("ok");
        assert_eq!(spec.permissions, Permissions::read_only());
    }

    #[test]
    fn read_only_with_a_write_permission_is_invalid() {
        let mut r = req(Some(&["contacts:write"]));
        r.read_only = true;
        let err = plan_new_key(Actor::Operator, "org_a", r, now()).expect_err("invalid");
        assert!(matches!(err, Error::Validation { .. }));
    }

    #[test]
    fn a_key_cannot_create_a_broader_key() {
        let p = principal(
            Permissions::parse_list(["contacts:read", "api_keys:write"]).expect("valid"),
            None,
            Mode::Live,
        );
        let err = plan_new_key(Actor::Key(&p), "org_a", req(None), now()).expect_err("broader");
        assert!(matches!(err, Error::Forbidden { .. }));
        let ok = plan_new_key(
            Actor::Key(&p),
            "org_a",
            req(Some(&["contacts:read"])),
            now(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn scope_mode_and_lifetime_are_inherited_limits() {
        let mut p = principal(Permissions::full(), Some("ws_1"), Mode::Test);
        let spec = plan_new_key(Actor::Key(&p), "org_a", req(None), now()).expect("ok");
        assert_eq!(spec.workspace_id.as_deref(), Some("ws_1"));
        assert_eq!(spec.mode, Mode::Test);
        let mut r = req(None);
        r.workspace_id = Some("ws_2".into());
        assert!(plan_new_key(Actor::Key(&p), "org_a", r, now()).is_err());
        let mut r = req(None);
        r.mode = Some(Mode::Live);
        assert!(plan_new_key(Actor::Key(&p), "org_a", r, now()).is_err());
        let limit = now() + chrono::TimeDelta::hours(1);
        p.expires_at = Some(limit);
        let spec = plan_new_key(Actor::Key(&p), "org_a", req(None), now()).expect("ok");
        assert_eq!(spec.expires_at, Some(limit));
    }

    fn stored(id: &str, perms: Permissions, ws: Option<&str>, mode: Mode) -> ApiKey {
        ApiKey {
            id: id.into(),
            org_id: "org_a".into(),
            workspace_id: ws.map(str::to_owned),
            name: "k".into(),
            mode,
            permissions: perms,
            prefix: "dt_live_".into(),
            last_four: "abcd".into(),
            created_at: now(),
            created_by: "cli".into(),
            expires_at: None,
            revoked_at: None,
            rotated_from: None,
            last_used_at: None,
            last_ip: None,
            requests_30d: 0,
            oauth_client_id: None,
            limits: KeyLimits::default(),
        }
    }

    #[test]
    fn an_oauth_grant_is_never_rotated_or_narrowed() {
        let mut grant = stored("key_g", Permissions::read_only(), None, Mode::Live);
        grant.oauth_client_id = Some("oacl_x".into());
        let err = plan_rotation(Actor::Operator, &grant, now()).expect_err("a grant");
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        let err = plan_narrowed_rotation(Actor::Operator, &grant, &["contacts:read".into()], now())
            .expect_err("a grant");
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert!(grant.describe().contains("OAuth grant"));
    }

    #[test]
    fn revocation_needs_the_same_containment_as_creation() {
        let narrow = Permissions::parse_list(["contacts:read", "api_keys:write"]).expect("valid");
        let p = principal(narrow, None, Mode::Live);
        let full = stored("key_b", Permissions::full(), None, Mode::Live);
        let err = plan_revocation(Actor::Key(&p), &full).expect_err("broader");
        assert!(matches!(err, Error::Forbidden { .. }));
        let same = stored("key_b", narrow, None, Mode::Live);
        assert!(plan_revocation(Actor::Key(&p), &same).is_ok());
        // Itself, always; operators and users, any key.
        let me = stored("key_a", Permissions::full(), None, Mode::Live);
        assert!(plan_revocation(Actor::Key(&p), &me).is_ok());
        assert!(plan_revocation(Actor::Operator, &full).is_ok());
        assert!(plan_revocation(Actor::User("user_a"), &full).is_ok());

        let ws = principal(Permissions::full(), Some("ws_1"), Mode::Live);
        assert!(plan_revocation(Actor::Key(&ws), &full).is_err());
        let other = stored("key_b", Permissions::NONE, Some("ws_2"), Mode::Live);
        assert!(plan_revocation(Actor::Key(&ws), &other).is_err());
        let own = stored("key_b", Permissions::NONE, Some("ws_1"), Mode::Live);
        assert!(plan_revocation(Actor::Key(&ws), &own).is_ok());

        let test = principal(Permissions::full(), None, Mode::Test);
        let live = stored("key_b", Permissions::NONE, None, Mode::Live);
        assert!(plan_revocation(Actor::Key(&test), &live).is_err());
        let test_key = stored("key_b", Permissions::NONE, None, Mode::Test);
        assert!(plan_revocation(Actor::Key(&test), &test_key).is_ok());
    }

    fn limits(json: serde_json::Value) -> KeyLimits {
        serde_json::from_value(json).expect("limits")
    }

    #[test]
    fn a_key_gives_at_most_its_own_limits_and_only_narrows_its_own() {
        let mut p = principal(Permissions::full(), None, Mode::Live);
        p.limits = limits(
            serde_json::json!({"max_concurrent_calls": 2, "allowed_destination_countries": ["US"]}),
        );
        // Nothing asked: the creator's own limits.
        let spec = plan_new_key(Actor::Key(&p), "org_a", req(None), now()).expect("ok");
        assert_eq!(spec.limits, p.limits);
        // Wider: refused, whether a number or a country.
        for wider in [
            serde_json::json!({"max_concurrent_calls": 3, "allowed_destination_countries": ["US"]}),
            serde_json::json!({"max_concurrent_calls": 1, "allowed_destination_countries": ["US", "FR"]}),
            serde_json::json!({"allowed_destination_countries": ["US"]}),
        ] {
            let mut r = req(None);
            r.limits = Some(limits(wider));
            assert!(matches!(
                plan_new_key(Actor::Key(&p), "org_a", r, now()),
                Err(Error::Forbidden { .. })
            ));
        }
        // Operators and users may give anything; live keys get the defaults.
        let mut r = req(None);
        r.default_limits = limits(serde_json::json!({"max_messages_per_day": 9}));
        let spec = plan_new_key(Actor::Operator, "org_a", r.clone(), now()).expect("ok");
        assert_eq!(spec.limits.max_messages_per_day, Some(9));
        r.mode = Some(Mode::Test);
        let spec = plan_new_key(Actor::Operator, "org_a", r, now()).expect("ok");
        assert!(spec.limits.is_empty());

        let mut me = stored("key_a", Permissions::full(), None, Mode::Live);
        me.limits = p.limits.clone();
        let narrower = KeyUpdate {
            name: None,
            limits: Some(limits(
                serde_json::json!({"max_concurrent_calls": 1, "allowed_destination_countries": ["US"]}),
            )),
        };
        assert!(plan_key_update(Actor::Key(&p), &me, narrower).is_ok());
        let widen = KeyUpdate {
            name: None,
            limits: Some(KeyLimits::default()),
        };
        assert!(matches!(
            plan_key_update(Actor::Key(&p), &me, widen.clone()),
            Err(Error::Forbidden { .. })
        ));
        assert!(plan_key_update(Actor::User("user_a"), &me, widen).is_ok());
    }

    #[test]
    fn a_narrowed_rotation_only_narrows() {
        let old = stored(
            "key_b",
            Permissions::parse_list(["contacts:write", "calls:read"]).expect("valid"),
            Some("ws_1"),
            Mode::Live,
        );
        let perms = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let spec = plan_narrowed_rotation(
            Actor::User("user_a"),
            &old,
            &perms(&["contacts:read"]),
            now(),
        )
        .expect("narrower");
        assert_eq!(spec.permissions.to_csv(), "contacts:read");
        assert_eq!(spec.rotated_from.as_deref(), Some("key_b"));
        assert_eq!(spec.workspace_id.as_deref(), Some("ws_1"));
        // Even an operator cannot widen a key by rotating it.
        let err = plan_narrowed_rotation(
            Actor::Operator,
            &old,
            &perms(&["contacts:read", "calls:write"]),
            now(),
        )
        .expect_err("wider");
        assert!(matches!(err, Error::Validation { .. }));
        let err = plan_narrowed_rotation(Actor::Operator, &old, &[], now()).expect_err("empty");
        assert!(matches!(err, Error::Validation { .. }));
        // A key still cannot hand out what it lacks itself.
        let p = principal(
            Permissions::parse_list(["calls:read", "api_keys:write"]).expect("valid"),
            None,
            Mode::Live,
        );
        let err = plan_narrowed_rotation(Actor::Key(&p), &old, &perms(&["calls:read"]), now())
            .expect_err("old holds contacts:write, beyond this key's reach");
        assert!(matches!(err, Error::Forbidden { .. }));
        let wide = principal(Permissions::full(), None, Mode::Live);
        assert!(
            plan_narrowed_rotation(Actor::Key(&wide), &old, &perms(&["calls:read"]), now()).is_ok()
        );
    }

    #[test]
    fn workspace_keys_stay_in_their_workspace() {
        let ws1 = "ws_01jd5x7c2m8n4p6q8r0s2t4v6w";
        let ws2 = "ws_01jd5x7c2m8n4p6q8r0s2t4v6x";
        let p = principal(Permissions::full(), Some(ws1), Mode::Live);
        assert_eq!(p.scope(None).expect("own").workspace_id, ws1);
        assert_eq!(p.scope(Some(ws1)).expect("own, named").workspace_id, ws1);
        assert!(matches!(p.scope(Some(ws2)), Err(Error::Forbidden { .. })));
        let org = principal(Permissions::full(), None, Mode::Live);
        assert_eq!(org.scope(None).expect("default").workspace_id, "ws_default");
        assert_eq!(org.scope(Some(ws2)).expect("named").workspace_id, ws2);
        // Not a workspace id at all: a 400, before any lookup.
        for bad in [
            "ws_2",
            "",
            "ct_01jd5x7c2m8n4p6q8r0s2t4v6w",
            "ws_01JD5X7C2M8N4P6Q8R0S2T4V6W",
        ] {
            assert!(
                matches!(org.scope(Some(bad)), Err(Error::Validation { .. })),
                "{bad:?}"
            );
        }
    }
}
