//! Delivers webhooks: claims due deliveries from the durable queue, signs each twice
//! (seed 001's `X-Dialtone-Signature` and Standard Webhooks), sends it through the
//! SSRF-guarded client and records the attempt and its outcome in one transaction.

use std::time::{Duration, Instant};

use dialtone_domain::events::{Event, EventData};
use dialtone_domain::time::now;
use dialtone_domain::webhooks::{Attempt, retry_delay, sign_hex, sign_standard};
use dialtone_domain::{Error, Result};
use dialtone_store::{ClaimedDelivery, DeliveryOutcome};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::state::AppState;

/// How much of a receiver's answer is kept in the delivery log.
const RESPONSE_KEPT: usize = 4096;

/// Delivers webhooks: claims due deliveries (a full batch means more are waiting, so
/// it goes again at once) and keeps the queue gauges current.
pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    const BATCH: i64 = 64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match deliver_due(&state, BATCH).await {
                Ok(n) if n as i64 == BATCH && !*stop.borrow() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook worker: claiming failed; will retry");
                    break;
                }
            }
        }
        if let Ok((depth, oldest)) = state.store.queue_depth().await {
            state.metrics.webhook_queue(depth, oldest);
        }
    }
}

/// One pass of the worker: claims due deliveries and sends them concurrently.
/// Returns how many it claimed.
pub(crate) async fn deliver_due(state: &AppState, batch: i64) -> Result<usize> {
    // A claim outlives the longest attempt; after that, the worker is presumed dead and
    // the delivery is claimable again.
    let lease =
        chrono::TimeDelta::from_std(state.config.webhook_timeout * 2 + Duration::from_secs(1))
            .unwrap_or(chrono::TimeDelta::seconds(31));
    let claimed = state.store.claim_deliveries(batch, lease).await?;
    let n = claimed.len();
    let mut set = tokio::task::JoinSet::new();
    for d in claimed {
        let state = state.clone();
        set.spawn(async move {
            if let Err(e) = deliver_one(&state, &d).await {
                tracing::warn!(delivery_id = %d.id, error = %e, "webhook delivery could not be recorded; it will be retried");
            }
        });
    }
    while set.join_next().await.is_some() {}
    Ok(n)
}

async fn deliver_one(state: &AppState, d: &ClaimedDelivery) -> Result<()> {
    let event = Event {
        id: d.event_id.clone(),
        object: "event",
        event_type: d.event_type.clone(),
        created_at: d.event_created_at,
        livemode: d.livemode,
        data: EventData {
            object: d.data.get("object").cloned().unwrap_or_default(),
        },
    };
    let body = serde_json::to_vec(&event).map_err(Error::internal)?;
    let started = Instant::now();
    let attempted_at = now();
    let made = usize::try_from(d.attempts).unwrap_or(0) + 1;
    let schedule = &state.config.webhook_retry_schedule;
    let retry = |wait: Option<Duration>| match retry_delay(schedule, made) {
        Some(delay) => {
            let delay = wait.map_or(delay, |w| w.max(delay).min(Duration::from_secs(86_400)));
            DeliveryOutcome::Retry(
                attempted_at
                    + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::seconds(5)),
            )
        }
        None => DeliveryOutcome::Failed,
    };
    let (attempt, outcome) = if body.len() > state.config.webhook_max_payload {
        let error = format!(
            "event body of {} bytes is larger than the {}-byte limit",
            body.len(),
            state.config.webhook_max_payload
        );
        (
            Attempt {
                attempted_at,
                status_code: None,
                duration_ms: 0,
                response_body: String::new(),
                error: Some(error),
            },
            DeliveryOutcome::Failed,
        )
    } else {
        let secret = state.secret_box.open(&d.secret_sealed)?;
        let ts = attempted_at.timestamp();
        // During a rotation's overlap both secrets sign (Standard Webhooks takes a list).
        let mut signatures = sign_standard(secret.expose_secret(), &d.event_id, ts, &body);
        if let (Some(previous), Some(until)) =
            (&d.previous_secret_sealed, d.previous_secret_expires_at)
            && until > attempted_at
        {
            let previous = state.secret_box.open(previous)?;
            signatures.push(' ');
            signatures.push_str(&sign_standard(
                previous.expose_secret(),
                &d.event_id,
                ts,
                &body,
            ));
        }
        let request = state
            .webhook_client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signatures)
            .header(
                state.config.webhook_signature_header.as_str(),
                sign_hex(secret.expose_secret(), &body),
            )
            .body(body);
        match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = read_prefix(resp).await;
                let outcome = if status.is_success() {
                    DeliveryOutcome::Succeeded
                } else if status == reqwest::StatusCode::GONE {
                    DeliveryOutcome::Gone
                } else {
                    retry(wait)
                };
                let attempt = Attempt {
                    attempted_at,
                    status_code: Some(i32::from(status.as_u16())),
                    duration_ms: started.elapsed().as_millis() as i64,
                    response_body: text,
                    error: None,
                };
                (attempt, outcome)
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("request failed: {}", without_url(&e))
                };
                let attempt = Attempt {
                    attempted_at,
                    status_code: None,
                    duration_ms: started.elapsed().as_millis() as i64,
                    response_body: String::new(),
                    error: Some(error),
                };
                (attempt, retry(None))
            }
        }
    };
    state.metrics.webhook_attempt(&outcome, attempt.duration_ms);
    let disable_after = chrono::TimeDelta::from_std(state.config.webhook_disable_after)
        .unwrap_or(chrono::TimeDelta::days(5));
    state
        .store
        .finish_attempt(d, &attempt, &outcome, disable_after)
        .await
}

/// The first 4 KB of an answer, as text.
async fn read_prefix(mut resp: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_KEPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(RESPONSE_KEPT);
    String::from_utf8_lossy(&kept).into_owned()
}

/// An error's text without the URL (which may hold credentials of the receiver).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| "connection error".to_owned())
}
