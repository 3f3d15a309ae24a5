//! API keys: their rows, the active-key cap, revocation, rotation, usage counters and
//! the change feed other nodes (and the running server, after an operator command)
//! watch to drop revoked keys from their caches.

use dialtone_domain::auth::{ApiKey, KeySpec, KeyUpdate};
use dialtone_domain::events::EventType;
use dialtone_domain::idempotency::{Idem, Outcome};
use dialtone_domain::keys::Digest;
use dialtone_domain::least_privilege::PermissionUse;
use dialtone_domain::limits::KeyLimits;
use dialtone_domain::page::PageRequest;
use dialtone_domain::permissions::Permissions;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, epoch_day, now};
use dialtone_domain::{Error, Result};

use crate::Store;
use crate::billing::{claim, done, finish};
use crate::calls::record_event;
use crate::db::{FromRow, Row, Scalar, Tx, from_row, query};
use crate::users::audit_in_tx;

/// Columns of a key row, with `requests_30d` summed from the daily counters
/// (`$1` must be the first day of the 30-day window).
macro_rules! key_select {
    () => {
        "SELECT k.id, k.org_id, k.workspace_id, k.name, k.mode, k.permissions, k.prefix, \
         k.last_four, k.created_at, k.created_by, k.expires_at, k.revoked_at, k.rotated_from, \
         k.last_used_at, k.last_ip, k.oauth_client_id, k.limits, \
         CAST(COALESCE((SELECT SUM(u.count) FROM api_key_usage u \
                        WHERE u.key_id = k.id AND u.day >= $1), 0) AS BIGINT) AS requests_30d "
    };
}

struct KeyRow {
    id: String,
    org_id: String,
    workspace_id: Option<String>,
    name: String,
    mode: String,
    permissions: String,
    prefix: String,
    last_four: String,
    created_at: Timestamp,
    created_by: String,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    rotated_from: Option<String>,
    last_used_at: Option<Timestamp>,
    last_ip: Option<String>,
    oauth_client_id: Option<String>,
    limits: Option<String>,
    requests_30d: i64,
}
from_row!(KeyRow {
    id,
    org_id,
    workspace_id,
    name,
    mode,
    permissions,
    prefix,
    last_four,
    created_at,
    created_by,
    expires_at,
    revoked_at,
    rotated_from,
    last_used_at,
    last_ip,
    oauth_client_id,
    limits,
    requests_30d,
});

impl TryFrom<KeyRow> for ApiKey {
    type Error = Error;

    fn try_from(r: KeyRow) -> Result<ApiKey> {
        let corrupt = |what: &str| {
            Error::internal(std::io::Error::other(format!(
                "api_keys row {} has an invalid {what}",
                r.id
            )))
        };
        let mode: Mode = r.mode.parse().map_err(|_| corrupt("mode"))?;
        let permissions = if r.permissions.is_empty() {
            Permissions::NONE
        } else {
            Permissions::parse_list(r.permissions.split(','))
                .map_err(|_| corrupt("permission list"))?
        };
        let limits = KeyLimits::from_stored(r.limits.as_deref()).map_err(|_| corrupt("limits"))?;
        Ok(ApiKey {
            id: r.id,
            org_id: r.org_id,
            workspace_id: r.workspace_id,
            name: r.name,
            mode,
            permissions,
            prefix: r.prefix,
            last_four: r.last_four,
            created_at: r.created_at,
            created_by: r.created_by,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            rotated_from: r.rotated_from,
            last_used_at: r.last_used_at,
            last_ip: r.last_ip,
            oauth_client_id: r.oauth_client_id,
            requests_30d: r.requests_30d,
            limits,
        })
    }
}

fn window_start() -> i64 {
    epoch_day(now()) - 29
}

