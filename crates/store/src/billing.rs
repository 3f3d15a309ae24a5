//! Wallets and their ledger, and the idempotency-key bookkeeping that charging
//! operations share.
//!
//! Charges happen inside the transaction of the operation that causes them, with
//! [`debit!`]: a guarded `UPDATE … WHERE balance >= cost`, so the balance can never go
//! below zero, however many nodes charge at once.

use dialtone_domain::billing::{CURRENCY, Charge, Wallet};
use dialtone_domain::id::new_id;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::{Scoped, Store, db_error, read, transaction};

/// Takes `$amount` cents from the wallet of `$scope` (live mode only) and writes the
/// ledger entry, inside transaction `$tx`. Refuses with `InsufficientBalance`.
macro_rules! debit {
    ($tx:expr, $scope:expr, $amount:expr, $kind:expr, $reference:expr, $description:expr) => {
        async {
            let scope: &dialtone_domain::tenancy::Scope = $scope;
            let amount: i64 = $amount;
            if !scope.livemode() || amount == 0 {
                return Ok::<_, dialtone_domain::Error>(());
            }
            let at = dialtone_domain::time::now();
            let done = sqlx::query(
                "UPDATE wallets SET balance = balance - $1, updated_at = $2 \
                 WHERE org_id = $3 AND livemode = $4 AND balance >= $1",
            )
            .bind(amount)
            .bind(at)
            .bind(&scope.org_id)
            .bind(true)
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_error)?
            .rows_affected();
            if done == 0 {
                let balance: Option<i64> = sqlx::query_scalar(
                    "SELECT balance FROM wallets WHERE org_id = $1 AND livemode = $2",
                )
                .bind(&scope.org_id)
                .bind(true)
                .fetch_optional(&mut *$tx)
                .await
                .map_err($crate::db_error)?;
                return Err(dialtone_domain::Error::InsufficientBalance {
                    needed: amount,
                    balance: balance.unwrap_or(0),
                });
            }
            sqlx::query(
                "INSERT INTO wallet_transactions (id, org_id, livemode, amount, kind, \
                 reference_id, description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(dialtone_domain::id::new_id("wtx"))
            .bind(&scope.org_id)
            .bind(true)
            .bind(-amount)
            .bind(dialtone_domain::billing::Charge::as_str($kind))
            .bind($reference)
            .bind($description)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_error)?;
            Ok(())
        }
        .await
    };
}

/// Claims `$key` for this request inside `$tx`. `Some(stored)` means the key was
/// used before: the caller replays `stored` and does nothing else.
macro_rules! idempotency_claim {
    ($tx:expr, $scope:expr, $key:expr) => {
        async {
            let scope: &dialtone_domain::tenancy::Scope = $scope;
            let key: Option<&dialtone_domain::idempotency::IdempotencyKey> = $key;
            let Some(key) = key else {
                return Ok::<_, dialtone_domain::Error>(None);
            };
            let at = dialtone_domain::time::now();
            let expired =
                at - chrono::TimeDelta::hours(dialtone_domain::idempotency::RETENTION_HOURS);
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE org_id = $1 AND workspace_id = $2 \
                 AND livemode = $3 AND idem_key = $4 AND created_at < $5",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key)
            .bind(expired)
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_error)?;
            // On PostgreSQL a concurrent request with the same key waits here until
            // the first commits (or rolls back).
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (org_id, workspace_id, livemode, idem_key, \
                 fingerprint, status_code, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, '', $6) ON CONFLICT DO NOTHING",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key)
            .bind(&key.fingerprint)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_error)?
            .rows_affected();
            if inserted > 0 {
                return Ok(None);
            }
            let (fingerprint, status, body): (String, i32, String) = sqlx::query_as(
                "SELECT fingerprint, status_code, body FROM idempotency_keys \
                 WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 AND idem_key = $4",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key)
            .fetch_one(&mut *$tx)
            .await
            .map_err($crate::db_error)?;
            Ok(Some(dialtone_domain::idempotency::StoredResponse {
                fingerprint,
                status: u16::try_from(status).unwrap_or(500),
                body,
            }))
        }
        .await
    };
}

/// Stores the answer under the claimed `$key`, in the same transaction as the effect.
macro_rules! idempotency_finish {
    ($tx:expr, $scope:expr, $key:expr, $status:expr, $body:expr) => {
        async {
            let scope: &dialtone_domain::tenancy::Scope = $scope;
            let key: Option<&dialtone_domain::idempotency::IdempotencyKey> = $key;
            if let Some(key) = key {
                sqlx::query(
                    "UPDATE idempotency_keys SET status_code = $5, body = $6 \
                     WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 AND idem_key = $4",
                )
                .bind(&scope.org_id)
                .bind(&scope.workspace_id)
                .bind(scope.livemode())
                .bind(&key.key)
                .bind(i32::from($status))
                .bind($body)
                .execute(&mut *$tx)
                .await
                .map_err($crate::db_error)?;
            }
            Ok::<_, dialtone_domain::Error>(())
        }
        .await
    };
}

pub(crate) use {debit, idempotency_claim, idempotency_finish};

#[derive(sqlx::FromRow)]
struct WalletRow {
    balance: i64,
    updated_at: Timestamp,
}

async fn wallet(store: &Store, org_id: &str, livemode: bool) -> Result<Wallet> {
    let row = read!(store, |c| sqlx::query_as::<_, WalletRow>(
        "SELECT balance, updated_at FROM wallets WHERE org_id = $1 AND livemode = $2"
    )
    .bind(org_id)
    .bind(livemode)
    .fetch_optional(c)
    .await)
    .map_err(db_error)?;
    Ok(Wallet {
        object: "wallet",
        livemode,
        currency: CURRENCY,
        balance: row.as_ref().map_or(0, |r| r.balance),
        updated_at: row.map(|r| r.updated_at),
    })
}

impl Store {
    /// Adds funds to an organization's wallet (the operator's `billing credit`).
    pub async fn credit_wallet(
        &self,
        org_id: &str,
        livemode: bool,
        amount: i64,
        description: &str,
    ) -> Result<Wallet> {
        if amount <= 0 {
            return Err(Error::validation("amount", "amount must be positive"));
        }
        self.get_org(org_id).await?;
        let at = now();
        transaction!(self, |tx| {
            async {
            sqlx::query(
                "INSERT INTO wallets (org_id, livemode, balance, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, livemode) DO UPDATE \
                 SET balance = wallets.balance + excluded.balance, updated_at = excluded.updated_at",
            )
            .bind(org_id)
            .bind(livemode)
            .bind(amount)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            sqlx::query(
                "INSERT INTO wallet_transactions (id, org_id, livemode, amount, kind, \
                 reference_id, description, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
            )
            .bind(new_id("wtx"))
            .bind(org_id)
            .bind(livemode)
            .bind(amount)
            .bind(Charge::Credit.as_str())
            .bind(description)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            Ok::<_, Error>(())
        }
        .await
        })?;
        wallet(self, org_id, livemode).await
    }
}

impl Scoped<'_> {
    /// The wallet of this scope's organization and mode.
    pub async fn wallet(&self) -> Result<Wallet> {
        wallet(self.store, &self.scope.org_id, self.scope.livemode()).await
    }
}
