//! Contacts and their notes, always inside one [`Scoped`] tenant.

use dialtone_domain::calls::Call;
use dialtone_domain::contacts::{Contact, ContactInput};
use dialtone_domain::events::EventType;
use dialtone_domain::id::new_id;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::messages::Message;
use dialtone_domain::notes::Note;
use dialtone_domain::page::PageRequest;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::timeline::Position;
use dialtone_domain::{Error, Result};
use serde_json::{Map, Value};

use crate::Scoped;
use crate::billing::{idempotency_claim, idempotency_finish};
use crate::calls::record_event;
use crate::db::{Tx, from_row, query, scope_query};

/// Filters of `GET /v1/contacts`.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Case-insensitive substring of name, email, phone number or company.
    pub search: Option<String>,
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
}

struct ContactRow {
    id: String,
    workspace_id: String,
    livemode: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    phone_number: Option<String>,
    email: Option<String>,
    company: Option<String>,
    job_title: Option<String>,
    external_id: Option<String>,
    custom_fields: Map<String, Value>,
    created_at: Timestamp,
    updated_at: Timestamp,
}
from_row!(ContactRow {
    id,
    workspace_id,
    livemode,
    first_name,
    last_name,
    phone_number,
    email,
    company,
    job_title,
    external_id,
    custom_fields,
    created_at,
    updated_at,
});

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Contact {
        Contact {
            id: r.id,
            object: "contact",
            workspace_id: r.workspace_id,
            livemode: r.livemode,
            first_name: r.first_name,
            last_name: r.last_name,
            phone_number: r.phone_number,
            email: r.email,
            company: r.company,
            job_title: r.job_title,
            external_id: r.external_id,
            custom_fields: r.custom_fields,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One page's worth of each source of a contact's timeline: each holds its first
/// `limit + 1` items after the cursor, newest first, for
/// [`dialtone_domain::timeline::merge`].
#[derive(Debug, Default)]
pub struct ContactTimeline {
    pub calls: Vec<Call>,
    /// Messages of the contact's conversations.
    pub messages: Vec<Message>,
    /// Notes on the contact and on its conversations.
    pub notes: Vec<Note>,
}

pub(crate) struct NoteRow {
    id: String,
    contact_id: Option<String>,
    conversation_id: Option<String>,
    content: String,
    created_by: String,
    livemode: bool,
    created_at: Timestamp,
}
from_row!(NoteRow {
    id,
    contact_id,
    conversation_id,
    content,
    created_by,
    livemode,
    created_at
});

impl From<NoteRow> for Note {
    fn from(r: NoteRow) -> Note {
        Note {
            id: r.id,
            object: "note",
            contact_id: r.contact_id,
            conversation_id: r.conversation_id,
            content: r.content,
            created_by: r.created_by,
            livemode: r.livemode,
            created_at: r.created_at,
        }
    }
}

macro_rules! contact_columns {
    () => {
        "SELECT id, workspace_id, livemode, first_name, last_name, phone_number, email, company, \
         job_title, external_id, custom_fields, created_at, updated_at FROM contacts "
    };
}

fn external_id_conflict(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::Conflict {
            message: "a contact with this external_id already exists".to_owned(),
            details: None,
        },
        other => other,
    }
}

/// `%term%` for LIKE, with the wildcards of `term` escaped.
fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Scoped<'_> {
    pub async fn list_contacts(
        &self,
        filter: &ContactFilter,
        page: &PageRequest,
    ) -> Result<Vec<Contact>> {
        let s = self.scope;
        let q = scope_query(s, concat!(
                    contact_columns!(),
                    "WHERE ",
                    in_scope!(),
                    " AND ($4 IS NULL OR id < $4) \
                     AND ($5 IS NULL OR lower(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '') \
                         || ' ' || COALESCE(email, '') || ' ' || COALESCE(phone_number, '') || ' ' \
                         || COALESCE(company, '')) LIKE $5 ESCAPE '\\') \
                     AND ($6 IS NULL OR phone_number = $6) \
                     AND ($7 IS NULL OR email = $7) \
                     AND ($8 IS NULL OR external_id = $8) \
                     ORDER BY id DESC LIMIT $9"
                ))
                .bind(&page.before_id)
                .bind(filter.search.as_deref().map(like_pattern))
                .bind(&filter.phone_number)
                .bind(&filter.email)
                .bind(&filter.external_id)
                .bind(page.fetch_limit());
        // A search scans the workspace's contacts: a heavy read, off the request's thread.
        let rows: Vec<ContactRow> = if filter.search.is_some() {
            self.store.fetch_all_heavy(q).await?
        } else {
            self.store.db.fetch_all(q).await?
        };
        Ok(rows.into_iter().map(Contact::from).collect())
    }

    pub async fn get_contact(&self, id: &str) -> Result<Contact> {
        let s = self.scope;
        let row: Option<ContactRow> = self
            .store
            .db
            .fetch_optional(
                scope_query(
                    s,
                    concat!(contact_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        row.map(Contact::from).ok_or(Error::NotFound {
            resource: "contact",
        })
    }

    /// Inserts a contact from an input already checked by [`ContactInput::normalize`].
    pub async fn create_contact(&self, input: ContactInput) -> Result<Contact> {
        crate::billing::done(self.create_contact_once(input, None).await?)
    }

    /// Creates a contact once per `Idempotency-Key`: a retry gets the stored answer
    /// (201 and the contact, as first answered).
    pub async fn create_contact_once(
        &self,
        input: ContactInput,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Contact>> {
        let s = self.scope;
        let at = now();
        let contact = Contact {
            id: new_id("ct"),
            object: "contact",
            workspace_id: s.workspace_id.clone(),
            livemode: s.livemode(),
            first_name: input.first_name,
            last_name: input.last_name,
            phone_number: input.phone_number,
            email: input.email,
            company: input.company,
            job_title: input.job_title,
            external_id: input.external_id,
            custom_fields: input.custom_fields.unwrap_or_default(),
            created_at: at,
            updated_at: at,
        };
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        tx.execute(
                query(
                    "INSERT INTO contacts (id, org_id, workspace_id, livemode, first_name, last_name, \
                     phone_number, email, company, job_title, external_id, custom_fields, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&contact.id)
                .bind(&s.org_id)
                .bind(&s.workspace_id)
                .bind(s.livemode())
                .bind(&contact.first_name)
                .bind(&contact.last_name)
                .bind(&contact.phone_number)
                .bind(&contact.email)
                .bind(&contact.company)
                .bind(&contact.job_title)
                .bind(&contact.external_id)
                .bind(&contact.custom_fields)
                .bind(contact.created_at)
                .bind(contact.updated_at),
            )
            .await
            .map_err(external_id_conflict)?;
        record_event(&mut tx, s, EventType::ContactCreated, to_json(&contact)?).await?;
        idempotency_finish(
            &mut tx,
            s,
            idem,
            201,
            serde_json::to_string(&contact).map_err(Error::internal)?,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done(contact))
    }

    /// Replaces the editable fields of a contact with `input` (a checked, merged patch).
    pub async fn update_contact(&self, id: &str, input: ContactInput) -> Result<Contact> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        let done = tx
            .execute(
                scope_query(s, concat!(
                    "UPDATE contacts SET first_name = $5, last_name = $6, phone_number = $7, email = $8, \
                     company = $9, job_title = $10, external_id = $11, custom_fields = $12, updated_at = $13 \
                     WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(id)
                .bind(&input.first_name)
                .bind(&input.last_name)
                .bind(&input.phone_number)
                .bind(&input.email)
                .bind(&input.company)
                .bind(&input.job_title)
                .bind(&input.external_id)
                .bind(input.custom_fields.unwrap_or_default())
                .bind(now()),
            )
            .await
            .map_err(external_id_conflict)?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "contact",
            });
        }
        let contact = contact_in_tx(&mut tx, s, id).await?;
        record_event(&mut tx, s, EventType::ContactUpdated, to_json(&contact)?).await?;
        tx.commit().await?;
        Ok(contact)
    }

    /// Deletes a contact and its notes.
    pub async fn delete_contact(&self, id: &str) -> Result<()> {
        let s = self.scope;
        let mut tx = self.store.db.begin().await?;
        let contact = contact_in_tx(&mut tx, s, id).await?;
        let done = tx
            .execute(
                scope_query(
                    s,
                    concat!("DELETE FROM contacts WHERE ", in_scope!(), " AND id = $4"),
                )
                .bind(id),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "contact",
            });
        }
        record_event(&mut tx, s, EventType::ContactDeleted, to_json(&contact)?).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes of a contact of this scope, newest first.
    pub async fn list_contact_notes(
        &self,
        contact_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<Note>> {
        self.get_contact(contact_id).await?;
        let s = self.scope;
        let rows: Vec<NoteRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, contact_id, conversation_id, content, created_by, livemode, created_at FROM notes WHERE ",
                    in_scope!(),
                    " AND contact_id = $4 AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(contact_id)
                .bind(&page.before_id)
                .bind(page.fetch_limit()),
            )
            .await?;
        Ok(rows.into_iter().map(Note::from).collect())
    }

    /// The sources of a contact's timeline after `cursor` (see [`ContactTimeline`]);
    /// not found when the contact is not in this scope.
    pub async fn contact_timeline(
        &self,
        contact_id: &str,
        cursor: Option<&Position>,
        limit: u32,
    ) -> Result<ContactTimeline> {
        self.get_contact(contact_id).await?;
        let fetch = i64::from(limit) + 1;
        Ok(ContactTimeline {
            calls: self.contact_calls_after(contact_id, cursor, fetch).await?,
            messages: self
                .contact_messages_after(contact_id, cursor, fetch)
                .await?,
            notes: self.contact_notes_after(contact_id, cursor, fetch).await?,
        })
    }

    /// Notes on a contact and on its conversations: the first `limit` after
    /// `cursor`, by creation time then id, both descending.
    async fn contact_notes_after(
        &self,
        contact_id: &str,
        cursor: Option<&Position>,
        limit: i64,
    ) -> Result<Vec<Note>> {
        let s = self.scope;
        let rows: Vec<NoteRow> = self
            .store
            .db
            .fetch_all(
                scope_query(s, concat!(
                    "SELECT id, contact_id, conversation_id, content, created_by, livemode, created_at FROM notes WHERE ",
                    in_scope!(),
                    " AND (contact_id = $4 OR conversation_id IN (SELECT id FROM conversations WHERE ",
                    in_scope!(),
                    " AND contact_id = $4)) \
                     AND ($5 IS NULL OR (created_at <= $5 AND (created_at < $5 OR id < $6))) \
                     ORDER BY created_at DESC, id DESC LIMIT $7"
                ))
                .bind(contact_id)
                .bind(cursor.map(|c| c.at))
                .bind(cursor.map(|c| c.id.clone()))
                .bind(limit),
            )
            .await?;
        Ok(rows.into_iter().map(Note::from).collect())
    }

    pub async fn create_contact_note(
        &self,
        contact_id: &str,
        content: &str,
        created_by: &str,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Note>> {
        let s = self.scope;
        let note = Note {
            id: new_id("note"),
            object: "note",
            contact_id: Some(contact_id.to_owned()),
            conversation_id: None,
            content: content.to_owned(),
            created_by: created_by.to_owned(),
            livemode: s.livemode(),
            created_at: now(),
        };
        // INSERT … SELECT: the note is only written if the contact exists in this scope.
        let mut tx = self.store.db.begin().await?;
        if let Some(stored) = idempotency_claim(&mut tx, s, idem).await? {
            tx.commit().await?;
            return Ok(Outcome::Replay(stored));
        }
        let done = tx
            .execute(
                scope_query(s, concat!(
                    "INSERT INTO notes (id, org_id, workspace_id, livemode, contact_id, content, \
                     created_by, created_at) \
                     SELECT $5, org_id, workspace_id, livemode, id, $6, $7, $8 FROM contacts WHERE ",
                    in_scope!(),
                    " AND id = $4"
                ))
                .bind(contact_id)
                .bind(&note.id)
                .bind(&note.content)
                .bind(&note.created_by)
                .bind(note.created_at),
            )
            .await?;
        if done == 0 {
            return Err(Error::NotFound {
                resource: "contact",
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

async fn contact_in_tx(
    tx: &mut Tx,
    s: &dialtone_domain::tenancy::Scope,
    id: &str,
) -> Result<Contact> {
    let row: Option<ContactRow> = tx
        .fetch_optional(
            scope_query(
                s,
                concat!(contact_columns!(), "WHERE ", in_scope!(), " AND id = $4"),
            )
            .bind(id),
        )
        .await?;
    row.map(Contact::from).ok_or(Error::NotFound {
        resource: "contact",
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(Error::internal)
}
