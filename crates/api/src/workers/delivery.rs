//! Delivers webhooks: claims due deliveries from the durable queue, signs each twice
//! (seed 001's `X-Dialtone-Signature` and Standard Webhooks), sends it through the
//! SSRF-guarded client and records each attempt with its outcome in one transaction
//! (several attempts per transaction when they end together).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialtone_domain::events::{Event, EventData};
use dialtone_domain::time::now;
use dialtone_domain::webhooks::{Attempt, retry_delay, sign_hex, sign_standard};
use dialtone_domain::{Error, Result};
use dialtone_store::{ClaimedDelivery, DeliveryOutcome};
use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::state::AppState;

/// How much of a receiver's answer is kept in the delivery log.
const RESPONSE_KEPT: usize = 4096;

/// Deliveries sent at once (each holds a permit until its attempt is recorded).
const IN_FLIGHT: usize = 256;
/// Most deliveries claimed by one statement.
const CLAIM_MAX: usize = 128;
/// Fewest free slots worth a claim while busy (fewer: wait for sends to finish).
const CLAIM_MIN: usize = 32;
/// Most attempts recorded in one transaction.
const RECORD_MAX: usize = 256;

/// An attempt made, waiting to be recorded; the permit frees its slot once it is.
type Done = (
    ClaimedDelivery,
    Attempt,
    DeliveryOutcome,
    OwnedSemaphorePermit,
);

/// Delivers webhooks. Woken as soon as deliveries are queued (the store's signal on
/// SQLite, `LISTEN` on PostgreSQL, see `key_changes`), and by a poll as the safety
/// net (retries coming due, expired leases, a missed wake-up). Claims as much as it
/// has room for and goes again while the queue gives it full claims; sends
/// concurrently; attempts are recorded in batches by [`record`], each attempt with its
/// outcome in one transaction. The queue is the source of truth: a claim not recorded
/// (crash, database error) comes back when its lease runs out.
pub(super) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    // A claim outlives the longest attempt; after that, the worker is presumed dead and
    // the delivery is claimable again.
    let lease =
        chrono::TimeDelta::from_std(state.config.webhook_timeout * 2 + Duration::from_secs(1))
            .unwrap_or(chrono::TimeDelta::seconds(31));
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (done, attempts) = mpsc::unbounded_channel::<Done>();
    let recorder = tokio::spawn(record(state.clone(), attempts));
    let mut tick = tokio::time::interval(state.config.webhook_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gauges_at: Option<Instant> = None;
    'run: loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.deliveries_queued.notified() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        loop {
            if *stop.borrow() {
                break 'run;
            }
            let free = slots.available_permits();
            if free < CLAIM_MIN.min(IN_FLIGHT) {
                tokio::select! {
                    p = slots.clone().acquire_many_owned(CLAIM_MIN as u32) => drop(p),
                    _ = stop.wait_for(|s| *s) => break 'run,
                }
                continue;
            }
            let want = free.min(CLAIM_MAX);
            match state.store.claim_deliveries(want as i64, lease).await {
                Ok(claimed) => {
                    let n = claimed.len();
                    for d in claimed {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            unreachable!("only claims what it has slots for")
                        };
                        let (state, done) = (state.clone(), done.clone());
                        tokio::spawn(async move {
                            let made = deliver_one(&state, &d).await;
                            match made {
                                Ok((attempt, outcome)) => {
                                    let _ = done.send((d, attempt, outcome, slot));
                                }
                                Err(e) => {
                                    tracing::warn!(delivery_id = %d.id, error = %e, "webhook delivery could not be sent; it will be retried");
                                }
                            }
                        });
                    }
                    if n < want {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook worker: claiming failed; will retry");
                    break;
                }
            }
        }
        // The gauges cost a count of the queue: at most once per poll interval.
        if gauges_at.is_none_or(|t| t.elapsed() >= state.config.webhook_poll_interval) {
            gauges_at = Some(Instant::now());
            if let Ok((depth, oldest)) = state.store.queue_depth().await {
                state.metrics.webhook_queue(depth, oldest);
            }
        }
    }
    // Stopping: finish the attempts under way and record them.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
    drop(done);
    let _ = recorder.await;
}

/// Records attempts as they end, as many per transaction as are waiting. A retry
/// due soon wakes the worker when it is due (the poll would find it later).
async fn record(state: AppState, mut attempts: mpsc::UnboundedReceiver<Done>) {
    let disable_after = chrono::TimeDelta::from_std(state.config.webhook_disable_after)
        .unwrap_or(chrono::TimeDelta::days(5));
    let mut batch = Vec::with_capacity(RECORD_MAX);
    while attempts.recv_many(&mut batch, RECORD_MAX).await > 0 {
        let (rows, slots): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|(d, attempt, outcome, slot)| ((d, attempt, outcome), slot))
            .unzip();
        if let Err(e) = state.store.finish_attempts(&rows, disable_after).await {
            tracing::warn!(error = %e, attempts = rows.len(), "webhook attempts could not be recorded; their deliveries will be retried");
            continue;
        }
        drop(slots);
        let soonest = rows
            .iter()
            .filter_map(|(_, _, o)| match o {
                DeliveryOutcome::Retry(at) => Some(*at),
                _ => None,
            })
            .min();
        if let Some(due) = soonest
            && let Ok(wait) = (due - now()).to_std()
            && wait < RETRY_WAKE_HORIZON
        {
            let wake = state.deliveries_queued.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                wake.notify_one();
            });
        }
    }
}

/// Retries due within this are woken for; later ones are left to the poll.
const RETRY_WAKE_HORIZON: Duration = Duration::from_secs(60);

/// Sends one delivery; the attempt and its outcome, to be recorded.
async fn deliver_one(state: &AppState, d: &ClaimedDelivery) -> Result<(Attempt, DeliveryOutcome)> {
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
    Ok((attempt, outcome))
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
