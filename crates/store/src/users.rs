//! Dashboard users, their sessions, the first-run setup link, failed sign-ins and the
//! audit log. Session and setup tokens arrive here already digested: no secret is
//! ever stored.

use dialtone_domain::id::new_id;
use dialtone_domain::keys::Digest;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::users::{Failures, Role, SignInHistory};
use dialtone_domain::{Error, Result};

use crate::Store;
use crate::db::{FromRow, Row, Scalar, Tx, from_row, query};

/// A person who signs in to the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
}

impl FromRow for User {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let role: String = r.get("role")?;
        Ok(User {
            id: r.get("id")?,
            org_id: r.get("org_id")?,
            email: r.get("email")?,
            role: role.parse().map_err(|_| {
                Error::internal(std::io::Error::other("users row has an invalid role"))
            })?,
            created_at: r.get("created_at")?,
        })
    }
}

/// The user behind a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user: User,
    pub expires_at: Timestamp,
    /// The workspace the person last picked (`None`: the organization's default).
    pub workspace_id: Option<String>,
    pub mode: Mode,
}

/// One line of the audit log: who did what to what, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub org_id: String,
    /// `user_…` (or `cli`).
    pub actor: String,
    /// e.g. `api_key.created`, `api_key.revoked`, `user.signed_in`.
    pub action: String,
    /// The object acted on, e.g. `key_…`.
    pub target: String,
    /// A short human description (never a secret).
    pub detail: String,
    pub ip: Option<String>,
    pub at: Timestamp,
}
from_row!(AuditEntry {
    id,
    org_id,
    actor,
    action,
    target,
    detail,
    ip,
    at
});

fn email_taken(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::Conflict {
            message: "A user with this email already exists.".to_owned(),
            details: None,
        },
        e => e,
    }
}

/// Counts failed sign-ins since `$1`, other than attempt `$2`, matching a condition
/// on `$3`, `$4`.
macro_rules! failures_where {
    ($cond:literal) => {
        concat!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, MAX(at) AS last FROM login_failures ",
            "WHERE at > $1 AND id <> $2 AND ",
            $cond
        )
    };
}

/// Failures of one kind, as `record_login_attempt` counts them.
struct FailureRow {
    n: i64,
    last: Option<Timestamp>,
}
from_row!(FailureRow { n, last });

