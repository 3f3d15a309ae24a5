//! OAuth 2.1 rules for remote MCP clients: PKCE (S256 only), scopes (dialtone's
//! permissions plus the `read` and `write` shorthands), redirect-URI registration and
//! matching (exact; loopback ports may vary, RFC 8252), token formats and lifetimes.
//!
//! Pure functions: the HTTP side is `dialtone_api::oauth`, storage `dialtone_store::oauth`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use sha2::{Digest as _, Sha256};

use crate::permissions::{Permission, Permissions, Resource};

/// How long an access token works.
pub const ACCESS_TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(1);
/// How long an authorization code may be exchanged.
pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// How long an unused refresh token stays good (each use issues a new one).
pub const REFRESH_TOKEN_LIFETIME: TimeDelta = TimeDelta::days(90);

/// An OAuth error, answered as `{"error": code, "error_description": …}` (RFC 6749 §5.2)
/// or as `error=` on the redirect (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
}

/// What kind of secret a string is: decided by its second segment before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
    Code,
}

impl TokenKind {
    fn tag(self) -> &'static str {
        match self {
            TokenKind::Access => "oat",
            TokenKind::Refresh => "ort",
            TokenKind::Code => "oac",
        }
    }
}

const TOKEN_RANDOM_LEN: usize = 43;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh token `{brand}_{oat|ort|oac}_{43 base62}` (256 bits of randomness).
pub fn generate_token(brand: &str, kind: TokenKind) -> String {
    let mut s = format!("{brand}_{}_", kind.tag());
    for _ in 0..TOKEN_RANDOM_LEN {
        s.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// Whether `s` has the shape of a token of `kind` (any brand). Shape only: the
/// stored digest decides whether it is real.
pub fn is_token(s: &str, kind: TokenKind) -> bool {
    let mut parts = s.splitn(3, '_');
    let (Some(brand), Some(tag), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    crate::keys::valid_brand(brand)
        && tag == kind.tag()
        && body.len() == TOKEN_RANDOM_LEN
        && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The PKCE method a request names: only `S256` is accepted; `plain` and a missing
/// challenge are refused (OAuth 2.1 and the MCP authorization spec require S256).
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<(), OAuthError> {
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return Err(OAuthError::invalid_request(
            "code_challenge is required (PKCE with S256)",
        ));
    };
    match method {
        Some("S256") => {}
        Some("plain") => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method plain is not supported; use S256",
            ));
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    }
    if challenge.len() != 43 || !challenge.bytes().all(is_b64url) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(())
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `verifier` (43 to 128 unreserved characters) hashes to `challenge` (S256).
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    let ok_len = (43..=128).contains(&verifier.len());
    let ok_chars = verifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !ok_len || !ok_chars {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    // Both are public-length strings; compare without an early exit anyway.
    computed.len() == challenge.len()
        && computed
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Every scope a client may ask for, in the order metadata lists them.
pub fn scopes_supported() -> Vec<String> {
    let mut v = vec!["read".to_owned(), "write".to_owned()];
    v.extend(Permissions::full().to_strings());
    v
}

/// Parses a space-separated scope (RFC 6749 §3.3): `read` (every `:read`), `write`
/// (everything), and any `{resource}:{read|write}`. `offline_access` is accepted and
/// means nothing more (refresh tokens are always issued). Empty means `read`.
pub fn parse_scope(scope: Option<&str>) -> Result<Permissions, OAuthError> {
    let mut set = Permissions::NONE;
    let mut any = false;
    for item in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        match item {
            "read" => set = union(set, Permissions::read_only()),
            "write" => set = union(set, Permissions::full()),
            "offline_access" => continue,
            other => {
                let p: Permission = other.parse().map_err(|_| {
                    OAuthError::new("invalid_scope", format!("unknown scope {other:?}"))
                })?;
                set.insert(p);
            }
        }
        any = true;
    }
    Ok(if any { set } else { Permissions::read_only() })
}

fn union(a: Permissions, b: Permissions) -> Permissions {
    a.iter().chain(b.iter()).collect()
}

/// A permission set as a scope string: `read` or `write` when it is exactly one of
/// those, else the permissions themselves.
pub fn scope_string(p: Permissions) -> String {
    if p.is_full() {
        "write".to_owned()
    } else if p == Permissions::read_only() {
        "read".to_owned()
    } else {
        p.to_strings().join(" ")
    }
}

/// The scope the first challenge (`401` from `/mcp`) names: a client that follows the
/// MCP scope selection strategy asks for this, so a first sign-in is read-only and a
/// write later steps up for exactly what it needs ([`step_up_scope`]).
pub const FIRST_SCOPE: &str = "read";

/// The scope a step-up challenge names (`403` with `error="insufficient_scope"`,
/// RFC 6750 §3.1): everything the token holds plus the permission the refused request
/// needs, each by name, so the re-authorization keeps what was granted.
pub fn step_up_scope(granted: Permissions, needed: Permission) -> String {
    let mut all = granted;
    all.insert(needed);
    all.to_strings().join(" ")
}

/// What the person chose on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChoice {
    ReadOnly,
    Full,
    Custom,
}

/// The permissions a consent grants: the choice, narrowed to what the client asked
/// for (`requested`). `custom` holds the per-resource choices (`{resource}:{read|write}`).
pub fn consented(
    choice: AccessChoice,
    requested: Permissions,
    custom: &[Permission],
) -> Permissions {
    let chosen = match choice {
        AccessChoice::ReadOnly => Permissions::read_only(),
        AccessChoice::Full => Permissions::full(),
        AccessChoice::Custom => custom.iter().copied().collect(),
    };
    chosen.iter().filter(|p| requested.allows(*p)).collect()
}

/// What the consent page selects before the person chooses: read-only, unless the
/// client asked for a set with writes that is not simply everything (a step-up, or a
/// client that knows what it needs), which is then selected resource by resource.
/// Asking for everything (`write`, or every scope listed) still starts at read-only.
pub fn preselected(requested: Permissions) -> AccessChoice {
    if requested.has_any_write() && !requested.is_full() {
        AccessChoice::Custom
    } else {
        AccessChoice::ReadOnly
    }
}

/// The parts of a URL this module compares.
struct Url<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

fn split_url(s: &str) -> Option<Url<'_>> {
    let (scheme, after) = s.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        let host = &authority[..close + 2];
        match &v6[close + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5)
    {
        return None;
    }
    Some(Url {
        scheme,
        host,
        port,
        rest,
    })
}

