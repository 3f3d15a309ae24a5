//! Usage per key (`requests_30d`, `last_used_at`, `last_ip`), counted in memory and
//! written in batches: a request never waits on a database write for its count.
//!
//! The flusher adds each node's counts to daily rows, so counts from several nodes
//! sum correctly. Reads merge what this node has not flushed yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use dialtone_domain::auth::ApiKey;
use dialtone_domain::time::{Timestamp, epoch_day};
use dialtone_store::UsageDelta;

/// Pending counts by key id, then by day (a key's id is only copied on its first use).
type PendingMap = HashMap<String, HashMap<i64, Pending>>;

#[derive(Debug, Default)]
pub struct UsageCounter {
    pending: Mutex<PendingMap>,
}

#[derive(Debug, Clone)]
struct Pending {
    count: i64,
    last_used_at: Timestamp,
    last_ip: Option<String>,
}

impl UsageCounter {
    pub fn record(&self, key_id: &str, ip: Option<IpAddr>, at: Timestamp) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let days = match map.get_mut(key_id) {
            Some(days) => days,
            None => map.entry(key_id.to_owned()).or_default(),
        };
        let entry = days.entry(epoch_day(at)).or_insert_with(|| Pending {
            count: 0,
            last_used_at: at,
            last_ip: None,
        });
        entry.count += 1;
        if at >= entry.last_used_at {
            entry.last_used_at = at;
            entry.last_ip = ip.map(|ip| ip.to_string());
        }
    }

    /// Takes everything counted so far, to be written.
    pub fn drain(&self) -> Vec<UsageDelta> {
        let map = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        map.into_iter()
            .flat_map(|(key_id, days)| {
                days.into_iter().map(move |(day, p)| UsageDelta {
                    key_id: key_id.clone(),
                    day,
                    count: p.count,
                    last_used_at: p.last_used_at,
                    last_ip: p.last_ip,
                })
            })
            .collect()
    }

    /// Puts back counts whose write failed, so none are lost.
    pub fn restore(&self, deltas: Vec<UsageDelta>) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for d in deltas {
            let entry = map
                .entry(d.key_id)
                .or_default()
                .entry(d.day)
                .or_insert_with(|| Pending {
                    count: 0,
                    last_used_at: d.last_used_at,
                    last_ip: d.last_ip.clone(),
                });
            entry.count += d.count;
            if d.last_used_at > entry.last_used_at {
                entry.last_used_at = d.last_used_at;
                entry.last_ip = d.last_ip;
            }
        }
    }

    /// Adds this node's unflushed usage to a key read from the database.
    pub fn merge_into(&self, key: &mut ApiKey) {
        let map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for p in map.get(&key.id).into_iter().flat_map(|days| days.values()) {
            key.requests_30d += p.count;
            if key.last_used_at.is_none_or(|t| p.last_used_at > t) {
                key.last_used_at = Some(p.last_used_at);
                key.last_ip = p.last_ip.clone();
            }
        }
    }
}
