//! `POST /v1/secret-scanning/report`: API keys found in public, as GitHub's secret
//! scanning partner program reports them.
//!
//! The body is a JSON array of `{token, type, url, source}`, signed by the reporter:
//! `Github-Public-Key-Identifier` names one of the operator's configured public keys
//! (`--secret-scanning-keys FILE`, the JSON of GitHub's public-keys endpoint) and
//! `Github-Public-Key-Signature` is the base64 DER ECDSA P-256 / SHA-256 signature of
//! the raw body. No API key is involved: the route is outside the bearer-auth layer,
//! like the carrier callbacks. A missing, unknown or wrong signature is a 401 in the
//! spec's shape with nothing read or written; a server without keys answers 404 (the
//! route does not exist there).
//!
//! Each token is checked by its checksum and brand first ([`parse`]): garbage and other
//! brands are `false_positive` without a database lookup. A token of a key of this
//! server is `true_positive`; when the key is active, the report is acted on once
//! ([`dialtone_store::Store::report_leaked_key`]): a live key is revoked at once through
//! the revocation path every face uses (the change feed and `NOTIFY` reach every node,
//! this node's cache is evicted before the answer) unless the server only flags
//! (`--secret-scanning-action flag`); a test key is only flagged (it reaches no real
//! calls or money, and revoking it would break a customer's test suite over a report
//! they can act on themselves). Either way the owners are told: the `api_key.leaked`
//! event, the audit log, and a banner on the dashboard's keys page naming where it
//! was found. A replayed report changes nothing more.
//!
//! The answer is GitHub's: `[{token_raw, token_type, label}]`. Reported tokens are
//! secrets: they are never logged, stored or put in an error; only this answer to the
//! reporter carries them back, as the protocol requires.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use dialtone_domain::auth::{Actor, plan_revocation};
use dialtone_domain::keys::parse;
use dialtone_domain::tenancy::Mode;
use dialtone_domain::{Error, Result};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// Where reports are received.
pub const PATH: &str = "/v1/secret-scanning/report";
/// Names the public key that signed the report.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// The base64 DER ECDSA signature of the raw body.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The audit log's actor (and the event's `reporter`) for these reports.
pub const REPORTER: &str = "github_secret_scanning";

/// What a report of a live, active key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakAction {
    /// Revoke it at once (the default).
    #[default]
    Revoke,
    /// Only tell the owners (event, audit log, dashboard banner); the key keeps working.
    Flag,
}

impl std::str::FromStr for LeakAction {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "revoke" => Ok(LeakAction::Revoke),
            "flag" => Ok(LeakAction::Flag),
            other => Err(format!(
                "secret scanning action must be revoke or flag, not {other:?}"
            )),
        }
    }
}

/// The public keys reports may be signed with, by identifier.
#[derive(Debug, Clone)]
pub struct ReporterKeys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

impl ReporterKeys {
    /// Reads the JSON of GitHub's public-keys endpoint
    /// (`{"public_keys":[{"key_identifier","key":"-----BEGIN PUBLIC KEY-----…","is_current"}]}`).
    /// Every key listed is accepted (`is_current` only says which one GitHub signs with
    /// now; older ones may still sign reports in flight).
    pub fn from_json(text: &str) -> std::result::Result<ReporterKeys, String> {
        let file: KeysFile = serde_json::from_str(text)
            .map_err(|e| format!("not the JSON of GitHub's public keys: {e}"))?;
        let keys = file
            .public_keys
            .into_iter()
            .map(|k| {
                VerifyingKey::from_public_key_pem(k.key.trim())
                    .map(|v| (k.key_identifier.clone(), v))
                    .map_err(|e| {
                        format!(
                            "key {:?} is not a P-256 public key in PEM: {e}",
                            k.key_identifier
                        )
                    })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("the file lists no public keys".to_owned());
        }
        Ok(ReporterKeys { keys })
    }

    /// Reads and parses a keys file.
    pub fn load(path: &std::path::Path) -> std::result::Result<ReporterKeys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How many keys were loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true once loaded (at least one key); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when `signature` (base64 of a DER, or fixed 64-byte, ECDSA signature) is
    /// the key `key_id`'s signature of `body`.
    pub fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == key_id) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&bytes).or_else(|_| Signature::from_slice(&bytes)) else {
            return false;
        };
        key.verify(body, &sig).is_ok()
    }
}

