//! API key tokens: their format, checksum and stored digest.
//!
//! A token is `{brand}_{mode}_{30 random base62}{6 base62 CRC32}`, e.g.
//! `dt_live_…`. The checksum covers everything before it, so a typo or a string that
//! merely looks like a key is refused without touching the database. The database
//! keeps only [`KeyDigester::digest`]: HMAC-SHA256 of the token under a server secret,
//! so a stolen database alone can neither be used nor brute-forced offline. The token
//! itself lives in a [`secrecy::SecretString`] and is never printed by `Debug`.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::tenancy::Mode;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// The longest brand accepted (`dt`, `dn`, `dnx`, …).
pub const BRAND_MAX: usize = 16;

/// Checks a brand: 1 to 16 lowercase ASCII letters or digits, starting with a letter.
pub fn valid_brand(brand: &str) -> bool {
    !brand.is_empty()
        && brand.len() <= BRAND_MAX
        && brand.as_bytes()[0].is_ascii_lowercase()
        && brand
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A freshly generated token. Only [`NewToken::secret`] ever holds the full value.
pub struct NewToken {
    pub secret: SecretString,
    pub last_four: String,
    /// `{brand}_{mode}_`, shown before the last four (`dt_live_…abcd`).
    pub prefix: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("prefix", &self.prefix)
            .field("last_four", &self.last_four)
            .finish_non_exhaustive()
    }
}

pub fn generate(brand: &str, mode: Mode) -> NewToken {
    let prefix = format!("{brand}_{}_", mode.as_str());
    let mut token = String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN);
    token.push_str(&prefix);
    for _ in 0..RANDOM_LEN {
        token.push(BASE62[rand::random_range(0..BASE62.len())] as char);
    }
    let checksum = crc32fast::hash(token.as_bytes());
    push_base62_fixed(&mut token, checksum);
    let last_four = token[token.len() - 4..].to_owned();
    NewToken {
        secret: SecretString::from(token),
        last_four,
        prefix,
    }
}

fn push_base62_fixed(out: &mut String, mut n: u32) {
    let mut buf = [b'0'; CHECKSUM_LEN];
    for slot in buf.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.extend(buf.iter().map(|&b| b as char));
}

fn decode_base62(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        Some(acc * 62 + u64::from(digit))
    })
}

/// What a bearer credential says about itself before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    /// The token proper (`dt_live_…`), without a `key_…:` prefix.
    pub token: &'a str,
    pub mode: Mode,
    /// The public key id, when the two-part form `key_…:{token}` was used.
    pub key_id: Option<&'a str>,
}

/// Parses a bearer credential and checks its checksum. `None` means: answer 401.
pub fn parse(credential: &str) -> Option<ParsedToken<'_>> {
    let (key_id, token) = match credential.split_once(':') {
        Some((id, token)) if crate::id::looks_like("key", id) => (Some(id), token),
        Some(_) => return None,
        None => (None, credential),
    };
    let mut parts = token.splitn(3, '_');
    let brand = parts.next()?;
    let mode = match parts.next()? {
        "live" => Mode::Live,
        "test" => Mode::Test,
        _ => return None,
    };
    let body = parts.next()?.as_bytes();
    if !valid_brand(brand) || body.len() != RANDOM_LEN + CHECKSUM_LEN {
        return None;
    }
    let (random, checksum) = body.split_at(RANDOM_LEN);
    if !random.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let expected = crc32fast::hash(&token.as_bytes()[..token.len() - CHECKSUM_LEN]);
    if decode_base62(checksum)? != u64::from(expected) {
        return None;
    }
    Some(ParsedToken {
        token,
        mode,
        key_id,
    })
}

/// Computes the stored digest of a token: HMAC-SHA256 under the server's secret.
#[derive(Clone)]
pub struct KeyDigester {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for KeyDigester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigester(..)")
    }
}

/// The digest as stored and looked up.
pub type Digest = [u8; 32];

impl KeyDigester {
    pub fn new(server_secret: &SecretString) -> Self {
        // HMAC takes keys of any length.
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(server_secret.expose_secret().as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        KeyDigester { mac }
    }

    pub fn digest(&self, token: &str) -> Digest {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Generates a server secret for a new installation (64 base62 characters).
pub fn generate_server_secret() -> SecretString {
    let s: String = (0..64)
        .map(|_| BASE62[rand::random_range(0..BASE62.len())] as char)
        .collect();
    SecretString::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_carry_their_mode() {
        let t = generate("dt", Mode::Test);
        let s = t.secret.expose_secret();
        assert!(s.starts_with("dt_test_"));
        assert_eq!(s.len(), "dt_test_".len() + 36);
        assert_eq!(&s[s.len() - 4..], t.last_four);
        let parsed = parse(s).expect("valid token");
        assert_eq!(parsed.mode, Mode::Test);
        assert_eq!(parsed.key_id, None);
        let branded = generate("dnx", Mode::Live);
        assert!(branded.secret.expose_secret().starts_with("dnx_live_"));
        assert!(parse(branded.secret.expose_secret()).is_some());
    }

    #[test]
    fn any_single_typo_fails_the_checksum() {
        let t = generate("dt", Mode::Live);
        let s = t.secret.expose_secret().to_owned();
        for i in "dt_live_".len()..s.len() {
            let mut bytes = s.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).expect("ascii");
            assert!(parse(&typo).is_none(), "typo at {i} accepted");
        }
    }

    #[test]
    fn two_part_form_is_accepted_and_junk_refused() {
        let t = generate("dt", Mode::Live);
        let id = crate::id::new_id("key");
        let two = format!("{id}:{}", t.secret.expose_secret());
        let parsed = parse(&two).expect("two-part form");
        assert_eq!(parsed.key_id, Some(id.as_str()));
        assert_eq!(parsed.token, t.secret.expose_secret());
        for junk in ["", "dt_live_", "dt_prod_abc", "Bearer", "x:y", "dt_live_é"] {
            assert!(parse(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn digest_depends_on_the_server_secret() {
        let a = KeyDigester::new(&SecretString::from("one"));
        let b = KeyDigester::new(&SecretString::from("two"));
        assert_eq!(a.digest("dt_live_x"), a.digest("dt_live_x"));
        assert_ne!(a.digest("dt_live_x"), b.digest("dt_live_x"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = generate("dt", Mode::Live);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(t.secret.expose_secret()));
    }
}
