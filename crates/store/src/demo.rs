//! `dialtone demo`: realistic data in bulk (contacts, an agent, a number,
//! conversations, calls over 90 days with transcripts and recordings for the latest,
//! notes), written with multi-row inserts so a million calls take seconds to minutes.

use dialtone_domain::Result;
use dialtone_domain::calls::{call_cost, simulated_transcript};
use dialtone_domain::id::{new_id, new_id_at};
use dialtone_domain::tenancy::Scope;
use dialtone_domain::time::{Timestamp, now};

use crate::db::{Value, query, query_built};
use crate::{Scoped, Store};

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Tim",
    "Frances",
    "John",
    "Hedy",
    "Edsger",
    "Sophie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Allen",
    "Backus",
    "Lamarr",
    "Dijkstra",
    "Wilson",
];
const COMPANIES: &[&str] = &[
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne",
];
const ROWS_PER_INSERT: usize = 200;

/// What `demo` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DemoSummary {
    pub contacts: usize,
    pub conversations: usize,
    pub calls: usize,
    pub transcripts: usize,
    pub notes: usize,
    pub agent_id: String,
    pub phone_number: String,
}

/// `INSERT … VALUES ($1, …), ($k, …)` for `rows` rows of `cols` columns.
fn multi_insert(head: &str, cols: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * cols * 6);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * cols + c + 1));
        }
        sql.push(')');
    }
    sql
}

async fn insert_rows(store: &Store, head: &str, cols: usize, rows: Vec<Vec<Value>>) -> Result<()> {
    let mut tx = store.db.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = query_built(multi_insert(head, cols, chunk.len()));
        for row in chunk {
            for v in row {
                q = q.bind(v.clone());
            }
        }
        tx.execute(q).await?;
    }
    tx.commit().await
}

fn text(s: &str) -> Value {
    Value::Text(Some(s.to_owned()))
}

fn opt_text(s: Option<&str>) -> Value {
    Value::Text(s.map(str::to_owned))
}

fn time(t: Option<Timestamp>) -> Value {
    Value::Time(t)
}