impl From<FailureRow> for Failures {
    fn from(r: FailureRow) -> Failures {
        Failures {
            count: r.n,
            last: r.last,
        }
    }
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        let n: Option<Scalar<i64>> = self
            .db
            .fetch_optional(query("SELECT CAST(COUNT(*) AS BIGINT) FROM users"))
            .await?;
        Ok(n.map_or(0, |n| n.0))
    }

    /// Creates a user of an existing organization. `email` must be normalized.
    pub async fn create_user(
        &self,
        org_id: &str,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User> {
        self.get_org(org_id).await?;
        let user = User {
            id: new_id("user"),
            org_id: org_id.to_owned(),
            email: email.to_owned(),
            role,
            created_at: now(),
        };
        let mut tx = self.db.begin().await?;
        insert_user(&mut tx, &user, password_hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this (normalized) email and their password hash.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        struct WithHash(User, String);
        impl FromRow for WithHash {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(WithHash(User::from_row(r)?, r.get("password_hash")?))
            }
        }
        let found: Option<WithHash> = self
            .db
            .fetch_optional(
                query(
                    "SELECT id, org_id, email, role, created_at, password_hash \
                     FROM users WHERE email = $1",
                )
                .bind(email),
            )
            .await?;
        Ok(found.map(|WithHash(u, h)| (u, h)))
    }

    pub async fn list_users(&self, org_id: &str) -> Result<Vec<User>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id, org_id, email, role, created_at FROM users \
                     WHERE org_id = $1 ORDER BY id",
                )
                .bind(org_id),
            )
            .await
    }

    /// Starts a session (and forgets sessions that have expired).
    pub async fn create_session(
        &self,
        digest: &Digest,
        user_id: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        self.db
            .execute(query("DELETE FROM user_sessions WHERE expires_at < $1").bind(now()))
            .await?;
        self.db
            .execute(
                query(
                    "INSERT INTO user_sessions (token_digest, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&digest[..])
                .bind(user_id)
                .bind(now())
                .bind(expires_at),
            )
            .await?;
        Ok(())
    }

    /// The user of an unexpired session.
    pub async fn session_user(&self, digest: &Digest) -> Result<Option<SessionUser>> {
        struct Found(User, Timestamp, Option<String>, String);
        impl FromRow for Found {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(Found(
                    User::from_row(r)?,
                    r.get("expires_at")?,
                    r.get("workspace_id")?,
                    r.get("mode")?,
                ))
            }
        }
        let found: Option<Found> = self
            .db
            .fetch_optional(
                query(
                    "SELECT u.id, u.org_id, u.email, u.role, u.created_at, s.expires_at, \
                     s.workspace_id, s.mode \
                     FROM user_sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_digest = $1 AND s.expires_at > $2",
                )
                .bind(&digest[..])
                .bind(now()),
            )
            .await?;
        Ok(
            found.map(|Found(user, expires_at, workspace_id, mode)| SessionUser {
                user,
                expires_at,
                workspace_id,
                mode: if mode == "test" {
                    Mode::Test
                } else {
                    Mode::Live
                },
            }),
        )
    }

    /// Remembers which workspace and mode a session looks at.
    pub async fn set_session_context(
        &self,
        digest: &Digest,
        workspace_id: &str,
        mode: Mode,
    ) -> Result<()> {
        self.db
            .execute(
                query(
                    "UPDATE user_sessions SET workspace_id = $1, mode = $2 WHERE token_digest = $3",
                )
                .bind(workspace_id)
                .bind(mode.as_str())
                .bind(&digest[..]),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, digest: &Digest) -> Result<()> {
        self.db
            .execute(query("DELETE FROM user_sessions WHERE token_digest = $1").bind(&digest[..]))
            .await?;
        Ok(())
    }

    /// Remembers a first-run setup link (its digest) until `expires_at`, and voids
    /// every other unused one in the same transaction: one valid link at a time.
    pub async fn create_setup_token(&self, digest: &Digest, expires_at: Timestamp) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(query("DELETE FROM setup_tokens WHERE used_at IS NULL"))
            .await?;
        tx.execute(
            query(
                "INSERT INTO setup_tokens (token_digest, created_at, expires_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(&digest[..])
            .bind(now())
            .bind(expires_at),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a setup link is unused, unexpired, the newest one, and no user exists
    /// yet.
    pub async fn setup_token_valid(&self, digest: &Digest) -> Result<bool> {
        let found: Option<Scalar<i64>> = self
            .db
            .fetch_optional(
                // The newest unused link only (creating one deletes the others; this
                // holds even if two servers create links at the same moment).
                query(
                    "SELECT CAST(1 AS BIGINT) FROM setup_tokens t \
                     WHERE t.token_digest = $1 AND t.used_at IS NULL AND t.expires_at > $2 \
                     AND NOT EXISTS (SELECT 1 FROM users) \
                     AND NOT EXISTS (SELECT 1 FROM setup_tokens n WHERE n.used_at IS NULL \
                      AND (n.created_at > t.created_at \
                       OR (n.created_at = t.created_at AND n.token_digest > t.token_digest)))",
                )
                .bind(&digest[..])
                .bind(now()),
            )
            .await?;
        Ok(found.is_some())
    }

    /// Uses a setup link: in one transaction, marks it used, creates the organization
    /// (or takes the first one) and its first owner. Fails with 404 if the link is
    /// unknown, used or expired, or a user already exists.
    pub async fn complete_setup(
        &self,
        digest: &Digest,
        org_name: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<User> {
        let at = now();
        let gone = Error::NotFound {
            resource: "setup link",
        };
        let mut tx = self.db.begin().await?;
        let used = tx
            .execute(
                // Spends every open setup link at once, if this one is valid: two links
                // used at the same moment cannot both create a first owner (the
                // second update waits on the first's row locks, then finds none open).
                query(
                    "UPDATE setup_tokens SET used_at = $1 WHERE used_at IS NULL AND EXISTS \
                     (SELECT 1 FROM setup_tokens t WHERE t.token_digest = $2 \
                      AND t.used_at IS NULL AND t.expires_at > $1 \
                      AND NOT EXISTS (SELECT 1 FROM setup_tokens n WHERE n.used_at IS NULL \
                       AND (n.created_at > t.created_at \
                        OR (n.created_at = t.created_at AND n.token_digest > t.token_digest))))",
                )
                .bind(at)
                .bind(&digest[..]),
            )
            .await?;
        if used == 0 {
            return Err(gone);
        }
        let users: Option<Scalar<i64>> = tx
            .fetch_optional(query("SELECT CAST(COUNT(*) AS BIGINT) FROM users"))
            .await?;
        if users.is_some_and(|n| n.0 > 0) {
            return Err(gone);
        }
        let first_org: Option<Scalar<String>> = tx
            .fetch_optional(query("SELECT id FROM organizations ORDER BY id LIMIT 1"))
            .await?;
        let org_id = match first_org {
            Some(id) => id.0,
            None => {
                let org_id = new_id("org");
                let ws = new_id("ws");
                tx.execute(
                    query(
                        "INSERT INTO organizations (id, name, default_workspace_id, created_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&org_id)
                    .bind(org_name)
                    .bind(&ws)
                    .bind(at),
                )
                .await?;
                tx.execute(
                    query(
                        "INSERT INTO workspaces (id, org_id, name, created_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&ws)
                    .bind(&org_id)
                    .bind("Default")
                    .bind(at),
                )
                .await?;
                org_id
            }
        };
        let user = User {
            id: new_id("user"),
            org_id,
            email: email.to_owned(),
            role: Role::Owner,
            created_at: at,
        };
        insert_user(&mut tx, &user, password_hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Records a sign-in attempt *before* the password is checked (a success or a
    /// refusal removes it again, see [`Store::forget_login_attempt`]), then reads the
    /// other attempts since `since` for `domain::users::check_sign_in`: for this email
    /// from this address, for this email from anywhere, from this address for any
    /// email, and (for a known browser) from this device. Returns the attempt's id and
    /// that history. Recording first means parallel guesses all count.
    pub async fn record_login_attempt(
        &self,
        email: &str,
        ip: &str,
        device: Option<&str>,
        since: Timestamp,
    ) -> Result<(String, SignInHistory)> {
        // What fell out of the window is kept by nobody (the table stays small).
        self.db
            .execute(query("DELETE FROM login_failures WHERE at < $1").bind(since))
            .await?;
        let id = new_id("lf");
        self.db
            .execute(
                query(
                    "INSERT INTO login_failures (id, email, ip, device, at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id.clone())
                .bind(email)
                .bind(ip)
                .bind(device.map(str::to_owned))
                .bind(now()),
            )
            .await?;
        let history = SignInHistory {
            email_and_ip: self
                .failures(
                    failures_where!("email = $3 AND ip = $4"),
                    since,
                    &id,
                    &[email, ip],
                )
                .await?,
            email: self
                .failures(failures_where!("email = $3"), since, &id, &[email])
                .await?,
            ip: self
                .failures(failures_where!("ip = $3"), since, &id, &[ip])
                .await?,
            device: match device {
                Some(d) => Some(
                    self.failures(failures_where!("device = $3"), since, &id, &[d])
                        .await?,
                ),
                None => None,
            },
        };
        Ok((id, history))
    }

    /// How many failures match `sql` (from [`failures_where!`]) since `since`, other
    /// than attempt `id`, and the latest.
    async fn failures(
        &self,
        sql: &'static str,
        since: Timestamp,
        id: &str,
        args: &[&str],
    ) -> Result<Failures> {
        let q = args
            .iter()
            .fold(query(sql).bind(since).bind(id), |q, a| q.bind(*a));
        Ok(self
            .db
            .fetch_optional::<FailureRow>(q)
            .await?
            .map(Failures::from)
            .unwrap_or_default())
    }

    /// Removes one recorded attempt: one that was refused unchecked (a refusal is
    /// not a guess and must not lengthen the wait), or one that succeeded.
    pub async fn forget_login_attempt(&self, id: &str) -> Result<()> {
        self.db
            .execute(query("DELETE FROM login_failures WHERE id = $1").bind(id))
            .await?;
        Ok(())
    }

    /// Forgets failures for this email and address and for this device (after a
    /// successful sign-in), and any failure older than `before`.
    pub async fn clear_login_failures(
        &self,
        email: &str,
        ip: &str,
        device: Option<&str>,
        before: Timestamp,
    ) -> Result<()> {
        self.db
            .execute(
                query(
                    "DELETE FROM login_failures \
                     WHERE (email = $1 AND ip = $2) OR (email = $1 AND device = $3) OR at < $4",
                )
                .bind(email)
                .bind(ip)
                .bind(device.map(str::to_owned))
                .bind(before),
            )
            .await?;
        Ok(())
    }

    /// Appends to an organization's audit log.
    pub async fn record_audit(
        &self,
        org_id: &str,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        audit_in_tx(&mut tx, org_id, actor, action, target, detail, ip).await?;
        tx.commit().await
    }

    /// The newest entries of an organization's audit log, newest first.
    pub async fn list_audit(&self, org_id: &str, limit: i64) -> Result<Vec<AuditEntry>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id, org_id, actor, action, target, detail, ip, at FROM audit_log \
                     WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(org_id)
                .bind(limit),
            )
            .await
    }
}

/// What the dashboard's audit page narrows the log to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this actor (`user_…`, `key_…`, `cli`, a scanner's name).
    pub actor: Option<String>,
    /// Actions starting with this text (`api_key.` or `api_key.revoked`).
    pub action: Option<String>,
    pub at_or_after: Option<Timestamp>,
    pub before: Option<Timestamp>,
}

impl Store {
    /// A page of an organization's audit log, newest first, narrowed by `filter`.
    pub async fn audit_page(
        &self,
        org_id: &str,
        filter: &AuditFilter,
        page: &dialtone_domain::page::PageRequest,
    ) -> Result<Vec<AuditEntry>> {
        let action = filter.action.as_deref().map(|a| {
            let mut p: String = a
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            p.push('%');
            p
        });
        self.db
            .fetch_all(
                query(
                    "SELECT id, org_id, actor, action, target, detail, ip, at FROM audit_log \
                     WHERE org_id = $1 AND ($2 IS NULL OR actor = $2) \
                     AND ($3 IS NULL OR action LIKE $3 ESCAPE '\\') \
                     AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
                     AND ($6 IS NULL OR id < $6) ORDER BY id DESC LIMIT $7",
                )
                .bind(org_id)
                .bind(&filter.actor)
                .bind(action)
                .bind(filter.at_or_after)
                .bind(filter.before)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await
    }
}

/// Appends to an organization's audit log inside `tx`, so an action and its entry
/// are written together or not at all (key changes call this in their transaction).
pub(crate) async fn audit_in_tx(
    tx: &mut Tx,
    org_id: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    ip: Option<&str>,
) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO audit_log (id, org_id, actor, action, target, detail, ip, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id("aud"))
        .bind(org_id)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(ip.map(str::to_owned))
        .bind(now()),
    )
    .await?;
    Ok(())
}

/// Writes a user row (409 if the email is taken): the CLI's `user create` and the
/// first-run setup both come here.
async fn insert_user(tx: &mut Tx, user: &User, password_hash: &str) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO users (id, org_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.org_id)
        .bind(&user.email)
        .bind(password_hash)
        .bind(user.role.as_str())
        .bind(user.created_at),
    )
    .await
    .map_err(email_taken)?;
    Ok(())
}
