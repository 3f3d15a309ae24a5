//! Wallets and their ledger, and the idempotency-key bookkeeping that charging
//! operations share.
//!
//! Charges happen inside the transaction of the operation that causes them, with
//! [`debit`]: a guarded `UPDATE … WHERE balance >= cost`, so the balance can never go
//! below zero, however many nodes charge at once.

use dialtone_domain::billing::{CURRENCY, Charge, Wallet};
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{
    Idem, IdempotencyKey, Outcome, RETENTION_HOURS, StoredResponse,
};
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::db::{FromRow, Row, Scalar, Tx, from_row, query};
use crate::{Scoped, Store};

/// Takes `amount` cents from the wallet of `scope` (live mode only) and writes the
/// ledger entry (naming the scope's workspace, for its invoices), inside `tx`.
/// Refuses with `InsufficientBalance`.
pub(crate) async fn debit(
    tx: &mut Tx,
    scope: &Scope,
    amount: i64,
    kind: Charge,
    reference: Option<&str>,
    description: &str,
) -> Result<()> {
    if !scope.livemode() || amount == 0 {
        return Ok(());
    }
    let at = now();
    let done = tx
        .execute(
            query(
                "UPDATE wallets SET balance = balance - $1, updated_at = $2 \
                 WHERE org_id = $3 AND livemode = $4 AND balance >= $1",
            )
            .bind(amount)
            .bind(at)
            .bind(&scope.org_id)
            .bind(true),
        )
        .await?;
    if done == 0 {
        let balance = tx
            .fetch_optional::<Scalar<i64>>(
                query("SELECT balance FROM wallets WHERE org_id = $1 AND livemode = $2")
                    .bind(&scope.org_id)
                    .bind(true),
            )
            .await?;
        return Err(Error::InsufficientBalance {
            needed: amount,
            balance: balance.map_or(0, |b| b.0),
        });
    }
    ledger_entry(tx, scope, -amount, kind, reference, description, at).await
}

/// One live ledger entry of `scope`'s workspace, inside `tx`.
async fn ledger_entry(
    tx: &mut Tx,
    scope: &Scope,
    amount: i64,
    kind: Charge,
    reference: Option<&str>,
    description: &str,
    at: dialtone_domain::time::Timestamp,
) -> Result<()> {
    tx.execute(
        query(
            "INSERT INTO wallet_transactions (id, org_id, livemode, amount, kind, \
             reference_id, description, created_at, workspace_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new_id("wtx"))
        .bind(&scope.org_id)
        .bind(true)
        .bind(amount)
        .bind(kind.as_str())
        .bind(reference)
        .bind(description)
        .bind(at)
        .bind(&scope.workspace_id),
    )
    .await?;
    Ok(())
}

/// Gives back a charge the customer got nothing for (a message the carrier refused),
/// inside `tx`: the wallet regains `amount` and the ledger gets the reversal, an entry
/// of the same kind with the opposite sign, which cancels the charge on the invoice.
pub(crate) async fn refund(
    tx: &mut Tx,
    scope: &Scope,
    amount: i64,
    kind: Charge,
    reference: &str,
    description: &str,
) -> Result<()> {
    if !scope.livemode() || amount <= 0 {
        return Ok(());
    }
    let at = now();
    tx.execute(
        query(
            "UPDATE wallets SET balance = balance + $1, updated_at = $2 \
             WHERE org_id = $3 AND livemode = $4",
        )
        .bind(amount)
        .bind(at)
        .bind(&scope.org_id)
        .bind(true),
    )
    .await?;
    ledger_entry(tx, scope, amount, kind, Some(reference), description, at).await
}

struct Stored(StoredResponse);

impl FromRow for Stored {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Stored(StoredResponse {
            fingerprint: r.get("fingerprint")?,
            status: u16::try_from(r.get::<i32>("status_code")?).unwrap_or(500),
            body: r.get("body")?,
        }))
    }
}

/// Claims `key` for this request inside `tx`. `Some(stored)` means the key was used
/// before: the caller replays `stored` and does nothing else.
pub(crate) async fn idempotency_claim(
    tx: &mut Tx,
    scope: &Scope,
    key: Option<&IdempotencyKey>,
) -> Result<Option<StoredResponse>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let at = now();
    tx.execute(
        query(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND workspace_id = $2 \
             AND livemode = $3 AND idem_key = $4 AND created_at < $5",
        )
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(&key.key)
        .bind(at - chrono::TimeDelta::hours(RETENTION_HOURS)),
    )
    .await?;
    // On PostgreSQL a concurrent request with the same key waits here until the first
    // commits (or rolls back).
    let inserted = tx
        .execute(
            query(
                "INSERT INTO idempotency_keys (org_id, workspace_id, livemode, idem_key, \
                 fingerprint, status_code, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, '', $6) ON CONFLICT DO NOTHING",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key)
            .bind(&key.fingerprint)
            .bind(at),
        )
        .await?;
    if inserted > 0 {
        return Ok(None);
    }
    let stored: Option<Stored> = tx
        .fetch_optional(
            query(
                "SELECT fingerprint, status_code, body FROM idempotency_keys \
                 WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 AND idem_key = $4",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key),
        )
        .await?;
    stored
        .map(|s| Some(s.0))
        .ok_or_else(|| Error::internal(std::io::Error::other("idempotency key vanished")))
}

