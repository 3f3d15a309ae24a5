//! Where calls, messages and numbers go, and the operations that send them there,
//! shared by the REST routes, the campaign runner and the dashboard.
//!
//! Test mode always uses the built-in simulator. Live mode uses the carrier the
//! operator configured: Twilio (`--carrier twilio`), the simulator
//! (`--carrier simulator`, charged as real traffic), or none (503
//! `CARRIER_UNAVAILABLE`). Placing a call differs in one respect only: the
//! simulator's script is decided before the call is recorded (it has no far side),
//! while a real carrier is asked after, so its callbacks always find the call. From
//! there on both carriers' reports go through the same state machine
//! (`Store::apply_call_progress`).

use std::sync::Arc;

use dialtone_domain::calls::{Call, CallProgress, Direction};
use dialtone_domain::idempotency::{IdempotencyKey, Outcome};
use dialtone_domain::messages::{Message, MessageStatus};
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::{Error, Result};
use dialtone_store::{Apply, MessageReport, NewCall, NewMessage, SIMULATOR};
use dialtone_telephony::twilio::Twilio;
use dialtone_telephony::{
    Callbacks, Carrier, CarrierError, OutboundCall, OutboundMessage, Simulator,
};
use serde_json::{Map, Value};

use crate::config::{CarrierChoice, ServerConfig};
use crate::state::AppState;

/// The carriers of a server.
#[derive(Debug, Clone)]
pub struct Carriers {
    simulator: Arc<Simulator>,
    live: Option<Arc<dyn Carrier>>,
    twilio: Option<Arc<Twilio>>,
}

impl Carriers {
    pub fn new(config: &ServerConfig) -> Result<Carriers> {
        crate::webhooks::install_tls_provider();
        let simulator = Arc::new(Simulator);
        let (live, twilio): (Option<Arc<dyn Carrier>>, _) = match &config.carrier {
            CarrierChoice::None => (None, None),
            CarrierChoice::Simulator => (Some(simulator.clone()), None),
            CarrierChoice::Twilio(t) => {
                let twilio = Arc::new(Twilio::new(t.clone()).map_err(carrier_error)?);
                (Some(twilio.clone()), Some(twilio))
            }
        };
        Ok(Carriers {
            simulator,
            live,
            twilio,
        })
    }

    /// The carrier of a mode, or 503 `CARRIER_UNAVAILABLE` for live mode without one.
    pub fn for_mode(&self, mode: Mode) -> Result<&dyn Carrier> {
        match mode {
            Mode::Test => Ok(self.simulator.as_ref()),
            Mode::Live => self.live.as_deref().ok_or(Error::CarrierUnavailable),
        }
    }

    /// The live carrier, if any (`/readyz`).
    pub fn live(&self) -> Option<&dyn Carrier> {
        self.live.as_deref()
    }

    /// Twilio, when live mode uses it (its callbacks are only served then).
    pub fn twilio(&self) -> Option<&Twilio> {
        self.twilio.as_deref()
    }
}

/// A carrier's refusal as the API reports it (502 `CARRIER_ERROR`).
pub(crate) fn carrier_error(e: CarrierError) -> Error {
    Error::Carrier {
        code: e.code,
        message: e.message,
    }
}

/// The code stored on a call or message the carrier refused: the carrier's own, or
/// the HTTP status it answered (`http_503`).
fn refusal_code(e: &CarrierError) -> Option<String> {
    e.code
        .clone()
        .or_else(|| e.status.map(|s| format!("http_{s}")))
}

/// A call to place, resolved by the caller (numbers checked).
#[derive(Debug, Clone)]
pub(crate) struct CallRequest {
    pub from: String,
    pub to: String,
    pub phone_number_id: Option<String>,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub recipient_position: Option<i64>,
    pub metadata: Map<String, Value>,
    /// The key placing it (a campaign's: the key that created it); its limits apply.
    pub api_key_id: Option<String>,
}

