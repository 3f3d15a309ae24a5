//! Calls, their conversations, transcripts, recordings and events; and the
//! simulator's steps.
//!
//! A call's next simulated step is stored on its row (`next_step_at`), so the
//! simulator survives restarts and may run on several nodes: each step is a
//! compare-and-set on the status (`UPDATE … WHERE status = old`), and the step's
//! events, transcript, recording and charge are written in the same transaction.

use chrono::TimeDelta;
use dialtone_domain::billing::{CALL_PER_MINUTE, CURRENCY, Charge};
use dialtone_domain::calls::{
    Call, CallProgress, CallStatus, Direction, Recording, SimulatedOutcome, Transcript,
    billable_seconds, call_cost, simulated_transcript, walk,
};
use dialtone_domain::conversations::Conversation;
use dialtone_domain::events::EventType;
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::timeline::Position;
use dialtone_domain::{Error, Result};
use serde_json::{Map, Value};

use crate::billing::{debit, idempotency_claim, idempotency_finish};
use crate::db::{
    FromRow, Row, Scalar, Tx, Value as Bound, from_row, query, query_built, scope_query,
};
use crate::rollup;
use crate::{Scoped, Store};

/// The carrier name of the built-in simulator, as stored.
pub const SIMULATOR: &str = "simulator";

/// What `POST /v1/calls` asks for, resolved by the caller (numbers, outcome).
#[derive(Debug, Clone)]
pub struct NewCall {
    /// The call's id, decided by the caller (`new_id("call")`) so a carrier can be
    /// told it before the row exists.
    pub id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub phone_number_id: Option<String>,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    /// The campaign recipient this call is for (with `campaign_id`): claimed in the
    /// same transaction, so a recipient is called once.
    pub recipient_position: Option<i64>,
    pub metadata: Map<String, Value>,
    /// The carrier that carries it (`simulator`, `twilio`).
    pub carrier: &'static str,
    /// The simulator's script; `None` for a real carrier, whose callbacks drive it.
    pub outcome: Option<SimulatedOutcome>,
    /// Live calls: the most seconds that may be charged (what the wallet covered).
    /// Lowered to what the placing key's limits leave, when they cap minutes or spend.
    pub reserved_seconds: Option<i64>,
    /// The API key that places it: its limits are checked (and its consumption
    /// counted) in the transaction that stores the call. `None`: no key's limits.
    pub api_key_id: Option<String>,
    /// The carrier's id, when the carrier told it first (an inbound call): a second
    /// delivery of the same call cannot make a second row.
    pub carrier_sid: Option<String>,
}

/// Filters of `GET /v1/calls`.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub direction: Option<Direction>,
    pub contact_id: Option<String>,
    pub agent_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub campaign_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub started_after: Option<Timestamp>,
    pub started_before: Option<Timestamp>,
    pub duration_min: Option<i64>,
    pub duration_max: Option<i64>,
}

struct CallRow {
    id: String,
    org_id: String,
    workspace_id: String,
    livemode: bool,
    direction: String,
    status: String,
    end_reason: Option<String>,
    from_number: String,
    to_number: String,
    contact_id: Option<String>,
    conversation_id: String,
    phone_number_id: Option<String>,
    agent_id: Option<String>,
    campaign_id: Option<String>,
    started_at: Option<Timestamp>,
    answered_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    duration_seconds: i64,
    cost: i64,
    metadata: Map<String, Value>,
    sim_outcome: String,
    sim_duration: i64,
    carrier: String,
    carrier_sid: Option<String>,
    reserved_seconds: Option<i64>,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}
from_row!(CallRow {
    id,
    org_id,
    workspace_id,
    livemode,
    direction,
    status,
    end_reason,
    from_number,
    to_number,
    contact_id,
    conversation_id,
    phone_number_id,
    agent_id,
    campaign_id,
    started_at,
    answered_at,
    ended_at,
    duration_seconds,
    cost,
    metadata,
    sim_outcome,
    sim_duration,
    carrier,
    carrier_sid,
    reserved_seconds,
    error_code,
    error_message,
    created_at,
    updated_at,
});

macro_rules! call_columns {
    () => {
        "SELECT id, org_id, workspace_id, livemode, direction, status, end_reason, from_number, \
         to_number, contact_id, conversation_id, phone_number_id, agent_id, campaign_id, \
         started_at, answered_at, ended_at, duration_seconds, cost, metadata, sim_outcome, \
         sim_duration, carrier, carrier_sid, reserved_seconds, error_code, error_message, \
         created_at, updated_at FROM calls "
    };
}