/// Stores the answer under the claimed `key`, in the same transaction as the effect.
pub(crate) async fn idempotency_finish(
    tx: &mut Tx,
    scope: &Scope,
    key: Option<&IdempotencyKey>,
    status: u16,
    body: String,
) -> Result<()> {
    if let Some(key) = key {
        tx.execute(
            query(
                "UPDATE idempotency_keys SET status_code = $5, body = $6 \
                 WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 AND idem_key = $4",
            )
            .bind(&scope.org_id)
            .bind(&scope.workspace_id)
            .bind(scope.livemode())
            .bind(&key.key)
            .bind(i32::from(status))
            .bind(body),
        )
        .await?;
    }
    Ok(())
}

/// Claims `idem`'s key inside `tx` (see [`idempotency_claim`]).
pub(crate) async fn claim<T>(
    idem: Option<Idem<'_, T>>,
    tx: &mut Tx,
    scope: &Scope,
) -> Result<Option<StoredResponse>> {
    idempotency_claim(tx, scope, idem.map(|i| i.key)).await
}

/// Stores `idem`'s replay answer for `done` under the claimed key, inside `tx`.
pub(crate) async fn finish<T>(
    idem: Option<Idem<'_, T>>,
    tx: &mut Tx,
    scope: &Scope,
    done: &T,
) -> Result<()> {
    if let Some(i) = idem {
        let (status, body) = (i.answer)(done)?;
        idempotency_finish(tx, scope, Some(i.key), status, body).await?;
    }
    Ok(())
}

/// The effect of a storage call that can be replayed, when the caller gave no key.
pub(crate) fn done<T>(outcome: Outcome<T>) -> Result<T> {
    match outcome {
        Outcome::Done(v) => Ok(v),
        Outcome::Replay(_) => Err(Error::internal(std::io::Error::other(
            "a replay without an idempotency key",
        ))),
    }
}

struct WalletRow {
    balance: i64,
    updated_at: Timestamp,
}
from_row!(WalletRow {
    balance,
    updated_at
});

async fn wallet(store: &Store, org_id: &str, livemode: bool) -> Result<Wallet> {
    let row: Option<WalletRow> = store
        .db
        .fetch_optional(
            query("SELECT balance, updated_at FROM wallets WHERE org_id = $1 AND livemode = $2")
                .bind(org_id)
                .bind(livemode),
        )
        .await?;
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
        let mut tx = self.db.begin().await?;
        tx.execute(
            query(
                "INSERT INTO wallets (org_id, livemode, balance, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, livemode) DO UPDATE \
                 SET balance = wallets.balance + excluded.balance, updated_at = excluded.updated_at",
            )
            .bind(org_id)
            .bind(livemode)
            .bind(amount)
            .bind(at),
        )
        .await?;
        tx.execute(
            query(
                "INSERT INTO wallet_transactions (id, org_id, livemode, amount, kind, \
                 reference_id, description, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
            )
            .bind(new_id("wtx"))
            .bind(org_id)
            .bind(livemode)
            .bind(amount)
            .bind(Charge::Credit.as_str())
            .bind(description)
            .bind(at),
        )
        .await?;
        tx.commit().await?;
        wallet(self, org_id, livemode).await
    }
}

impl Scoped<'_> {
    /// The stored answer of an earlier request with this key, if any (read-only: lets
    /// a retry replay before checks whose result may have changed, like the balance).
    pub async fn idempotent_response(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<StoredResponse>> {
        let s = self.scope;
        let stored: Option<Stored> = self
            .store
            .db
            .fetch_optional(
                query(
                    "SELECT fingerprint, status_code, body FROM idempotency_keys \
                     WHERE org_id = $1 AND workspace_id = $2 AND livemode = $3 AND idem_key = $4 \
                     AND created_at >= $5 AND status_code > 0",
                )
                .bind(&s.org_id)
                .bind(&s.workspace_id)
                .bind(s.livemode())
                .bind(&key.key)
                .bind(now() - chrono::TimeDelta::hours(RETENTION_HOURS)),
            )
            .await?;
        Ok(stored.map(|s| s.0))
    }

    /// Replaces the answer stored under `key` once the operation went further than
    /// when it was stored (a call the carrier then refused is `failed`): a retry gets
    /// what the first request got.
    pub async fn amend_idempotent_response(
        &self,
        key: &IdempotencyKey,
        body: String,
    ) -> Result<()> {
        let s = self.scope;
        self.store
            .db
            .execute(
                query(
                    "UPDATE idempotency_keys SET body = $1 WHERE org_id = $2 AND workspace_id = $3 \
                     AND livemode = $4 AND idem_key = $5 AND fingerprint = $6 AND status_code > 0",
                )
                .bind(body)
                .bind(&s.org_id)
                .bind(&s.workspace_id)
                .bind(s.livemode())
                .bind(&key.key)
                .bind(&key.fingerprint),
            )
            .await?;
        Ok(())
    }

    /// The wallet of this scope's organization and mode.
    pub async fn wallet(&self) -> Result<Wallet> {
        wallet(self.store, &self.scope.org_id, self.scope.livemode()).await
    }
}

