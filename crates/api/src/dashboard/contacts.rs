//! Contacts of the current workspace and mode: the list with search and paging, a
//! contact's page with its timeline (calls, messages and notes, newest first), create,
//! edit, delete (confirmed on a page of its own) and notes. Every change goes through
//! the store calls and domain checks `/v1/contacts` uses, and is audited.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::contacts::{Contact, ContactInput, ContactPatch};
use dialtone_domain::notes::NoteInput;
use dialtone_domain::page::PageRequest;
use dialtone_domain::users::Action;
use dialtone_domain::{Error, Result};
use dialtone_store::{CallFilter, ContactFilter};
use serde::Deserialize;

use super::pages::{PAGE, confirm, done, form_error, older_link, render_with};
use super::session::{Nav, Session, audit};
use super::{DashResult, Form, see_other, when};
use crate::shared::checked_id;
use crate::state::AppState;

/// The longest search accepted (longer text cannot match a contact's fields anyway).
const SEARCH_MAX: usize = 200;

fn contact_id(id: &str) -> Result<&str> {
    checked_id("ct", "contact", id)
}

pub(crate) struct ContactView {
    id: String,
    name: String,
    phone: String,
    email: String,
    company: String,
    job_title: String,
    created: String,
}

fn display_name(c: &Contact) -> String {
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        name
    } else {
        c.company
            .clone()
            .or_else(|| c.email.clone())
            .or_else(|| c.phone_number.clone())
            .unwrap_or_else(|| c.id.clone())
    }
}

fn view(c: &Contact) -> ContactView {
    ContactView {
        id: c.id.clone(),
        name: display_name(c),
        phone: c.phone_number.clone().unwrap_or_default(),
        email: c.email.clone().unwrap_or_default(),
        company: c.company.clone().unwrap_or_default(),
        job_title: c.job_title.clone().unwrap_or_default(),
        created: when(Some(c.created_at)),
    }
}

/// The fields of the contact form, as typed (kept when it comes back with an error).
#[derive(Default)]
pub(crate) struct ContactForm {
    first_name: String,
    last_name: String,
    phone_number: String,
    email: String,
    company: String,
    job_title: String,
}

impl ContactForm {
    fn from_form(f: &Form) -> Self {
        let v = |k: &str| f.get(k).unwrap_or("").to_owned();
        ContactForm {
            first_name: v("first_name"),
            last_name: v("last_name"),
            phone_number: v("phone_number"),
            email: v("email"),
            company: v("company"),
            job_title: v("job_title"),
        }
    }

    fn of(c: &Contact) -> Self {
        let v = |s: &Option<String>| s.clone().unwrap_or_default();
        ContactForm {
            first_name: v(&c.first_name),
            last_name: v(&c.last_name),
            phone_number: v(&c.phone_number),
            email: v(&c.email),
            company: v(&c.company),
            job_title: v(&c.job_title),
        }
    }

    fn field(s: &str) -> Option<String> {
        Some(s.to_owned()).filter(|s| !s.trim().is_empty())
    }

    /// The API's create input (normalized and checked by the domain).
    fn input(&self) -> ContactInput {
        ContactInput {
            first_name: Self::field(&self.first_name),
            last_name: Self::field(&self.last_name),
            phone_number: Self::field(&self.phone_number),
            email: Self::field(&self.email),
            company: Self::field(&self.company),
            job_title: Self::field(&self.job_title),
            ..ContactInput::default()
        }
    }

