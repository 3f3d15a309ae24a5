//! The in-memory cache of verified keys, and how it learns of revocations.
//!
//! Entries are keyed by token digest. A revocation through this node evicts the key
//! before the revoking request answers. Changes made elsewhere (another node, an
//! operator command) arrive through the `api_key_changes` feed, polled every
//! `key_poll_interval`. A lookup that raced an eviction cannot re-insert a stale key:
//! inserts carry the generation read before the database lookup and are dropped if an
//! eviction happened since.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dialtone_domain::auth::Principal;
use dialtone_domain::keys::Digest;

/// Beyond this many entries the cache starts over (keys are few; this bounds memory).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct KeyCache {
    generation: AtomicU64,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_digest: HashMap<Digest, Arc<Principal>>,
    /// Every cached digest of a key: one for an API key, one per live access token of
    /// an OAuth grant (an eviction forgets them all).
    digest_by_id: HashMap<String, Vec<Digest>>,
}

impl KeyCache {
    pub fn get(&self, digest: &Digest) -> Option<Arc<Principal>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_digest.get(digest).cloned()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a key looked up when the generation was `generation`.
    pub fn insert(&self, generation: u64, digest: Digest, principal: Arc<Principal>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if inner.by_digest.len() >= MAX_ENTRIES {
            inner.by_digest.clear();
            inner.digest_by_id.clear();
        }
        let digests = inner
            .digest_by_id
            .entry(principal.key_id.clone())
            .or_default();
        if !digests.contains(&digest) {
            digests.push(digest);
        }
        inner.by_digest.insert(digest, principal);
    }

    /// Forgets a key; its next use is checked against the database.
    pub fn evict(&self, key_id: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        for digest in inner.digest_by_id.remove(key_id).unwrap_or_default() {
            inner.by_digest.remove(&digest);
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_digest
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
