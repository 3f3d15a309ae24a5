//! Conversations of the current workspace and mode: the list by last activity, a
//! conversation's messages as a thread, sending a message (test or live; a wallet
//! that cannot pay or a missing carrier is explained on the page) and notes. Sending
//! is `POST /v1/messages`'s own operation ([`crate::messages::send_checked`]).

use super::Query;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::conversations::Conversation;
use dialtone_domain::messages::SendMessage;
use dialtone_domain::notes::NoteInput;
use dialtone_domain::page::{PageRequest, encode_cursor};
use dialtone_domain::tenancy::Mode;
use dialtone_domain::users::Action;
use dialtone_domain::{Error, Result};
use serde::Deserialize;

use super::pages::{PAGE, done, form_error, render_with};
use super::session::{Nav, Session, audit};
use super::{DashResult, Form, see_other, when};
use crate::shared::checked_id;
use crate::state::AppState;

fn conversation_id(id: &str) -> Result<&str> {
    checked_id("conv", "conversation", id)
}

struct ConversationView {
    id: String,
    participant: String,
    number: String,
    last_activity: String,
    contact_id: String,
}

fn view(c: &Conversation) -> ConversationView {
    ConversationView {
        id: c.id.clone(),
        participant: c.participant.clone(),
        number: c.phone_number.clone(),
        last_activity: when(Some(c.last_activity_at)),
        contact_id: c.contact_id.clone().unwrap_or_default(),
    }
}

/// What the send form held (kept when it comes back refused).
#[derive(Default)]
struct SendForm {
    to: String,
    body: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "conversations.html")]
struct ConversationsPage {
    nav: Nav,
    workspace: String,
    test_mode: bool,
    conversations: Vec<ConversationView>,
    error: Option<String>,
    next: Option<String>,
    can_send: bool,
    form: SendForm,
    form_error: Option<String>,
}