/// The seconds a live call may talk (what the wallet pays for); 402 when it cannot
/// pay a first minute. Test calls are free and unlimited.
pub(crate) async fn reserve(state: &AppState, scope: &Scope) -> Result<Option<i64>> {
    if !scope.livemode() {
        return Ok(None);
    }
    let store = state.store.scoped(scope);
    let affordable = store.affordable_seconds().await?;
    if affordable < 60 {
        return Err(Error::InsufficientBalance {
            needed: dialtone_domain::billing::CALL_PER_MINUTE,
            balance: store.wallet().await?.balance,
        });
    }
    Ok(Some(affordable))
}

/// Places an outbound call through the mode's carrier. A real carrier's refusal
/// (4xx, 5xx, timeout) leaves the call `failed` with the carrier's code and message,
/// charged nothing; the answer is the call as it stands.
pub(crate) async fn place_call(
    state: &AppState,
    scope: &Scope,
    req: CallRequest,
    max_seconds: Option<i64>,
    idem: Option<&IdempotencyKey>,
) -> Result<Outcome<Call>> {
    let carrier = state.carriers.for_mode(scope.mode)?;
    let id = dialtone_domain::id::new_id("call");
    let simulated = carrier.name() == SIMULATOR;
    let outbound = OutboundCall {
        call_id: &id,
        from: &req.from,
        to: &req.to,
        max_seconds,
        callbacks: if simulated {
            Callbacks::default()
        } else {
            call_callbacks(state, &id)?
        },
    };
    let script = if simulated {
        carrier
            .place_call(&outbound)
            .await
            .map_err(carrier_error)?
            .script
    } else {
        None
    };
    let new = NewCall {
        id: id.clone(),
        direction: Direction::Outbound,
        from: req.from.clone(),
        to: req.to.clone(),
        phone_number_id: req.phone_number_id,
        agent_id: req.agent_id,
        campaign_id: req.campaign_id,
        recipient_position: req.recipient_position,
        metadata: req.metadata,
        carrier: carrier.name(),
        outcome: script,
        reserved_seconds: max_seconds,
        carrier_sid: None,
        api_key_id: req.api_key_id,
    };
    let step = simulator_step(state);
    let store = state.store.scoped(scope);
    let placed = store.place_call(new, step, idem).await?;
    let Outcome::Done(call) = placed else {
        return Ok(placed);
    };
    if simulated {
        return Ok(Outcome::Done(call));
    }
    // The key's limits may have shortened what the call may last.
    let reserved = state.store.call_for_carrier(&id).await?.reserved_seconds;
    let outbound = OutboundCall {
        max_seconds: reserved,
        ..outbound
    };
    match carrier.place_call(&outbound).await {
        Ok(p) => {
            if let Some(sid) = &p.sid {
                state
                    .store
                    .bind_carrier_sid(&id, carrier.name(), sid)
                    .await?;
            }
        }
        Err(e) => {
            tracing::warn!(call_id = %id, code = ?e.code, status = ?e.status, "the carrier refused a call");
            let failed = CallProgress::Failed {
                code: refusal_code(&e),
                message: Some(e.message),
            };
            state
                .store
                .apply_call_progress(&id, &failed, Apply::default())
                .await?;
        }
    }
    let call = store.get_call(&id).await?;
    amend(&store, idem, &call).await?;
    Ok(Outcome::Done(call))
}

/// The answer a retry with the same `Idempotency-Key` replays: the one the first
/// request got, after the carrier's answer.
async fn amend<T: serde::Serialize>(
    store: &dialtone_store::Scoped<'_>,
    idem: Option<&IdempotencyKey>,
    answer: &T,
) -> Result<()> {
    if let Some(key) = idem {
        let body = serde_json::to_string(answer).map_err(Error::internal)?;
        store.amend_idempotent_response(key, body).await?;
    }
    Ok(())
}

/// Hangs up a call: at the carrier first (a real one reports how the call ended),
/// then through the state machine.
pub(crate) async fn hang_up(state: &AppState, scope: &Scope, id: &str) -> Result<Call> {
    let store = state.store.scoped(scope);
    let call = store.get_call(id).await?;
    let found = state.store.call_for_carrier(&call.id).await?;
    if found.carrier == SIMULATOR || call.status.is_terminal() {
        return store.hangup_call(id, None).await;
    }
    let carrier = state.carriers.for_mode(scope.mode)?;
    let Some(sid) = found.carrier_sid else {
        // Not yet accepted by the carrier: nothing to hang up there.
        return store.hangup_call(id, Some(CallProgress::Canceled)).await;
    };
    match carrier.hang_up(&sid).await.map_err(carrier_error)? {
        Some(reported) => match store.hangup_call(id, Some(reported)).await {
            // The carrier's own status callback ended it a moment before: done.
            Err(Error::Conflict { .. }) => store.get_call(id).await,
            other => other,
        },
        // The carrier is ending it; its status callback will say how.
        None => Ok(call),
    }
}