struct LedgerLine(String, dialtone_domain::billing::InvoiceLine);

impl FromRow for LedgerLine {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        let kind: String = r.get("kind")?;
        Ok(LedgerLine(
            r.get("month")?,
            dialtone_domain::billing::InvoiceLine {
                description: match kind.as_str() {
                    "call" => "Calls (per started minute)".to_owned(),
                    "message" => "Messages (per segment)".to_owned(),
                    "phone_number" => "Phone numbers (monthly)".to_owned(),
                    other => other.to_owned(),
                },
                kind,
                quantity: r.get("quantity")?,
                amount: r.get("amount")?,
            },
        ))
    }
}

macro_rules! invoice_lines {
    ($month:literal, $reach:literal) => {
        concat!(
            "SELECT ",
            $month,
            " AS month, kind, \
             CAST(SUM(CASE WHEN amount < 0 THEN 1 WHEN amount > 0 THEN -1 ELSE 0 END) AS BIGINT) AS quantity, \
             CAST(-SUM(amount) AS BIGINT) AS amount \
             FROM wallet_transactions WHERE org_id = $1 AND livemode = $2 AND kind <> 'credit'",
            $reach,
            " GROUP BY 1, 2 HAVING SUM(amount) <> 0 ORDER BY 1 DESC, 2"
        )
    };
}

impl Scoped<'_> {
    /// Invoices of this mode, newest month first: one per month with charges, each
    /// line a kind of charge (a refund cancels the charge it reverses). With
    /// `whole_organization` (an organization key) they add up every workspace's usage;
    /// without, only the scope's workspace's (a workspace key).
    pub async fn invoices(
        &self,
        whole_organization: bool,
    ) -> Result<Vec<dialtone_domain::billing::Invoice>> {
        let s = self.scope;
        let db = &self.store.db;
        let q = if whole_organization {
            query(db.dialect(
                invoice_lines!("substr(created_at, 1, 7)", ""),
                invoice_lines!("to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')", ""),
            ))
            .bind(&s.org_id)
            .bind(s.livemode())
        } else {
            query(db.dialect(
                invoice_lines!("substr(created_at, 1, 7)", " AND workspace_id = $3"),
                invoice_lines!(
                    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')",
                    " AND workspace_id = $3"
                ),
            ))
            .bind(&s.org_id)
            .bind(s.livemode())
            .bind(&s.workspace_id)
        };
        let rows: Vec<LedgerLine> = db.fetch_all(q).await?;
        let current = now().format("%Y-%m").to_string();
        let mut out: Vec<dialtone_domain::billing::Invoice> = Vec::new();
        let mut month_lines: Vec<dialtone_domain::billing::InvoiceLine> = Vec::new();
        let mut month: Option<String> = None;
        for LedgerLine(m, line) in rows {
            if month.as_deref() != Some(m.as_str()) {
                if let Some(done) = month.take() {
                    out.push(dialtone_domain::billing::invoice(
                        &done,
                        s.livemode(),
                        &current,
                        std::mem::take(&mut month_lines),
                    ));
                }
                month = Some(m);
            }
            month_lines.push(line);
        }
        if let Some(done) = month {
            out.push(dialtone_domain::billing::invoice(
                &done,
                s.livemode(),
                &current,
                month_lines,
            ));
        }
        Ok(out)
    }
}

/// One entry of a wallet's ledger: a charge (negative), a refund or a credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: String,
    /// In cents: negative for a charge, positive for a credit or refund.
    pub amount: i64,
    /// `call`, `message`, `phone_number` or `credit`.
    pub kind: String,
    /// What was paid for (`call_…`, `msg_…`, `pn_…`); none for a credit.
    pub reference_id: Option<String>,
    pub description: String,
    pub created_at: Timestamp,
}
from_row!(LedgerEntry {
    id,
    amount,
    kind,
    reference_id,
    description,
    created_at,
});

impl Scoped<'_> {
    /// The wallet's ledger in this mode, newest first: the scope's workspace's
    /// charges and refunds, and the organization's credits (which name no workspace).
    pub async fn list_ledger(
        &self,
        page: &dialtone_domain::page::PageRequest,
    ) -> Result<Vec<LedgerEntry>> {
        let s = self.scope;
        self.store
            .db
            .fetch_all(
                query(
                    "SELECT id, amount, kind, reference_id, description, created_at \
                     FROM wallet_transactions WHERE org_id = $1 AND livemode = $2 \
                     AND (workspace_id = $3 OR workspace_id IS NULL) \
                     AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
                )
                .bind(&s.org_id)
                .bind(s.livemode())
                .bind(&s.workspace_id)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await
    }
}
