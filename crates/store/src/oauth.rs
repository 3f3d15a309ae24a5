//! OAuth storage: registered clients, authorization codes, access and refresh tokens.
//!
//! A grant itself is an `api_keys` row of kind `oauth` (inserted through
//! [`Store::insert_key`], so the cap, the event and the audit entry are a key's; revoked
//! through [`Store::revoke_key`], so the change feed reaches every node). Codes and
//! tokens are stored only as HMAC digests; each use is a conditional update, so two
//! racing redemptions of one code or one refresh token cannot both win.

use dialtone_domain::Result;
use dialtone_domain::auth::ApiKey;
use dialtone_domain::keys::Digest;
use dialtone_domain::time::Timestamp;

use crate::Store;
use crate::db::{FromRow, Row, Scalar, from_row, query};

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// `oacl_…` (dynamic registration) or the metadata document's URL.
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// `dynamic` or `metadata_document`.
    pub registration: String,
    pub created_at: Timestamp,
    pub fetched_at: Option<Timestamp>,
}

struct ClientRow {
    id: String,
    name: String,
    redirect_uris: String,
    registration: String,
    created_at: Timestamp,
    fetched_at: Option<Timestamp>,
}
from_row!(ClientRow {
    id,
    name,
    redirect_uris,
    registration,
    created_at,
    fetched_at
});

impl From<ClientRow> for OAuthClient {
    fn from(r: ClientRow) -> Self {
        OAuthClient {
            id: r.id,
            name: r.name,
            redirect_uris: r.redirect_uris.lines().map(str::to_owned).collect(),
            registration: r.registration,
            created_at: r.created_at,
            fetched_at: r.fetched_at,
        }
    }
}

/// An authorization code about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub digest: &'a Digest,
    pub key_id: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub resource: &'a str,
    pub expires_at: Timestamp,
}

/// A code as stored, once redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub key_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}
from_row!(StoredCode {
    key_id,
    client_id,
    redirect_uri,
    code_challenge,
    resource,
    expires_at,
    used_at
});

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// First use, in time: the code's row (now marked used).
    Fresh(StoredCode),
    /// Used before: the caller revokes the grant it made (RFC 6749 §4.1.2).
    Reused(StoredCode),
    Expired,
    Unknown,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Rotated: the old token is spent and the new pair stored, for the grant `key_id`.
    Rotated {
        key_id: String,
        resource: String,
    },
    /// The token was spent already: the grant must be revoked (the caller does it).
    Reused {
        key_id: String,
    },
    Expired,
    Unknown,
}

/// The digests of a token pair about to be issued.
#[derive(Debug, Clone, Copy)]
pub struct NewTokens<'a> {
    pub access: &'a Digest,
    pub access_expires_at: Timestamp,
    pub refresh: &'a Digest,
    pub refresh_expires_at: Timestamp,
    pub resource: &'a str,
}

/// An access token's grant, as authentication needs it.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub key: ApiKey,
    pub default_workspace_id: String,
    pub resource: String,
    pub expires_at: Timestamp,
}

struct TokenRow {
    key_id: String,
    resource: String,
    expires_at: Timestamp,
    used_at: Option<Timestamp>,
}
from_row!(TokenRow {
    key_id,
    resource,
    expires_at,
    used_at
});

impl Store {
    /// Stores a client (dynamic registration) or refreshes a metadata document's copy.
    pub async fn save_oauth_client(&self, c: &OAuthClient) -> Result<()> {
        self.db
            .execute(
                query(
                    "INSERT INTO oauth_clients (id, name, redirect_uris, registration, created_at, fetched_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET name = $2, redirect_uris = $3, fetched_at = $6",
                )
                .bind(&c.id)
                .bind(&c.name)
                .bind(c.redirect_uris.join("\n"))
                .bind(&c.registration)
                .bind(c.created_at)
                .bind(c.fetched_at),
            )
            .await?;
        Ok(())
    }

