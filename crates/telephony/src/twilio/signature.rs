//! `X-Twilio-Signature`: how Twilio signs the requests it sends, and the check.
//!
//! HMAC-SHA1 keyed with the account's auth token over the full URL Twilio requested
//! followed by each form parameter's name and value: names sorted, each name once with
//! each of its distinct values sorted (repeated keys such as `StatusCallbackEvent`
//! count once per distinct value), base64. A JSON body is signed over the URL alone,
//! which carries `bodySHA256` = hex(SHA-256(body)). As Twilio's helper library does,
//! the check also accepts the URL with its default port added or removed, since
//! proxies differ on whether it was part of the URL. Comparisons are constant-time.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The signature Twilio sends for a form-encoded request to `url`.
pub fn sign(token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        by_name.entry(k).or_default().insert(v);
    }
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(token)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(url.as_bytes());
    for (name, values) in by_name {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for a form-encoded request to `url`.
pub fn verify_form(token: &[u8], url: &str, params: &[(String, String)], signature: &str) -> bool {
    url_variants(url)
        .iter()
        .any(|u| same(&sign(token, u, params), signature))
}

/// Whether `signature` is Twilio's for a JSON request to `url` with this raw body: the
/// URL's `bodySHA256` must be the body's digest, and the URL alone is signed.
pub fn verify_json(token: &[u8], url: &str, body: &[u8], signature: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let claimed = parsed
        .query_pairs()
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned());
    let actual = hex_lower(&Sha256::digest(body));
    match claimed {
        Some(c) if same(&c, &actual) => verify_form(token, url, &[], signature),
        _ => false,
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL as given, without its port, and with the scheme's default port added when
/// it has none: the forms Twilio's helper library accepts.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // `host:port`, `[v6]:port`, or either without a port.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let variant = match port {
        Some(_) => format!("{scheme}://{host}{tail}"),
        None => format!("{scheme}://{host}:{default}{tail}"),
    };
    out.push(variant);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_sorted_and_distinct_values_count_once() {
        let token = b"12345";
        let url = "https://example.com/cb?x=1";
        let a = sign(
            token,
            url,
            &p(&[("To", "+1"), ("Event", "ringing"), ("Event", "answered")]),
        );
        let b = sign(
            token,
            url,
            &p(&[
                ("Event", "answered"),
                ("To", "+1"),
                ("Event", "ringing"),
                ("Event", "ringing"),
            ]),
        );
        assert_eq!(a, b);
        assert!(verify_form(
            token,
            url,
            &p(&[("Event", "answered"), ("To", "+1"), ("Event", "ringing")]),
            &a
        ));
        assert!(!verify_form(
            token,
            url,
            &p(&[("To", "+2"), ("Event", "answered"), ("Event", "ringing")]),
            &a
        ));
        assert!(!verify_form(
            b"other",
            url,
            &p(&[("To", "+1"), ("Event", "ringing"), ("Event", "answered")]),
            &a
        ));
        assert!(!verify_form(
            token,
            "https://example.com/cb?x=2",
            &p(&[("To", "+1"), ("Event", "ringing"), ("Event", "answered")]),
            &a
        ));
    }

    #[test]
    fn the_default_port_may_be_added_or_removed() {
        let token = b"t";
        let signed_without = sign(token, "https://api.example.com/cb", &[]);
        assert!(verify_form(
            token,
            "https://api.example.com:443/cb",
            &[],
            &signed_without
        ));
        let signed_with = sign(token, "https://api.example.com:443/cb", &[]);
        assert!(verify_form(
            token,
            "https://api.example.com/cb",
            &[],
            &signed_with
        ));
        assert_eq!(
            url_variants("http://[::1]:8080/a?b=c"),
            vec![
                "http://[::1]:8080/a?b=c".to_owned(),
                "http://[::1]/a?b=c".to_owned()
            ]
        );
    }

    #[test]
    fn a_json_body_must_match_its_digest() {
        let token = b"t";
        let body = br#"{"a":1}"#;
        let url = format!(
            "https://h/cb?bodySHA256={}",
            hex_lower(&Sha256::digest(body))
        );
        let sig = sign(token, &url, &[]);
        assert!(verify_json(token, &url, body, &sig));
        assert!(!verify_json(token, &url, br#"{"a":2}"#, &sig));
    }
}