/// What is stored of a new key besides its [`KeySpec`]: never the token itself.
#[derive(Debug, Clone, Copy)]
pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub digest: &'a Digest,
    pub prefix: &'a str,
    pub last_four: &'a str,
    /// Where the request came from, for the audit log.
    pub ip: Option<&'a str>,
    /// `Some(client_id)` for an OAuth grant (kind `oauth`), `None` for an API key.
    pub oauth_client_id: Option<&'a str>,
}

/// Requests counted in memory since the last flush, for one key and day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub key_id: String,
    pub day: i64,
    /// Authenticated requests (0 when only `permissions` has news).
    pub count: i64,
    pub last_used_at: Timestamp,
    pub last_ip: Option<String>,
    /// The same requests by the permission their route required.
    pub permissions: Vec<PermissionUse>,
}

struct PermissionUseRow {
    permission: String,
    requests: i64,
    last_used_at: Timestamp,
}
from_row!(PermissionUseRow {
    permission,
    requests,
    last_used_at,
});

/// A key whose validity changed (revoked, rotated, expiry moved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub key_id: String,
    pub changed_at: Timestamp,
}
from_row!(KeyChange { key_id, changed_at });

impl Store {
    /// Inserts a key unless the organization already has `cap` active keys.
    ///
    /// The organization row is locked first (a no-op update: a row lock on PostgreSQL,
    /// and SQLite transactions are already serialized), so concurrent creations on any
    /// number of nodes cannot overshoot the cap. With `retire`, the old key of a
    /// rotation gets its new expiry in the same transaction.
    pub async fn insert_key(
        &self,
        spec: &KeySpec,
        row: NewKeyRow<'_>,
        cap: usize,
        retire: Option<(&str, Timestamp)>,
    ) -> Result<ApiKey> {
        done(self.insert_key_once(spec, row, cap, retire, None).await?)
    }