    pub async fn get_oauth_client(&self, id: &str) -> Result<Option<OAuthClient>> {
        let row: Option<ClientRow> = self
            .db
            .fetch_optional(
                query(
                    "SELECT id, name, redirect_uris, registration, created_at, fetched_at \
                     FROM oauth_clients WHERE id = $1",
                )
                .bind(id),
            )
            .await?;
        Ok(row.map(OAuthClient::from))
    }

    pub async fn insert_oauth_code(&self, c: NewCode<'_>) -> Result<()> {
        self.db
            .execute(
                query(
                    "INSERT INTO oauth_codes (code_digest, key_id, client_id, redirect_uri, \
                     code_challenge, resource, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&c.digest[..])
                .bind(c.key_id)
                .bind(c.client_id)
                .bind(c.redirect_uri)
                .bind(c.code_challenge)
                .bind(c.resource)
                .bind(c.expires_at),
            )
            .await?;
        Ok(())
    }

    /// Spends a code: only the first redemption in time gets [`Redeemed::Fresh`].
    pub async fn redeem_oauth_code(&self, digest: &Digest, at: Timestamp) -> Result<Redeemed> {
        let mut tx = self.db.begin().await?;
        let row: Option<StoredCode> = tx
            .fetch_optional(
                query(
                    "SELECT key_id, client_id, redirect_uri, code_challenge, resource, expires_at, \
                     used_at FROM oauth_codes WHERE code_digest = $1",
                )
                .bind(&digest[..]),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Redeemed::Unknown);
        };
        if row.used_at.is_some() {
            return Ok(Redeemed::Reused(row));
        }
        if row.expires_at <= at {
            return Ok(Redeemed::Expired);
        }
        let won = tx
            .execute(
                query(
                    "UPDATE oauth_codes SET used_at = $1 WHERE code_digest = $2 AND used_at IS NULL",
                )
                .bind(at)
                .bind(&digest[..]),
            )
            .await?;
        tx.commit().await?;
        Ok(if won == 1 {
            Redeemed::Fresh(row)
        } else {
            Redeemed::Reused(row)
        })
    }

    /// Stores a fresh access and refresh token for the grant `key_id`.
    pub async fn insert_oauth_tokens(
        &self,
        key_id: &str,
        t: NewTokens<'_>,
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        insert_pair(&mut tx, key_id, t, at).await?;
        tx.commit().await
    }

    /// Rotates a refresh token of `client_id`: the old one is spent and `new` stored,
    /// in one transaction, unless it was spent before ([`Refreshed::Reused`]), expired,
    /// another client's, or its grant is revoked (then [`Refreshed::Unknown`]).
    pub async fn rotate_oauth_refresh(
        &self,
        old: &Digest,
        client_id: &str,
        new: NewTokens<'_>,
        at: Timestamp,
    ) -> Result<Refreshed> {
        let mut tx = self.db.begin().await?;
        let row: Option<TokenRow> = tx
            .fetch_optional(
                query(
                    "SELECT t.key_id, t.resource, t.expires_at, t.used_at FROM oauth_tokens t \
                     JOIN api_keys k ON k.id = t.key_id \
                     WHERE t.token_digest = $1 AND t.kind = 'refresh' AND k.revoked_at IS NULL \
                     AND k.oauth_client_id = $2",
                )
                .bind(&old[..])
                .bind(client_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Refreshed::Unknown);
        };
        if row.used_at.is_some() {
            return Ok(Refreshed::Reused { key_id: row.key_id });
        }
        if row.expires_at <= at {
            return Ok(Refreshed::Expired);
        }
        let won = tx
            .execute(
                query(
                    "UPDATE oauth_tokens SET used_at = $1 WHERE token_digest = $2 AND used_at IS NULL",
                )
                .bind(at)
                .bind(&old[..]),
            )
            .await?;
        if won != 1 {
            return Ok(Refreshed::Reused { key_id: row.key_id });
        }
        let new = NewTokens {
            resource: &row.resource,
            ..new
        };
        insert_pair(&mut tx, &row.key_id, new, at).await?;
        tx.commit().await?;
        Ok(Refreshed::Rotated {
            key_id: row.key_id,
            resource: row.resource,
        })
    }