fn is_loopback_literal(host: &str) -> bool {
    host == "127.0.0.1" || host == "[::1]"
}

/// Checks a redirect URI a client registers: `https://…`, `http://` on a loopback
/// address (`127.0.0.1`, `[::1]`, `localhost`) for native apps, or a private-use
/// scheme with a dot (`com.example.app:/cb`, RFC 8252 §7.1). Never a fragment.
pub fn check_redirect_uri(uri: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| {
        OAuthError::new(
            "invalid_redirect_uri",
            format!("redirect_uri {uri:?} {why}"),
        )
    };
    if uri.len() > 2000 || uri.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(bad("is not a valid URI"));
    }
    if uri.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    if let Some(u) = split_url(uri) {
        if u.host.is_empty() {
            return Err(bad("has no host"));
        }
        return match u.scheme {
            "https" => Ok(()),
            "http" if is_loopback_literal(u.host) || u.host == "localhost" => Ok(()),
            "http" => Err(bad(
                "must use https (plain http only on a loopback address)",
            )),
            _ => Err(bad("must use https")),
        };
    }
    match uri.split_once(':') {
        Some((scheme, rest))
            if scheme.contains('.')
                && !rest.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(bad("is not a valid URI")),
    }
}

/// Whether `presented` matches the registered `registered`: exactly, or — for an
/// `http` loopback IP literal (RFC 8252 §7.3) — with any port.
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (split_url(registered), split_url(presented)) {
        (Some(r), Some(p)) => {
            r.scheme == "http"
                && p.scheme == "http"
                && is_loopback_literal(r.host)
                && r.host == p.host
                && r.rest == p.rest
                && p.port.is_some_and(|x| x.parse::<u16>().is_ok())
        }
        _ => false,
    }
}