impl CallRow {
    fn status(&self) -> Result<CallStatus> {
        CallStatus::parse(&self.status).map_err(|_| corrupt(&self.id, "status"))
    }

    fn outcome(&self) -> SimulatedOutcome {
        SimulatedOutcome::from_parts(&self.sim_outcome, self.sim_duration)
    }

    fn rollup_key(&self) -> rollup::Key<'_> {
        rollup::Key {
            created_at: self.created_at,
            direction: &self.direction,
            agent_id: self.agent_id.as_deref(),
            phone_number_id: self.phone_number_id.as_deref(),
        }
    }

    fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id.clone(),
            workspace_id: self.workspace_id.clone(),
            mode: Mode::from_livemode(self.livemode),
        }
    }

    fn to_call(&self) -> Result<Call> {
        Ok(Call {
            id: self.id.clone(),
            object: "call",
            workspace_id: self.workspace_id.clone(),
            livemode: self.livemode,
            direction: Direction::parse(&self.direction)
                .map_err(|_| corrupt(&self.id, "direction"))?,
            status: self.status()?,
            end_reason: self.end_reason.clone(),
            from: self.from_number.clone(),
            to: self.to_number.clone(),
            contact_id: self.contact_id.clone(),
            conversation_id: self.conversation_id.clone(),
            phone_number_id: self.phone_number_id.clone(),
            agent_id: self.agent_id.clone(),
            campaign_id: self.campaign_id.clone(),
            started_at: self.started_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            duration_seconds: self.duration_seconds,
            cost: self.cost,
            currency: CURRENCY,
            metadata: self.metadata.clone(),
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn corrupt(id: &str, what: &str) -> Error {
    Error::internal(std::io::Error::other(format!(
        "calls row {id} has an invalid {what}"
    )))
}

struct ConversationRow {
    id: String,
    workspace_id: String,
    livemode: bool,
    phone_number: String,
    phone_number_id: Option<String>,
    participant: String,
    contact_id: Option<String>,
    last_activity_at: Timestamp,
    created_at: Timestamp,
}
from_row!(ConversationRow {
    id,
    workspace_id,
    livemode,
    phone_number,
    phone_number_id,
    participant,
    contact_id,
    last_activity_at,
    created_at,
});

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Conversation {
            id: r.id,
            object: "conversation",
            workspace_id: r.workspace_id,
            livemode: r.livemode,
            phone_number: r.phone_number,
            phone_number_id: r.phone_number_id,
            participant: r.participant,
            contact_id: r.contact_id,
            last_activity_at: r.last_activity_at,
            created_at: r.created_at,
        }
    }
}

struct TranscriptRow {
    call_id: String,
    livemode: bool,
    segments: Value,
    created_at: Timestamp,
}
from_row!(TranscriptRow {
    call_id,
    livemode,
    segments,
    created_at
});

pub(crate) struct RecordingRow {
    pub(crate) id: String,
    pub(crate) call_id: String,
    pub(crate) livemode: bool,
    pub(crate) duration_seconds: i64,
    pub(crate) created_at: Timestamp,
}
from_row!(RecordingRow {
    id,
    call_id,
    livemode,
    duration_seconds,
    created_at
});

impl From<RecordingRow> for Recording {
    fn from(r: RecordingRow) -> Self {
        Recording {
            id: r.id,
            object: "recording",
            call_id: r.call_id,
            livemode: r.livemode,
            duration_seconds: r.duration_seconds,
            content_type: "audio/wav",
            media_url: None,
            media_url_expires_at: None,
            created_at: r.created_at,
        }
    }
}

/// Writes an event in `tx`, in the envelope every event shares.
/// Writes an event in `tx`, in the envelope every event shares, and queues its
/// webhook deliveries in the same transaction.
pub(crate) async fn record_event(
    tx: &mut Tx,
    scope: &Scope,
    event_type: EventType,
    object: Value,
) -> Result<()> {
    let id = new_id("evt");
    tx.execute(
        query(
            "INSERT INTO events (id, org_id, workspace_id, livemode, event_type, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(event_type.as_str())
        .bind(serde_json::json!({ "object": object }))
        .bind(now()),
    )
    .await?;
    crate::webhooks::fan_out(tx, scope, &id, event_type.as_str()).await
}

async fn call_in_tx(tx: &mut Tx, id: &str) -> Result<CallRow> {
    tx.fetch_optional(query(concat!(call_columns!(), "WHERE id = $1")).bind(id))
        .await?
        .ok_or(Error::NotFound { resource: "call" })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(Error::internal)
}

/// A step that changes a call's status: compare-and-set on the old status, then the
/// event. Returns `None` when another worker (or a hang-up) got there first.
async fn transition(
    tx: &mut Tx,
    row: &CallRow,
    to: CallStatus,
    set: Step,
) -> Result<Option<CallRow>> {
    let at = now();
    let done = tx
        .execute(
            query(
                "UPDATE calls SET status = $1, started_at = COALESCE($2, started_at), \
                 answered_at = COALESCE($3, answered_at), ended_at = COALESCE($4, ended_at), \
                 end_reason = COALESCE($5, end_reason), duration_seconds = $6, cost = $7, \
                 next_step_at = $8, updated_at = $9, error_code = COALESCE($12, error_code), \
                 error_message = COALESCE($13, error_message) WHERE id = $10 AND status = $11",
            )
            .bind(to.as_str())
            .bind(set.started_at)
            .bind(set.answered_at)
            .bind(set.ended_at)
            .bind(set.end_reason)
            .bind(set.duration_seconds.unwrap_or(row.duration_seconds))
            .bind(set.cost.unwrap_or(row.cost))
            .bind(set.next_step_at)
            .bind(at)
            .bind(&row.id)
            .bind(&row.status)
            .bind(set.error_code)
            .bind(set.error_message),
        )
        .await?;
    if done == 0 {
        return Ok(None);
    }
    let updated = call_in_tx(tx, &row.id).await?;
    rollup::add(
        tx,
        &row.scope(),
        row.rollup_key(),
        rollup_delta(row, &updated),
    )
    .await?;
    record_event(
        tx,
        &row.scope(),
        to.event_type(),
        to_json(&updated.to_call()?)?,
    )
    .await?;
    Ok(Some(updated))
}

/// What a call's change adds to the usage rollup: an answer, a miss, minutes, cost.
fn rollup_delta(before: &CallRow, after: &CallRow) -> rollup::Delta {
    let missed = |r: &CallRow| {
        matches!(
            r.status.as_str(),
            "busy" | "no_answer" | "failed" | "canceled"
        )
    };
    let minutes = |r: &CallRow| (r.duration_seconds + 59) / 60;
    rollup::Delta {
        answered: i64::from(before.answered_at.is_none() && after.answered_at.is_some()),
        missed: i64::from(!missed(before) && missed(after)),
        minutes: minutes(after) - minutes(before),
        cost: after.cost - before.cost,
        ..rollup::Delta::default()
    }
}

#[derive(Debug, Default)]
struct Step {
    started_at: Option<Timestamp>,
    answered_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    end_reason: Option<String>,
    duration_seconds: Option<i64>,
    cost: Option<i64>,
    next_step_at: Option<Timestamp>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Ends an answered call: duration, charge (live), transcript, recording, events.
async fn complete(
    tx: &mut Tx,
    row: &CallRow,
    duration_seconds: i64,
    end_reason: &str,
) -> Result<Option<CallRow>> {
    let scope = row.scope();
    let at = now();
    let mut cost = if row.livemode {
        call_cost(billable_seconds(duration_seconds, row.reserved_seconds))
    } else {
        0
    };
    if cost > 0 {
        let description = format!("Call {} ({duration_seconds} s)", row.id);
        match debit(tx, &scope, cost, Charge::Call, Some(&row.id), &description).await {
            Ok(()) => {}
            // The minutes were used: take what is left (the simulator caps a call at
            // what the wallet could pay when it was placed, so this is rare).
            Err(Error::InsufficientBalance { balance, .. }) => {
                cost = balance.max(0);
                debit(tx, &scope, cost, Charge::Call, Some(&row.id), &description).await?;
            }
            Err(e) => return Err(e),
        }
    }
    let step = Step {
        ended_at: Some(at),
        end_reason: Some(end_reason.to_owned()),
        duration_seconds: Some(duration_seconds),
        cost: Some(cost),
        ..Step::default()
    };
    let Some(done) = transition(tx, row, CallStatus::Completed, step).await? else {
        return Ok(None);
    };
    // A real carrier's transcript and recording arrive by their own callbacks.
    if row.carrier != SIMULATOR {
        return Ok(Some(done));
    }
    let greeting: Option<Scalar<Option<String>>> = match &row.agent_id {
        Some(agent) => {
            tx.fetch_optional(query("SELECT greeting FROM agents WHERE id = $1").bind(agent))
                .await?
        }
        None => None,
    };
    let transcript = Transcript {
        object: "transcript",
        call_id: row.id.clone(),
        livemode: row.livemode,
        segments: simulated_transcript(greeting.and_then(|g| g.0).as_deref(), duration_seconds),
        created_at: at,
    };
    tx.execute(
        query(
            "INSERT INTO transcripts (call_id, org_id, workspace_id, livemode, segments, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(to_json(&transcript.segments)?)
        .bind(at),
    )
    .await?;
    record_event(
        tx,
        &scope,
        EventType::CallTranscriptReady,
        to_json(&transcript)?,
    )
    .await?;
    let recording = Recording::from(RecordingRow {
        id: new_id("rec"),
        call_id: row.id.clone(),
        livemode: row.livemode,
        duration_seconds,
        created_at: at,
    });
    tx.execute(
        query(
            "INSERT INTO recordings (id, org_id, workspace_id, livemode, call_id, duration_seconds, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&recording.id)
        .bind(&scope.org_id)
        .bind(&scope.workspace_id)
        .bind(scope.livemode())
        .bind(&row.id)
        .bind(duration_seconds)
        .bind(at),
    )
    .await?;
    record_event(
        tx,
        &scope,
        EventType::CallRecordingReady,
        to_json(&recording)?,
    )
    .await?;
    Ok(Some(done))
}

/// Finds or starts the conversation between `ours` and `theirs`, marks its activity,
/// and links the contact with that number (if any). Returns (conversation, contact).
pub(crate) async fn thread(
    tx: &mut Tx,
    s: &Scope,
    ours: &str,
    theirs: &str,
    phone_number_id: Option<&str>,
    at: Timestamp,
) -> Result<(String, Option<String>)> {
    let contact = tx
        .fetch_optional::<Scalar<String>>(
            scope_query(
                s,
                concat!(
                    "SELECT id FROM contacts WHERE ",
                    in_scope!(),
                    " AND phone_number = $4 ORDER BY id LIMIT 1"
                ),
            )
            .bind(theirs),
        )
        .await?
        .map(|c| c.0);
    let conversation = tx
        .fetch_optional::<Scalar<String>>(
            query(
                "INSERT INTO conversations (id, org_id, workspace_id, livemode, phone_number, \
                 phone_number_id, participant, contact_id, last_activity_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (workspace_id, livemode, phone_number, participant) DO UPDATE \
                 SET last_activity_at = excluded.last_activity_at, \
                     contact_id = COALESCE(conversations.contact_id, excluded.contact_id) \
                 RETURNING id",
            )
            .bind(new_id("conv"))
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(ours)
            .bind(phone_number_id)
            .bind(theirs)
            .bind(&contact)
            .bind(at),
        )
        .await?
        .ok_or_else(|| {
            Error::internal(std::io::Error::other(
                "conversation upsert returned nothing",
            ))
        })?
        .0;
    Ok((conversation, contact))
}

/// A call whose next simulated step is due.
#[derive(Debug, Clone)]
pub struct DueCall {
    pub id: String,
}
from_row!(DueCall { id });

impl Store {
    /// Calls whose next simulated step is due, oldest first (all tenants: the
    /// simulator is the platform's own worker).
    pub async fn due_calls(&self, limit: i64) -> Result<Vec<DueCall>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id FROM calls WHERE next_step_at IS NOT NULL AND next_step_at <= $1 \
                     ORDER BY next_step_at LIMIT $2",
                )
                .bind(now())
                .bind(limit),
            )
            .await
    }

    /// Takes one simulated step of a call: the simulator's next report, through the
    /// same state machine as a real carrier's. `step` is the wall time between steps.
    pub async fn advance_call(&self, id: &str, step: TimeDelta) -> Result<()> {
        let row = self
            .db
            .fetch_optional::<CallRow>(query(concat!(call_columns!(), "WHERE id = $1")).bind(id))
            .await?
            .ok_or(Error::NotFound { resource: "call" })?;
        let at = now();
        let outcome = row.outcome();
        let (progress, next) = match row.status()? {
            CallStatus::Queued => (CallProgress::Ringing, Some(at + step)),
            CallStatus::Ringing => match outcome.after_ringing() {
                CallStatus::InProgress => (CallProgress::Answered, Some(at + step * 2)),
                CallStatus::Busy => (CallProgress::Busy, None),
                CallStatus::NoAnswer => (CallProgress::NoAnswer, None),
                _ => (
                    CallProgress::Failed {
                        code: None,
                        message: None,
                    },
                    None,
                ),
            },
            CallStatus::InProgress => (
                CallProgress::Completed {
                    duration_seconds: outcome.duration_seconds(),
                },
                None,
            ),
            _ => return Ok(()),
        };
        self.apply_call_progress(
            id,
            &progress,
            Apply {
                next_step_at: next,
                end_reason: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Applies a carrier's report to a call in one transaction: each status [`walk`]
    /// gives, with its event (and at the end, the charge, transcript and recording).
    /// `None` when the report changes nothing (a replay, or later than what it says).
    ///
    /// The row is locked first, so two reports of one call (two nodes, two callbacks)
    /// apply one after the other and neither is lost.
    pub async fn apply_call_progress(
        &self,
        id: &str,
        progress: &CallProgress,
        how: Apply<'_>,
    ) -> Result<Option<Call>> {
        let mut tx = self.db.begin().await?;
        let locked = tx
            .execute(query("UPDATE calls SET updated_at = updated_at WHERE id = $1").bind(id))
            .await?;
        if locked == 0 {
            return Err(Error::NotFound { resource: "call" });
        }
        let mut row = call_in_tx(&mut tx, id).await?;
        let path = walk(row.status()?, progress);
        let Some(&last) = path.last() else {
            return Ok(None);
        };
        let at = now();
        for status in path {
            let next_step_at = if status == last {
                how.next_step_at
            } else {
                None
            };
            let ended = |reason: &str| Step {
                ended_at: Some(at),
                end_reason: Some(how.end_reason.unwrap_or(reason).to_owned()),
                ..Step::default()
            };
            let moved = match (status, progress) {
                (CallStatus::Completed, _) => {
                    let talked = match progress {
                        CallProgress::Completed { duration_seconds } => *duration_seconds,
                        _ => 0,
                    };
                    complete(&mut tx, &row, talked, how.end_reason.unwrap_or("completed")).await?
                }
                (CallStatus::Ringing, _) => {
                    let s = Step {
                        started_at: Some(at),
                        next_step_at,
                        ..Step::default()
                    };
                    transition(&mut tx, &row, status, s).await?
                }
                (CallStatus::InProgress, _) => {
                    let s = Step {
                        started_at: Some(at),
                        answered_at: Some(at),
                        next_step_at,
                        ..Step::default()
                    };
                    transition(&mut tx, &row, status, s).await?
                }
                (CallStatus::Failed, CallProgress::Failed { code, message }) => {
                    let s = Step {
                        error_code: code.clone(),
                        error_message: message.clone(),
                        ..ended("failed")
                    };
                    transition(&mut tx, &row, status, s).await?
                }
                (status, _) => transition(&mut tx, &row, status, ended(status.as_str())).await?,
            };
            match moved {
                Some(r) => row = r,
                None => return Ok(None),
            }
        }
        tx.commit().await?;
        Ok(Some(row.to_call()?))
    }

    /// The call a carrier knows by `sid`.
    pub async fn call_by_carrier_sid(&self, carrier: &str, sid: &str) -> Result<String> {
        self.db
            .fetch_optional::<Scalar<String>>(
                query("SELECT id FROM calls WHERE carrier = $1 AND carrier_sid = $2")
                    .bind(carrier)
                    .bind(sid),
            )
            .await?
            .map(|s| s.0)
            .ok_or(Error::NotFound { resource: "call" })
    }

    /// The carrier's id for a call dialtone placed, recorded once: `Ok` when the call
    /// has this sid now (set now or before), `NotFound` when it has another (or is
    /// not a call of this carrier).
    pub async fn bind_carrier_sid(&self, id: &str, carrier: &str, sid: &str) -> Result<()> {
        self.db
            .execute(
                query(
                    "UPDATE calls SET carrier_sid = $1 WHERE id = $2 AND carrier = $3 \
                     AND carrier_sid IS NULL",
                )
                .bind(sid)
                .bind(id)
                .bind(carrier),
            )
            .await?;
        match self.call_by_carrier_sid(carrier, sid).await {
            Ok(found) if found == id => Ok(()),
            _ => Err(Error::NotFound { resource: "call" }),
        }
    }

    /// A call as the platform sees it (no tenant check: for carrier callbacks, whose
    /// signature proved who sent them).
    pub async fn call_for_carrier(&self, id: &str) -> Result<CarrierCall> {
        let row = self
            .db
            .fetch_optional::<CallRow>(query(concat!(call_columns!(), "WHERE id = $1")).bind(id))
            .await?
            .ok_or(Error::NotFound { resource: "call" })?;
        Ok(CarrierCall {
            scope: row.scope(),
            carrier: row.carrier.clone(),
            carrier_sid: row.carrier_sid.clone(),
            reserved_seconds: row.reserved_seconds,
            call: row.to_call()?,
        })
    }
}

/// How a report is applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apply<'a> {
    /// When the simulator takes its next step (after the last status of the walk).
    pub next_step_at: Option<Timestamp>,
    /// Why the call ended, when it ends, if not the status's own name (`hangup_api`).
    pub end_reason: Option<&'a str>,
}

/// A call with what its carrier needs to know.
#[derive(Debug, Clone)]
pub struct CarrierCall {
    pub scope: Scope,
    pub carrier: String,
    pub carrier_sid: Option<String>,
    /// The most seconds the call may be charged (and last), when capped.
    pub reserved_seconds: Option<i64>,
    pub call: Call,
}

impl Scoped<'_> {
    /// Places a call: its conversation (found or started), the contact it reaches (by
    /// number), the row with the simulator's plan, and `call.queued`, in one
    /// transaction. In live mode the wallet must cover a first minute.
    pub async fn place_call(
        &self,
        new: NewCall,
        first_step: TimeDelta,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Call>> {
        let s = self.scope;
        let at = now();
        let mut new = new;
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        if let Some(key) = &new.api_key_id {
            match crate::limits::check_call(&mut tx, key, &new.to, at).await {
                Ok(None) => {}
                Ok(Some(cap)) => {
                    let reserved = new.reserved_seconds.map_or(cap, |r| r.min(cap));
                    new.reserved_seconds = Some(reserved);
                    new.outcome = new.outcome.map(|o| o.capped(reserved));
                }
                Err(e @ Error::KeyLimitExceeded { .. }) => {
                    drop(tx);
                    self.store.note_limit_reached(key, &e).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(agent) = &new.agent_id {
            let found = tx
                .fetch_optional::<Scalar<i64>>(
                    scope_query(
                        s,
                        concat!(
                            "SELECT CAST(1 AS BIGINT) FROM agents WHERE ",
                            in_scope!(),
                            " AND id = $4"
                        ),
                    )
                    .bind(agent),
                )
                .await?;
            if found.is_none() {
                return Err(Error::validation(
                    "agent_id",
                    format!("no such agent: {agent}"),
                ));
            }
        }
        let (ours, theirs) = match new.direction {
            Direction::Outbound => (&new.from, &new.to),
            Direction::Inbound => (&new.to, &new.from),
        };
        let (conversation, contact) =
            thread(&mut tx, s, ours, theirs, new.phone_number_id.as_deref(), at).await?;
        let id = new.id.clone();
        tx.execute(
            query(
                "INSERT INTO calls (id, org_id, workspace_id, livemode, direction, status, from_number, \
                 to_number, contact_id, conversation_id, phone_number_id, agent_id, campaign_id, \
                 duration_seconds, cost, metadata, sim_outcome, sim_duration, next_step_at, created_at, \
                 updated_at, carrier, reserved_seconds, carrier_sid, api_key_id) VALUES ($1, $2, $3, $4, $5, \
                 'queued', $6, $7, $8, $9, $10, $11, $12, 0, 0, $13, $14, $15, $16, $17, $17, $18, $19, $20, $21)",
            )
            .bind(&id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(new.direction.as_str())
            .bind(&new.from)
            .bind(&new.to)
            .bind(&contact)
            .bind(&conversation)
            .bind(&new.phone_number_id)
            .bind(&new.agent_id)
            .bind(&new.campaign_id)
            .bind(new.metadata)
            .bind(new.outcome.map_or("", SimulatedOutcome::as_str))
            .bind(new.outcome.map_or(0, SimulatedOutcome::duration_seconds))
            .bind(new.outcome.map(|_| at + first_step))
            .bind(at)
            .bind(new.carrier)
            .bind(new.reserved_seconds)
            .bind(&new.carrier_sid)
            .bind(&new.api_key_id),
        )
        .await?;
        if let (Some(campaign), Some(position)) = (&new.campaign_id, new.recipient_position) {
            let claimed = tx
                .execute(
                    query(
                        "UPDATE campaign_recipients SET call_id = $1 \
                         WHERE campaign_id = $2 AND position = $3 AND call_id IS NULL",
                    )
                    .bind(&id)
                    .bind(campaign)
                    .bind(position),
                )
                .await?;
            if claimed == 0 {
                return Err(Error::Conflict {
                    message: "This campaign recipient was already called.".to_owned(),
                    details: None,
                });
            }
        }
        let row = call_in_tx(&mut tx, &id).await?;
        let counted = rollup::Delta {
            calls: 1,
            ..rollup::Delta::default()
        };
        rollup::add(&mut tx, s, row.rollup_key(), counted).await?;
        let call = row.to_call()?;
        record_event(&mut tx, s, EventType::CallQueued, to_json(&call)?).await?;
        let body = serde_json::to_string(&call).map_err(Error::internal)?;
        idempotency_finish(&mut tx, s, idem, 201, body).await?;
        tx.commit().await?;
        Ok(Outcome::Done(call))
    }

    /// The wallet's balance now, and how many seconds of calling it can pay for.
    pub async fn affordable_seconds(&self) -> Result<i64> {
        let balance = self.wallet().await?.balance;
        Ok((balance / CALL_PER_MINUTE) * 60)
    }

    /// Calls newest first. Only the filters given go into the statement, so each
    /// combination gets a plan that uses its index (`calls_status`, `calls_contact`, …)
    /// instead of a scan behind `($n IS NULL OR …)`.
    pub async fn list_calls(&self, f: &CallFilter, page: &PageRequest) -> Result<Vec<Call>> {
        let s = self.scope;
        let mut sql = String::from(concat!(call_columns!(), "WHERE ", in_scope!()));
        let text = |v: Option<&str>| v.map(|v| Bound::Text(Some(v.to_owned())));
        let time = |v: Option<Timestamp>| v.map(|t| Bound::Time(Some(t)));
        let int = |v: Option<i64>| v.map(|i| Bound::Int(Some(i)));
        let q: Vec<(&str, Bound)> = [
            ("id < ", text(page.before_id.as_deref())),
            ("status = ", text(f.status.map(CallStatus::as_str))),
            ("direction = ", text(f.direction.map(Direction::as_str))),
            ("contact_id = ", text(f.contact_id.as_deref())),
            ("agent_id = ", text(f.agent_id.as_deref())),
            ("phone_number_id = ", text(f.phone_number_id.as_deref())),
            ("campaign_id = ", text(f.campaign_id.as_deref())),
            ("from_number = ", text(f.from.as_deref())),
            ("to_number = ", text(f.to.as_deref())),
            ("created_at >= ", time(f.created_after)),
            ("created_at < ", time(f.created_before)),
            ("started_at >= ", time(f.started_after)),
            ("started_at < ", time(f.started_before)),
            ("duration_seconds >= ", int(f.duration_min)),
            ("duration_seconds <= ", int(f.duration_max)),
        ]
        .into_iter()
        .filter_map(|(clause, v)| v.map(|v| (clause, v)))
        .collect();
        let mut built = Vec::with_capacity(q.len());
        for (n, (clause, v)) in q.into_iter().enumerate() {
            sql.push_str(&format!(" AND {clause}${}", n + 4));
            built.push(v);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", built.len() + 4));
        let mut query = query_built(sql)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode());
        for v in built {
            query = query.bind(v);
        }
        let query = query.bind(page.fetch_limit());
        // No index serves a duration or a start-time range: such a page may read far
        // (a rare value over a million calls), so it is a heavy read.
        let unindexed = f.duration_min.is_some()
            || f.duration_max.is_some()
            || f.started_after.is_some()
            || f.started_before.is_some();
        let rows: Vec<CallRow> = if unindexed {
            self.store.fetch_all_heavy(query).await?
        } else {
            self.store.db.fetch_all(query).await?
        };
        rows.iter().map(CallRow::to_call).collect()
    }

    /// A contact's calls for its timeline: the first `limit` after `cursor`, by
    /// creation time then id, both descending (see [`dialtone_domain::timeline`]).
    pub async fn contact_calls_after(
        &self,
        contact_id: &str,
        cursor: Option<&Position>,
        limit: i64,
    ) -> Result<Vec<Call>> {
        let s = self.scope;
        let rows: Vec<CallRow> = self
            .store
            .db
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        call_columns!(),
                        "WHERE ",
                        in_scope!(),
                        " AND contact_id = $4 \
                     AND ($5 IS NULL OR (created_at <= $5 AND (created_at < $5 OR id < $6))) \
                     ORDER BY created_at DESC, id DESC LIMIT $7"
                    ),
                )
                .bind(contact_id)
                .bind(cursor.map(|c| c.at))
                .bind(cursor.map(|c| c.id.clone()))
                .bind(limit),
            )
            .await?;
        rows.iter().map(CallRow::to_call).collect()
    }

    pub async fn get_call(&self, id: &str) -> Result<Call> {
        let s = self.scope;
        let row: Option<CallRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(call_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        row.ok_or(Error::NotFound { resource: "call" })?.to_call()
    }

    /// Hangs up a call: `canceled` before an answer, `completed` after one, charged by
    /// the talk time the carrier `reported` (else the seconds since the answer). A call
    /// that already ended is a 409.
    pub async fn hangup_call(&self, id: &str, reported: Option<CallProgress>) -> Result<Call> {
        let current = self.get_call(id).await?;
        let progress = match (reported, current.status) {
            (Some(p), _) => p,
            (None, CallStatus::Queued | CallStatus::Ringing) => CallProgress::Canceled,
            (None, CallStatus::InProgress) => CallProgress::Completed {
                duration_seconds: current
                    .answered_at
                    .map_or(1, |a| (now() - a).num_seconds().max(1)),
            },
            (None, _) => CallProgress::Canceled,
        };
        let how = Apply {
            next_step_at: None,
            end_reason: Some("hangup_api"),
        };
        self.store
            .apply_call_progress(&current.id, &progress, how)
            .await?
            .ok_or_else(|| Error::Conflict {
                message: format!("Call {id} has already ended."),
                details: None,
            })
    }

    pub async fn get_transcript(&self, call_id: &str) -> Result<Transcript> {
        self.get_call(call_id).await?;
        let s = self.scope;
        let row: TranscriptRow = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(
                        "SELECT call_id, livemode, segments, created_at FROM transcripts WHERE ",
                        in_scope!(),
                        " AND call_id = $4"
                    ),
                )
                .bind(call_id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "transcript",
            })?;
        Ok(Transcript {
            object: "transcript",
            call_id: row.call_id,
            livemode: row.livemode,
            segments: serde_json::from_value(row.segments).map_err(Error::internal)?,
            created_at: row.created_at,
        })
    }

    pub async fn list_recordings(
        &self,
        call_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<Recording>> {
        let s = self.scope;
        let rows: Vec<RecordingRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, call_id, livemode, duration_seconds, created_at FROM recordings WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR call_id = $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(call_id)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        Ok(rows.into_iter().map(Recording::from).collect())
    }

    pub async fn get_recording(&self, id: &str) -> Result<Recording> {
        let s = self.scope;
        let row: Option<RecordingRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(s, concat!(
                    "SELECT id, call_id, livemode, duration_seconds, created_at FROM recordings WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(id),
            )
            .await?;
        row.map(Recording::from).ok_or(Error::NotFound {
            resource: "recording",
        })
    }

    /// Conversations by last activity, newest first. The page cursor is an activity
    /// key (`{millis}_{id}`, see [`Conversation::activity_key`]).
    pub async fn list_conversations(
        &self,
        page: &PageRequest,
        contact_id: Option<&str>,
    ) -> Result<Vec<Conversation>> {
        let s = self.scope;
        let (after_at, after_id) = match &page.before_id {
            Some(key) => {
                let (at, id) = dialtone_domain::conversations::parse_activity_key(key)?;
                (Some(at), Some(id))
            }
            None => (None, None),
        };
        let rows: Vec<ConversationRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, workspace_id, livemode, phone_number, phone_number_id, participant, \
                     contact_id, last_activity_at, created_at FROM conversations WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR last_activity_at < $4 OR (last_activity_at = $4 AND id < $5)) \
                     AND ($7 IS NULL OR contact_id = $7) \
                     ORDER BY last_activity_at DESC, id DESC LIMIT $6"
                ))
                .bind(after_at)
                .bind(after_id)
                .bind(page.fetch_limit())
                .bind(contact_id),
            )
            .await?;
        Ok(rows.into_iter().map(Conversation::from).collect())
    }

    pub async fn get_conversation(&self, id: &str) -> Result<Conversation> {
        let s = self.scope;
        let row: Option<ConversationRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(s, concat!(
                    "SELECT id, workspace_id, livemode, phone_number, phone_number_id, participant, \
                     contact_id, last_activity_at, created_at FROM conversations WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(id),
            )
            .await?;
        row.map(Conversation::from).ok_or(Error::NotFound {
            resource: "conversation",
        })
    }

    /// Events of this scope, newest first.
    pub async fn list_events(
        &self,
        event_type: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<dialtone_domain::events::Event>> {
        struct EventRow(dialtone_domain::events::Event);
        impl FromRow for EventRow {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                let data: Value = r.get("data")?;
                Ok(EventRow(dialtone_domain::events::Event {
                    id: r.get("id")?,
                    object: "event",
                    event_type: r.get("event_type")?,
                    created_at: r.get("created_at")?,
                    livemode: r.get("livemode")?,
                    data: dialtone_domain::events::EventData {
                        object: data.get("object").cloned().unwrap_or(Value::Null),
                    },
                }))
            }
        }
        let s = self.scope;
        let rows: Vec<EventRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, event_type, data, livemode, created_at FROM events WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR event_type = $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(event_type)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        Ok(rows.into_iter().map(|e| e.0).collect())
    }
}