    /// The API's patch: the form's six fields (empty clears), nothing else touched.
    fn patch(&self) -> ContactPatch {
        ContactPatch {
            first_name: Some(Self::field(&self.first_name)),
            last_name: Some(Self::field(&self.last_name)),
            phone_number: Some(Self::field(&self.phone_number)),
            email: Some(Self::field(&self.email)),
            company: Some(Self::field(&self.company)),
            job_title: Some(Self::field(&self.job_title)),
            ..ContactPatch::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    search: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    contacts: Vec<ContactView>,
    search: String,
    error: Option<String>,
    next: Option<String>,
    can_manage: bool,
    form: ContactForm,
    form_error: Option<String>,
}

async fn list_page(
    state: &AppState,
    session: &Session,
    q: ListQuery,
    status: StatusCode,
    form: ContactForm,
    form_error: Option<String>,
) -> DashResult<Response> {
    let search = q.search.as_deref().map(str::trim).unwrap_or("").to_owned();
    let parsed = (|| -> Result<PageRequest> {
        if search.chars().count() > SEARCH_MAX {
            return Err(Error::validation(
                "search",
                format!("Search for at most {SEARCH_MAX} characters."),
            ));
        }
        PageRequest::new(Some(PAGE), q.cursor.as_deref())
    })();
    let (contacts, error, next) = match parsed {
        Ok(page) => {
            let filter = ContactFilter {
                search: Some(search.clone()).filter(|s| !s.is_empty()),
                ..ContactFilter::default()
            };
            let scope = session.scope();
            let mut rows = state
                .store
                .scoped(&scope)
                .list_contacts(&filter, &page)
                .await?;
            let more = rows.len() > PAGE as usize;
            rows.truncate(PAGE as usize);
            let next = older_link(
                "/dashboard/contacts",
                &[("search", &search)],
                more,
                rows.last().map(|c| c.id.as_str()),
            );
            (rows.iter().map(view).collect(), None, next)
        }
        Err(e) => (Vec::new(), Some(super::pages::explain(&e)), None),
    };
    Ok(render_with(
        status,
        &ContactsPage {
            nav: session.nav("contacts", "/dashboard/contacts"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == dialtone_domain::tenancy::Mode::Test,
            contacts,
            search,
            error,
            next,
            can_manage: session.can(Action::ManageContacts),
            form,
            form_error,
        },
    ))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    list_page(
        &state,
        &session,
        q,
        StatusCode::OK,
        ContactForm::default(),
        None,
    )
    .await
}

pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageContacts)?;
    let form = ContactForm::from_form(&f);
    let scope = session.scope();
    let made = match form.input().normalize() {
        Ok(input) => state.store.scoped(&scope).create_contact(input).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(c) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "contact.created",
                &c.id,
                &format!("Created contact {}", display_name(&c)),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/contacts/{}", c.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            list_page(
                &state,
                &session,
                ListQuery::default(),
                status,
                form,
                Some(message),
            )
            .await
        }
    }
}

