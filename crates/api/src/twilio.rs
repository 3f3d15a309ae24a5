//! The routes Twilio calls: `/carrier/twilio/*`. Public (no API key): each request
//! must carry a valid `X-Twilio-Signature` over the URL Twilio called — dialtone's
//! `--public-url` plus the path and query, never the `Host` header — and its form
//! parameters. A missing or wrong signature is a 403 that changes nothing, counted in
//! `/metrics` (`dialtone_carrier_callbacks{outcome="bad_signature"}`).
//!
//! Each callback does one short transaction (nothing slow inline): a status report
//! goes through the call state machine (`Store::apply_call_progress`), so a replay or
//! a late report changes nothing, and a call dialtone does not know is a 404 with
//! nothing written.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dialtone_domain::Error;
use dialtone_store::Apply;
use dialtone_telephony::twilio::{call_progress, signature, twiml};

use crate::state::AppState;

const CARRIER: &str = "twilio";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/carrier/twilio/status", post(status))
        .route("/carrier/twilio/twiml", post(instructions))
}

/// A callback's form parameters, once its signature is checked.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks the signature; the parameters, or the answer to send instead.
fn verified(
    state: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, StatusCode> {
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
    Ok(Params(params))
}

/// The call a callback is about: `?call=` (calls dialtone placed: the sid is bound
/// to it on first sight, so a callback that beats Twilio's answer still finds it),
/// else the `CallSid`. `None`: no such call.
async fn the_call(state: &AppState, uri: &axum::http::Uri, p: &Params) -> Option<String> {
    let sid = p.get("CallSid")?;
    let ours = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "call")
            .map(|(_, v)| v.into_owned())
    });
    let found = match ours {
        Some(id) => state
            .store
            .bind_carrier_sid(&id, CARRIER, sid)
            .await
            .map(|()| id),
        None => state.store.call_by_carrier_sid(CARRIER, sid).await,
    };
    match found {
        Ok(id) => Some(id),
        Err(Error::NotFound { .. }) => None,
        Err(e) => {
            tracing::warn!(error = %e, "looking up a Twilio call failed");
            None
        }
    }
}

fn unknown(state: &AppState) -> Response {
    state.metrics.carrier_callback(CARRIER, "unknown");
    StatusCode::NOT_FOUND.into_response()
}

/// `StatusCallback`: a call's progress.
async fn status(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match verified(&state, &uri, &headers, &body) {
        Ok(p) => p,
        Err(status) => return status.into_response(),
    };
    let Some(id) = the_call(&state, &uri, &p).await else {
        return unknown(&state);
    };
    state.metrics.carrier_callback(CARRIER, "accepted");
    let duration = p.get("CallDuration").and_then(|d| d.parse().ok());
    let Some(progress) = call_progress(
        p.get("CallStatus").unwrap_or_default(),
        duration,
        p.get("ErrorCode"),
        p.get("ErrorMessage"),
    ) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    match state
        .store
        .apply_call_progress(&id, &progress, Apply::default())
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "applying a Twilio status failed");
            // Twilio may retry a 5xx; the state machine makes that safe.
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `Url`: what the call does once connected (TwiML).
async fn instructions(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match verified(&state, &uri, &headers, &body) {
        Ok(p) => p,
        Err(status) => return status.into_response(),
    };
    let Some(id) = the_call(&state, &uri, &p).await else {
        return unknown(&state);
    };
    state.metrics.carrier_callback(CARRIER, "accepted");
    let xml = match script_for(&state, &id).await {
        Ok(xml) => xml,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "building TwiML failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

async fn script_for(state: &AppState, id: &str) -> dialtone_domain::Result<String> {
    let found = state.store.call_for_carrier(id).await?;
    let base = crate::carrier::public_url(state)?;
    let transcription = format!("{base}/carrier/twilio/transcription?call={id}");
    let agent = match &found.call.agent_id {
        Some(a) => Some(state.store.scoped(&found.scope).get_agent(a).await?),
        None => None,
    };
    Ok(twiml::call(&twiml::CallScript {
        greeting: agent.as_ref().and_then(|a| a.greeting.as_deref()),
        voice: agent.as_ref().map(|a| a.voice.as_str()),
        language: agent.as_ref().map(|a| a.language.as_str()),
        transcription_callback: Some(&transcription),
        stream_url: None,
        forward_to: None,
    }))
}
