//! The shared state of a server and its lifecycle: start, background tasks, shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use dialtone_domain::keys::KeyDigester;
use dialtone_domain::time::{Timestamp, now};
use dialtone_domain::{Error, Result};
use dialtone_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::cache::KeyCache;
use crate::auth::ratelimit::RateLimiter;
use crate::auth::usage::UsageCounter;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Everything a request handler may need; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub config: ServerConfig,
    pub digester: KeyDigester,
    pub key_cache: KeyCache,
    pub usage: UsageCounter,
    pub rate_limiter: RateLimiter,
    pub metrics: Metrics,
    /// Seals webhook secrets at rest.
    pub secret_box: dialtone_domain::webhooks::SecretBox,
    /// The client webhook deliveries go through.
    pub webhook_client: reqwest::Client,
    workspaces_seen: RwLock<HashSet<(String, String)>>,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig) -> Self {
        AppState(Arc::new(Inner {
            digester: KeyDigester::new(&config.server_secret),
            rate_limiter: match &config.redis_url {
                Some(url) => RateLimiter::with_redis(config.rate_limit_per_key, url)
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "invalid REDIS_URL; rate limits are per node");
                        RateLimiter::new(config.rate_limit_per_key)
                    }),
                None => RateLimiter::new(config.rate_limit_per_key),
            },
            secret_box: dialtone_domain::webhooks::SecretBox::new(&config.server_secret),
            webhook_client: crate::webhooks::client(
                config.webhook_timeout,
                config.webhook_allow_private,
            ),
            store,
            config,
            key_cache: KeyCache::default(),
            usage: UsageCounter::default(),
            metrics: Metrics::new(),
            workspaces_seen: RwLock::new(HashSet::new()),
        }))
    }

    /// Checks that a workspace belongs to an organization (remembered once seen:
    /// workspaces are never moved between organizations).
    pub async fn check_workspace(&self, org_id: &str, workspace_id: &str) -> Result<()> {
        let pair = (org_id.to_owned(), workspace_id.to_owned());
        if self
            .workspaces_seen
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pair)
        {
            return Ok(());
        }
        self.store.get_workspace(org_id, workspace_id).await?;
        self.workspaces_seen
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pair);
        Ok(())
    }

    /// The carrier for a mode, or 503 `CARRIER_UNAVAILABLE` for live mode without one.
    pub fn carrier(
        &self,
        mode: dialtone_domain::tenancy::Mode,
    ) -> Result<&'static dyn crate::carrier::Carrier> {
        crate::carrier::for_mode(mode, self.config.live_simulator).ok_or(Error::CarrierUnavailable)
    }

    /// Writes the usage counted in memory; counts are put back if the write fails.
    pub async fn flush_usage(&self) -> Result<()> {
        let deltas = self.usage.drain();
        if let Err(e) = self.store.flush_usage(&deltas).await {
            self.usage.restore(deltas);
            return Err(e);
        }
        Ok(())
    }

    /// Applies key changes recorded since `since`; returns the newest change time seen.
    async fn poll_key_changes(
        &self,
        since: Timestamp,
        applied: &mut HashSet<(String, Timestamp)>,
    ) -> Result<Timestamp> {
        // Re-read a margin before the watermark: on PostgreSQL a change can commit
        // after a later-stamped one. Evicting twice is harmless; `applied` avoids it.
        let margin = chrono::TimeDelta::seconds(2);
        let changes = self.store.key_changes_since(since - margin).await?;
        let mut newest = since;
        for c in changes {
            newest = newest.max(c.changed_at);
            if applied.insert((c.key_id.clone(), c.changed_at)) {
                self.key_cache.evict(&c.key_id);
            }
        }
        applied.retain(|(_, at)| *at >= newest - margin);
        Ok(newest)
    }
}

/// A running server.
pub struct App {
    pub state: AppState,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Serves on `listener` (bind port 0 in tests) and starts the background tasks.
    pub async fn start(listener: TcpListener, store: Store, config: ServerConfig) -> Result<App> {
        let addr = listener.local_addr().map_err(Error::internal)?;
        let state = AppState::new(store, config);
        let router = crate::router::build(state.clone());
        let (shutdown, mut rx) = watch::channel(false);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
        });
        let tasks = vec![
            tokio::spawn(usage_flusher(state.clone(), shutdown.subscribe())),
            tokio::spawn(key_change_poller(state.clone(), shutdown.subscribe())),
            tokio::spawn(simulator(state.clone(), shutdown.subscribe())),
            tokio::spawn(webhook_worker(state.clone(), shutdown.subscribe())),
            tokio::spawn(key_change_listener(state.clone(), shutdown.subscribe())),
            tokio::spawn(redis_connector(state.clone(), shutdown.subscribe())),
        ];
        Ok(App {
            state,
            addr,
            shutdown,
            server,
            tasks,
        })
    }

    /// Stops accepting, finishes in-flight requests, writes pending usage.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.server.await {
            tracing::error!(error = %e, "server task failed");
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.state.flush_usage().await {
            tracing::error!(error = %e, "could not write usage counters at shutdown");
        }
    }

    /// Waits until the server stops on its own (it only does on error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.server).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

async fn usage_flusher(state: AppState, mut stop: watch::Receiver<bool>) {
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

async fn key_change_poller(state: AppState, mut stop: watch::Receiver<bool>) {
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
        }
    }
}

/// Advances simulated calls and messages whose next step is due (state lives in the database, so a
/// restart resumes them; steps are compare-and-set, so nodes may share the work).
async fn simulator(state: AppState, mut stop: watch::Receiver<bool>) {
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
        if let Err(e) = crate::campaigns::run_all(&state).await {
            tracing::warn!(error = %e, "campaign runner failed; will retry");
        }
    }
}

/// Delivers webhooks: claims due deliveries (a full batch means more are waiting, so
/// it goes again at once) and keeps the queue gauges current.
async fn webhook_worker(state: AppState, mut stop: watch::Receiver<bool>) {
    const BATCH: i64 = 64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match crate::webhooks::deliver_due(&state, BATCH).await {
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

/// Evicts keys the moment another node revokes or rotates them (PostgreSQL
/// `LISTEN`). When the connection drops, it catches up from the change feed and
/// listens again; the poller stays as the safety net.
async fn key_change_listener(state: AppState, mut stop: watch::Receiver<bool>) {
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
            Ok(Some(l)) => l,
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
                Ok(dialtone_store::Heard::Lost) => {
                    tracing::warn!("key change listener: connection lost; catching up");
                    catch_up(&state).await;
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

async fn redis_connector(state: AppState, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        _ = state.rate_limiter.connect_loop() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}
