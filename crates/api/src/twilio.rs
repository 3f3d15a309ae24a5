//! The routes Twilio calls: `/carrier/twilio/*`. Public (no API key): each request
//! must carry a valid `X-Twilio-Signature` over the URL Twilio called — dialtone's
//! `--public-url` plus the path and query, never the `Host` header — and its form
//! parameters. A missing or wrong signature is a 403 that changes nothing, counted in
//! `/metrics` (`dialtone_carrier_callbacks_total{outcome="bad_signature"}`).
//!
//! Each callback does one short transaction (nothing slow inline). Twilio does not
//! order its callbacks and may send one twice, so every one is safe to replay: a call
//! or message only moves forward (the state machines of `dialtone_domain`), and what a
//! callback creates is keyed by Twilio's own id (CallSid, MessageSid, RecordingSid,
//! the transcription's sequence). A callback about something dialtone does not know is
//! a 404 with nothing written.
//!
//! - `status` (a call's progress), `twiml` (what an outbound call does), `recording`,
//!   `transcription`: about calls dialtone placed (`?call=`) or received;
//! - `message-status`: about messages dialtone sent (`?message=`);
//! - `voice`, `sms`: inbound traffic to a number bought or imported through dialtone.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dialtone_domain::calls::{CallProgress, Direction};
use dialtone_domain::messages::MessageStatus;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::{Error, Result};
use dialtone_store::{Apply, CarrierRecording, CarrierSegment, MessageReport, NewCall, NewMessage};
use dialtone_telephony::twilio::{call_progress, message_status, signature, twiml};

use crate::state::AppState;

const CARRIER: &str = "twilio";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/carrier/twilio/status", post(status))
        .route("/carrier/twilio/twiml", post(instructions))
        .route("/carrier/twilio/recording", post(recording))
        .route("/carrier/twilio/transcription", post(transcription))
        .route("/carrier/twilio/message-status", post(message_report))
        .route("/carrier/twilio/voice", post(inbound_call))
        .route("/carrier/twilio/sms", post(inbound_sms))
}

/// A callback whose signature is checked: its form parameters and query.
struct Callback {
    params: Vec<(String, String)>,
    uri: Uri,
}

impl Callback {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A form parameter as text to store: NUL bytes (which PostgreSQL refuses) dropped.
    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().replace('\0', "")
    }

    /// dialtone's own id in the callback URL (`?call=`, `?message=`).
    fn ours(&self, name: &str) -> Option<String> {
        self.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    }
}

