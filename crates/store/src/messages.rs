//! Messages, threaded into conversations; notes on conversations; the owner of a
//! number (for simulated inbound traffic).

use chrono::TimeDelta;
use dialtone_domain::billing::{CURRENCY, Charge};
use dialtone_domain::calls::Direction;
use dialtone_domain::events::EventType;
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::messages::{Message, MessageStatus, PER_SEGMENT, segments};
use dialtone_domain::notes::Note;
use dialtone_domain::page::PageRequest;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::timeline::Position;
use dialtone_domain::{Error, Result};

use crate::billing::{debit, idempotency_claim, idempotency_finish, refund};
use crate::calls::SIMULATOR;
use crate::calls::{record_event, thread};
use crate::contacts::NoteRow;
use crate::db::{FromRow, Row, Tx, from_row, query, scope_query};
use crate::rollup;
use crate::{Scoped, Store};

/// A message to store, resolved by the caller.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `msg_…`, chosen by the caller (a real carrier's callbacks name it).
    pub id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub body: String,
    pub phone_number_id: Option<String>,
    /// The simulated carrier will fail its delivery.
    pub fail: bool,
    /// Who carries it (`simulator`, `twilio`). An outbound message of a real carrier
    /// starts `queued`, and the carrier's reports move it on.
    pub carrier: &'static str,
    /// The carrier's id of an inbound message: a repeated delivery of it is the same
    /// message.
    pub carrier_sid: Option<String>,
    /// The API key that sends it: its limits are checked (and its consumption
    /// counted) in the transaction that stores the message. `None`: no key's limits.
    pub api_key_id: Option<String>,
}

/// A carrier's report of a message's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReport {
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The carrier refused the message outright: its charge is refunded.
    pub refused: bool,
}

struct MessageRow {
    id: String,
    org_id: String,
    workspace_id: String,
    livemode: bool,
    conversation_id: String,
    direction: String,
    status: String,
    from_number: String,
    to_number: String,
    body: String,
    contact_id: Option<String>,
    phone_number_id: Option<String>,
    segments: i64,
    cost: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}
from_row!(MessageRow {
    id,
    org_id,
    workspace_id,
    livemode,
    conversation_id,
    direction,
    status,
    from_number,
    to_number,
    body,
    contact_id,
    phone_number_id,
    segments,
    cost,
    error_code,
    error_message,
    created_at,
    updated_at,
});

macro_rules! message_columns {
    () => {
        "SELECT id, org_id, workspace_id, livemode, conversation_id, direction, status, \
         from_number, to_number, body, contact_id, phone_number_id, segments, cost, \
         error_code, error_message, created_at, updated_at FROM messages "
    };
}

impl MessageRow {
    fn to_message(&self) -> Result<Message> {
        Ok(Message {
            id: self.id.clone(),
            object: "message",
            workspace_id: self.workspace_id.clone(),
            livemode: self.livemode,
            conversation_id: self.conversation_id.clone(),
            direction: Direction::parse(&self.direction).map_err(|_| {
                Error::internal(std::io::Error::other(format!(
                    "messages row {} has an invalid direction",
                    self.id
                )))
            })?,
            status: self.status.clone(),
            from: self.from_number.clone(),
            to: self.to_number.clone(),
            body: self.body.clone(),
            contact_id: self.contact_id.clone(),
            phone_number_id: self.phone_number_id.clone(),
            segments: self.segments,
            cost: self.cost,
            currency: CURRENCY,
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id.clone(),
            workspace_id: self.workspace_id.clone(),
            mode: Mode::from_livemode(self.livemode),
        }
    }
}

/// The usage rollup row a message counts in.
fn rollup_key(m: &Message, created_at: Timestamp) -> rollup::Key<'_> {
    rollup::Key {
        created_at,
        direction: m.direction.as_str(),
        agent_id: None,
        phone_number_id: m.phone_number_id.as_deref(),
    }
}

async fn message_in_tx(tx: &mut Tx, id: &str) -> Result<MessageRow> {
    tx.fetch_optional(query(concat!(message_columns!(), "WHERE id = $1")).bind(id))
        .await?
        .ok_or(Error::NotFound {
            resource: "message",
        })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(Error::internal)
}

/// A message whose simulated delivery is due.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: String,
}
from_row!(DueMessage { id });

