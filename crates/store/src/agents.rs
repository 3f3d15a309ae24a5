//! Voice agents, inside one [`Scoped`] tenant.

use dialtone_domain::agents::{Agent, AgentFields};
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{Idem, Outcome};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::Scoped;
use crate::billing::{claim, done, finish};
use crate::db::{Db, Scalar, Tx, from_row, query, scope_query};

struct AgentRow {
    id: String,
    workspace_id: String,
    livemode: bool,
    name: String,
    prompt: Option<String>,
    voice: String,
    language: String,
    greeting: Option<String>,
    stream_url: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}
from_row!(AgentRow {
    id,
    workspace_id,
    livemode,
    name,
    prompt,
    voice,
    language,
    greeting,
    stream_url,
    created_at,
    updated_at
});

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Agent {
        Agent {
            id: r.id,
            object: "agent",
            workspace_id: r.workspace_id,
            livemode: r.livemode,
            name: r.name,
            prompt: r.prompt,
            voice: r.voice,
            language: r.language,
            greeting: r.greeting,
            stream_url: r.stream_url,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! agent_columns {
    () => {
        "SELECT id, workspace_id, livemode, name, prompt, voice, language, greeting, \
         stream_url, created_at, updated_at FROM agents "
    };
}

const NOT_FOUND: Error = Error::NotFound { resource: "agent" };

impl Scoped<'_> {
    pub async fn list_agents(&self, page: &PageRequest) -> Result<Vec<Agent>> {
        let s = self.scope;
        let rows: Vec<AgentRow> = self
            .store
            .db
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        agent_columns!(),
                        "WHERE ",
                        in_scope!(),
                        " AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
                    ),
                )
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        Ok(rows.into_iter().map(Agent::from).collect())
    }

    pub async fn get_agent(&self, id: &str) -> Result<Agent> {
        let s = self.scope;
        let row: Option<AgentRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(agent_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        row.map(Agent::from).ok_or(NOT_FOUND)
    }

    pub async fn create_agent(&self, f: AgentFields) -> Result<Agent> {
        done(self.create_agent_once(f, None).await?)
    }

    /// Creates an agent once per `Idempotency-Key`: a retry gets the stored answer.
    pub async fn create_agent_once(
        &self,
        f: AgentFields,
        idem: Option<Idem<'_, Agent>>,
    ) -> Result<Outcome<Agent>> {
        let s = self.scope;
        let at = now();
        let agent = Agent {
            id: new_id("agt"),
            object: "agent",
            workspace_id: s.workspace_id.clone(),
            livemode: s.livemode(),
            name: f.name,
            prompt: f.prompt,
            voice: f.voice,
            language: f.language,
            greeting: f.greeting,
            stream_url: f.stream_url,
            created_at: at,
            updated_at: at,
        };
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = claim(idem, &mut tx, s).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        tx.execute(
            query(
                "INSERT INTO agents (id, org_id, workspace_id, livemode, name, prompt, voice, \
                     language, greeting, stream_url, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&agent.id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(&agent.name)
            .bind(&agent.prompt)
            .bind(&agent.voice)
            .bind(&agent.language)
            .bind(&agent.greeting)
            .bind(&agent.stream_url)
            .bind(agent.created_at)
            .bind(agent.updated_at),
        )
        .await?;
        finish(idem, &mut tx, s, &agent).await?;
        tx.commit().await?;
        Ok(Outcome::Done(agent))
    }

    pub async fn update_agent(&self, id: &str, f: AgentFields) -> Result<Agent> {
        let s = self.scope;
        let done = self
            .store
            .db
            .execute(
                scope_query(
                    s,
                    concat!(
                        "UPDATE agents SET name = $5, prompt = $6, voice = $7, language = $8, \
                     greeting = $9, stream_url = $10, updated_at = $11 WHERE ",
                        in_scope!(),
                        " AND id = $4"
                    ),
                )
                .bind(id)
                .bind(&f.name)
                .bind(&f.prompt)
                .bind(&f.voice)
                .bind(&f.language)
                .bind(&f.greeting)
                .bind(&f.stream_url)
                .bind(now()),
            )
            .await?;
        if done == 0 {
            return Err(NOT_FOUND);
        }
        self.get_agent(id).await
    }

    /// Deletes an agent that nothing routes to, in one transaction: an active phone
    /// number (`agent_id`) or a running or paused campaign that names it makes this a
    /// 409 listing them (`details: {phone_numbers, campaigns}`), and nothing changes.
    /// Calls, and campaigns already completed or canceled, keep their record of it.
    ///
    /// The writes that name an agent check it with [`agent_in_tx`] in their own
    /// transaction; on PostgreSQL this one locks the agent row first (`FOR UPDATE`), so
    /// either the deletion sees their committed reference or they no longer see the
    /// agent. SQLite's write transactions are serialized (`BEGIN IMMEDIATE`).
    pub async fn delete_agent(&self, id: &str) -> Result<()> {
        let s = self.scope;
        let db = &self.store.db;
        let mut tx = db.begin().await?;
        let found = tx
            .fetch_optional::<Scalar<String>>(
                scope_query(
                    s,
                    db.dialect(
                        concat!("SELECT id FROM agents WHERE ", in_scope!(), " AND id = $4"),
                        concat!(
                            "SELECT id FROM agents WHERE ",
                            in_scope!(),
                            " AND id = $4 FOR UPDATE"
                        ),
                    ),
                )
                .bind(id),
            )
            .await?;
        if found.is_none() {
            return Err(NOT_FOUND);
        }
        let numbers: Vec<Scalar<String>> = tx
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        "SELECT id FROM phone_numbers WHERE ",
                        in_scope!(),
                        " AND agent_id = $4 AND status = 'active' ORDER BY id"
                    ),
                )
                .bind(id),
            )
            .await?;
        let campaigns: Vec<Scalar<String>> = tx
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        "SELECT id FROM campaigns WHERE ",
                        in_scope!(),
                        " AND agent_id = $4 AND status IN ('running', 'paused') ORDER BY id"
                    ),
                )
                .bind(id),
            )
            .await?;
        if !numbers.is_empty() || !campaigns.is_empty() {
            let numbers: Vec<String> = numbers.into_iter().map(|n| n.0).collect();
            let campaigns: Vec<String> = campaigns.into_iter().map(|c| c.0).collect();
            return Err(still_used(id, numbers, campaigns));
        }
        tx.execute(
            scope_query(
                s,
                concat!("DELETE FROM agents WHERE ", in_scope!(), " AND id = $4"),
            )
            .bind(id),
        )
        .await?;
        tx.commit().await
    }
}