/// The host a redirect goes to, shown on the consent page (`127.0.0.1`, `claude.ai`, or
/// the private-use scheme).
pub fn redirect_host(uri: &str) -> String {
    match split_url(uri) {
        Some(u) => u.host.to_owned(),
        None => uri.split(':').next().unwrap_or(uri).to_owned(),
    }
}

/// Whether a resource indicator (RFC 8707) names `ours`, the `/mcp` URL. A trailing
/// slash is forgiven; anything else is another resource.
pub fn resource_matches(ours: &str, asked: &str) -> bool {
    asked.trim_end_matches('/') == ours.trim_end_matches('/')
}

/// Checks a Client ID Metadata Document's URL (the `client_id` itself): `https`,
/// a host, a path, no fragment, no credentials.
pub fn check_client_id_url(url: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::new("invalid_client", format!("client_id {why}"));
    if url.len() > 2000 || url.bytes().any(|b| !b.is_ascii_graphic()) || url.contains('#') {
        return Err(bad("is not a valid URL"));
    }
    let u = split_url(url).ok_or_else(|| bad("is not a valid URL"))?;
    if u.scheme != "https" {
        return Err(bad("must be an https URL"));
    }
    if u.host.is_empty() || u.rest.len() < 2 || !u.rest.starts_with('/') {
        return Err(bad("must be an https URL with a path"));
    }
    Ok(())
}