/// Checks the signature; the callback, or the answer to send instead.
fn verified(
    state: &AppState,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Callback, StatusCode> {
    let (Some(twilio), Ok(base)) = (state.carriers.twilio(), crate::carrier::public_url(state))
    else {
        return Err(StatusCode::NOT_FOUND);
    };
    let url = format!(
        "{base}{}",
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let signed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signature::verify_form(twilio.signing_key(), &url, &params, sig));
    if !signed {
        state.metrics.carrier_callback(CARRIER, "bad_signature");
        tracing::warn!(
            path = uri.path(),
            "a Twilio callback had a missing or wrong signature"
        );
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(Callback { params, uri })
}

/// A route's callback: read (within the body limit) and its signature checked before
/// the handler runs; otherwise the handler never runs (403, or 404 without Twilio).
impl axum::extract::FromRequest<AppState> for Callback {
    type Rejection = StatusCode;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> std::result::Result<Self, StatusCode> {
        let (parts, body) = req.into_parts();
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let body = axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
        verified(state, uri, &parts.headers, &body)
    }
}

/// The answer to a callback whose work failed: Twilio may retry, and every callback
/// is safe to apply twice. A callback about something unknown is a 404.
fn failed(state: &AppState, what: &str, e: &Error) -> Response {
    if matches!(e, Error::NotFound { .. }) {
        return unknown(state);
    }
    tracing::warn!(error = %e, "applying a Twilio {what} failed");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

fn unknown(state: &AppState) -> Response {
    state.metrics.carrier_callback(CARRIER, "unknown");
    StatusCode::NOT_FOUND.into_response()
}

fn accepted(state: &AppState) -> Response {
    state.metrics.carrier_callback(CARRIER, "accepted");
    StatusCode::NO_CONTENT.into_response()
}

fn xml(state: &AppState, body: String) -> Response {
    state.metrics.carrier_callback(CARRIER, "accepted");
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// The call a callback is about: `?call=` (calls dialtone placed: the sid is bound
/// to it on first sight, so a callback that beats Twilio's answer still finds it),
/// else the `CallSid`.
async fn the_call(state: &AppState, cb: &Callback) -> Result<String> {
    let sid = cb
        .get("CallSid")
        .ok_or(Error::NotFound { resource: "call" })?;
    match cb.ours("call") {
        Some(id) => state
            .store
            .bind_carrier_sid(&id, CARRIER, sid)
            .await
            .map(|()| id),
        None => state.store.call_by_carrier_sid(CARRIER, sid).await,
    }
}

/// `StatusCallback`: a call's progress.
async fn status(State(state): State<AppState>, cb: Callback) -> Response {
    let id = match the_call(&state, &cb).await {
        Ok(id) => id,
        Err(e) => return failed(&state, "call status", &e),
    };
    let duration = cb.get("CallDuration").and_then(|d| d.parse().ok());
    let Some(progress) = call_progress(
        cb.get("CallStatus").unwrap_or_default(),
        duration,
        cb.get("ErrorCode"),
        cb.get("ErrorMessage"),
    ) else {
        return accepted(&state);
    };
    match state
        .store
        .apply_call_progress(&id, &progress, Apply::default())
        .await
    {
        Ok(_) => accepted(&state),
        Err(e) => failed(&state, "call status", &e),
    }
}

/// `Url`: what an outbound call does once connected (TwiML).
async fn instructions(State(state): State<AppState>, cb: Callback) -> Response {
    let script = match the_call(&state, &cb).await {
        Ok(id) => script_for(&state, &id).await,
        Err(e) => Err(e),
    };
    match script {
        Ok(body) => xml(&state, body),
        Err(e) => failed(&state, "TwiML request", &e),
    }
}

/// The TwiML of a call: transcription, the agent's greeting, then its stream.
async fn script_for(state: &AppState, id: &str) -> Result<String> {
    let found = state.store.call_for_carrier(id).await?;
    let base = crate::carrier::public_url(state)?;
    let transcription = format!("{base}/carrier/twilio/transcription?call={id}");
    let agent = match &found.call.agent_id {
        Some(a) => Some(state.store.scoped(&found.scope).get_agent(a).await?),
        None => None,
    };
    Ok(twiml::call(&twiml::CallScript {
        greeting: agent.as_ref().and_then(|a| a.greeting.as_deref()),
        // `default` is Twilio's own default voice: no attribute.
        voice: agent
            .as_ref()
            .map(|a| a.voice.as_str())
            .filter(|v| *v != dialtone_domain::agents::DEFAULT_VOICE),
        language: agent.as_ref().map(|a| a.language.as_str()),
        transcription_callback: Some(&transcription),
        stream_url: agent.as_ref().and_then(|a| a.stream_url.as_deref()),
        forward_to: None,
    }))
}

/// `RecordingStatusCallback`: a recording of the call is ready at Twilio.
async fn recording(State(state): State<AppState>, cb: Callback) -> Response {
    let id = match the_call(&state, &cb).await {
        Ok(id) => id,
        Err(e) => return failed(&state, "recording", &e),
    };
    let (Some("completed"), Some(sid), Some(url)) = (
        cb.get("RecordingStatus"),
        cb.get("RecordingSid"),
        cb.get("RecordingUrl"),
    ) else {
        // `in-progress`, `absent`, `failed`: nothing to keep.
        return accepted(&state);
    };
    let Some(twilio) = state.carriers.twilio() else {
        return unknown(&state);
    };
    if !twilio.owns_url(url) {
        // Only media of this account is ever fetched with its credentials.
        tracing::warn!(call_id = %id, "a recording callback named media outside the account");
        return StatusCode::BAD_REQUEST.into_response();
    }
    let r = CarrierRecording {
        sid: sid.to_owned(),
        media_url: url.to_owned(),
        duration_seconds: cb
            .get("RecordingDuration")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    };
    match state.store.record_carrier_recording(&id, &r).await {
        Ok(_) => accepted(&state),
        Err(e) => failed(&state, "recording", &e),
    }
}

/// `<Transcription statusCallbackUrl>`: live transcription. Final results become
/// segments (the speaker from the track: what Twilio hears from the far end is the
/// caller, what it plays is the agent); `transcription-stopped` puts the transcript
/// together.
async fn transcription(State(state): State<AppState>, cb: Callback) -> Response {
    let id = match the_call(&state, &cb).await {
        Ok(id) => id,
        Err(e) => return failed(&state, "transcription", &e),
    };
    let done = match cb.get("TranscriptionEvent") {
        Some("transcription-content") if cb.get("Final") == Some("true") => {
            let text = cb
                .get("TranscriptionData")
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d.get("transcript")?.as_str().map(|t| t.replace('\0', "")))
                .unwrap_or_default();
            if text.trim().is_empty() {
                return accepted(&state);
            }
            let seg = CarrierSegment {
                key: format!(
                    "{}:{}",
                    cb.get("TranscriptionSid").unwrap_or_default(),
                    cb.get("SequenceId").unwrap_or_default()
                ),
                speaker: match cb.get("Track") {
                    Some("outbound_track") => "agent",
                    _ => "caller",
                }
                .to_owned(),
                at: cb
                    .get("Timestamp")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc)),
                text,
            };
            state.store.add_transcript_segment(&id, &seg).await
        }
        Some("transcription-stopped") => state.store.finish_transcript(&id).await.map(|_| ()),
        // Started, interim results, events dialtone does not use.
        _ => Ok(()),
    };
    match done {
        Ok(()) => accepted(&state),
        Err(e) => failed(&state, "transcription", &e),
    }
}

/// A message's `StatusCallback`: `sent`, `delivered`, `undelivered`, `failed`.
async fn message_report(State(state): State<AppState>, cb: Callback) -> Response {
    let Some(sid) = cb.get("MessageSid") else {
        return unknown(&state);
    };
    let found = match cb.ours("message") {
        Some(id) => state
            .store
            .bind_message_sid(&id, CARRIER, sid)
            .await
            .map(|()| id),
        None => state.store.message_by_carrier_sid(CARRIER, sid).await,
    };
    let id = match found {
        Ok(id) => id,
        Err(e) => return failed(&state, "message status", &e),
    };
    let reported = cb
        .get("MessageStatus")
        .and_then(message_status)
        .and_then(MessageStatus::parse);
    let Some(status) = reported else {
        return accepted(&state);
    };
    let report = MessageReport {
        status,
        error_code: cb
            .get("ErrorCode")
            .filter(|c| !c.is_empty() && *c != "0")
            .map(str::to_owned),
        error_message: cb
            .get("ErrorMessage")
            .map(|m| m.replace('\0', ""))
            .filter(|m| !m.is_empty()),
        refused: false,
    };
    match state.store.apply_message_report(&id, &report).await {
        Ok(_) => accepted(&state),
        Err(e) => failed(&state, "message status", &e),
    }
}

/// A number's `VoiceUrl`: a call to one of the numbers. The call is recorded (once,
/// by its CallSid), routed to the number's agent, answered, and its TwiML served. A
/// wallet that cannot pay a first minute turns the call away.
async fn inbound_call(State(state): State<AppState>, cb: Callback) -> Response {
    match receive_call(&state, &cb).await {
        Ok(Some(id)) => match script_for(&state, &id).await {
            Ok(body) => xml(&state, body),
            Err(e) => failed(&state, "inbound call", &e),
        },
        Ok(None) => xml(&state, twiml::reject()),
        Err(e) => failed(&state, "inbound call", &e),
    }
}

/// The inbound call's id, created on first sight; `None`: turned away (no funds).
async fn receive_call(state: &AppState, cb: &Callback) -> Result<Option<String>> {
    let sid = cb
        .get("CallSid")
        .ok_or(Error::NotFound { resource: "call" })?;
    if let Ok(id) = state.store.call_by_carrier_sid(CARRIER, sid).await {
        return Ok(Some(id));
    }
    let (from, to) = (cb.text("From"), cb.text("To"));
    let (scope, number_id) = state.store.number_owner(&to, Mode::Live).await?;
    let reserved = match crate::carrier::reserve(state, &scope).await {
        Ok(r) => r,
        Err(Error::InsufficientBalance { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let store = state.store.scoped(&scope);
    let number = store.get_number(&number_id).await?;
    let id = dialtone_domain::id::new_id("call");
    let new = NewCall {
        id: id.clone(),
        direction: Direction::Inbound,
        from,
        to,
        phone_number_id: Some(number_id),
        agent_id: number.agent_id,
        campaign_id: None,
        recipient_position: None,
        metadata: Default::default(),
        carrier: CARRIER,
        outcome: None,
        reserved_seconds: reserved,
        carrier_sid: Some(sid.to_owned()),
        api_key_id: None,
    };
    if let Err(e) = store.place_call(new, chrono::TimeDelta::zero(), None).await {
        // Twilio delivered the same call twice at once: the other delivery made it.
        return match state.store.call_by_carrier_sid(CARRIER, sid).await {
            Ok(id) => Ok(Some(id)),
            Err(_) => Err(e),
        };
    }
    // dialtone answers the call with its TwiML: it rang, and is answered now.
    state
        .store
        .apply_call_progress(&id, &CallProgress::Answered, Apply::default())
        .await?;
    Ok(Some(id))
}

/// A number's `SmsUrl`: a message to one of the numbers lands in its conversation
/// (once, by its MessageSid), with `message.received`. No reply is sent.
async fn inbound_sms(State(state): State<AppState>, cb: Callback) -> Response {
    match receive_sms(&state, &cb).await {
        Ok(()) => xml(&state, twiml::empty()),
        Err(e) => failed(&state, "inbound message", &e),
    }
}

async fn receive_sms(state: &AppState, cb: &Callback) -> Result<()> {
    let sid = cb.get("MessageSid").ok_or(Error::NotFound {
        resource: "message",
    })?;
    let (from, to) = (cb.text("From"), cb.text("To"));
    let (scope, number_id) = state.store.number_owner(&to, Mode::Live).await?;
    let new = NewMessage {
        id: dialtone_domain::id::new_id("msg"),
        direction: Direction::Inbound,
        from,
        to,
        body: cb.text("Body"),
        phone_number_id: Some(number_id),
        fail: false,
        carrier: CARRIER,
        carrier_sid: Some(sid.to_owned()),
        api_key_id: None,
    };
    let store = state.store.scoped(&scope);
    match store
        .create_message(new, chrono::TimeDelta::zero(), None)
        .await
    {
        Ok(_) => Ok(()),
        // The same message delivered twice at once: the other delivery stored it.
        Err(e) => match state.store.message_by_carrier_sid(CARRIER, sid).await {
            Ok(_) => Ok(()),
            Err(_) => Err(e),
        },
    }
}
