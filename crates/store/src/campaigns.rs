//! Campaigns and their recipients; the runner's queries.

use dialtone_domain::campaigns::{Campaign, Progress};
use dialtone_domain::events::EventType;
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::billing::{idempotency_claim, idempotency_finish};
use crate::calls::record_event;
use crate::db::{FromRow, Row, from_row, query, scope_query};
use crate::{Scoped, Store};

struct CampaignRow {
    id: String,
    org_id: String,
    workspace_id: String,
    livemode: bool,
    name: String,
    agent_id: String,
    from_number: String,
    phone_number_id: Option<String>,
    status: String,
    status_reason: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    api_key_id: Option<String>,
}
from_row!(CampaignRow {
    id,
    org_id,
    workspace_id,
    livemode,
    name,
    agent_id,
    from_number,
    phone_number_id,
    status,
    status_reason,
    created_at,
    updated_at,
    api_key_id,
});

macro_rules! campaign_columns {
    () => {
        "SELECT id, org_id, workspace_id, livemode, name, agent_id, from_number, phone_number_id, \
         status, status_reason, created_at, updated_at, api_key_id FROM campaigns "
    };
}

impl FromRow for Progress {
    fn from_row(r: &Row<'_>) -> Result<Self> {
        Ok(Progress {
            total: r.get("total")?,
            pending: r.get("pending")?,
            in_progress: r.get("in_progress")?,
            completed: r.get("completed")?,
            failed: r.get("failed")?,
        })
    }
}

/// A running campaign, as the runner sees it.
#[derive(Debug, Clone)]
pub struct RunningCampaign {
    pub id: String,
    pub scope: Scope,
    pub agent_id: String,
    pub from: String,
    pub phone_number_id: Option<String>,
    /// The key that created it: its limits apply to the campaign's calls.
    pub api_key_id: Option<String>,
}

/// The next recipient to call.
#[derive(Debug, Clone)]
pub struct NextRecipient {
    pub position: i64,
    pub number: String,
}
from_row!(NextRecipient { position, number });