impl Store {
    /// The scope and id of the active number `number` in `mode`, whoever owns it.
    pub async fn number_owner(&self, number: &str, mode: Mode) -> Result<(Scope, String)> {
        struct Owner(Scope, String);
        impl FromRow for Owner {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                let livemode: bool = r.get("livemode")?;
                Ok(Owner(
                    Scope {
                        org_id: r.get("org_id")?,
                        workspace_id: r.get("workspace_id")?,
                        mode: Mode::from_livemode(livemode),
                    },
                    r.get("id")?,
                ))
            }
        }
        self.db
            .fetch_optional::<Owner>(
                query(
                    "SELECT id, org_id, workspace_id, livemode FROM phone_numbers \
                     WHERE number = $1 AND livemode = $2 AND status = 'active'",
                )
                .bind(number)
                .bind(mode.is_live()),
            )
            .await?
            .map(|o| (o.0, o.1))
            .ok_or(Error::NotFound {
                resource: "phone_number",
            })
    }

    pub async fn due_messages(&self, limit: i64) -> Result<Vec<DueMessage>> {
        self.db
            .fetch_all(
                query(
                    "SELECT id FROM messages WHERE next_step_at IS NOT NULL AND next_step_at <= $1 \
                     ORDER BY next_step_at LIMIT $2",
                )
                .bind(now())
                .bind(limit),
            )
            .await
    }

    /// Delivers (or fails) a simulated message: the simulator's report, through the
    /// same state machine as a real carrier's.
    pub async fn advance_message(&self, id: &str) -> Result<()> {
        let fail = self
            .db
            .fetch_optional::<crate::db::Scalar<bool>>(
                query("SELECT sim_fail FROM messages WHERE id = $1").bind(id),
            )
            .await?
            .ok_or(Error::NotFound {
                resource: "message",
            })?
            .0;
        let report = MessageReport {
            status: if fail {
                MessageStatus::Failed
            } else {
                MessageStatus::Delivered
            },
            error_code: None,
            error_message: None,
            refused: false,
        };
        self.apply_message_report(id, &report).await?;
        Ok(())
    }

    /// Applies a carrier's report to a message in one transaction: each status the
    /// walk gives, with its event (`message.sent`, `.delivered`, `.failed`). `None`
    /// when the report changes nothing (a replay, or later than what it says). The row
    /// is locked first, so two reports of one message apply one after the other.
    pub async fn apply_message_report(
        &self,
        id: &str,
        report: &MessageReport,
    ) -> Result<Option<Message>> {
        let mut tx = self.db.begin().await?;
        let locked = tx
            .execute(query("UPDATE messages SET updated_at = updated_at WHERE id = $1").bind(id))
            .await?;
        if locked == 0 {
            return Err(Error::NotFound {
                resource: "message",
            });
        }
        let row = message_in_tx(&mut tx, id).await?;
        let current = MessageStatus::parse(&row.status).ok_or_else(|| {
            Error::internal(std::io::Error::other(format!(
                "messages row {id} has an invalid status"
            )))
        })?;
        let path = current.walk(report.status);
        if path.is_empty() {
            return Ok(None);
        }
        let scope = row.scope();
        let refunded = report.refused && report.status == MessageStatus::Failed && row.cost > 0;
        if refunded {
            refund(
                &mut tx,
                &scope,
                row.cost,
                Charge::Message,
                id,
                "Message refused by the carrier",
            )
            .await?;
        }
        let mut message = row.to_message()?;
        if refunded {
            let back = rollup::Delta {
                cost: -row.cost,
                ..rollup::Delta::default()
            };
            rollup::add(&mut tx, &scope, rollup_key(&message, row.created_at), back).await?;
        }
        for status in path {
            let failed = status == MessageStatus::Failed;
            tx.execute(
                query(
                    "UPDATE messages SET status = $1, next_step_at = NULL, updated_at = $2, \
                     error_code = CASE WHEN $3 THEN $4 ELSE error_code END, \
                     error_message = CASE WHEN $3 THEN $5 ELSE error_message END, \
                     cost = CASE WHEN $6 THEN 0 ELSE cost END WHERE id = $7",
                )
                .bind(status.as_str())
                .bind(now())
                .bind(failed)
                .bind(&report.error_code)
                .bind(&report.error_message)
                .bind(refunded && failed)
                .bind(id),
            )
            .await?;
            message = message_in_tx(&mut tx, id).await?.to_message()?;
            let event = match status {
                MessageStatus::Sent => EventType::MessageSent,
                MessageStatus::Delivered => EventType::MessageDelivered,
                MessageStatus::Failed => EventType::MessageFailed,
                MessageStatus::Queued | MessageStatus::Received => continue,
            };
            record_event(&mut tx, &scope, event, to_json(&message)?).await?;
        }
        tx.commit().await?;
        Ok(Some(message))
    }

    /// The message a carrier knows by `sid`.
    pub async fn message_by_carrier_sid(&self, carrier: &str, sid: &str) -> Result<String> {
        self.db
            .fetch_optional::<crate::db::Scalar<String>>(
                query("SELECT id FROM messages WHERE carrier = $1 AND carrier_sid = $2")
                    .bind(carrier)
                    .bind(sid),
            )
            .await?
            .map(|s| s.0)
            .ok_or(Error::NotFound {
                resource: "message",
            })
    }

    /// The carrier's id for a message dialtone sent, recorded once: `Ok` when the
    /// message has this sid now, `NotFound` when it has another.
    pub async fn bind_message_sid(&self, id: &str, carrier: &str, sid: &str) -> Result<()> {
        self.db
            .execute(
                query(
                    "UPDATE messages SET carrier_sid = $1 WHERE id = $2 AND carrier = $3 \
                     AND carrier_sid IS NULL",
                )
                .bind(sid)
                .bind(id)
                .bind(carrier),
            )
            .await?;
        match self.message_by_carrier_sid(carrier, sid).await {
            Ok(found) if found == id => Ok(()),
            _ => Err(Error::NotFound {
                resource: "message",
            }),
        }
    }
}

