//! The background work of a serving node, one job per file, all started by [`spawn`].
//!
//! - [`delivery`]: webhook deliveries from the durable queue;
//! - [`simulator`]: the simulated carrier's due steps (calls and messages);
//! - [`campaigns`]: the campaign runner;
//! - [`reconcile`]: asks a real carrier about calls and messages whose reports stopped;
//! - [`usage`]: batched usage counters;
//! - [`key_changes`]: key-cache eviction from the change feed and `LISTEN`;
//! - [`redis`]: the shared rate limiter's connection.
//!
//! Every job is safe to run on several nodes at once: work is claimed in the
//! database (leases, compare-and-set), never held only in memory.

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

pub(crate) mod campaigns;
pub(crate) mod delivery;
mod key_changes;
mod reconcile;
mod redis;
mod simulator;
mod usage;

/// Starts every job; each stops when `stop` turns true.
pub(crate) fn spawn(state: &AppState, stop: &watch::Sender<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(usage::run(state.clone(), stop.subscribe())),
        tokio::spawn(key_changes::poll(state.clone(), stop.subscribe())),
        tokio::spawn(simulator::run(state.clone(), stop.subscribe())),
        tokio::spawn(reconcile::run(state.clone(), stop.subscribe())),
        tokio::spawn(delivery::run(state.clone(), stop.subscribe())),
        tokio::spawn(key_changes::listen(state.clone(), stop.subscribe())),
        tokio::spawn(redis::run(state.clone(), stop.subscribe())),
    ]
}
