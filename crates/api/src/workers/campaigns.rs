//! Runs campaigns: keeps up to `CONCURRENCY` calls of each running campaign in flight,
//! completes it when every recipient has been called, pauses it (with a reason) when
//! live calls cannot be placed.

use dialtone_domain::campaigns::CONCURRENCY;
use dialtone_domain::{Error, Result};
use dialtone_store::RunningCampaign;

use crate::carrier::{CallRequest, place_call};
use crate::state::AppState;

/// One pass of the runner over every running campaign.
pub(crate) async fn run_all(state: &AppState) -> Result<()> {
    for c in state.store.running_campaigns().await? {
        if let Err(e) = run(state, &c).await {
            tracing::warn!(campaign_id = %c.id, error = %e, "campaign step failed; will retry");
        }
    }
    Ok(())
}

/// Keeps up to `CONCURRENCY` calls of a campaign in flight; completes it at the end;
/// pauses it (with a reason) when live calls cannot be placed.
async fn run(state: &AppState, c: &RunningCampaign) -> Result<()> {
    loop {
        let (in_flight, next) = state.store.campaign_next(&c.id).await?;
        let Some(next) = next else {
            state.store.complete_campaign_if_done(&c.id).await?;
            return Ok(());
        };
        if in_flight >= CONCURRENCY {
            return Ok(());
        }
        if state.carrier(c.scope.mode).is_err() {
            return state
                .store
                .pause_campaign(&c.id, "carrier_unavailable")
                .await;
        }
        let max_seconds = match crate::carrier::reserve(state, &c.scope).await {
            Ok(m) => m,
            Err(Error::InsufficientBalance { .. }) => {
                return state
                    .store
                    .pause_campaign(&c.id, "insufficient_balance")
                    .await;
            }
            Err(e) => return Err(e),
        };
        let req = CallRequest {
            from: c.from.clone(),
            to: next.number,
            phone_number_id: c.phone_number_id.clone(),
            agent_id: Some(c.agent_id.clone()),
            campaign_id: Some(c.id.clone()),
            recipient_position: Some(next.position),
            metadata: Default::default(),
            api_key_id: c.api_key_id.clone(),
        };
        match place_call(state, &c.scope, req, max_seconds, None).await {
            Ok(_) | Err(Error::Conflict { .. }) => continue,
            Err(Error::InsufficientBalance { .. }) => {
                return state
                    .store
                    .pause_campaign(&c.id, "insufficient_balance")
                    .await;
            }
            // As many calls as the key may have at once: the next pass goes on.
            Err(Error::KeyLimitExceeded {
                limit: dialtone_domain::limits::MAX_CONCURRENT_CALLS,
                ..
            }) => return Ok(()),
            // A daily limit or a destination the key may not call: the campaign waits
            // for someone to raise the limit (or for tomorrow) and resume it.
            Err(Error::KeyLimitExceeded { .. }) => {
                return state
                    .store
                    .pause_campaign(&c.id, "key_limit_exceeded")
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
}