/// The 409 of an agent still in use, naming what uses it.
fn still_used(id: &str, numbers: Vec<String>, campaigns: Vec<String>) -> Error {
    let mut uses = Vec::new();
    if !numbers.is_empty() {
        uses.push(format!("phone numbers {}", numbers.join(", ")));
    }
    if !campaigns.is_empty() {
        uses.push(format!(
            "running or paused campaigns {}",
            campaigns.join(", ")
        ));
    }
    Error::Conflict {
        message: format!(
            "Agent {id} is still used by {}. Route the numbers to another agent (or none) \
             and cancel the campaigns, then delete it.",
            uses.join(" and ")
        ),
        details: Some(serde_json::json!({
            "phone_numbers": numbers,
            "campaigns": campaigns,
        })),
    }
}

/// Whether agent `id` exists in scope, read inside `tx` by a write that is about to
/// name it (a phone number's routing, a new campaign). On PostgreSQL the row is
/// locked `FOR KEY SHARE`: a concurrent [`Scoped::delete_agent`] either waits for
/// this transaction (and then sees its reference) or has deleted the row first (and
/// this answers `false`).
pub(crate) async fn agent_in_tx(tx: &mut Tx, db: &Db, s: &Scope, id: &str) -> Result<bool> {
    let found = tx
        .fetch_optional::<Scalar<i64>>(
            scope_query(
                s,
                db.dialect(
                    concat!(
                        "SELECT CAST(1 AS BIGINT) FROM agents WHERE ",
                        in_scope!(),
                        " AND id = $4"
                    ),
                    concat!(
                        "SELECT CAST(1 AS BIGINT) FROM agents WHERE ",
                        in_scope!(),
                        " AND id = $4 FOR KEY SHARE"
                    ),
                ),
            )
            .bind(id),
        )
        .await?;
    Ok(found.is_some())
}