impl Scoped<'_> {
    /// Fills this scope with `contacts` contacts and `calls` calls (spread over the
    /// last 90 days); `progress(done, total)` is called as calls are written.
    pub async fn demo(
        &self,
        contacts: usize,
        calls: usize,
        progress: impl Fn(usize, usize),
    ) -> Result<DemoSummary> {
        let s: &Scope = self.scope;
        let at = now();
        let contacts = contacts.max(1);
        let agent = self
            .create_agent(dialtone_domain::agents::AgentFields {
                name: "Front desk".into(),
                prompt: Some("Book, confirm and reschedule appointments.".into()),
                voice: "default".into(),
                language: "en-US".into(),
                greeting: Some("Hi, this is Acme's assistant. How can I help?".into()),
                stream_url: None,
            })
            .await?;
        let ours = format!("+1555{:07}", rand::random_range(0..10_000_000u32));
        let number_id = new_id("pn");
        self.store
            .db
            .execute(
                query(
                    "INSERT INTO phone_numbers (id, org_id, workspace_id, livemode, number, country, \
                     number_type, name, agent_id, status, monthly_cost, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'US', 'local', 'Demo line', $6, 'active', 0, $7, $7)",
                )
                .bind(&number_id)
                .bind(&s.org_id)
                .bind(&s.workspace_id)
                .bind(s.livemode())
                .bind(&ours)
                .bind(&agent.id)
                .bind(at),
            )
            .await?;

        // Contacts, each with a conversation on the demo line.
        let base: u64 = 2_000_000 + u64::from(rand::random_range(0..1_000_000u32)) * 1000;
        let people: Vec<(String, String, String)> = (0..contacts)
            .map(|i| {
                (
                    new_id("ct"),
                    new_id("conv"),
                    format!("+1{}", 2_000_000_000 + (base + i as u64) % 7_999_999_999),
                )
            })
            .collect();
        let mut rows = Vec::with_capacity(contacts);
        let mut convs = Vec::with_capacity(contacts);
        for (i, (id, conv, phone)) in people.iter().enumerate() {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len()) % LAST.len()];
            rows.push(vec![
                text(id),
                text(&s.org_id),
                text(&s.workspace_id),
                Value::Bool(Some(s.livemode())),
                text(first),
                text(last),
                text(phone),
                text(&format!(
                    "{}.{}{i}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase()
                )),
                text(COMPANIES[i % COMPANIES.len()]),
                text("Customer"),
                Value::Json(Some(serde_json::json!({"source": "demo"}))),
                time(Some(at)),
                time(Some(at)),
            ]);
            convs.push(vec![
                text(conv),
                text(&s.org_id),
                text(&s.workspace_id),
                Value::Bool(Some(s.livemode())),
                text(&ours),
                text(&number_id),
                text(phone),
                text(id),
                time(Some(at)),
                time(Some(at)),
            ]);
        }
        insert_rows(
            self.store,
            "INSERT INTO contacts (id, org_id, workspace_id, livemode, first_name, last_name, phone_number, \
             email, company, job_title, custom_fields, created_at, updated_at)",
            13,
            rows,
        )
        .await?;
        insert_rows(
            self.store,
            "INSERT INTO conversations (id, org_id, workspace_id, livemode, phone_number, phone_number_id, \
             participant, contact_id, last_activity_at, created_at)",
            10,
            convs,
        )
        .await?;

        // Calls, oldest first, so ids follow their times.
        let start = at - chrono::TimeDelta::days(90);
        let span_ms = (at - start).num_milliseconds().max(1);
        let mut times: Vec<i64> = (0..calls).map(|_| rand::random_range(0..span_ms)).collect();
        times.sort_unstable();
        let mut recent_completed = Vec::new();
        const BATCH: usize = 20_000;
        let mut written = 0;
        for batch in times.chunks(BATCH) {
            let mut rows = Vec::with_capacity(batch.len());
            for &offset in batch {
                let created = start + chrono::TimeDelta::milliseconds(offset);
                let who = rand::random_range(0..contacts);
                let (contact, conv, phone) = &people[who];
                let roll = rand::random_range(0..100u32);
                let (status, duration) = match roll {
                    0..70 => ("completed", rand::random_range(20..600i64)),
                    70..80 => ("no_answer", 0),
                    80..88 => ("busy", 0),
                    88..93 => ("failed", 0),
                    _ => ("canceled", 0),
                };
                let inbound = rand::random_range(0..5u32) == 0;
                let (from, to) = if inbound {
                    (phone.as_str(), ours.as_str())
                } else {
                    (ours.as_str(), phone.as_str())
                };
                let answered =
                    (status == "completed").then(|| created + chrono::TimeDelta::seconds(8));
                let ended = created + chrono::TimeDelta::seconds(8 + duration);
                let cost = if s.livemode() { call_cost(duration) } else { 0 };
                let id = new_id_at("call", created.timestamp_millis());
                if status == "completed" {
                    recent_completed.push((id.clone(), duration, created));
                    if recent_completed.len() > 2_000 {
                        recent_completed.drain(..1_000);
                    }
                }
                rows.push(vec![
                    text(&id),
                    text(&s.org_id),
                    text(&s.workspace_id),
                    Value::Bool(Some(s.livemode())),
                    text(if inbound { "inbound" } else { "outbound" }),
                    text(status),
                    text(status),
                    text(from),
                    text(to),
                    text(contact),
                    text(conv),
                    text(&number_id),
                    text(&agent.id),
                    opt_text(None),
                    time(Some(created)),
                    time(answered),
                    time(Some(ended)),
                    Value::Int(Some(duration)),
                    Value::Int(Some(cost)),
                    Value::Json(Some(serde_json::json!({}))),
                    text(if status == "completed" {
                        "answered"
                    } else {
                        status
                    }),
                    Value::Int(Some(duration)),
                    time(None),
                    time(Some(created)),
                    time(Some(ended)),
                ]);
            }
            insert_rows(
                self.store,
                "INSERT INTO calls (id, org_id, workspace_id, livemode, direction, status, end_reason, from_number, \
                 to_number, contact_id, conversation_id, phone_number_id, agent_id, campaign_id, started_at, \
                 answered_at, ended_at, duration_seconds, cost, metadata, sim_outcome, sim_duration, next_step_at, \
                 created_at, updated_at)",
                25,
                rows,
            )
            .await?;
            written += batch.len();
            progress(written, calls);
        }

        // Transcripts and recordings for the latest thousand answered calls.
        let latest: Vec<_> = recent_completed.iter().rev().take(1_000).collect();
        let mut transcripts = Vec::with_capacity(latest.len());
        let mut recordings = Vec::with_capacity(latest.len());
        for (id, duration, created) in &latest {
            let segments =
                serde_json::to_value(simulated_transcript(agent.greeting.as_deref(), *duration))
                    .map_err(dialtone_domain::Error::internal)?;
            transcripts.push(vec![
                text(id),
                text(&s.org_id),
                text(&s.workspace_id),
                Value::Bool(Some(s.livemode())),
                Value::Json(Some(segments)),
                time(Some(*created)),
            ]);
            recordings.push(vec![
                text(&new_id("rec")),
                text(&s.org_id),
                text(&s.workspace_id),
                Value::Bool(Some(s.livemode())),
                text(id),
                Value::Int(Some(*duration)),
                time(Some(*created)),
            ]);
        }
        insert_rows(self.store, "INSERT INTO transcripts (call_id, org_id, workspace_id, livemode, segments, created_at)", 6, transcripts).await?;
        insert_rows(self.store, "INSERT INTO recordings (id, org_id, workspace_id, livemode, call_id, duration_seconds, created_at)", 7, recordings).await?;

        // A note on every tenth contact.
        let notes: Vec<Vec<Value>> = people
            .iter()
            .step_by(10)
            .map(|(contact, _, _)| {
                vec![
                    text(&new_id("note")),
                    text(&s.org_id),
                    text(&s.workspace_id),
                    Value::Bool(Some(s.livemode())),
                    text(contact),
                    text("Prefers a call in the morning."),
                    text("demo"),
                    time(Some(at)),
                ]
            })
            .collect();
        let note_count = notes.len();
        insert_rows(self.store, "INSERT INTO notes (id, org_id, workspace_id, livemode, contact_id, content, created_by, created_at)", 8, notes).await?;
        crate::rollup::rebuild(self.store, s).await?;
        // Fresh statistics, so the planners pick the indexes for the new volume.
        self.store.db.execute(query("ANALYZE")).await?;
        Ok(DemoSummary {
            contacts,
            conversations: contacts,
            calls,
            transcripts: latest.len(),
            notes: note_count,
            agent_id: agent.id,
            phone_number: ours,
        })
    }
}
