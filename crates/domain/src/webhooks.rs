//! Webhooks: endpoints, their secrets, event matching, signatures and retry timing.
//!
//! Every delivery is signed two ways with the endpoint's secret: seed 001's
//! `X-Dialtone-Signature: hex(HMAC-SHA256(secret bytes, body))`, and Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,base64(HMAC-SHA256(key,
//! "{id}.{ts}.{body}"))`, key = the base64 part of a `whsec_` secret, else the secret's
//! bytes). Secrets are stored encrypted ([`SecretBox`]), never in clear.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::error::{Error, Result, Validator};
use crate::input::present;
use crate::time::{Timestamp, rfc3339};

pub const SECRET_PREFIX: &str = "whsec_";
pub const URL_MAX: usize = 2048;
pub const DESCRIPTION_MAX: usize = 500;

/// A new `whsec_…` secret: 24 random bytes, base64.
pub fn generate_secret() -> SecretString {
    let bytes: [u8; 24] = rand::random();
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The HMAC key of a secret: the decoded part of `whsec_…`, else the secret's bytes.
pub fn signing_key(secret: &str) -> Vec<u8> {
    match secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b| STANDARD.decode(b).ok())
    {
        Some(key) => key,
        None => secret.as_bytes().to_vec(),
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Seed 001's signature: `hex(HMAC-SHA256(secret's UTF-8 bytes, body))`.
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    hmac(secret.as_bytes(), &[body])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One Standard Webhooks signature: `v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))`.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        &signing_key(secret),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// Encrypts webhook secrets at rest with a key derived from the server secret.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(server_secret: &SecretString) -> Self {
        let key = hmac(
            server_secret.expose_secret().as_bytes(),
            &[b"dialtone webhook secrets v1"],
        );
        let cipher = <ChaCha20Poly1305 as KeyInit>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("32-byte key"));
        SecretBox { cipher }
    }

    /// `base64(nonce || ciphertext)`.
    pub fn seal(&self, secret: &SecretString) -> Result<String> {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(&nonce, secret.expose_secret().as_bytes())
            .map_err(|_| Error::internal(std::io::Error::other("could not seal a secret")))?;
        let mut out = nonce_bytes.to_vec();
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<SecretString> {
        let bad = || {
            Error::internal(std::io::Error::other(
                "a stored webhook secret cannot be opened (was the server secret changed?)",
            ))
        };
        let bytes = STANDARD.decode(sealed).map_err(|_| bad())?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| bad())?;
        let plain = self.cipher.decrypt(&nonce, ciphertext).map_err(|_| bad())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| bad())
    }
}

/// `POST /v1/webhooks`
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// `https://…` (or `http://…`); private and loopback addresses are refused.
    #[schema(example = "https://example.com/dialtone/webhooks")]
    pub url: String,
    /// Event types, or `["*"]` for all.
    #[schema(example = json!(["call.completed", "message.received"]))]
    pub events: Vec<String>,
    /// Your own signing secret (8 to 128 visible characters); omit for a generated `whsec_…`.
    pub secret: Option<String>,
    pub description: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

