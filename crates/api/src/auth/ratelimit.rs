//! Per-key rate limiting: GCRA (a token bucket without a timer), in memory per node.
//!
//! A key may make `rate` requests per second on average with bursts of `2 × rate`.
//! Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`;
//! a refusal also carries `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::header_num;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    burst: u64,
    /// Theoretical arrival time per key.
    tat: Mutex<HashMap<String, Instant>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
    pub retry_after_secs: u64,
}

impl Decision {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("ratelimit-limit", header_num(self.limit));
        headers.insert("ratelimit-remaining", header_num(self.remaining));
        headers.insert("ratelimit-reset", header_num(self.reset_secs));
    }
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let burst = u64::from(per_second) * 2;
        let interval = Duration::from_secs(1) / per_second;
        RateLimiter {
            interval,
            tolerance: interval * (burst as u32 - 1),
            burst,
            tat: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key_id: &str) -> Decision {
        self.check_at(key_id, Instant::now())
    }

    fn check_at(&self, key_id: &str, now: Instant) -> Decision {
        let mut map = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key_id).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            let wait = ahead - self.tolerance;
            return Decision {
                allowed: false,
                limit: self.burst,
                remaining: 0,
                reset_secs: ceil_secs(ahead),
                retry_after_secs: ceil_secs(wait).max(1),
            };
        }
        let new_tat = tat + self.interval;
        match map.get_mut(key_id) {
            Some(slot) => *slot = new_tat,
            None => {
                map.insert(key_id.to_owned(), new_tat);
            }
        }
        let used = new_tat - now;
        let free = (self.tolerance + self.interval).saturating_sub(used);
        Decision {
            allowed: true,
            limit: self.burst,
            remaining: (free.as_nanos() / self.interval.as_nanos().max(1)) as u64,
            reset_secs: ceil_secs(used),
            retry_after_secs: 0,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_twice_the_rate_then_refuses() {
        let rl = RateLimiter::new(5);
        let t = Instant::now();
        let allowed = (0..20).filter(|_| rl.check_at("k", t).allowed).count();
        assert_eq!(allowed, 10);
        let refused = rl.check_at("k", t);
        assert!(!refused.allowed && refused.retry_after_secs >= 1);
        // Another key is not affected, and time refills the bucket.
        assert!(rl.check_at("other", t).allowed);
        assert!(rl.check_at("k", t + Duration::from_millis(250)).allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let rl = RateLimiter::new(2);
        let t = Instant::now();
        let r: Vec<u64> = (0..4).map(|_| rl.check_at("k", t).remaining).collect();
        assert_eq!(r, vec![3, 2, 1, 0]);
    }
}
