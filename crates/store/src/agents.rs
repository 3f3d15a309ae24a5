//! Voice agents, inside one [`Scoped`] tenant.

use dialtone_domain::agents::{Agent, AgentFields};
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{Idem, Outcome};
use dialtone_domain::page::PageRequest;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};

use crate::Scoped;
use crate::billing::{claim, done, finish};
use crate::db::{from_row, query, scope_query};

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

    pub async fn delete_agent(&self, id: &str) -> Result<()> {
        let s = self.scope;
        let done = self
            .store
            .db
            .execute(
                scope_query(
                    s,
                    concat!("DELETE FROM agents WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        if done == 0 {
            return Err(NOT_FOUND);
        }
        Ok(())
    }
}