/// `PATCH /v1/webhooks/{id}`
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(example = "https://example.com/dialtone/webhooks")]
    pub url: Option<String>,
    #[schema(example = json!(["call.completed"]))]
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` re-enables a disabled endpoint; its kept events are then delivered.
    pub active: Option<bool>,
}

/// `POST /v1/hooks` (REST hooks, as Zapier subscribes).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    /// Where to POST each event (Zapier's subscription URL).
    #[schema(example = "https://hooks.zapier.com/hooks/standard/123/abc")]
    pub url: String,
    /// One event type.
    #[schema(example = "contact.created")]
    pub event: String,
}

/// Checks an event list; `*` alone means every event.
pub fn check_events(events: &[String]) -> Result<Vec<String>> {
    let mut v = Validator::new();
    v.check(
        !events.is_empty(),
        "events",
        "events must name at least one event type, or \"*\"",
    );
    for e in events {
        v.check(
            e == "*" || crate::events::EventType::parse(e).is_some(),
            "events",
            format!(
                "{}, or \"*\" for every type",
                crate::events::unknown_type_message(e)
            ),
        );
    }
    v.finish()?;
    let mut out: Vec<String> = events.to_vec();
    out.sort();
    out.dedup();
    if out.iter().any(|e| e == "*") {
        out = vec!["*".to_owned()];
    }
    Ok(out)
}

/// Whether an endpoint listening to `events` wants `event_type`.
pub fn wants(events: &[String], event_type: &str) -> bool {
    events.iter().any(|e| e == "*" || e == event_type)
}

/// Checks a caller's own secret.
pub fn check_caller_secret(secret: &str) -> Result<()> {
    let mut v = Validator::new();
    v.check(
        (8..=128).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic()),
        "secret",
        "secret must be 8 to 128 visible ASCII characters",
    );
    if let Some(b) = secret.strip_prefix(SECRET_PREFIX) {
        v.check(
            STANDARD.decode(b).is_ok(),
            "secret",
            "a whsec_ secret must be base64 after the prefix",
        );
    }
    v.finish()
}

/// Checks a URL's shape (its address is checked by the server, which resolves it).
pub fn check_url_shape(url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= URL_MAX
        && !url.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(Error::validation("url", "url must be an http(s) URL"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    #[schema(example = "whk_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "webhook_endpoint")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
    /// Why dialtone disabled it (`gone`: the receiver answered 410).
    pub disabled_reason: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// The answer to a creation: the endpoint and, this once for a generated one, its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret; shown only in this response.
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: Timestamp,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    /// The first 4 KB of the response.
    pub response_body: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    #[schema(example = "dlv_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "webhook_delivery")]
    pub object: &'static str,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `in_flight`, `succeeded` or `failed` (every retry used).
    pub status: String,
    pub attempts: Vec<Attempt>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The wait before attempt `n + 1` (0-based `n` attempts made), ±10 % jitter; `None`
/// when the schedule is used up.
pub fn retry_delay(
    schedule: &[std::time::Duration],
    attempts_made: usize,
) -> Option<std::time::Duration> {
    let base = schedule.get(attempts_made)?;
    let jitter = 0.9 + rand::random::<f64>() * 0.2;
    Some(base.mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_sign_as_seed_001_and_standard_webhooks_describe() {
        let generated = generate_secret();
        assert!(generated.expose_secret().starts_with("whsec_"));
        assert_eq!(signing_key(generated.expose_secret()).len(), 24);
        assert_eq!(signing_key("my-own-secret"), b"my-own-secret".to_vec());
        // Seed 001: hmac.new(secret.encode(), body, sha256).hexdigest()
        assert_eq!(
            sign_hex("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(
            sign_standard(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                b"{\"test\": 2432232314}"
            )
            .ends_with("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_server_secret() {
        let a = SecretBox::new(&SecretString::from("server-one-0123456789"));
        let b = SecretBox::new(&SecretString::from("server-two-0123456789"));
        let sealed = a.seal(&SecretString::from("whsec_abc")).expect("seal");
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(a.open(&sealed).expect("open").expose_secret(), "whsec_abc");
        assert!(b.open(&sealed).is_err());
    }

    #[test]
    fn events_are_checked_and_matched() {
        assert_eq!(
            check_events(&["*".into(), "call.completed".into()]).expect("ok"),
            vec!["*"]
        );
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["call.exploded".into()]).is_err());
        assert!(wants(&["call.completed".into()], "call.completed"));
        assert!(!wants(&["call.completed".into()], "call.failed"));
        assert!(check_caller_secret("short").is_err());
        assert!(check_caller_secret("whsec_!!!notbase64").is_err());
        assert!(check_caller_secret("a-fine-secret").is_ok());
    }
}
