//! `/v1/calls` (alias `/v1/call-logs`), transcripts, `/v1/recordings` with signed media
//! links, and `/v1/conversations`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use dialtone_domain::calls::{
    Call, CallStatus, Direction, PlaceCall, Recording, TEST_FROM_NUMBER, Transcript, simulated_wav,
};
use dialtone_domain::conversations::Conversation;
use dialtone_domain::page::{Page, PageRequest};
use dialtone_domain::time::now;
use dialtone_domain::{Error, Result};
use dialtone_store::{CallFilter, RecordingMedia};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::error::{ApiResult, JsonBytes, Query};
use crate::shared::{checked_id, created, idempotency_key, replay};
use crate::state::AppState;

/// How long a recording's media link works.
const MEDIA_LINK_TTL_SECS: i64 = 3600;

fn call_id(id: &str) -> Result<&str> {
    checked_id("call", "call", id)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListCallsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only calls in this status.
    #[param(value_type = Option<dialtone_domain::calls::CallStatus>)]
    pub status: Option<String>,
    /// Only calls in this direction.
    #[param(value_type = Option<dialtone_domain::calls::Direction>)]
    pub direction: Option<String>,
    pub contact_id: Option<String>,
    pub agent_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub campaign_id: Option<String>,
    /// E.164
    pub from: Option<String>,
    /// E.164
    pub to: Option<String>,
    /// RFC 3339; calls created at or after.
    #[param(value_type = Option<String>)]
    pub created_after: Option<DateTime<Utc>>,
    /// RFC 3339; calls created before.
    #[param(value_type = Option<String>)]
    pub created_before: Option<DateTime<Utc>>,
    #[param(value_type = Option<String>)]
    pub started_after: Option<DateTime<Utc>>,
    #[param(value_type = Option<String>)]
    pub started_before: Option<DateTime<Utc>>,
    pub duration_min: Option<i64>,
    pub duration_max: Option<i64>,
}

async fn list_calls_impl(state: &AppState, t: &Tenant, q: ListCallsQuery) -> Result<Page<Call>> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let filter = CallFilter {
        status: q.status.as_deref().map(CallStatus::parse).transpose()?,
        direction: q.direction.as_deref().map(Direction::parse).transpose()?,
        contact_id: q.contact_id,
        agent_id: q.agent_id,
        phone_number_id: q.phone_number_id,
        campaign_id: q.campaign_id,
        from: q.from,
        to: q.to,
        created_after: q.created_after,
        created_before: q.created_before,
        started_after: q.started_after,
        started_before: q.started_before,
        duration_min: q.duration_min,
        duration_max: q.duration_max,
    };
    let rows = state
        .store
        .scoped(&t.scope)
        .list_calls(&filter, &page)
        .await?;
    Ok(Page::from_rows(rows, &page, |c| &c.id))
}

/// List calls (call logs)
///
/// Calls of the workspace and mode, newest first, with rich filters: status,
/// direction, contact, agent, number, campaign, the parties, creation and start times,
/// and duration. Cursor-paged.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(ListCallsQuery),
    responses((status = 200, description = "Calls, newest first", body = Page<Call>)))]
pub async fn list(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListCallsQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(list_calls_impl(&state, &t, q).await?))
}

/// List call logs (alias of `GET /v1/calls`)
///
/// The same list as `GET /v1/calls`, under the name call-log APIs use.
#[utoipa::path(get, path = "/v1/call-logs", tag = "calls", params(ListCallsQuery),
    responses((status = 200, description = "Calls, newest first", body = Page<Call>)))]
pub async fn list_logs(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListCallsQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(list_calls_impl(&state, &t, q).await?))
}

/// Retrieve a call
///
/// A call's current state: status, parties, timestamps, duration, cost and metadata.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path, description = "call_…")),
    responses((status = 200, description = "The call", body = Call)))]
pub async fn get(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.scoped(&t.scope).get_call(call_id(&id)?).await?,
    ))
}

/// Retrieve a call log (alias of `GET /v1/calls/{id}`)
///
/// The same object as `GET /v1/calls/{id}`.
#[utoipa::path(get, path = "/v1/call-logs/{id}", tag = "calls", params(("id" = String, Path, description = "call_…")),
    responses((status = 200, description = "The call", body = Call)))]
pub async fn get_log(
    state: State<AppState>,
    t: Tenant,
    id: Path<String>,
) -> ApiResult<impl IntoResponse> {
    get(state, t, id).await
}

