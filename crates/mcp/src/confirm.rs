//! Confirmation tokens for write tools.
//!
//! A preview answers a token `cfm_{expiry}_{mac}`: an HMAC over the key, the tool,
//! the expiry and the exact arguments. The confirm call repeats the arguments with
//! the token, so any node holding the same secret can check it without shared state.
//! A token works once: this process remembers the tokens it accepted until they
//! expire, and the write goes out with the token as its `Idempotency-Key`, so a
//! token confirmed again on another node is answered as a replay and refused too.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a preview stays confirmable.
pub const TTL_SECONDS: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Invalid,
    Expired,
    Used,
}

impl Refusal {
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::Invalid => {
                "The confirmation token does not match this key, tool and these arguments. Call the tool without confirmation_token for a new preview."
            }
            Refusal::Expired => {
                "The confirmation token has expired. Call the tool without confirmation_token for a new preview."
            }
            Refusal::Used => {
                "The confirmation token was already used. Call the tool without confirmation_token for a new preview."
            }
        }
    }
}

pub struct Confirmations {
    secret: [u8; 32],
    used: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Confirmations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmations").finish_non_exhaustive()
    }
}

impl Confirmations {
    pub fn new(secret: [u8; 32]) -> Self {
        Confirmations {
            secret,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// For a single process (stdio): tokens need not outlive it.
    pub fn random() -> Self {
        Self::new(rand::random())
    }

    fn mac(&self, key_id: &str, tool: &str, expires: i64, canonical_args: &str) -> String {
        // HMAC takes keys of any length; 32 bytes never fails.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        for part in [key_id, tool, &expires.to_string(), canonical_args] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex_prefix(&mac.finalize().into_bytes(), 16)
    }

    pub fn issue(&self, key_id: &str, tool: &str, canonical_args: &str, now: i64) -> String {
        let expires = now + TTL_SECONDS;
        format!(
            "cfm_{expires}_{}",
            self.mac(key_id, tool, expires, canonical_args)
        )
    }

    /// Checks `token` and, when good, spends it (at most once per process).
    pub fn redeem(
        &self,
        token: &str,
        key_id: &str,
        tool: &str,
        canonical_args: &str,
        now: i64,
    ) -> Result<(), Refusal> {
        // Only the exact spelling `issue` produced: `cfm_0…` or `cfm_+…` would sign the
        // same and be spent under another name.
        let (expires, mac) = token
            .strip_prefix("cfm_")
            .and_then(|t| t.split_once('_'))
            .and_then(|(e, m)| {
                let n = e.parse::<i64>().ok()?;
                (n.to_string() == e).then_some((n, m))
            })
            .ok_or(Refusal::Invalid)?;
        let expected = self.mac(key_id, tool, expires, canonical_args);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(Refusal::Invalid);
        }
        if expires < now {
            return Err(Refusal::Expired);
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.retain(|_, e| *e >= now);
        if used.insert(token.to_owned(), expires).is_some() {
            return Err(Refusal::Used);
        }
        Ok(())
    }
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_for_the_same_key_tool_and_arguments() {
        let c = Confirmations::random();
        let t = c.issue("key_1", "send_message", "to=+1&body=hi", 1_000);
        assert_eq!(
            c.redeem(&t, "key_2", "send_message", "to=+1&body=hi", 1_001),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            c.redeem(&t, "key_1", "place_call", "to=+1&body=hi", 1_001),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            c.redeem(&t, "key_1", "send_message", "to=+1&body=bye", 1_001),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            c.redeem(&t, "key_1", "send_message", "to=+1&body=hi", 1_001),
            Ok(())
        );
        assert_eq!(
            c.redeem(&t, "key_1", "send_message", "to=+1&body=hi", 1_002),
            Err(Refusal::Used)
        );
    }

    #[test]
    fn expired_and_forged_tokens_are_refused() {
        let c = Confirmations::random();
        let t = c.issue("key_1", "place_call", "to=+1", 1_000);
        assert_eq!(
            c.redeem(&t, "key_1", "place_call", "to=+1", 1_000 + TTL_SECONDS + 1),
            Err(Refusal::Expired)
        );
        let (exp, mac) = t["cfm_".len()..].split_once('_').expect("shape");
        for respelled in [
            format!("cfm_0{exp}_{mac}"),
            format!("cfm_+{exp}_{mac}"),
            format!("cfm_{exp}_{}", mac.to_uppercase()),
        ] {
            assert_eq!(
                c.redeem(&respelled, "key_1", "place_call", "to=+1", 1_001),
                Err(Refusal::Invalid),
                "{respelled}"
            );
        }
        let other = Confirmations::random().issue("key_1", "place_call", "to=+1", 1_000);
        assert_eq!(
            c.redeem(&other, "key_1", "place_call", "to=+1", 1_001),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            c.redeem("cfm_nonsense", "key_1", "place_call", "to=+1", 1_001),
            Err(Refusal::Invalid)
        );
    }
}
