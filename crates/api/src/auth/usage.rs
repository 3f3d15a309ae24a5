//! Usage per key (`requests_30d`, `last_used_at`, `last_ip`, and requests per permission
//! exercised, for least privilege), counted in memory and written in batches: a request
//! never waits on a database write for its count.
//!
//! The flusher adds each node's counts to daily rows, so counts from several nodes
//! sum correctly. Reads merge what this node has not flushed yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use dialtone_domain::auth::ApiKey;
use dialtone_domain::least_privilege::PermissionUse;
use dialtone_domain::permissions::Permission;
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
    /// Requests by the permission their route required (a handful per key).
    permissions: Vec<PermissionUse>,
}

impl Pending {
    fn new(last_used_at: Timestamp, last_ip: Option<String>) -> Self {
        Pending {
            count: 0,
            last_used_at,
            last_ip,
            permissions: Vec::new(),
        }
    }

    fn add_permission(&mut self, permission: Permission, requests: i64, at: Timestamp) {
        add_use(&mut self.permissions, permission, requests, at);
    }
}

/// Adds `requests` uses of `permission`, last at `at`, to `uses`.
fn add_use(uses: &mut Vec<PermissionUse>, permission: Permission, requests: i64, at: Timestamp) {
    match uses.iter_mut().find(|u| u.permission == permission) {
        Some(u) => {
            u.requests += requests;
            u.last_used_at = u.last_used_at.max(at);
        }
        None => uses.push(PermissionUse {
            permission,
            requests,
            last_used_at: at,
        }),
    }
}

