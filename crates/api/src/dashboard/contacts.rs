//! Contacts of the current workspace and mode: the list with search and paging, a
//! contact's page with its timeline (calls, messages and notes merged newest first,
//! paged by an "older" link), create, edit, delete (confirmed on a page of its own)
//! and notes. Every change goes through the store calls and domain checks
//! `/v1/contacts` uses, and is audited.

use std::collections::HashMap;

use super::Query;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::contacts::{Contact, ContactInput, ContactPatch};
use dialtone_domain::notes::NoteInput;
use dialtone_domain::page::PageRequest;
use dialtone_domain::timeline::{Position, merge};
use dialtone_domain::users::Action;
use dialtone_domain::{Error, Result};
use dialtone_store::ContactFilter;
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
    // A bad search or cursor: said on the page, as a 400 (as the API answers it).
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        status
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
    position: Position,
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
    /// The link to the next, older page of the timeline.
    older: Option<String>,
    /// Showing an older page: a link back to the newest.
    paged: bool,
    timeline_error: Option<String>,
    can_manage: bool,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TimelineQuery {
    cursor: Option<String>,
}

/// One page of a contact's timeline: its calls, the messages and notes of its
/// conversations and its own notes, merged newest first by
/// [`dialtone_domain::timeline::merge`] from what the store reads of each after the
/// cursor; and the link to the older page when there is one.
async fn timeline(
    state: &AppState,
    session: &Session,
    id: &str,
    cursor: Option<&str>,
) -> Result<(Vec<Entry>, Option<String>)> {
    let page = PageRequest::new(Some(PAGE), cursor)?;
    let after = page.before_id.as_deref().map(Position::parse).transpose()?;
    let scope = session.scope();
    let sources = state
        .store
        .scoped(&scope)
        .contact_timeline(id, after.as_ref(), PAGE)
        .await?;
    let users: HashMap<String, String> = state
        .store
        .list_users(&session.org.id)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    let author = |by: &str| users.get(by).cloned().unwrap_or_else(|| by.to_owned());
    let calls = sources
        .calls
        .into_iter()
        .map(|c| Entry {
            position: Position::new(c.created_at, &c.id),
            when: when(Some(c.created_at)),
            kind: "call",
            title: format!(
                "{} call, {}",
                c.direction.as_str(),
                c.status.as_str().replace('_', " ")
            ),
            text: format!("{} → {}", c.from, c.to),
            link: Some(format!("/dashboard/calls/{}", c.id)),
        })
        .collect();
    let messages = sources
        .messages
        .into_iter()
        .map(|m| Entry {
            position: Position::new(m.created_at, &m.id),
            when: when(Some(m.created_at)),
            kind: "message",
            title: format!("{} message, {}", m.direction.as_str(), m.status),
            link: Some(format!("/dashboard/conversations/{}", m.conversation_id)),
            text: m.body,
        })
        .collect();
    let notes = sources
        .notes
        .into_iter()
        .map(|n| Entry {
            position: Position::new(n.created_at, &n.id),
            when: when(Some(n.created_at)),
            kind: "note",
            title: match &n.conversation_id {
                Some(_) => format!("Note on a conversation by {}", author(&n.created_by)),
                None => format!("Note by {}", author(&n.created_by)),
            },
            link: n
                .conversation_id
                .map(|conv| format!("/dashboard/conversations/{conv}")),
            text: n.content,
        })
        .collect();
    let (entries, next) = merge(
        vec![calls, messages, notes],
        after.as_ref(),
        PAGE as usize,
        |e: &Entry| e.position.clone(),
    );
    let older = next.and_then(|p| {
        older_link(
            &format!("/dashboard/contacts/{id}"),
            &[],
            true,
            Some(&p.key()),
        )
    });
    Ok((entries, older.map(|l| format!("{l}#timeline"))))
}

async fn contact_page(
    state: &AppState,
    session: &Session,
    id: &str,
    cursor: Option<&str>,
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
    let (timeline, older, timeline_error, status) =
        match timeline(state, session, &contact.id, cursor).await {
            Ok((entries, older)) => (entries, older, None, status),
            // A cursor that is not one the page gave: said on the page, as a 400.
            Err(e @ Error::Validation { .. }) => (
                Vec::new(),
                None,
                Some(super::pages::explain(&e)),
                StatusCode::BAD_REQUEST,
            ),
            Err(e) => return Err(e.into()),
        };
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
            older,
            paged: cursor.is_some_and(|c| !c.is_empty()),
            timeline_error,
            can_manage: session.can(Action::ManageContacts),
        },
    ))
}

pub(crate) async fn contact(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> DashResult<Response> {
    contact_page(
        &state,
        &session,
        &id,
        q.cursor.as_deref(),
        StatusCode::OK,
        None,
        None,
    )
    .await
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
            contact_page(
                &state,
                &session,
                &id,
                None,
                status,
                Some((form, message)),
                None,
            )
            .await
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
                None,
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