async fn list_page(
    state: &AppState,
    session: &Session,
    cursor: Option<&str>,
    status: StatusCode,
    form: SendForm,
    form_error: Option<String>,
) -> DashResult<Response> {
    let (conversations, error, next) = match PageRequest::new(Some(PAGE), cursor) {
        Ok(page) => {
            let scope = session.scope();
            match state
                .store
                .scoped(&scope)
                .list_conversations(&page, None)
                .await
            {
                Ok(mut rows) => {
                    let more = rows.len() > PAGE as usize;
                    rows.truncate(PAGE as usize);
                    let next = rows.last().filter(|_| more).map(|c| {
                        format!(
                            "/dashboard/conversations?cursor={}",
                            encode_cursor(&c.activity_key())
                        )
                    });
                    (rows.iter().map(view).collect(), None, next)
                }
                // A cursor that decodes but is not an activity key.
                Err(e @ Error::Validation { .. }) => (Vec::new(), Some(e.to_string()), None),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => (Vec::new(), Some(e.to_string()), None),
    };
    // A cursor that is not one the page gave: said on the page, as a 400.
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    Ok(render_with(
        status,
        &ConversationsPage {
            nav: session.nav("conversations", "/dashboard/conversations"),
            workspace: session.workspace_name().to_owned(),
            test_mode: session.mode == Mode::Test,
            conversations,
            error,
            next,
            can_send: session.can(Action::SendMessages),
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
        q.cursor.as_deref(),
        StatusCode::OK,
        SendForm::default(),
        None,
    )
    .await
}

/// Sends as the API does; the message's conversation on success.
async fn send(
    state: &AppState,
    session: &Session,
    to: &str,
    body: &str,
    from: Option<&str>,
) -> Result<String> {
    let input = SendMessage {
        to: to.trim().to_owned(),
        body: body.to_owned(),
        from: from.map(str::to_owned),
    };
    let scope = session.scope();
    let message = done(crate::messages::send_checked(state, &scope, input, None, None).await?)?;
    audit(
        state,
        &session.org.id,
        &session.user.id,
        "message.sent",
        &message.id,
        &format!("Sent a message to {}", message.to),
        &session.ip,
    )
    .await;
    Ok(message.conversation_id)
}

/// A new message from the list page (it starts or continues the conversation with
/// that number).
pub(crate) async fn send_new(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::SendMessages)?;
    let form = SendForm {
        to: f.get("to").unwrap_or("").to_owned(),
        body: f.get("body").unwrap_or("").to_owned(),
    };
    match send(&state, &session, &form.to, &form.body, None).await {
        Ok(conv) => Ok(see_other(&format!("/dashboard/conversations/{conv}"))),
        Err(e) => {
            let (status, message) = form_error(e)?;
            list_page(&state, &session, None, status, form, Some(message)).await
        }
    }
}

struct MessageView {
    id: String,
    outbound: bool,
    body: String,
    status: String,
    at: String,
    error: String,
}

struct NoteView {
    content: String,
    by: String,
    at: String,
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage {
    nav: Nav,
    conversation: ConversationView,
    messages: Vec<MessageView>,
    notes: Vec<NoteView>,
    can_send: bool,
    test_mode: bool,
    body: String,
    send_error: Option<String>,
    note: String,
    note_error: Option<String>,
}

/// The newest messages of a thread shown (oldest of them first, as a thread reads).
const THREAD: u32 = 100;

async fn conversation_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    send: Option<(String, String)>,
    note: Option<(String, String)>,
) -> DashResult<Response> {
    let scope = session.scope();
    let store = state.store.scoped(&scope);
    let conv = store.get_conversation(conversation_id(id)?).await?;
    let page = PageRequest::new(Some(THREAD), None)?;
    let mut messages = store.list_messages(Some(&conv.id), None, &page).await?;
    messages.truncate(THREAD as usize);
    messages.reverse();
    let users: std::collections::HashMap<String, String> = state
        .store
        .list_users(&session.org.id)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    let notes = store
        .list_conversation_notes(&conv.id, &PageRequest::new(Some(PAGE), None)?)
        .await?
        .into_iter()
        .take(PAGE as usize)
        .map(|n| NoteView {
            by: users
                .get(&n.created_by)
                .cloned()
                .unwrap_or_else(|| n.created_by.clone()),
            content: n.content,
            at: when(Some(n.created_at)),
        })
        .collect();
    let (body, send_error) = send.map_or((String::new(), None), |(b, e)| (b, Some(e)));
    let (note, note_error) = note.map_or((String::new(), None), |(n, e)| (n, Some(e)));
    Ok(render_with(
        status,
        &ConversationPage {
            nav: session.nav(
                "conversations",
                &format!("/dashboard/conversations/{}", conv.id),
            ),
            conversation: view(&conv),
            messages: messages
                .into_iter()
                .map(|m| MessageView {
                    id: m.id,
                    outbound: m.direction == dialtone_domain::calls::Direction::Outbound,
                    body: m.body,
                    at: when(Some(m.created_at)),
                    error: m.error_message.or(m.error_code).unwrap_or_default(),
                    status: m.status,
                })
                .collect(),
            notes,
            can_send: session.can(Action::SendMessages),
            test_mode: session.mode == Mode::Test,
            body,
            send_error,
            note,
            note_error,
        },
    ))
}

pub(crate) async fn conversation(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> DashResult<Response> {
    conversation_page(&state, &session, &id, StatusCode::OK, None, None).await
}

pub(crate) async fn reply(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let f = Form::parse(&body);
    session.check_csrf(&f)?;
    session.authorize(Action::SendMessages)?;
    let scope = session.scope();
    let conv = state
        .store
        .scoped(&scope)
        .get_conversation(conversation_id(&id)?)
        .await?;
    let text = f.get("body").unwrap_or("").to_owned();
    match send(
        &state,
        &session,
        &conv.participant,
        &text,
        Some(&conv.phone_number),
    )
    .await
    {
        Ok(c) => Ok(see_other(&format!(
            "/dashboard/conversations/{c}#thread-end"
        ))),
        Err(e) => {
            let (status, message) = form_error(e)?;
            conversation_page(&state, &session, &id, status, Some((text, message)), None).await
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
    session.authorize(Action::SendMessages)?;
    let content = f.get("content").unwrap_or("").to_owned();
    let input = NoteInput {
        content: content.clone(),
    };
    let scope = session.scope();
    let made = match input.validate() {
        Ok(()) => state
            .store
            .scoped(&scope)
            .create_conversation_note(
                conversation_id(&id)?,
                &input.content,
                &session.user.id,
                None,
            )
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
                &format!("Added a note to conversation {id}"),
                &session.ip,
            )
            .await;
            Ok(see_other(&format!("/dashboard/conversations/{id}#notes")))
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            conversation_page(
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