/// A message to send, resolved by the caller (the number checked, the balance too).
#[derive(Debug, Clone)]
pub(crate) struct MessageRequest {
    pub from: String,
    pub to: String,
    pub body: String,
    pub phone_number_id: Option<String>,
    /// The key sending it; its limits apply.
    pub api_key_id: Option<String>,
}

/// Sends a message through the mode's carrier. Charged when stored (402 before
/// anything is sent); a real carrier's refusal leaves the message `failed` with the
/// carrier's code and refunds it. The answer is the message as it stands.
pub(crate) async fn send_message(
    state: &AppState,
    scope: &Scope,
    req: MessageRequest,
    idem: Option<&IdempotencyKey>,
) -> Result<Outcome<Message>> {
    let carrier = state.carriers.for_mode(scope.mode)?;
    let simulated = carrier.name() == SIMULATOR;
    let id = dialtone_domain::id::new_id("msg");
    let status_callback = if simulated {
        None
    } else {
        Some(format!(
            "{}/carrier/twilio/message-status?message={id}",
            public_url(state)?
        ))
    };
    let outbound = OutboundMessage {
        message_id: &id,
        from: &req.from,
        to: &req.to,
        body: &req.body,
        status_callback,
    };
    // The simulator decides the message's fate up front; it has no far side.
    let fail = if simulated {
        carrier
            .send_message(&outbound)
            .await
            .map_err(carrier_error)?
            .simulated_failure
            .unwrap_or(false)
    } else {
        false
    };
    let new = NewMessage {
        id: id.clone(),
        direction: Direction::Outbound,
        from: req.from.clone(),
        to: req.to.clone(),
        body: req.body.clone(),
        phone_number_id: req.phone_number_id,
        fail,
        carrier: carrier.name(),
        carrier_sid: None,
        api_key_id: req.api_key_id,
    };
    let store = state.store.scoped(scope);
    let stored = store
        .create_message(new, simulator_step(state), idem)
        .await?;
    let Outcome::Done(message) = stored else {
        return Ok(stored);
    };
    if simulated {
        return Ok(Outcome::Done(message));
    }
    match carrier.send_message(&outbound).await {
        Ok(sent) => {
            if let Some(sid) = &sent.sid {
                state
                    .store
                    .bind_message_sid(&id, carrier.name(), sid)
                    .await?;
            }
        }
        Err(e) => {
            tracing::warn!(message_id = %id, code = ?e.code, status = ?e.status, "the carrier refused a message");
            let report = MessageReport {
                status: MessageStatus::Failed,
                error_code: refusal_code(&e),
                error_message: Some(e.message),
                refused: true,
            };
            state.store.apply_message_report(&id, &report).await?;
        }
    }
    let message = store.get_message(&id).await?;
    amend(&store, idem, &message).await?;
    Ok(Outcome::Done(message))
}

fn simulator_step(state: &AppState) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(state.config.simulator_step)
        .unwrap_or(chrono::TimeDelta::milliseconds(500))
}

/// dialtone's public base URL (`--public-url`), without a trailing slash.
pub(crate) fn public_url(state: &AppState) -> Result<&str> {
    state
        .config
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'))
        .ok_or(Error::CarrierUnavailable)
}

/// Where the carrier calls back about one call.
fn call_callbacks(state: &AppState, call_id: &str) -> Result<Callbacks> {
    let base = public_url(state)?;
    let at = |what: &str| format!("{base}/carrier/twilio/{what}?call={call_id}");
    Ok(Callbacks {
        instructions: Some(at("twiml")),
        status: Some(at("status")),
        recording: Some(at("recording")),
    })
}
