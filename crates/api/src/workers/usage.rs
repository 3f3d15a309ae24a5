//! Writes the usage counted in memory (`requests_30d`, `last_used_at`, `last_ip`) in
//! batches, so no request pays a database write for it.

use tokio::sync::watch;

use crate::state::AppState;

pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    // The first flush is one interval after start, not at once.
    let period = state.config.usage_flush_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = state.flush_usage().await {
            tracing::warn!(error = %e, "usage flush failed; will retry");
        }
    }
}
