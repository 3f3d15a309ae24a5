//! What `GET /v1/me` said about each key lately, so that a read tool costs one REST
//! request rather than two.
//!
//! Nothing here decides what a key may do: REST does, on every request a tool makes.
//! The remembered answer only chooses which tools to offer and whether a read tool
//! is worth trying:
//! - a read tool runs its own REST request with the caller's key, which REST
//!   authenticates (revoked or expired: 401) and checks against the route's
//!   permission (403) — so a revoked key's next call fails, and a key that lost a
//!   permission is refused by REST, whatever was remembered;
//! - a refusal is never made from memory: before a tool is refused for a missing
//!   permission, `/v1/me` is asked again;
//! - `whoami`, `tools/list`, `initialize` and every write tool (preview and confirm:
//!   the preview makes no other request, and its token is bound to the key and
//!   workspace) ask `/v1/me` themselves, and refresh what is remembered;
//! - a 401 or 403 from any request forgets the key, and an answer is trusted for
//!   [`TTL`] at most.
//!
//! Keys are remembered by an HMAC under a secret drawn for the process, never in
//! the clear, with the workspace the caller names (organization keys).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::backend::Caller;
use crate::server::Me;

/// How long an answer of `/v1/me` is used.
pub const TTL: Duration = Duration::from_secs(60);
/// The most keys remembered at once.
const CAPACITY: usize = 10_000;

type Fingerprint = [u8; 32];

pub(crate) struct KnownKeys {
    secret: [u8; 32],
    map: Mutex<HashMap<Fingerprint, (Arc<Me>, Instant)>>,
}

impl KnownKeys {
    pub(crate) fn new() -> Self {
        KnownKeys {
            secret: rand::random(),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn fingerprint(&self, caller: &Caller) -> Option<Fingerprint> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(caller.key.expose_secret().as_bytes());
        mac.update(b"\n");
        if let Some(ws) = &caller.workspace {
            mac.update(ws.as_bytes());
        }
        Some(mac.finalize().into_bytes().into())
    }

    pub(crate) fn get(&self, caller: &Caller) -> Option<Arc<Me>> {
        let fp = self.fingerprint(caller)?;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&fp)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(me, _)| me.clone())
    }

    pub(crate) fn remember(&self, caller: &Caller, me: Arc<Me>) {
        let Some(fp) = self.fingerprint(caller) else {
            return;
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(&fp) {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(fp, (me, Instant::now()));
    }

    pub(crate) fn forget(&self, caller: &Caller) {
        if let Some(fp) = self.fingerprint(caller) {
            self.map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&fp);
        }
    }
}
