//! The shared state of a server and its lifecycle: start, background tasks, shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use dialtone_domain::keys::KeyDigester;
use dialtone_domain::time::Timestamp;
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
    /// OAuth client registrations per client address (`/oauth/register`).
    pub registration_limiter: RateLimiter,
    pub metrics: Metrics,
    /// Seals webhook secrets at rest.
    pub secret_box: dialtone_domain::webhooks::SecretBox,
    /// The client webhook deliveries go through.
    pub webhook_client: reqwest::Client,
    /// The simulator (test mode) and live mode's carrier.
    pub carriers: crate::carrier::Carriers,
    /// Whether live mode's carrier answered its last credentials check (`/readyz`).
    pub carrier_ready: std::sync::atomic::AtomicBool,
    /// Wakes the delivery worker: signalled by the store when a transaction that queued
    /// deliveries commits (SQLite), or by the `LISTEN` connection (PostgreSQL).
    pub deliveries_queued: Arc<tokio::sync::Notify>,
    workspaces_seen: RwLock<HashSet<(String, String)>>,
}

/// A limiter shared through Redis when `redis_url` is set (else, or if the URL is
/// invalid, this node's own).
fn shared(limiter: impl Fn() -> RateLimiter, redis_url: Option<&str>) -> RateLimiter {
    match redis_url {
        Some(url) => limiter().shared_through(url).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "invalid REDIS_URL; rate limits are per node");
            limiter()
        }),
        None => limiter(),
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig) -> Result<Self> {
        Ok(AppState(Arc::new(Inner {
            carriers: crate::carrier::Carriers::new(&config)?,
            carrier_ready: std::sync::atomic::AtomicBool::new(false),
            deliveries_queued: store.deliveries_signal().unwrap_or_default(),
            digester: KeyDigester::new(&config.server_secret),
            rate_limiter: shared(
                || RateLimiter::new(config.rate_limit_per_key),
                config.redis_url.as_deref(),
            ),
            registration_limiter: shared(
                || RateLimiter::per_hour(config.oauth_registrations_per_hour),
                config.redis_url.as_deref(),
            ),
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
        })))
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
    ) -> Result<&dyn dialtone_telephony::Carrier> {
        self.carriers.for_mode(mode)
    }

    /// Checks live mode's carrier credentials (one authenticated request). A carrier
    /// that refuses them stops the server from starting; one that cannot be reached
    /// leaves it serving, with `/readyz` saying live calling is not ready.
    pub async fn check_carrier(&self) -> Result<()> {
        let Some(carrier) = self.carriers.live() else {
            return Ok(());
        };
        match carrier.check().await {
            Ok(()) => {
                self.carrier_ready
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.is_rejection() => Err(Error::Carrier {
                code: e.code,
                message: format!(
                    "{} refused the account's credentials: {}",
                    carrier.name(),
                    e.message
                ),
            }),
            Err(e) => {
                self.carrier_ready
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(carrier = carrier.name(), error = %e, "the carrier cannot be reached; live calls will fail until it can");
                Ok(())
            }
        }
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
    pub(crate) async fn poll_key_changes(
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
        let state = AppState::new(store, config)?;
        state.check_carrier().await?;
        let router = crate::router::build(state.clone());
        let (shutdown, rx) = watch::channel(false);
        let limits = crate::server::Limits::from_config(&state.config);
        let server = tokio::spawn(crate::server::serve(listener, router, limits, rx));
        let tasks = crate::workers::spawn(&state, &shutdown);
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