    /// [`Store::insert_key`] once per `Idempotency-Key`, kept in the requesting key's
    /// `scope`: a retry gets the stored answer (which never holds the token) and
    /// neither a second key nor a second rotation is made.
    pub async fn insert_key_once(
        &self,
        spec: &KeySpec,
        row: NewKeyRow<'_>,
        cap: usize,
        retire: Option<(&str, Timestamp)>,
        idem: Option<(&Scope, Idem<'_, ApiKey>)>,
    ) -> Result<Outcome<ApiKey>> {
        let created_at = now();
        let mut tx = self.db.begin().await?;
        if let Some((scope, idem)) = idem
            && let Some(stored) = claim(Some(idem), &mut tx, scope).await?
        {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        let locked = tx
            .execute(query("UPDATE organizations SET name = name WHERE id = $1").bind(&spec.org_id))
            .await?;
        if locked == 0 {
            return Err(Error::NotFound {
                resource: "organization",
            });
        }
        if let Some(ws) = &spec.workspace_id {
            let found = tx
                .fetch_optional::<Scalar<i64>>(
                    query("SELECT CAST(1 AS BIGINT) FROM workspaces WHERE id = $1 AND org_id = $2")
                        .bind(ws)
                        .bind(&spec.org_id),
                )
                .await?;
            if found.is_none() {
                return Err(Error::validation(
                    "workspace_id",
                    format!("workspace {ws} does not exist in this organization"),
                ));
            }
        }
        if let Some((old_id, old_expires_at)) = retire {
            tx.execute(
                query(
                    "UPDATE api_keys SET expires_at = $1 \
                     WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
                )
                .bind(old_expires_at)
                .bind(old_id)
                .bind(&spec.org_id),
            )
            .await?;
            tx.execute(
                query("INSERT INTO api_key_changes (key_id, changed_at) VALUES ($1, $2)")
                    .bind(old_id)
                    .bind(created_at),
            )
            .await?;
            notify_key_change(&mut tx, &self.db, old_id).await?;
        }
        let expiries: Vec<Scalar<Option<Timestamp>>> = tx
            .fetch_all(
                query("SELECT expires_at FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL")
                    .bind(&spec.org_id),
            )
            .await?;
        let active = expiries
            .iter()
            .filter(|e| e.0.is_none_or(|e| e > created_at))
            .count();
        if active >= cap {
            return Err(Error::Conflict {
                message: format!(
                    "This organization already has {active} active API keys, the limit is {cap}. Revoke a key first."
                ),
                details: Some(serde_json::json!({ "limit": cap, "active": active })),
            });
        }
        tx.execute(
            query(
                "INSERT INTO api_keys (id, org_id, workspace_id, name, mode, permissions, \
                 token_digest, prefix, last_four, created_at, created_by, expires_at, rotated_from, \
                 kind, oauth_client_id, limits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(row.id)
            .bind(&spec.org_id)
            .bind(&spec.workspace_id)
            .bind(&spec.name)
            .bind(spec.mode.as_str())
            .bind(spec.permissions.to_csv())
            .bind(&row.digest[..])
            .bind(row.prefix)
            .bind(row.last_four)
            .bind(created_at)
            .bind(&spec.created_by)
            .bind(spec.expires_at)
            .bind(&spec.rotated_from)
            .bind(if row.oauth_client_id.is_some() {
                "oauth"
            } else {
                "key"
            })
            .bind(row.oauth_client_id)
            .bind(spec.limits.to_stored()),
        )
        .await?;
        let key = key_in_tx(&mut tx, row.id).await?;
        record_key_event(&mut tx, &key, EventType::ApiKeyCreated).await?;
        let (action, target, detail) = match &spec.rotated_from {
            Some(old) => {
                let until = match retire {
                    Some((_, t)) => format!("stops working at {}", t.format("%Y-%m-%d %H:%M UTC")),
                    None => "keeps working until revoked".to_owned(),
                };
                let holds = if key.permissions.is_full() {
                    "full access".to_owned()
                } else {
                    key.permissions.to_csv().replace(',', ", ")
                };
                (
                    "api_key.rotated",
                    old.as_str(),
                    format!(
                        "Rotated {old} into {} holding {holds}; the old key {until}",
                        key.describe()
                    ),
                )
            }
            None => (
                "api_key.created",
                row.id,
                format!("Created {}", key.describe()),
            ),
        };
        audit_in_tx(
            &mut tx,
            &spec.org_id,
            &spec.created_by,
            action,
            target,
            &detail,
            row.ip,
        )
        .await?;
        if let Some((scope, idem)) = idem {
            finish(Some(idem), &mut tx, scope, &key).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Done(key))
    }

    /// The key with this digest and its organization's default workspace.
    pub async fn find_key_by_digest(&self, digest: &Digest) -> Result<Option<(ApiKey, String)>> {
        struct Found(KeyRow, String);
        impl FromRow for Found {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(Found(KeyRow::from_row(r)?, r.get("default_workspace_id")?))
            }
        }
        let found: Option<Found> = self
            .db
            .fetch_optional(
                query(concat!(
                    key_select!(),
                    ", o.default_workspace_id FROM api_keys k JOIN organizations o ON o.id = k.org_id \
                     WHERE k.token_digest = $2"
                ))
                .bind(window_start())
                .bind(&digest[..]),
            )
            .await?;
        found
            .map(|Found(key, ws)| Ok((ApiKey::try_from(key)?, ws)))
            .transpose()
    }

    pub async fn get_key(&self, org_id: &str, key_id: &str) -> Result<ApiKey> {
        let row: Option<KeyRow> = self
            .db
            .fetch_optional(
                query(concat!(
                    key_select!(),
                    "FROM api_keys k WHERE k.id = $2 AND k.org_id = $3"
                ))
                .bind(window_start())
                .bind(key_id)
                .bind(org_id),
            )
            .await?;
        row.ok_or(Error::NotFound {
            resource: "api_key",
        })?
        .try_into()
    }

    /// Keys of an organization, newest first, optionally only one workspace's
    /// (`Some(ws)`) and one mode's.
    pub async fn list_keys(
        &self,
        org_id: &str,
        workspace_id: Option<&str>,
        mode: Option<Mode>,
        page: &PageRequest,
    ) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = self
            .db
            .fetch_all(
                query(concat!(
                    key_select!(),
                    "FROM api_keys k WHERE k.org_id = $2 AND ($3 IS NULL OR k.workspace_id = $3) \
                     AND ($4 IS NULL OR k.mode = $4) AND ($5 IS NULL OR k.id < $5) \
                     ORDER BY k.id DESC LIMIT $6"
                ))
                .bind(window_start())
                .bind(org_id)
                .bind(workspace_id)
                .bind(mode.map(Mode::as_str))
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    /// Revokes a key (idempotent) and records the change for every node's cache.
    /// Revokes a key; `by` (a key id, a user id or `cli`) and `ip` go to the audit log,
    /// in the same transaction. Revoking a revoked key changes nothing.
    pub async fn revoke_key(
        &self,
        org_id: &str,
        key_id: &str,
        by: &str,
        ip: Option<&str>,
    ) -> Result<ApiKey> {
        let mut tx = self.db.begin().await?;
        self.revoke_in_tx(&mut tx, org_id, key_id, by, ip).await?;
        tx.commit().await?;
        self.get_key(org_id, key_id).await
    }

    /// The revocation of [`Store::revoke_key`] inside `tx`: the row, the change feed
    /// (and `NOTIFY` at commit), the `api_key.revoked` event and the audit entry.
    /// False when the key was already revoked (nothing written).
    async fn revoke_in_tx(
        &self,
        tx: &mut Tx,
        org_id: &str,
        key_id: &str,
        by: &str,
        ip: Option<&str>,
    ) -> Result<bool> {
        let at = now();
        let done = tx
            .execute(
                query(
                    "UPDATE api_keys SET revoked_at = $1 \
                     WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(key_id)
                .bind(org_id),
            )
            .await?;
        if done == 0 {
            return Ok(false);
        }
        tx.execute(
            query("INSERT INTO api_key_changes (key_id, changed_at) VALUES ($1, $2)")
                .bind(key_id)
                .bind(at),
        )
        .await?;
        notify_key_change(tx, &self.db, key_id).await?;
        let key = key_in_tx(tx, key_id).await?;
        record_key_event(tx, &key, EventType::ApiKeyRevoked).await?;
        audit_in_tx(
            tx,
            org_id,
            by,
            "api_key.revoked",
            key_id,
            &format!("Revoked {}", key.describe()),
            ip,
        )
        .await?;
        Ok(true)
    }

    /// Acts on a secret scanner's report that the key `key_id` was found in public, in
    /// one transaction: revokes it when `revoke` (through [`Store::revoke_key`]'s own
    /// path: change feed, `NOTIFY`, `api_key.revoked`), then records the
    /// `api_key.leaked` event and an `api_key.leaked` audit entry (actor `reporter`)
    /// naming where it was found.
    ///
    /// Once per key: a key already reported, or no longer active, is left as it is
    /// (`None`: nothing written), so a replayed report changes nothing. Otherwise
    /// `Some("revoked")` or `Some("flagged")`. The key row is locked first, so
    /// concurrent reports of one key (on any node) act once.
    pub async fn report_leaked_key(
        &self,
        key_id: &str,
        revoke: bool,
        reporter: &str,
        url: &str,
        source: &str,
    ) -> Result<(ApiKey, Option<&'static str>)> {
        let mut tx = self.db.begin().await?;
        tx.execute(query("UPDATE api_keys SET name = name WHERE id = $1").bind(key_id))
            .await?;
        let key = key_in_tx(&mut tx, key_id).await?;
        let reported = tx
            .fetch_optional::<Scalar<String>>(
                query(
                    "SELECT id FROM audit_log WHERE org_id = $1 AND action = $2 AND target = $3 \
                     LIMIT 1",
                )
                .bind(&key.org_id)
                .bind(LEAKED)
                .bind(key_id),
            )
            .await?
            .is_some();
        if reported || !key.is_active(now()) {
            return Ok((key, None));
        }
        let action = if revoke {
            self.revoke_in_tx(&mut tx, &key.org_id, key_id, reporter, None)
                .await?;
            "revoked"
        } else {
            "flagged"
        };
        let key = key_in_tx(&mut tx, key_id).await?;
        let scope = key_event_scope(&mut tx, &key).await?;
        let object = serde_json::to_value(dialtone_domain::events::ApiKeyLeak {
            object: "api_key_leak",
            key: dialtone_domain::auth::ApiKeyView::new(&key, now()),
            action,
            reporter: reporter.to_owned(),
            url: url.to_owned(),
            source: source.to_owned(),
        })
        .map_err(Error::internal)?;
        record_event(&mut tx, &scope, EventType::ApiKeyLeaked, object).await?;
        let what = if revoke {
            "revoked at once"
        } else {
            "flagged, still active: revoke or rotate it"
        };
        audit_in_tx(
            &mut tx,
            &key.org_id,
            reporter,
            LEAKED,
            key_id,
            &format!(
                "{} found in public at {url} ({source}); {what}",
                key.describe()
            ),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok((key, Some(action)))
    }

    /// The `api_key.leaked` audit entries of an organization since `since`, newest
    /// first (at most 20): what the keys page warns about.
    pub async fn leak_reports(
        &self,
        org_id: &str,
        since: Timestamp,
    ) -> Result<Vec<crate::users::AuditEntry>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id, org_id, actor, action, target, detail, ip, at FROM audit_log \
                     WHERE org_id = $1 AND action = $2 AND at >= $3 ORDER BY id DESC LIMIT 20",
                )
                .bind(org_id)
                .bind(LEAKED)
                .bind(since),
            )
            .await
    }

    /// Changes a key's name and/or limits (an update already decided by
    /// `plan_key_update`), with an `api_key.updated` audit entry and a change-feed
    /// record (and `NOTIFY`), so every node drops the key from its cache and the new
    /// limits apply to what it may give at once. A revoked key cannot be changed (409).
    pub async fn update_key(
        &self,
        org_id: &str,
        key_id: &str,
        update: &KeyUpdate,
        by: &str,
        ip: Option<&str>,
    ) -> Result<ApiKey> {
        let at = now();
        let mut tx = self.db.begin().await?;
        let before = key_in_tx(&mut tx, key_id).await?;
        if before.org_id != org_id {
            return Err(Error::NotFound {
                resource: "api_key",
            });
        }
        if before.revoked_at.is_some() {
            return Err(Error::Conflict {
                message: format!("API key {key_id} is revoked and cannot be changed."),
                details: None,
            });
        }
        let limits = update.limits.as_ref().unwrap_or(&before.limits);
        let name = update.name.as_deref().unwrap_or(&before.name);
        tx.execute(
            query("UPDATE api_keys SET name = $1, limits = $2 WHERE id = $3 AND org_id = $4")
                .bind(name)
                .bind(limits.to_stored())
                .bind(key_id)
                .bind(org_id),
        )
        .await?;
        tx.execute(
            query("INSERT INTO api_key_changes (key_id, changed_at) VALUES ($1, $2)")
                .bind(key_id)
                .bind(at),
        )
        .await?;
        notify_key_change(&mut tx, &self.db, key_id).await?;
        let key = key_in_tx(&mut tx, key_id).await?;
        let mut changed = Vec::new();
        if key.name != before.name {
            changed.push(format!("renamed from “{}”", before.name));
        }
        if key.limits != before.limits {
            changed.push(format!(
                "limits {}",
                serde_json::to_string(&key.limits).map_err(Error::internal)?
            ));
        }
        audit_in_tx(
            &mut tx,
            org_id,
            by,
            "api_key.updated",
            key_id,
            &format!(
                "Updated {}: {}",
                key.describe(),
                if changed.is_empty() {
                    "nothing changed".to_owned()
                } else {
                    changed.join("; ")
                }
            ),
            ip,
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The limits an organization's new live keys get when none are given.
    pub async fn org_key_limits(&self, org_id: &str) -> Result<KeyLimits> {
        let stored = self
            .db
            .fetch_optional::<Scalar<Option<String>>>(
                query("SELECT default_key_limits FROM organizations WHERE id = $1").bind(org_id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "organization",
            })?;
        KeyLimits::from_stored(stored.0.as_deref())
    }

    /// Sets an organization's default limits for new live keys (the operator's
    /// `dialtone org limits`), audited. Existing keys keep theirs.
    pub async fn set_org_key_limits(
        &self,
        org_id: &str,
        limits: &KeyLimits,
        by: &str,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .execute(
                query("UPDATE organizations SET default_key_limits = $1 WHERE id = $2")
                    .bind(limits.to_stored())
                    .bind(org_id),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "organization",
            });
        }
        audit_in_tx(
            &mut tx,
            org_id,
            by,
            "organization.key_limits",
            org_id,
            &format!(
                "Default limits of new live keys: {}",
                serde_json::to_string(limits).map_err(Error::internal)?
            ),
            None,
        )
        .await?;
        tx.commit().await
    }

    /// Revokes a key by id alone: the operator's break-glass command.
    pub async fn revoke_key_any_org(&self, key_id: &str) -> Result<ApiKey> {
        let org_id = self
            .db
            .fetch_optional::<Scalar<String>>(
                query("SELECT org_id FROM api_keys WHERE id = $1").bind(key_id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "api_key",
            })?;
        self.revoke_key(&org_id.0, key_id, "cli", None).await
    }

    /// Key changes recorded after `since`, oldest first.
    pub async fn key_changes_since(&self, since: Timestamp) -> Result<Vec<KeyChange>> {
        self.db
            .fetch_all(
                query(
                    "SELECT key_id, changed_at FROM api_key_changes WHERE changed_at > $1 \
                     ORDER BY changed_at LIMIT 10000",
                )
                .bind(since),
            )
            .await
    }

    /// Forgets change records older than `before` (every node has long seen them).
    pub async fn prune_key_changes(&self, before: Timestamp) -> Result<u64> {
        self.db
            .execute(query("DELETE FROM api_key_changes WHERE changed_at < $1").bind(before))
            .await
    }

    /// Adds batched request counts, and moves `last_used_at`/`last_ip` forward only.
    pub async fn flush_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        for d in deltas {
            if d.count > 0 {
                tx.execute(
                    query(
                        "INSERT INTO api_key_usage (key_id, day, count) VALUES ($1, $2, $3) \
                         ON CONFLICT (key_id, day) DO UPDATE SET count = api_key_usage.count + excluded.count",
                    )
                    .bind(&d.key_id)
                    .bind(d.day)
                    .bind(d.count),
                )
                .await?;
                tx.execute(
                    query(
                        "UPDATE api_keys SET last_used_at = $1, last_ip = $2 \
                         WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $1)",
                    )
                    .bind(d.last_used_at)
                    .bind(&d.last_ip)
                    .bind(&d.key_id),
                )
                .await?;
            }
            for p in &d.permissions {
                tx.execute(
                    query(
                        "INSERT INTO api_key_permission_usage \
                         (key_id, day, permission, count, last_used_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (key_id, day, permission) DO UPDATE SET \
                         count = api_key_permission_usage.count + excluded.count, \
                         last_used_at = CASE \
                           WHEN excluded.last_used_at > api_key_permission_usage.last_used_at \
                           THEN excluded.last_used_at \
                           ELSE api_key_permission_usage.last_used_at END",
                    )
                    .bind(&d.key_id)
                    .bind(d.day)
                    .bind(p.permission.to_string())
                    .bind(p.requests)
                    .bind(p.last_used_at),
                )
                .await?;
            }
        }
        tx.commit().await
    }

    /// [`Store::permission_usage`] of every key of an organization, by key id.
    pub async fn permission_usage_of_org(
        &self,
        org_id: &str,
        since_day: i64,
    ) -> Result<std::collections::HashMap<String, Vec<PermissionUse>>> {
        struct OrgRow(String, PermissionUseRow);
        impl FromRow for OrgRow {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(OrgRow(r.get("key_id")?, PermissionUseRow::from_row(r)?))
            }
        }
        let rows: Vec<OrgRow> = self
            .db
            .fetch_all(
                query(
                    "SELECT u.key_id, u.permission, CAST(SUM(u.count) AS BIGINT) AS requests, \
                     MAX(u.last_used_at) AS last_used_at FROM api_key_permission_usage u \
                     JOIN api_keys k ON k.id = u.key_id \
                     WHERE k.org_id = $1 AND u.day >= $2 GROUP BY u.key_id, u.permission",
                )
                .bind(org_id)
                .bind(since_day),
            )
            .await?;
        let mut by_key: std::collections::HashMap<String, Vec<PermissionUse>> =
            std::collections::HashMap::new();
        for OrgRow(key_id, r) in rows {
            let u = permission_use(&key_id, r)?;
            by_key.entry(key_id).or_default().push(u);
        }
        Ok(by_key)
    }