/// One line of a contact's timeline.
struct Entry {
    at: dialtone_domain::time::Timestamp,
    when: String,
    kind: &'static str,
    title: String,
    text: String,
    link: Option<String>,
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage {
    nav: Nav,
    contact: ContactView,
    form: ContactForm,
    form_error: Option<String>,
    note: String,
    note_error: Option<String>,
    timeline: Vec<Entry>,
    can_manage: bool,
}

/// How many of each source the timeline reads (it shows the newest of them all).
const TIMELINE: u32 = 50;

/// A contact's calls, messages and notes (its own and its conversations'), newest
/// first: the store queries `/v1/calls?contact_id=`, `/v1/conversations?contact_id=`,
/// their messages and notes, and `/v1/contacts/{id}/notes` answer from.
async fn timeline(state: &AppState, session: &Session, id: &str) -> Result<Vec<Entry>> {
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let page = PageRequest::new(Some(TIMELINE), None)?;
    let users: HashMap<String, String> = state
        .store
        .list_users(&session.org.id)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    let author = |by: &str| users.get(by).cloned().unwrap_or_else(|| by.to_owned());
    let mut out = Vec::new();
    let filter = CallFilter {
        contact_id: Some(id.to_owned()),
        ..CallFilter::default()
    };
    for c in store.list_calls(&filter, &page).await? {
        out.push(Entry {
            at: c.created_at,
            when: when(Some(c.created_at)),
            kind: "call",
            title: format!(
                "{} call, {}",
                c.direction.as_str(),
                c.status.as_str().replace('_', " ")
            ),
            text: format!("{} → {}", c.from, c.to),
            link: Some(format!("/dashboard/calls/{}", c.id)),
        });
    }
    let conv_page = PageRequest::new(Some(20), None)?;
    for conv in store.list_conversations(&conv_page, Some(id)).await? {
        for m in store.list_messages(Some(&conv.id), None, &page).await? {
            out.push(Entry {
                at: m.created_at,
                when: when(Some(m.created_at)),
                kind: "message",
                title: format!("{} message, {}", m.direction.as_str(), m.status),
                text: m.body,
                link: Some(format!("/dashboard/conversations/{}", conv.id)),
            });
        }
        for n in store.list_conversation_notes(&conv.id, &page).await? {
            out.push(Entry {
                at: n.created_at,
                when: when(Some(n.created_at)),
                kind: "note",
                title: format!("Note on a conversation by {}", author(&n.created_by)),
                text: n.content,
                link: Some(format!("/dashboard/conversations/{}", conv.id)),
            });
        }
    }
    for n in store.list_contact_notes(id, &page).await? {
        out.push(Entry {
            at: n.created_at,
            when: when(Some(n.created_at)),
            kind: "note",
            title: format!("Note by {}", author(&n.created_by)),
            text: n.content,
            link: None,
        });
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out.truncate(TIMELINE as usize);
    Ok(out)
}

async fn contact_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    form: Option<(ContactForm, String)>,
    note: Option<(String, String)>,
) -> DashResult<Response> {
    let scope = session.scope();
    let contact = state
        .store
        .scoped(&scope)
        .get_contact(contact_id(id)?)
        .await?;
    let timeline = timeline(state, session, &contact.id).await?;
    let (form, form_error) = match form {
        Some((f, e)) => (f, Some(e)),
        None => (ContactForm::of(&contact), None),
    };
    let (note, note_error) = match note {
        Some((n, e)) => (n, Some(e)),
        None => (String::new(), None),
    };
    Ok(render_with(
        status,
        &ContactPage {
            nav: session.nav("contacts", &format!("/dashboard/contacts/{}", contact.id)),
            contact: view(&contact),
            form,
            form_error,
            note,
            note_error,
            timeline,
            can_manage: session.can(Action::ManageContacts),
        },
    ))
}

pub(crate) async fn contact(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    contact_page(&state, &session, &id, StatusCode::OK, None, None).await
}

pub(crate) async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageContacts)?;
    let form = ContactForm::from_form(&f);
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let current = store.get_contact(contact_id(&id)?).await?;
    let updated = match form.patch().apply(&current) {
        Ok(next) => store.update_contact(&current.id, next).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(c) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "contact.updated",
                &c.id,
                &format!("Edited contact {}", display_name(&c)),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/contacts/{}", c.id)))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            contact_page(&state, &session, &id, status, Some((form, message)), None).await
        }
    }
}

pub(crate) async fn add_note(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::ManageContacts)?;
    let content = f.get("content").unwrap_or("").to_owned();
    let input = NoteInput {
        content: content.clone(),
    };
    let scope = session.scope();
    let made = match input.validate() {
        Ok(()) => state
            .store
            .scoped(&scope)
            .create_contact_note(contact_id(&id)?, &input.content, &session.user.id, None)
            .await
            .and_then(done),
        Err(e) => Err(e),
    };
    match made {
        Ok(note) => {
            audit(
                &state,
                &session.org.id,
                &session.user.id,
                "note.created",
                &note.id,
                &format!("Added a note to contact {id}"),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/contacts/{id}#timeline")))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            contact_page(
                &state,
                &session,
                &id,
                status,
                None,
                Some((content, message)),
            )
            .await
        }
    }
}

pub(crate) async fn delete_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    session.authorize(Action::ManageContacts)?;
    let scope = session.scope();
    let c = state
        .store
        .scoped(&scope)
        .get_contact(contact_id(&id)?)
        .await?;
    Ok(confirm(
        &session,
        "contacts",
        &format!("/dashboard/contacts/{}/delete", c.id),
        format!("Delete {}?", display_name(&c)),
        "The contact and its notes are deleted for good. Calls and messages stay in their logs."
            .to_owned(),
        "Delete contact",
        &format!("/dashboard/contacts/{}", c.id),
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    session.authorize(Action::ManageContacts)?;
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let c = store.get_contact(contact_id(&id)?).await?;
    store.delete_contact(&c.id).await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "contact.deleted",
        &c.id,
        &format!("Deleted contact {}", display_name(&c)),
        &session.ip,
    )
    .await;
    Ok(see_other("/dashboard/contacts"))
}