    /// The grant of an access token (revoked or not; authentication decides), or `None`.
    pub async fn find_oauth_access(&self, digest: &Digest) -> Result<Option<AccessGrant>> {
        struct Found(TokenRow, String);
        impl FromRow for Found {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(Found(TokenRow::from_row(r)?, r.get("org_id")?))
            }
        }
        let found: Option<Found> = self
            .db
            .fetch_optional(
                query(
                    "SELECT t.key_id, t.resource, t.expires_at, t.used_at, k.org_id FROM oauth_tokens t \
                     JOIN api_keys k ON k.id = t.key_id \
                     WHERE t.token_digest = $1 AND t.kind = 'access'",
                )
                .bind(&digest[..]),
            )
            .await?;
        let Some(Found(token, org_id)) = found else {
            return Ok(None);
        };
        let key = self.get_key(&org_id, &token.key_id).await?;
        let org = self.get_org(&org_id).await?;
        Ok(Some(AccessGrant {
            key,
            default_workspace_id: org.default_workspace_id,
            resource: token.resource,
            expires_at: token.expires_at,
        }))
    }

    /// The grant (an `oauth` key row) with this id, in whichever organization.
    pub async fn oauth_grant(&self, key_id: &str) -> Result<Option<ApiKey>> {
        let org: Option<Scalar<String>> = self
            .db
            .fetch_optional(query("SELECT org_id FROM api_keys WHERE id = $1").bind(key_id))
            .await?;
        match org {
            Some(Scalar(org_id)) => Ok(Some(self.get_key(&org_id, key_id).await?)),
            None => Ok(None),
        }
    }

    /// Dynamically registered clients no grant names (nobody has authorized them):
    /// what the registration cap counts.
    pub async fn count_unused_oauth_clients(&self) -> Result<u64> {
        let n: Option<Scalar<i64>> = self
            .db
            .fetch_optional(query(concat!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM oauth_clients ",
                "WHERE registration = 'dynamic' AND id NOT IN ",
                "(SELECT oauth_client_id FROM api_keys WHERE oauth_client_id IS NOT NULL)"
            )))
            .await?;
        Ok(n.map_or(0, |Scalar(n)| u64::try_from(n).unwrap_or(0)))
    }

    /// Deletes clients created before `before` that no grant names: registrations
    /// nobody authorized, and metadata documents fetched for a consent never given
    /// (fetched again if they come back). A client with a grant, even a revoked
    /// one, stays.
    pub async fn prune_unused_oauth_clients(&self, before: Timestamp) -> Result<u64> {
        self.db
            .execute(
                query(concat!(
                    "DELETE FROM oauth_clients WHERE created_at < $1 AND id NOT IN ",
                    "(SELECT oauth_client_id FROM api_keys WHERE oauth_client_id IS NOT NULL)"
                ))
                .bind(before),
            )
            .await
    }

    /// Forgets codes and tokens expired before `before` (they can never work again).
    pub async fn prune_oauth(&self, before: Timestamp) -> Result<u64> {
        let codes = self
            .db
            .execute(query("DELETE FROM oauth_codes WHERE expires_at < $1").bind(before))
            .await?;
        let tokens = self
            .db
            .execute(query("DELETE FROM oauth_tokens WHERE expires_at < $1").bind(before))
            .await?;
        Ok(codes + tokens)
    }
}

async fn insert_pair(
    tx: &mut crate::db::Tx,
    key_id: &str,
    t: NewTokens<'_>,
    at: Timestamp,
) -> Result<()> {
    for (digest, kind, expires_at) in [
        (t.access, "access", t.access_expires_at),
        (t.refresh, "refresh", t.refresh_expires_at),
    ] {
        tx.execute(
            query(
                "INSERT INTO oauth_tokens (token_digest, key_id, kind, resource, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&digest[..])
            .bind(key_id)
            .bind(kind)
            .bind(t.resource)
            .bind(at)
            .bind(expires_at),
        )
        .await?;
    }
    Ok(())
}
