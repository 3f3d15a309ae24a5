//! `Idempotency-Key`: a retried request returns the first answer and has its effect
//! (and its charge) once.
//!
//! A key is scoped to one workspace and mode and kept 24 hours. The stored answer is
//! written in the same transaction as the effect, so a crash leaves either both or
//! neither. Reusing a key for a different request (another path or body) is a 409.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How long a key is remembered, in hours.
pub const RETENTION_HOURS: i64 = 24;
pub const KEY_MAX: usize = 255;

/// A validated `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
}

impl IdempotencyKey {
    pub fn new(key: &str, method: &str, path: &str, body: &[u8]) -> Result<Self> {
        let key = key.trim();
        if key.is_empty() || key.len() > KEY_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::validation(
                "Idempotency-Key",
                format!("Idempotency-Key must be 1 to {KEY_MAX} visible ASCII characters"),
            ));
        }
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(body);
        let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(IdempotencyKey {
            key: key.to_owned(),
            fingerprint,
        })
    }
}

/// An answer stored under a key, to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

impl StoredResponse {
    /// The replay, or a 409 when the key was used for another request.
    pub fn replay_for(self, key: &IdempotencyKey) -> Result<StoredResponse> {
        if self.fingerprint == key.fingerprint {
            Ok(self)
        } else {
            Err(Error::Conflict {
                message: "This Idempotency-Key was already used with a different request."
                    .to_owned(),
                details: None,
            })
        }
    }
}

/// What a mutating storage call did: the effect, or nothing because the key had
/// already been used (then the stored answer is replayed).
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Replay(StoredResponse),
}

/// The `Idempotency-Key` of a request whose stored answer is not simply the object it
/// made, and the answer a replay gets: its status and JSON body, made from what the
/// request did. The answer is stored, so it never holds a secret (a key's token, a
/// webhook's signing secret): replays of such creations answer without them.
pub struct Idem<'a, T> {
    pub key: &'a IdempotencyKey,
    pub answer: fn(&T) -> Result<(u16, String)>,
}

impl<T> Clone for Idem<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Idem<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ_by_path_and_body() {
        let a = IdempotencyKey::new("k1", "POST", "/v1/a", b"{}").expect("valid");
        let b = IdempotencyKey::new("k1", "POST", "/v1/a", b"{\"x\":1}").expect("valid");
        let c = IdempotencyKey::new("k1", "POST", "/v1/b", b"{}").expect("valid");
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert!(IdempotencyKey::new("", "POST", "/", b"").is_err());
        assert!(IdempotencyKey::new("has space", "POST", "/", b"").is_err());
        let stored = StoredResponse {
            fingerprint: a.fingerprint.clone(),
            status: 201,
            body: "{}".into(),
        };
        assert!(stored.clone().replay_for(&a).is_ok());
        assert!(stored.replay_for(&b).is_err());
    }
}
