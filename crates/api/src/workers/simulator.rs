//! Plays the simulated carrier: advances calls and messages whose next step is due.

use tokio::sync::watch;

use crate::state::AppState;

/// Advances simulated calls and messages whose next step is due (state lives in the database, so a
/// restart resumes them; steps are compare-and-set, so nodes may share the work).
pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let step = state.config.simulator_step;
    let step_delta =
        chrono::TimeDelta::from_std(step).unwrap_or(chrono::TimeDelta::milliseconds(500));
    // Due steps are looked for often (at most every 250 ms); they only run when due.
    let mut tick = tokio::time::interval((step / 5).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_millis(250),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let due = match state.store.due_calls(200).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "simulator: listing due calls failed");
                continue;
            }
        };
        for call in due {
            if let Err(e) = state.store.advance_call(&call.id, step_delta).await {
                tracing::warn!(call_id = %call.id, error = %e, "simulator: step failed; will retry");
            }
        }
        match state.store.due_messages(200).await {
            Ok(due) => {
                for m in due {
                    if let Err(e) = state.store.advance_message(&m.id).await {
                        tracing::warn!(message_id = %m.id, error = %e, "simulator: delivery failed; will retry");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "simulator: listing due messages failed"),
        }
        if let Err(e) = super::campaigns::run_all(&state).await {
            tracing::warn!(error = %e, "campaign runner failed; will retry");
        }
    }
}