impl CampaignRow {
    fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id.clone(),
            workspace_id: self.workspace_id.clone(),
            mode: Mode::from_livemode(self.livemode),
        }
    }

    fn into_campaign(self, progress: Progress) -> Campaign {
        Campaign {
            id: self.id,
            object: "campaign",
            workspace_id: self.workspace_id,
            livemode: self.livemode,
            name: self.name,
            agent_id: self.agent_id,
            from: self.from_number,
            status: self.status,
            status_reason: self.status_reason,
            progress,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn progress_query(campaign_id: &str) -> crate::db::Query {
    query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(CASE WHEN r.call_id IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
         CAST(COALESCE(SUM(CASE WHEN c.status IN ('queued', 'ringing', 'in_progress') THEN 1 ELSE 0 END), 0) AS BIGINT) AS in_progress, \
         CAST(COALESCE(SUM(CASE WHEN c.status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed, \
         CAST(COALESCE(SUM(CASE WHEN c.status IN ('busy', 'no_answer', 'failed', 'canceled') THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed \
         FROM campaign_recipients r LEFT JOIN calls c ON c.id = r.call_id WHERE r.campaign_id = $1",
    )
    .bind(campaign_id)
}

impl Store {
    pub async fn running_campaigns(&self) -> Result<Vec<RunningCampaign>> {
        let rows: Vec<CampaignRow> = self
            .db
            .fetch_all(query(concat!(
                campaign_columns!(),
                "WHERE status = 'running' ORDER BY id LIMIT 1000"
            )))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RunningCampaign {
                scope: r.scope(),
                id: r.id,
                agent_id: r.agent_id,
                from: r.from_number,
                phone_number_id: r.phone_number_id,
                api_key_id: r.api_key_id,
            })
            .collect())
    }

    /// Calls of the campaign still in flight, and its next uncalled recipient.
    pub async fn campaign_next(&self, campaign_id: &str) -> Result<(i64, Option<NextRecipient>)> {
        let progress: Progress = self
            .db
            .fetch_optional(progress_query(campaign_id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        let next = self
            .db
            .fetch_optional(
                query(
                    "SELECT position, number FROM campaign_recipients \
                     WHERE campaign_id = $1 AND call_id IS NULL ORDER BY position LIMIT 1",
                )
                .bind(campaign_id),
            )
            .await?;
        Ok((progress.in_progress, next))
    }

    /// Marks a running campaign completed (with `campaign.completed`) once every
    /// recipient was called and every call ended.
    pub async fn complete_campaign_if_done(&self, campaign_id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let progress: Progress = tx
            .fetch_optional(progress_query(campaign_id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        if progress.pending > 0 || progress.in_progress > 0 {
            return Ok(false);
        }
        let done = tx
            .execute(
                query("UPDATE campaigns SET status = 'completed', updated_at = $1 WHERE id = $2 AND status = 'running'")
                    .bind(now())
                    .bind(campaign_id),
            )
            .await?;
        if done == 0 {
            return Ok(false);
        }
        let row: CampaignRow = tx
            .fetch_optional(query(concat!(campaign_columns!(), "WHERE id = $1")).bind(campaign_id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        let scope = row.scope();
        let campaign = row.into_campaign(progress);
        record_event(
            &mut tx,
            &scope,
            EventType::CampaignCompleted,
            serde_json::to_value(&campaign).map_err(Error::internal)?,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Pauses a running campaign by itself, saying why.
    pub async fn pause_campaign(&self, campaign_id: &str, reason: &str) -> Result<()> {
        self.db
            .execute(
                query(
                    "UPDATE campaigns SET status = 'paused', status_reason = $1, updated_at = $2 \
                     WHERE id = $3 AND status = 'running'",
                )
                .bind(reason)
                .bind(now())
                .bind(campaign_id),
            )
            .await
            .map(|_| ())
    }
}

impl Scoped<'_> {
    /// Creates a running campaign with its recipients (agent checked in scope).
    /// `api_key_id`: the key creating it, whose limits its calls obey.
    pub async fn create_campaign(
        &self,
        api_key_id: Option<&str>,
        name: &str,
        agent_id: &str,
        from: (Option<String>, String),
        recipients: &[String],
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Campaign>> {
        let s = self.scope;
        let at = now();
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        if !crate::agents::agent_in_tx(&mut tx, &self.store.db, s, agent_id).await? {
            return Err(Error::validation(
                "agent_id",
                format!("no such agent: {agent_id}"),
            ));
        }
        let id = new_id("cmp");
        tx.execute(
            query(
                "INSERT INTO campaigns (id, org_id, workspace_id, livemode, name, agent_id, from_number, \
                 phone_number_id, status, created_at, updated_at, api_key_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9, $9, $10)",
            )
            .bind(&id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(name)
            .bind(agent_id)
            .bind(&from.1)
            .bind(&from.0)
            .bind(at)
            .bind(api_key_id),
        )
        .await?;
        for (i, number) in recipients.iter().enumerate() {
            tx.execute(
                query("INSERT INTO campaign_recipients (campaign_id, position, number) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(i as i64)
                    .bind(number),
            )
            .await?;
        }
        let row: CampaignRow = tx
            .fetch_optional(query(concat!(campaign_columns!(), "WHERE id = $1")).bind(&id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        let progress = tx
            .fetch_optional(progress_query(&id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        let campaign = row.into_campaign(progress);
        idempotency_finish(
            &mut tx,
            s,
            idem,
            201,
            serde_json::to_string(&campaign).map_err(Error::internal)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done(campaign))
    }

    pub async fn get_campaign(&self, id: &str) -> Result<Campaign> {
        let s = self.scope;
        let row: CampaignRow = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(campaign_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        let progress = self
            .store
            .db
            .fetch_optional(progress_query(id))
            .await?
            .ok_or(Error::NotFound {
                resource: "campaign",
            })?;
        Ok(row.into_campaign(progress))
    }

    pub async fn list_campaigns(&self, page: &PageRequest) -> Result<Vec<Campaign>> {
        let s = self.scope;
        let rows: Vec<CampaignRow> = self
            .store
            .db
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        campaign_columns!(),
                        "WHERE ",
                        in_scope!(),
                        " AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
                    ),
                )
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let progress = self
                .store
                .db
                .fetch_optional(progress_query(&row.id))
                .await?
                .ok_or(Error::NotFound {
                    resource: "campaign",
                })?;
            out.push(row.into_campaign(progress));
        }
        Ok(out)
    }

    /// Moves a campaign between running, paused and canceled (compare-and-set).
    pub async fn set_campaign_status(&self, id: &str, asked: &str) -> Result<Campaign> {
        let current = self.get_campaign(id).await?;
        let to = dialtone_domain::campaigns::next_status(&current.status, asked)?;
        let s = self.scope;
        let done = self
            .store
            .db
            .execute(
                scope_query(s, concat!(
                    "UPDATE campaigns SET status = $5, status_reason = NULL, updated_at = $6 WHERE ",
                    in_scope!(),
                    " AND id = $4 AND status = $7"
                ))
                .bind(id)
                .bind(to)
                .bind(now())
                .bind(&current.status),
            )
            .await?;
        if done == 0 {
            return Err(Error::Conflict {
                message: "The campaign changed meanwhile; retry.".to_owned(),
                details: None,
            });
        }
        self.get_campaign(id).await
    }
}