impl UsageCounter {
    pub fn record(&self, key_id: &str, ip: Option<IpAddr>, at: Timestamp) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let days = match map.get_mut(key_id) {
            Some(days) => days,
            None => map.entry(key_id.to_owned()).or_default(),
        };
        let entry = days
            .entry(epoch_day(at))
            .or_insert_with(|| Pending::new(at, None));
        entry.count += 1;
        // The first request of an entry made by `record_permission` sets the address.
        if at >= entry.last_used_at || entry.count == 1 {
            entry.last_used_at = at;
            entry.last_ip = ip.map(|ip| ip.to_string());
        }
    }

    /// Counts one request that exercised `permission` (the one its route required).
    pub fn record_permission(&self, key_id: &str, permission: Permission, at: Timestamp) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let days = match map.get_mut(key_id) {
            Some(days) => days,
            None => map.entry(key_id.to_owned()).or_default(),
        };
        days.entry(epoch_day(at))
            .or_insert_with(|| Pending::new(at, None))
            .add_permission(permission, 1, at);
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
                    permissions: p.permissions,
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
                .or_insert_with(|| Pending::new(d.last_used_at, d.last_ip.clone()));
            for u in d.permissions {
                entry.add_permission(u.permission, u.requests, u.last_used_at);
            }
            if d.count == 0 {
                continue;
            }
            let first = entry.count == 0;
            entry.count += d.count;
            if first || d.last_used_at > entry.last_used_at {
                entry.last_used_at = d.last_used_at;
                entry.last_ip = d.last_ip;
            }
        }
    }

    /// Adds this node's unflushed usage to a key read from the database.
    pub fn merge_into(&self, key: &mut ApiKey) {
        let map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for p in map.get(&key.id).into_iter().flat_map(|days| days.values()) {
            if p.count == 0 {
                // Only permission counts (the request itself was already drained).
                continue;
            }
            key.requests_30d += p.count;
            if key.last_used_at.is_none_or(|t| p.last_used_at > t) {
                key.last_used_at = Some(p.last_used_at);
                key.last_ip = p.last_ip.clone();
            }
        }
    }

    /// Adds this node's unflushed requests of `key_id` per day, from the day
    /// `since_day` on, to `days` (`(day, count)` read from the database; a day may then
    /// appear twice: readers sum by day).
    pub fn merge_daily(&self, key_id: &str, since_day: i64, days: &mut Vec<(i64, i64)>) {
        let map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let pending = map.get(key_id).into_iter().flat_map(|days| days.iter());
        days.extend(
            pending
                .filter(|(day, p)| **day >= since_day && p.count > 0)
                .map(|(day, p)| (*day, p.count)),
        );
    }

    /// Adds this node's unflushed requests per permission of `key_id`, from the day
    /// `since_day` on, to `uses` (read from the database).
    pub fn merge_permissions(&self, key_id: &str, since_day: i64, uses: &mut Vec<PermissionUse>) {
        let map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let days = map.get(key_id).into_iter().flat_map(|days| days.iter());
        for (_, p) in days.filter(|(day, _)| **day >= since_day) {
            for u in &p.permissions {
                add_use(uses, u.permission, u.requests, u.last_used_at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_domain::time::now;

    fn perm(s: &str) -> Permission {
        s.parse().expect("permission")
    }

    #[test]
    fn permissions_are_counted_per_key_and_day_and_survive_a_failed_write() {
        let c = UsageCounter::default();
        let at = now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..3 {
            c.record("key_a", Some(ip), at);
            c.record_permission("key_a", perm("contacts:read"), at);
        }
        c.record("key_a", Some(ip), at);
        c.record_permission("key_a", perm("calls:write"), at);
        let mut uses = Vec::new();
        c.merge_permissions("key_a", epoch_day(at) - 29, &mut uses);
        uses.sort_by_key(|u| u.permission);
        assert_eq!(
            uses.iter()
                .map(|u| (u.permission.to_string(), u.requests))
                .collect::<Vec<_>>(),
            [
                ("contacts:read".to_owned(), 3),
                ("calls:write".to_owned(), 1)
            ]
        );
        // Outside the window: not merged.
        let mut none = Vec::new();
        c.merge_permissions("key_a", epoch_day(at) + 1, &mut none);
        assert!(none.is_empty());
        // Drained, then put back after a failed write: nothing lost.
        let deltas = c.drain();
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].count, 4);
        assert_eq!(deltas[0].permissions.len(), 2);
        c.restore(deltas);
        let again = c.drain();
        assert_eq!(again[0].count, 4);
        assert_eq!(
            again[0].permissions.iter().map(|u| u.requests).sum::<i64>(),
            4
        );
    }

    #[test]
    fn a_permission_counted_after_a_flush_does_not_clear_the_last_address() {
        let c = UsageCounter::default();
        let at = now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        c.record("key_a", Some(ip), at);
        let _ = c.drain();
        // The request's permission lands after the flush took its count.
        c.record_permission("key_a", perm("contacts:read"), at);
        let deltas = c.drain();
        assert_eq!(deltas[0].count, 0, "no request to add");
        assert_eq!(deltas[0].permissions[0].requests, 1);
        // A key read meanwhile keeps its stored address and count.
        c.restore(deltas);
        let mut key = ApiKey {
            id: "key_a".into(),
            org_id: "org_a".into(),
            workspace_id: None,
            name: "k".into(),
            mode: dialtone_domain::tenancy::Mode::Live,
            permissions: dialtone_domain::permissions::Permissions::full(),
            prefix: "dt_live_".into(),
            last_four: "abcd".into(),
            created_at: at,
            created_by: "cli".into(),
            expires_at: None,
            revoked_at: None,
            rotated_from: None,
            last_used_at: Some(at),
            last_ip: Some("192.0.2.1".into()),
            requests_30d: 1,
            oauth_client_id: None,
            limits: Default::default(),
        };
        c.merge_into(&mut key);
        assert_eq!(key.requests_30d, 1);
        assert_eq!(key.last_ip.as_deref(), Some("192.0.2.1"));
        // The next request of the day sets the address again.
        c.record("key_a", Some(ip), at);
        assert_eq!(c.drain()[0].last_ip.as_deref(), Some("192.0.2.1"));
    }
}
