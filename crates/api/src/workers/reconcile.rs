//! The carrier reconciler: asks a real carrier how a live call or message stands when
//! its reports stopped coming. Twilio does not retry a status callback it could not
//! deliver (dialtone down, a proxy in between failing), so without this a call could
//! stay `in_progress` and unbilled, a message `queued`, forever.
//!
//! What the carrier answers goes through the same state machines as its callbacks,
//! so a report that does arrive later, or another node asking at the same time,
//! changes nothing twice. A call the carrier never confirmed (dialtone stopped
//! between recording it and the carrier's answer) fails with `not_placed`, charged
//! nothing.

use dialtone_domain::calls::CallProgress;
use dialtone_domain::messages::MessageStatus;
use dialtone_domain::time::now;
use dialtone_store::{Apply, MessageReport, OpenAtCarrier};
use tokio::sync::watch;

use crate::state::AppState;

/// Calls and messages looked up per pass, each kind.
const BATCH: i64 = 100;

pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    if state
        .carriers
        .live()
        .is_none_or(|c| c.name() == dialtone_store::SIMULATOR)
    {
        return;
    }
    let mut tick = tokio::time::interval(state.config.carrier_reconcile_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = pass(&state).await {
            tracing::warn!(error = %e, "carrier reconciler: listing quiet calls failed; will retry");
        }
    }
}

/// One pass over quiet calls and messages.
pub(crate) async fn pass(state: &AppState) -> dialtone_domain::Result<()> {
    let quiet_since = now()
        - chrono::TimeDelta::from_std(state.config.carrier_quiet_after)
            .unwrap_or(chrono::TimeDelta::minutes(5));
    for call in state.store.quiet_carrier_calls(quiet_since, BATCH).await? {
        if let Err(e) = reconcile_call(state, &call).await {
            tracing::warn!(call_id = %call.id, error = %e, "carrier reconciler: a call could not be looked up");
        }
    }
    for message in state
        .store
        .quiet_carrier_messages(quiet_since, BATCH)
        .await?
    {
        if let Err(e) = reconcile_message(state, &message).await {
            tracing::warn!(message_id = %message.id, error = %e, "carrier reconciler: a message could not be looked up");
        }
    }
    Ok(())
}

async fn reconcile_call(state: &AppState, call: &OpenAtCarrier) -> dialtone_domain::Result<()> {
    let Some(carrier) = state.carriers.live().filter(|c| c.name() == call.carrier) else {
        return Ok(());
    };
    let report = match &call.carrier_sid {
        None => Some(CallProgress::Failed {
            code: Some("not_placed".to_owned()),
            message: Some("The carrier never confirmed the call.".to_owned()),
        }),
        Some(sid) => match carrier.call_status(sid).await {
            Ok(report) => report,
            Err(e) if e.status == Some(404) => Some(CallProgress::Failed {
                code: e.code.or(Some("not_found".to_owned())),
                message: Some("The carrier does not know the call.".to_owned()),
            }),
            Err(e) => return Err(crate::carrier::carrier_error(e)),
        },
    };
    if let Some(progress) = report
        && state
            .store
            .apply_call_progress(&call.id, &progress, Apply::default())
            .await?
            .is_some()
    {
        state.metrics.carrier_callback(carrier.name(), "reconciled");
        tracing::info!(call_id = %call.id, "carrier reconciler: a call caught up with its carrier");
    }
    Ok(())
}

async fn reconcile_message(
    state: &AppState,
    message: &OpenAtCarrier,
) -> dialtone_domain::Result<()> {
    let Some(carrier) = state
        .carriers
        .live()
        .filter(|c| c.name() == message.carrier)
    else {
        return Ok(());
    };
    let report = match &message.carrier_sid {
        None => Some(MessageReport {
            status: MessageStatus::Failed,
            error_code: Some("not_placed".to_owned()),
            error_message: Some("The carrier never confirmed the message.".to_owned()),
            refused: true,
        }),
        Some(sid) => carrier
            .message_status(sid)
            .await
            .map_err(crate::carrier::carrier_error)?
            .and_then(|reported| {
                Some(MessageReport {
                    status: MessageStatus::parse(reported.status)?,
                    error_code: reported.error_code,
                    error_message: None,
                    refused: false,
                })
            }),
    };
    if let Some(report) = report
        && state
            .store
            .apply_message_report(&message.id, &report)
            .await?
            .is_some()
    {
        state.metrics.carrier_callback(carrier.name(), "reconciled");
        tracing::info!(message_id = %message.id, "carrier reconciler: a message caught up with its carrier");
    }
    Ok(())
}
