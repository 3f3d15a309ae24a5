//! Prefixed, time-ordered identifiers: `ct_01jd…`.
//!
//! 26 characters of lowercase Crockford base32 over 48 bits of milliseconds and 80
//! random bits, so ids sort by creation time as plain bytes. Cursor pagination relies
//! on that order (PostgreSQL columns use `COLLATE "C"` to keep byte order). Within a
//! process ids are strictly increasing, even within one millisecond (as monotonic
//! ULIDs are): a later id never sorts before an earlier one.

use std::sync::Mutex;

static LAST: Mutex<u128> = Mutex::new(0);

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

pub fn new_id(prefix: &str) -> String {
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u128 & ((1 << 48) - 1);
    let random: u128 = rand::random::<u128>() & ((1 << 80) - 1);
    let mut n = (ms << 80) | random;
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if n <= *last {
            n = *last + 1;
        }
        *last = n;
    }
    let mut body = [0u8; 26];
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.extend(body.iter().map(|&b| b as char));
    id
}

/// An id for something that happened at `millis` (demo data, imports): ordered by that
/// time, not by when it was made.
pub fn new_id_at(prefix: &str, millis: i64) -> String {
    let ms = millis.max(0) as u128 & ((1 << 48) - 1);
    let mut n = (ms << 80) | (rand::random::<u128>() & ((1 << 80) - 1));
    let mut body = [0u8; 26];
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.extend(body.iter().map(|&b| b as char));
    id
}

/// True when `s` has the shape of an id with this prefix (used to answer 404 early).
pub fn looks_like(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 26 && body.bytes().all(|b| ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("x")).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_are_prefixed_and_ordered_by_time() {
        let a = new_id("ct");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("ct");
        assert!(looks_like("ct", &a), "{a}");
        assert!(a < b);
        assert!(!looks_like("key", &a));
    }
}