    /// Stored requests per day of every key of an organization from the day
    /// `since_day` on (summed over nodes), by key id: `(day, count)`, oldest first.
    /// One query for the whole keys page.
    pub async fn daily_requests_of_org(
        &self,
        org_id: &str,
        since_day: i64,
    ) -> Result<std::collections::HashMap<String, Vec<(i64, i64)>>> {
        struct DayRow {
            key_id: String,
            day: i64,
            count: i64,
        }
        from_row!(DayRow { key_id, day, count });
        let rows: Vec<DayRow> = self
            .db
            .fetch_all(
                query(
                    "SELECT u.key_id, u.day, u.count FROM api_key_usage u \
                     JOIN api_keys k ON k.id = u.key_id \
                     WHERE k.org_id = $1 AND u.day >= $2 ORDER BY u.key_id, u.day",
                )
                .bind(org_id)
                .bind(since_day),
            )
            .await?;
        let mut by_key: std::collections::HashMap<String, Vec<(i64, i64)>> =
            std::collections::HashMap::new();
        for r in rows {
            by_key.entry(r.key_id).or_default().push((r.day, r.count));
        }
        Ok(by_key)
    }

    /// A key's stored requests per permission exercised since the day `since_day`
    /// (summed over days and nodes), in no particular order.
    pub async fn permission_usage(
        &self,
        key_id: &str,
        since_day: i64,
    ) -> Result<Vec<PermissionUse>> {
        let rows: Vec<PermissionUseRow> = self
            .db
            .fetch_all(
                query(
                    "SELECT permission, CAST(SUM(count) AS BIGINT) AS requests, \
                     MAX(last_used_at) AS last_used_at FROM api_key_permission_usage \
                     WHERE key_id = $1 AND day >= $2 GROUP BY permission",
                )
                .bind(key_id)
                .bind(since_day),
            )
            .await?;
        rows.into_iter()
            .map(|r| permission_use(key_id, r))
            .collect()
    }
}

