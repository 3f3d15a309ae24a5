//! Rate limiting: GCRA (a token bucket without a timer).
//!
//! A key may make `rate` requests per second on average with bursts of `2 × rate`.
//! The same limiter, counted per hour ([`RateLimiter::per_hour`]), limits OAuth client
//! registrations per client address.
//! Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`;
//! a refusal also carries `Retry-After`.
//!
//! Per node in memory by default. With `REDIS_URL`, nodes share each key's limit
//! through one atomic script in Redis (its clock, so node clocks don't matter). If Redis
//! is unreachable or slow, requests fall back to the node's own limiter for a second
//! at a time, so they keep being served.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::header_num;

/// The GCRA step in Redis, on Redis's clock (microseconds). Returns
/// `[allowed, remaining, retry_after_us, reset_us]`.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  return {0, 0, ahead - tolerance, ahead}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local used = new_tat - now
return {1, math.floor((tolerance + interval - used) / interval), 0, used}
"#;

/// The shared limiter: a Redis connection (made in the background) and a breaker.
struct Shared {
    client: redis::Client,
    conn: std::sync::RwLock<Option<redis::aio::ConnectionManager>>,
    down_until: Mutex<Option<Instant>>,
    script: redis::Script,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(redis)")
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    shared: Option<Shared>,
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
    /// This limiter, shared through Redis at `url` (falling back to this node's own).
    pub fn shared_through(mut self, url: &str) -> Result<Self, redis::RedisError> {
        self.shared = Some(Shared {
            client: redis::Client::open(url)?,
            conn: std::sync::RwLock::new(None),
            down_until: Mutex::new(None),
            script: redis::Script::new(GCRA),
        });
        Ok(self)
    }

    /// Keeps a connection to Redis (when configured); run as a background task.
    pub async fn connect_loop(&self) {
        let Some(shared) = &self.shared else { return };
        loop {
            let connected = shared
                .conn
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            if !connected {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_response_timeout(Some(Duration::from_millis(100)));
                match redis::aio::ConnectionManager::new_with_config(shared.client.clone(), config)
                    .await
                {
                    Ok(c) => *shared.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "Redis unreachable; rate limits are per node until it is back")
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Checks a request against the key's limit: shared when Redis answers, else local.
    pub async fn check(&self, key_id: &str) -> Decision {
        if let Some(d) = self.check_shared(key_id).await {
            return d;
        }
        self.check_at(key_id, Instant::now())
    }

    async fn check_shared(&self, key_id: &str) -> Option<Decision> {
        let shared = self.shared.as_ref()?;
        if shared
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t > Instant::now())
        {
            return None;
        }
        let mut conn = shared
            .conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let mut invocation = shared.script.key(format!("dialtone:rl:{key_id}"));
        invocation
            .arg(self.interval.as_micros() as u64)
            .arg(self.tolerance.as_micros() as u64);
        let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
        match tokio::time::timeout(Duration::from_millis(150), call).await {
            Ok(Ok(r)) if r.len() == 4 => {
                let us = |v: i64| Duration::from_micros(v.max(0) as u64);
                Some(Decision {
                    allowed: r[0] == 1,
                    limit: self.burst,
                    remaining: r[1].max(0) as u64,
                    reset_secs: ceil_secs(us(r[3])),
                    retry_after_secs: if r[0] == 1 {
                        0
                    } else {
                        ceil_secs(us(r[2])).max(1)
                    },
                })
            }
            other => {
                if let Ok(Err(e)) = &other {
                    tracing::warn!(error = %e, "Redis rate limit failed; using this node's limit for a second");
                }
                *shared.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + Duration::from_secs(1));
                None
            }
        }
    }

    pub fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self::with_rate(
            Duration::from_secs(1) / per_second,
            u64::from(per_second) * 2,
        )
    }

    /// `count` requests an hour per key: a burst of `count`, then one every
    /// `3600 / count` seconds (OAuth client registrations per client address).
    pub fn per_hour(count: u32) -> Self {
        let count = count.max(1);
        Self::with_rate(Duration::from_secs(3600) / count, u64::from(count))
    }

    /// One request every `interval` on average, bursts of `burst` (at least 1).
    fn with_rate(interval: Duration, burst: u64) -> Self {
        let burst = burst.max(1);
        RateLimiter {
            shared: None,
            interval,
            tolerance: interval * u32::try_from(burst - 1).unwrap_or(u32::MAX),
            burst,
            tat: Mutex::new(HashMap::new()),
        }
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
    fn an_hourly_limit_allows_its_burst_then_one_per_slot() {
        let rl = RateLimiter::per_hour(3);
        let t = Instant::now();
        assert_eq!((0..5).filter(|_| rl.check_at("ip", t).allowed).count(), 3);
        let refused = rl.check_at("ip", t);
        assert!(!refused.allowed);
        assert!(
            (1199..=1200).contains(&refused.retry_after_secs),
            "{refused:?}"
        );
        assert!(rl.check_at("ip", t + Duration::from_secs(1200)).allowed);
        assert!(!rl.check_at("ip", t + Duration::from_secs(1200)).allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let rl = RateLimiter::new(2);
        let t = Instant::now();
        let r: Vec<u64> = (0..4).map(|_| rl.check_at("k", t).remaining).collect();
        assert_eq!(r, vec![3, 2, 1, 0]);
    }
}