/// Place an outbound call
///
/// Test keys run the simulator: no telephony, no charge, the whole lifecycle
/// (`queued → ringing → in_progress → completed`, or `busy`/`no_answer`/`failed` for
/// +15005550001/2/3) with its events, a transcript and a recording. Live calls are
/// charged per started minute and need a wallet that covers the first one (402).
/// The key's limits apply the same in both modes (403 `KEY_LIMIT_EXCEEDED`); a
/// minutes or spend limit also caps how long the call may last.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = PlaceCall,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "The call, queued", body = Call),
              (status = 402, description = "The wallet cannot cover a first minute (INSUFFICIENT_BALANCE)", body = crate::error::ErrorBody),
              (status = 403, description = "The key lacks calls:write (INSUFFICIENT_PERMISSIONS), or one of its limits refuses the call (KEY_LIMIT_EXCEEDED: `details` names the limit, its value and the key's current figure)", body = crate::error::ErrorBody),
              (status = 409, description = "The Idempotency-Key was used with another request (CONFLICT)", body = crate::error::ErrorBody),
              (status = 503, description = "Live calling is not enabled (CARRIER_UNAVAILABLE)", body = crate::error::ErrorBody)))]
pub async fn place(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    JsonBytes(input, raw): JsonBytes<PlaceCall>,
) -> ApiResult<Response> {
    let idem = idempotency_key(&headers, "POST", "/v1/calls", &raw)?;
    let store = state.store.scoped(&t.scope);
    if let Some(key) = &idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(replay(stored.replay_for(key)?));
    }
    input.validate()?;
    let max_seconds = crate::carrier::reserve(&state, &t.scope).await?;
    state.carrier(t.scope.mode)?;
    let (phone_number_id, from) =
        resolve_from(&store, t.scope.livemode(), input.from.as_deref()).await?;
    let req = crate::carrier::CallRequest {
        from,
        to: input.to,
        phone_number_id,
        agent_id: input.agent_id,
        campaign_id: None,
        recipient_position: None,
        metadata: input.metadata.unwrap_or_default(),
        api_key_id: Some(t.principal.key_id.clone()),
    };
    created(
        crate::carrier::place_call(&state, &t.scope, req, max_seconds, idem.as_ref()).await?,
        idem.as_ref(),
    )
}

/// The number a call or message goes out from: the one asked for (which must be an
/// active number of the workspace, or the built-in test number for test keys), else
/// the test number (test) or the workspace's first number (live).
pub(crate) async fn resolve_from(
    store: &dialtone_store::Scoped<'_>,
    live: bool,
    from: Option<&str>,
) -> Result<(Option<String>, String)> {
    match from {
        Some(TEST_FROM_NUMBER) if !live => Ok((None, TEST_FROM_NUMBER.to_owned())),
        Some(from) => store
            .find_active_number(Some(from))
            .await?
            .map(|(id, n)| (Some(id), n))
            .ok_or_else(|| Error::validation("from", format!("{from} is not one of your numbers"))),
        None if !live => Ok((None, TEST_FROM_NUMBER.to_owned())),
        None => store
            .find_active_number(None)
            .await?
            .map(|(id, n)| (Some(id), n))
            .ok_or_else(|| {
                Error::validation(
                    "from",
                    "buy a phone number first: this workspace has none to send from",
                )
            }),
    }
}

/// Hang up a call
///
/// Before an answer the call becomes `canceled`; after one, `completed` (charged by
/// the seconds talked). A call that already ended answers 409, so a retry is
/// harmless; `Idempotency-Key` is not taken.
#[utoipa::path(post, path = "/v1/calls/{id}/hangup", tag = "calls", params(("id" = String, Path, description = "call_…")),
    responses((status = 200, description = "The call, ended", body = Call),
              (status = 409, description = "The call had already ended", body = crate::error::ErrorBody)))]
pub async fn hangup(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        crate::carrier::hang_up(&state, &t.scope, call_id(&id)?).await?,
    ))
}

/// Retrieve a call's transcript
///
/// 404 until the call has ended and its transcript is ready (`call.transcript.ready`).
#[utoipa::path(get, path = "/v1/calls/{id}/transcript", tag = "calls", params(("id" = String, Path, description = "call_…")),
    responses((status = 200, description = "The transcript", body = Transcript)))]
pub async fn transcript(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .scoped(&t.scope)
            .get_transcript(call_id(&id)?)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRecordingsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only this call's recordings.
    pub call_id: Option<String>,
}

pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub(crate) fn media_signature(state: &AppState, id: &str, expires: i64) -> String {
    state
        .digester
        .digest(&format!("recording-media:{id}:{expires}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_media_url(state: &AppState, headers: &HeaderMap, mut r: Recording) -> Recording {
    let expires = now() + TimeDelta::seconds(MEDIA_LINK_TTL_SECS);
    let ts = expires.timestamp();
    r.media_url = Some(format!(
        "{}/v1/recordings/{}/media?expires={ts}&signature={}",
        base_url(state, headers),
        r.id,
        media_signature(state, &r.id, ts)
    ));
    r.media_url_expires_at = Some(expires);
    r
}

/// List recordings
///
/// Recordings of calls, newest first; filter by `call_id`. Cursor-paged.
#[utoipa::path(get, path = "/v1/recordings", tag = "calls", params(ListRecordingsQuery),
    responses((status = 200, description = "Recordings, newest first", body = Page<Recording>)))]
pub async fn list_recordings(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    Query(q): Query<ListRecordingsQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_recordings(q.call_id.as_deref(), &page)
        .await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |r| &r.id).map(|r| with_media_url(&state, &headers, r)),
    ))
}

/// Retrieve a recording
///
/// `media_url` downloads the audio without a key until `media_url_expires_at`.
#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "calls", params(("id" = String, Path, description = "rec_…")),
    responses((status = 200, description = "The recording", body = Recording)))]
pub async fn get_recording(
    State(state): State<AppState>,
    t: Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let r = state
        .store
        .scoped(&t.scope)
        .get_recording(checked_id("rec", "recording", &id)?)
        .await?;
    Ok(axum::Json(with_media_url(&state, &headers, r)))
}

#[derive(Debug, Deserialize)]
pub struct MediaQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

/// `GET /v1/recordings/{id}/media?expires=&signature=`: the audio, for whoever holds a
/// link that has not expired (no key: players and browsers fetch it directly). It
/// honours `Range` so players can seek. A carrier's recording is streamed from the
/// carrier with the account's credentials (the range passed through); a simulated
/// one is generated.
pub async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (Some(expires), Some(signature)) = (q.expires, q.signature) else {
        return Err(Error::Unauthorized.into());
    };
    let expected = media_signature(&state, &id, expires);
    let matches = expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches || expires < now().timestamp() {
        return Err(Error::Unauthorized.into());
    }
    let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok());
    let disposition = format!("inline; filename=\"{id}.wav\"");
    match state.store.recording_media(&id).await? {
        RecordingMedia::Simulated { duration_seconds } => Ok(crate::shared::ranged(
            simulated_wav(duration_seconds),
            range,
            "audio/wav",
            &disposition,
        )),
        RecordingMedia::Carrier { media_url } => {
            let twilio = state.carriers.twilio().ok_or(Error::CarrierUnavailable)?;
            let upstream = twilio
                .fetch_media(&media_url, range)
                .await
                .map_err(crate::carrier::carrier_error)?;
            let mut out = Response::builder()
                .status(upstream.status().as_u16())
                .header(header::CACHE_CONTROL, "private, max-age=3600")
                .header(header::CONTENT_DISPOSITION, disposition)
                .header(header::ACCEPT_RANGES, "bytes");
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
            ] {
                if let Some(v) = upstream.headers().get(name.as_str()) {
                    out = out.header(name, v.as_bytes());
                }
            }
            out.body(axum::body::Body::from_stream(upstream.bytes_stream()))
                .map_err(|e| Error::internal(e).into())
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListConversationsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only the conversations with this contact.
    pub contact_id: Option<String>,
}

/// List conversations
///
/// Sorted by last activity (a call or message), most recent first.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ListConversationsQuery),
    responses((status = 200, description = "Conversations, most recently active first", body = Page<Conversation>)))]
pub async fn list_conversations(
    State(state): State<AppState>,
    t: Tenant,
    Query(q): Query<ListConversationsQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .store
        .scoped(&t.scope)
        .list_conversations(&page, q.contact_id.as_deref())
        .await?;
    Ok(axum::Json(Page::from_rows_keyed(
        rows,
        &page,
        Conversation::activity_key,
    )))
}

/// Retrieve a conversation
///
/// A thread of calls and messages between one of your numbers and one participant.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path, description = "conv_…")),
    responses((status = 200, description = "The conversation", body = Conversation)))]
pub async fn get_conversation(
    State(state): State<AppState>,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = checked_id("conv", "conversation", &id)?;
    Ok(axum::Json(
        state.store.scoped(&t.scope).get_conversation(id).await?,
    ))
}