fn permission_use(key_id: &str, r: PermissionUseRow) -> Result<PermissionUse> {
    Ok(PermissionUse {
        permission: r.permission.parse().map_err(|_| {
            Error::internal(std::io::Error::other(format!(
                "api_key_permission_usage of {key_id} holds an invalid permission"
            )))
        })?,
        requests: r.requests,
        last_used_at: r.last_used_at,
    })
}

pub(crate) async fn key_in_tx(tx: &mut Tx, key_id: &str) -> Result<ApiKey> {
    let row: Option<KeyRow> = tx
        .fetch_optional(
            query(concat!(key_select!(), "FROM api_keys k WHERE k.id = $2"))
                .bind(window_start())
                .bind(key_id),
        )
        .await?;
    row.ok_or(Error::NotFound {
        resource: "api_key",
    })?
    .try_into()
}

/// The audit action (and the event type's name) of a leak report.
const LEAKED: &str = "api_key.leaked";

/// Records a key event in the key's workspace (an organization key's events go to the
/// organization's default workspace) and mode. The object never holds the secret.
async fn record_key_event(tx: &mut Tx, key: &ApiKey, event_type: EventType) -> Result<()> {
    let scope = key_event_scope(tx, key).await?;
    let object = serde_json::to_value(dialtone_domain::auth::ApiKeyView::new(key, now()))
        .map_err(Error::internal)?;
    record_event(tx, &scope, event_type, object).await
}

