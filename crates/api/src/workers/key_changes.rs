//! Keeps the key cache honest across nodes: a poll of the change feed (the safety
//! net) and, on PostgreSQL, `LISTEN` for revocations and rotations as they happen.
//! The same connection hears that webhook deliveries were queued on any node, and
//! wakes this node's delivery worker.

use std::collections::HashSet;

use dialtone_domain::time::now;
use tokio::sync::watch;

use crate::state::AppState;

pub(super) async fn poll(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.key_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watermark = now();
    let mut applied = HashSet::new();
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match state.poll_key_changes(watermark, &mut applied).await {
            Ok(w) => watermark = w,
            Err(e) => tracing::warn!(error = %e, "polling key changes failed; will retry"),
        }
        if last_prune.elapsed() > std::time::Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            if let Err(e) = state
                .store
                .prune_key_changes(now() - chrono::TimeDelta::days(1))
                .await
            {
                tracing::warn!(error = %e, "pruning key changes failed");
            }
            // OAuth codes and tokens a day past their expiry can never work again.
            if let Err(e) = state
                .store
                .prune_oauth(now() - chrono::TimeDelta::days(1))
                .await
            {
                tracing::warn!(error = %e, "pruning OAuth codes and tokens failed");
            }
            // Registered OAuth clients nobody authorized within a day (the cap on
            // `/oauth/register` counts them).
            if let Err(e) = state
                .store
                .prune_unused_oauth_clients(now() - chrono::TimeDelta::days(1))
                .await
            {
                tracing::warn!(error = %e, "pruning unused OAuth clients failed");
            }
        }
    }
}

/// Evicts keys the moment another node revokes or rotates them (PostgreSQL
/// `LISTEN`). When the connection drops, it catches up from the change feed and
/// listens again; the poller stays as the safety net.
pub(super) async fn listen(state: AppState, mut stop: watch::Receiver<bool>) {
    let catch_up = |state: &AppState| {
        let state = state.clone();
        async move {
            let mut seen = HashSet::new();
            if let Err(e) = state
                .poll_key_changes(now() - chrono::TimeDelta::seconds(10), &mut seen)
                .await
            {
                tracing::warn!(error = %e, "catching up on key changes failed");
            }
        }
    };
    loop {
        let connected = tokio::select! {
            l = state.store.key_change_listener() => l,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut listener = match connected {
            Ok(Some(l)) => {
                // Deliveries queued while nobody listened: claim them now.
                state.deliveries_queued.notify_one();
                l
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "key change listener: cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let heard = tokio::select! {
                heard = listener.next() => heard,
                _ = stop.wait_for(|s| *s) => return,
            };
            match heard {
                Ok(dialtone_store::Heard::Key(id)) => state.key_cache.evict(&id),
                Ok(dialtone_store::Heard::Deliveries) => state.deliveries_queued.notify_one(),
                Ok(dialtone_store::Heard::Lost) => {
                    tracing::warn!("key change listener: connection lost; catching up");
                    catch_up(&state).await;
                    state.deliveries_queued.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "key change listener failed; reconnecting");
                    catch_up(&state).await;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}