/// The name a consent page shows for a resource (`phone_numbers` → `Phone numbers`).
pub fn resource_label(r: Resource) -> String {
    if r == Resource::ApiKeys {
        return "API keys".to_owned();
    }
    let s = r.as_str().replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Access;

    #[test]
    fn pkce_s256_matches_an_independent_computation() {
        // Python: base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        let verifier = "dBjftJeZ4CVP-mJ92IQhuXNQ5mnkzeJeHk5g1Py4e3k";
        let challenge = "gBfo70xM_t6SP6sXWV37fP__JRwRvX2KamTHICcE1Qc";
        assert!(verify_pkce(verifier, challenge));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mJ92IQhuXNQ5mnkzeJeHk5g1Py4e3t",
            challenge
        ));
        assert!(!verify_pkce("short", challenge));
        assert!(check_challenge(Some(challenge), Some("S256")).is_ok());
    }

    #[test]
    fn plain_and_missing_pkce_are_refused() {
        let c = "gBfo70xM_t6SP6sXWV37fP__JRwRvX2KamTHICcE1Qc";
        assert!(check_challenge(Some(c), Some("plain")).is_err());
        assert!(check_challenge(Some(c), None).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
        assert!(check_challenge(Some("abc"), Some("S256")).is_err());
    }

    #[test]
    fn scopes_have_shorthands_and_default_to_read() {
        assert_eq!(parse_scope(None).expect("valid"), Permissions::read_only());
        assert_eq!(
            parse_scope(Some("read")).expect("valid"),
            Permissions::read_only()
        );
        assert_eq!(
            parse_scope(Some("write")).expect("valid"),
            Permissions::full()
        );
        let p = parse_scope(Some("contacts:write offline_access")).expect("valid");
        assert!(p.allows(Permission::read(Resource::Contacts)));
        assert!(p.allows(Permission::write(Resource::Contacts)));
        assert!(!p.allows(Permission::read(Resource::Calls)));
        assert_eq!(
            parse_scope(Some("contacts:delete"))
                .expect_err("invalid")
                .code,
            "invalid_scope"
        );
        assert_eq!(scope_string(Permissions::read_only()), "read");
        assert_eq!(scope_string(p), "contacts:read contacts:write");
        for s in scopes_supported() {
            assert!(parse_scope(Some(&s)).is_ok(), "{s}");
        }
    }

    #[test]
    fn a_step_up_asks_for_what_is_held_plus_what_is_missing() {
        let ro = Permissions::read_only();
        let scope = step_up_scope(ro, Permission::write(Resource::Messages));
        let asked = parse_scope(Some(&scope)).expect("valid");
        let mut expected = ro;
        expected.insert(Permission::write(Resource::Messages));
        assert_eq!(asked, expected);
        assert!(scope.contains("messages:write"));
        assert!(scope.contains("contacts:read"));
        assert!(!scope.contains("contacts:write"));
        let some = Permissions::parse_list(["contacts:read"]).expect("valid");
        assert_eq!(
            step_up_scope(some, Permission::read(Resource::Calls)),
            "contacts:read calls:read"
        );
        assert_eq!(
            parse_scope(Some(FIRST_SCOPE)).expect("valid"),
            Permissions::read_only()
        );
    }

    #[test]
    fn the_consent_page_preselects_a_narrow_write_request_and_nothing_broader() {
        let mut stepped = Permissions::read_only();
        stepped.insert(Permission::write(Resource::Messages));
        assert_eq!(preselected(stepped), AccessChoice::Custom);
        assert_eq!(
            preselected(Permissions::read_only()),
            AccessChoice::ReadOnly
        );
        assert_eq!(preselected(Permissions::full()), AccessChoice::ReadOnly);
        let reads = Permissions::parse_list(["contacts:read", "calls:read"]).expect("valid");
        assert_eq!(preselected(reads), AccessChoice::ReadOnly);
    }

    #[test]
    fn consent_never_grants_more_than_asked() {
        let asked = Permissions::full();
        let ro = consented(AccessChoice::ReadOnly, asked, &[]);
        assert!(!ro.has_any_write());
        let only = consented(
            AccessChoice::Custom,
            asked,
            &[Permission::write(Resource::Contacts)],
        );
        assert_eq!(only.to_strings(), ["contacts:read", "contacts:write"]);
        let narrow = parse_scope(Some("calls:read")).expect("valid");
        let full = consented(AccessChoice::Full, narrow, &[]);
        assert_eq!(full.to_strings(), ["calls:read"]);
        assert!(full.iter().all(|p| p.access == Access::Read));
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        assert!(redirect_matches(
            "https://claude.ai/api/cb",
            "https://claude.ai/api/cb"
        ));
        assert!(!redirect_matches(
            "https://claude.ai/api/cb",
            "https://claude.ai/api/cb/"
        ));
        assert!(!redirect_matches(
            "https://claude.ai:443/cb",
            "https://claude.ai:444/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/callback"
        ));
        assert!(redirect_matches(
            "http://[::1]:1/callback",
            "http://[::1]:2/callback"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:2/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:1/callback",
            "http://127.0.0.2:1/callback"
        ));
        assert!(!redirect_matches(
            "http://localhost:1/cb",
            "http://localhost:2/cb"
        ));
    }

    #[test]
    fn registered_redirect_uris_are_https_loopback_or_private_use() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]/cb").is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("http://evil.example.com/cb").is_err());
        assert!(check_redirect_uri("https://a.example/cb#frag").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https://user@a.example/cb").is_err());
        assert_eq!(redirect_host("http://127.0.0.1:9/cb"), "127.0.0.1");
    }

    #[test]
    fn tokens_are_recognised_by_shape() {
        let t = generate_token("dt", TokenKind::Access);
        assert!(is_token(&t, TokenKind::Access));
        assert!(!is_token(&t, TokenKind::Refresh));
        assert!(crate::keys::parse(&t).is_none());
        assert!(!is_token("dt_oat_short", TokenKind::Access));
    }

    #[test]
    fn client_id_urls_are_https_with_a_path() {
        assert!(check_client_id_url("https://app.example.com/oauth/client.json").is_ok());
        assert!(check_client_id_url("http://app.example.com/client.json").is_err());
        assert!(check_client_id_url("https://app.example.com").is_err());
        assert!(check_client_id_url("https://app.example.com/").is_err());
        assert!(resource_matches("http://h:1/mcp", "http://h:1/mcp/"));
        assert!(!resource_matches(
            "http://h:1/mcp",
            "https://other.example/mcp"
        ));
    }
}