/// Where a key's events go: its workspace (an organization key's: the organization's
/// default workspace) and mode.
pub(crate) async fn key_event_scope(tx: &mut Tx, key: &ApiKey) -> Result<Scope> {
    let workspace_id = match &key.workspace_id {
        Some(ws) => ws.clone(),
        None => {
            tx.fetch_optional::<Scalar<String>>(
                query("SELECT default_workspace_id FROM organizations WHERE id = $1")
                    .bind(&key.org_id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "organization",
            })?
            .0
        }
    };
    Ok(Scope {
        org_id: key.org_id.clone(),
        workspace_id,
        mode: key.mode,
    })
}

/// The PostgreSQL channel that carries key changes to every node at commit.
pub const KEY_CHANGES_CHANNEL: &str = "dialtone_key_changes";

/// Pushes a key change to the other nodes (PostgreSQL `NOTIFY`, sent when `tx`
/// commits). SQLite has one node; the change feed covers operator commands there.
async fn notify_key_change(tx: &mut Tx, db: &crate::db::Db, key_id: &str) -> Result<()> {
    let sql = db.dialect(
        "",
        "SELECT CAST(pg_notify('dialtone_key_changes', $1) AS TEXT)",
    );
    if !sql.is_empty() {
        tx.execute(query(sql).bind(key_id)).await?;
    }
    Ok(())
}

