//! `/v1/messages`, `/v1/conversations/{id}/messages` and conversation notes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dialtone_domain::calls::Direction;
use dialtone_domain::messages::{Message, PER_SEGMENT, SendMessage, segments};
use dialtone_domain::notes::{Note, NoteInput};
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::tenancy::Scope;
use dialtone_domain::{Error, Result};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::calls::resolve_from;
use crate::error::{ApiResult, JsonBytes, Query};
use crate::shared::{PageQuery, checked_id, created, idempotency_key, replay};
use crate::state::AppState;

fn conversation_id(id: &str) -> Result<&str> {
    checked_id("conv", "conversation", id)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListMessagesQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub conversation_id: Option<String>,
    /// Only messages in this direction.
    #[param(value_type = Option<dialtone_domain::calls::Direction>)]
    pub direction: Option<String>,
}

/// Send a message
///
/// Test keys simulate delivery (`message.sent`, then `message.delivered`; messages to
/// +15005550003 fail). Live messages are charged per 160-character segment and go to
/// the configured carrier: with Twilio the message starts `queued`, and Twilio's
/// reports move it to `sent`, `delivered` or `failed` (with Twilio's error code; a
/// message Twilio refuses outright is refunded).
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The message, sent", body = Message),
              (status = 402, description = "The wallet cannot pay (INSUFFICIENT_BALANCE)", body = crate::error::ErrorBody),
              (status = 403, description = "The key lacks messages:write (INSUFFICIENT_PERMISSIONS), or one of its limits refuses the message (KEY_LIMIT_EXCEEDED: `details` names the limit, its value and the key's current figure)", body = crate::error::ErrorBody),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody),
              (status = 502, description = "The carrier could not be reached (CARRIER_ERROR)", body = crate::error::ErrorBody),
              (status = 503, description = "Live messaging is not enabled (CARRIER_UNAVAILABLE)", body = crate::error::ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<SendMessage>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/messages", &raw)?;
    let store = state.store.scoped(&t.scope);
    if let Some(key) = &idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(replay(stored.replay_for(key)?));
    }
    created(
        send_checked(
            &state,
            &t.scope,
            input,
            idem.as_ref(),
            Some(&t.principal.key_id),
        )
        .await?,
        idem.as_ref(),
    )
}

/// Sends a message as `POST /v1/messages` does (the dashboard's send form too): the
/// input checked, 402 before anything is sent when a live wallet cannot pay, the
/// sender number resolved, then the mode's carrier. `api_key_id`: the sending key,
/// whose limits apply (`None` from the dashboard: a user, not a key).
pub(crate) async fn send_checked(
    state: &AppState,
    scope: &Scope,
    input: SendMessage,
    idem: Option<&dialtone_domain::idempotency::IdempotencyKey>,
    api_key_id: Option<&str>,
) -> Result<dialtone_domain::idempotency::Outcome<Message>> {
    input.validate()?;
    let store = state.store.scoped(scope);
    let live = scope.livemode();
    if live {
        let needed = segments(&input.body) * PER_SEGMENT;
        let balance = store.wallet().await?.balance;
        if balance < needed {
            return Err(Error::InsufficientBalance { needed, balance });
        }
    }
    let (phone_number_id, from) = resolve_from(&store, live, input.from.as_deref()).await?;
    let req = crate::carrier::MessageRequest {
        from,
        to: input.to,
        body: input.body,
        phone_number_id,
        api_key_id: api_key_id.map(str::to_owned),
    };
    crate::carrier::send_message(state, scope, req, idem).await
}

/// List messages
///
/// Messages of the workspace and mode, newest first; filter by `conversation_id` and
/// `direction`. Cursor-paged.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListMessagesQuery),
    responses((status = 200, description = "Messages, newest first", body = Page<Message>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListMessagesQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let direction = q.direction.as_deref().map(Direction::parse).transpose()?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_messages(q.conversation_id.as_deref(), direction, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |m| &m.id)))
}

/// Retrieve a message
///
/// A message's current state: `queued`, `sent`, `delivered`, `failed` (with the
/// carrier's `error_code`) or `received`.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", params(("id" = String, Path, description = "msg_…")),
    responses((status = 200, description = "The message", body = Message)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = checked_id("msg", "message", &id)?;
    Ok(axum::Json(
        state.store.scoped(&t.scope).get_message(id).await?,
    ))
}

/// List a conversation's messages
///
/// Newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "conv_…"), PageQuery),
    responses((status = 200, description = "Messages, newest first", body = Page<Message>)))]
pub async fn conversation_messages(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let store = state.store.scoped(&t.scope);
    store.get_conversation(conversation_id(&id)?).await?;
    let rows = store.list_messages(Some(&id), None, &page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |m| &m.id)))
}

/// List a conversation's notes
///
/// Newest first, cursor-paged.
#[utoipa::path(get, path = "/v1/conversations/{id}/notes", tag = "conversations",
    params(("id" = String, Path, description = "conv_…"), PageQuery),
    responses((status = 200, description = "Notes, newest first", body = Page<Note>)))]
pub async fn list_notes(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_conversation_notes(conversation_id(&id)?, &page)
        .await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |n| &n.id)))
}

/// Add a note to a conversation
///
/// 1 to 5,000 characters. Send `Idempotency-Key` to retry safely. Emits `note.created`.
#[utoipa::path(post, path = "/v1/conversations/{id}/notes", tag = "conversations",
    params(("id" = String, Path, description = "conv_…"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = NoteInput,
    responses((status = 201, description = "The new note", body = Note)))]
pub async fn create_note(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<NoteInput>,
) -> ApiResult<Response> {
    let path = format!("/v1/conversations/{id}/notes");
    let idem = idempotency_key(&headers, "POST", &path, &raw)?;
    input.validate()?;
    let outcome = state
        .store
        .scoped(&t.scope)
        .create_conversation_note(
            conversation_id(&id)?,
            &input.content,
            &t.principal.key_id,
            idem.as_ref(),
        )
        .await?;
    created(outcome, idem.as_ref())
}