impl Scoped<'_> {
    /// Stores a message in its conversation with its first event (`message.sent` or
    /// `message.received`); live outbound messages are charged per segment first.
    pub async fn create_message(
        &self,
        new: NewMessage,
        step: TimeDelta,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Message>> {
        let s = self.scope;
        let at = now();
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        if let Some(sid) = &new.carrier_sid
            && let Some(seen) = tx
                .fetch_optional::<crate::db::Scalar<String>>(
                    query("SELECT id FROM messages WHERE carrier = $1 AND carrier_sid = $2")
                        .bind(new.carrier)
                        .bind(sid),
                )
                .await?
        {
            // The carrier delivered this message before: it is already here.
            let message = message_in_tx(&mut tx, &seen.0).await?.to_message()?;
            tx.commit().await?;
            return Ok(Outcome::Done(message));
        }
        let id = new.id.clone();
        let segs = segments(&new.body);
        let outbound = new.direction == Direction::Outbound;
        if let Some(key) = &new.api_key_id {
            match crate::limits::check_message(&mut tx, key, &new.to, segs, at).await {
                Ok(()) => {}
                Err(e @ Error::KeyLimitExceeded { .. }) => {
                    drop(tx);
                    self.store.note_limit_reached(key, &e).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        let cost = if outbound && s.livemode() {
            segs * PER_SEGMENT
        } else {
            0
        };
        debit(
            &mut tx,
            s,
            cost,
            Charge::Message,
            Some(&id),
            &format!("Message, {segs} segment(s)"),
        )
        .await?;
        let (ours, theirs) = if outbound {
            (&new.from, &new.to)
        } else {
            (&new.to, &new.from)
        };
        let (conversation, contact) =
            thread(&mut tx, s, ours, theirs, new.phone_number_id.as_deref(), at).await?;
        let (status, event, next_step) = match (outbound, new.carrier == SIMULATOR) {
            (true, true) => ("sent", Some(EventType::MessageSent), Some(at + step)),
            // A real carrier's reports say when it is sent.
            (true, false) => ("queued", None, None),
            (false, _) => ("received", Some(EventType::MessageReceived), None),
        };
        tx.execute(
            query(
                "INSERT INTO messages (id, org_id, workspace_id, livemode, conversation_id, direction, \
                 status, from_number, to_number, body, contact_id, phone_number_id, segments, cost, \
                 sim_fail, next_step_at, carrier, carrier_sid, created_at, updated_at, api_key_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, $20)",
            )
            .bind(&id)
            .bind(&s.org_id)
            .bind(&s.workspace_id)
            .bind(s.livemode())
            .bind(&conversation)
            .bind(new.direction.as_str())
            .bind(status)
            .bind(&new.from)
            .bind(&new.to)
            .bind(&new.body)
            .bind(&contact)
            .bind(&new.phone_number_id)
            .bind(segs)
            .bind(cost)
            .bind(new.fail)
            .bind(next_step)
            .bind(new.carrier)
            .bind(&new.carrier_sid)
            .bind(at)
            .bind(&new.api_key_id),
        )
        .await?;
        let message = message_in_tx(&mut tx, &id).await?.to_message()?;
        let counted = rollup::Delta {
            messages_in: i64::from(!outbound),
            messages_out: i64::from(outbound),
            cost,
            ..rollup::Delta::default()
        };
        rollup::add(&mut tx, s, rollup_key(&message, at), counted).await?;
        if let Some(event) = event {
            record_event(&mut tx, s, event, to_json(&message)?).await?;
        }
        idempotency_finish(
            &mut tx,
            s,
            idem,
            201,
            serde_json::to_string(&message).map_err(Error::internal)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done(message))
    }

    /// Messages of this scope, newest first, optionally of one conversation.
    pub async fn list_messages(
        &self,
        conversation_id: Option<&str>,
        direction: Option<Direction>,
        page: &PageRequest,
    ) -> Result<Vec<Message>> {
        let s = self.scope;
        let rows: Vec<MessageRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    message_columns!(),
                    "WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR conversation_id = $4) AND ($5 IS NULL OR direction = $5) \
                     AND ($6 IS NULL OR id < $6) ORDER BY id DESC LIMIT $7"
                ))
                .bind(conversation_id)
                .bind(direction.map(Direction::as_str))
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        rows.iter().map(MessageRow::to_message).collect()
    }

    /// The messages of a contact's conversations for its timeline: the first `limit`
    /// after `cursor`, by creation time then id, both descending.
    pub async fn contact_messages_after(
        &self,
        contact_id: &str,
        cursor: Option<&Position>,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let s = self.scope;
        let rows: Vec<MessageRow> = self
            .store
            .db
            .fetch_all(
                scope_query(
                    s,
                    concat!(
                        message_columns!(),
                        "WHERE ",
                        in_scope!(),
                        " AND conversation_id IN (SELECT id FROM conversations WHERE ",
                        in_scope!(),
                        " AND contact_id = $4) \
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
        rows.iter().map(MessageRow::to_message).collect()
    }

    pub async fn get_message(&self, id: &str) -> Result<Message> {
        let s = self.scope;
        let row: Option<MessageRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(message_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        row.ok_or(Error::NotFound {
            resource: "message",
        })?
        .to_message()
    }

    /// Notes of a conversation of this scope, newest first.
    pub async fn list_conversation_notes(
        &self,
        conversation_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<Note>> {
        self.get_conversation(conversation_id).await?;
        let s = self.scope;
        let rows: Vec<NoteRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, contact_id, conversation_id, content, created_by, livemode, created_at FROM notes WHERE ",
                    in_scope!(),
                    " AND conversation_id = $4 AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(conversation_id)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        Ok(rows.into_iter().map(Note::from).collect())
    }

    /// Adds a note to a conversation of this scope, with `note.created`.
    pub async fn create_conversation_note(
        &self,
        conversation_id: &str,
        content: &str,
        created_by: &str,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Note>> {
        let s = self.scope;
        let note = Note {
            id: new_id("note"),
            object: "note",
            contact_id: None,
            conversation_id: Some(conversation_id.to_owned()),
            content: content.to_owned(),
            created_by: created_by.to_owned(),
            livemode: s.livemode(),
            created_at: now(),
        };
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        let done = tx
            .execute(
                scope_query(s, concat!(
                    "INSERT INTO notes (id, org_id, workspace_id, livemode, conversation_id, content, \
                     created_by, created_at) \
                     SELECT $5, org_id, workspace_id, livemode, id, $6, $7, $8 FROM conversations WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(conversation_id)
                .bind(&note.id)
                .bind(&note.content)
                .bind(&note.created_by)
                .bind(note.created_at),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "conversation",
            });
        }
        record_event(&mut tx, s, EventType::NoteCreated, to_json(&note)?).await?;
        idempotency_finish(
            &mut tx,
            s,
            idem,
            201,
            serde_json::to_string(&note).map_err(Error::internal)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done(note))
    }
}