/// One reported token. Deliberately without `Debug`: `token` is a secret.
#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// One line of the answer, as GitHub expects it.
#[derive(Serialize)]
struct Label {
    token_raw: String,
    token_type: String,
    /// `true_positive` (a key of this server) or `false_positive`.
    label: &'static str,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(report))
}

async fn report(State(state): State<AppState>, req: Request) -> Response {
    match handle(&state, req).await {
        Ok(labels) => axum::Json(labels).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

async fn handle(state: &AppState, req: Request) -> Result<Vec<Label>> {
    let Some(keys) = state.config.secret_scanning_keys.clone() else {
        return Err(Error::NotFound { resource: "route" });
    };
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    if !signed(&keys, &parts.headers, &body) {
        tracing::warn!("a secret scanning report had a missing, unknown or wrong signature");
        return Err(Error::Unauthorized);
    }
    let reported: Vec<Reported> = serde_json::from_slice(&body).map_err(|_| {
        // serde's message could quote a token: never pass it on.
        Error::validation(
            "body",
            "the body must be a JSON array of {token, type, url, source}",
        )
    })?;
    let mut labels = Vec::with_capacity(reported.len());
    for r in reported {
        let known = act_on(state, &r).await?;
        labels.push(Label {
            label: if known {
                "true_positive"
            } else {
                "false_positive"
            },
            token_raw: r.token,
            token_type: r.token_type,
        });
    }
    Ok(labels)
}

fn signed(keys: &ReporterKeys, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match (header(KEY_ID_HEADER), header(SIGNATURE_HEADER)) {
        (Some(id), Some(sig)) => keys.verify(id, sig, body),
        _ => false,
    }
}

/// Acts on one reported token; true when it is a key of this server.
async fn act_on(state: &AppState, r: &Reported) -> Result<bool> {
    // Checksum and brand first: no database work for garbage or another brand.
    let Some(parsed) = parse(&r.token) else {
        return Ok(false);
    };
    let brand = &state.config.key_brand;
    let ours = parsed
        .token
        .strip_prefix(brand.as_str())
        .is_some_and(|rest| rest.starts_with('_'));
    if !ours {
        return Ok(false);
    }
    let digest = state.digester.digest(parsed.token);
    let Some((key, _)) = state.store.find_key_by_digest(&digest).await? else {
        return Ok(false);
    };
    if !key.is_active(dialtone_domain::time::now()) {
        // Already revoked or expired: a real key, nothing left to do.
        return Ok(true);
    }
    let revoke =
        state.config.secret_scanning_action == LeakAction::Revoke && key.mode == Mode::Live;
    if revoke {
        // The operator configured the reporter; the same rule every revocation passes.
        plan_revocation(Actor::Operator, &key)?;
    }
    let (_, done) = state
        .store
        .report_leaked_key(
            &key.id,
            revoke,
            REPORTER,
            &clean(r.url.as_deref(), 2048),
            &clean(r.source.as_deref(), 64),
        )
        .await?;
    if done == Some("revoked") {
        state.key_cache.evict(&key.id);
    }
    if let Some(action) = done {
        tracing::warn!(key_id = %key.id, action, "an API key was reported leaked by secret scanning");
    }
    Ok(true)
}

/// A reporter's text made safe to store and show: control characters (NUL included)
/// dropped, at most `max` characters.
fn clean(text: Option<&str>, max: usize) -> String {
    text.unwrap_or("unknown")
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!("revoke".parse::<LeakAction>(), Ok(LeakAction::Revoke));
        assert_eq!("flag".parse::<LeakAction>(), Ok(LeakAction::Flag));
        assert!("delete".parse::<LeakAction>().is_err());
    }

    #[test]
    fn bad_key_files_are_refused() {
        assert!(ReporterKeys::from_json("{}").is_err());
        assert!(ReporterKeys::from_json(r#"{"public_keys":[]}"#).is_err());
        assert!(
            ReporterKeys::from_json(
                r#"{"public_keys":[{"key_identifier":"a","key":"not pem","is_current":true}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn reporter_text_is_cleaned() {
        assert_eq!(clean(Some("a\u{0}b\nc"), 10), "abc");
        assert_eq!(clean(Some("ééé"), 2), "éé");
        assert_eq!(clean(None, 64), "unknown");
    }
}