/// Listens for key changes pushed by other nodes (PostgreSQL only).
pub struct KeyChangeListener {
    listener: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for KeyChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyChangeListener")
    }
}

/// What the listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// This key changed.
    Key(String),
    /// Webhook deliveries were queued (on any node): a hint to claim from the queue.
    Deliveries,
    /// The connection dropped (it reconnects on the next call): changes may have been
    /// missed, so catch up from the change feed.
    Lost,
}

impl KeyChangeListener {
    pub async fn next(&mut self) -> Result<Heard> {
        match self.listener.try_recv().await {
            Ok(Some(n)) if n.channel() == crate::db::DELIVERIES_CHANNEL => Ok(Heard::Deliveries),
            Ok(Some(n)) => Ok(Heard::Key(n.payload().to_owned())),
            Ok(None) => Ok(Heard::Lost),
            Err(e) => Err(crate::db::pg_error(e)),
        }
    }
}

impl Store {
    /// A listener for pushed key changes and queued webhook deliveries (one dedicated
    /// connection per node for both), on PostgreSQL; `None` on SQLite.
    pub async fn key_change_listener(&self) -> Result<Option<KeyChangeListener>> {
        match &self.db {
            crate::db::Db::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool)
                    .await
                    .map_err(crate::db::pg_error)?;
                listener
                    .listen_all([KEY_CHANGES_CHANNEL, crate::db::DELIVERIES_CHANNEL])
                    .await
                    .map_err(crate::db::pg_error)?;
                Ok(Some(KeyChangeListener { listener }))
            }
            crate::db::Db::Sqlite(_) => Ok(None),
        }
    }
}
