//! Least privilege from usage: the permissions a key exercised in the last 30 days and
//! the smallest set of permissions that would have allowed every one of those requests.
//!
//! A request exercises the one permission its route requires (routes any valid key may
//! call, such as `/v1/me` and the event log, exercise none). Since `write` implies
//! `read` ([`crate::permissions`]), a resource read and written needs only `:write`, so
//! the suggestion names at most one permission per resource.

use crate::permissions::{Permission, Permissions, Resource};
use crate::time::{Timestamp, epoch_day, rfc3339};

/// How many days of usage the suggestion looks at (today included), as `requests_30d`.
pub const WINDOW_DAYS: i64 = 30;

/// The first day (since the epoch) of the window that ends on `today`'s day.
pub fn window_start_day(at: Timestamp) -> i64 {
    epoch_day(at) - (WINDOW_DAYS - 1)
}

/// One permission a key exercised in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionUse {
    pub permission: Permission,
    pub requests: i64,
    pub last_used_at: Timestamp,
}

/// The smallest list of permissions that allows every permission in `used`, within
/// what the key holds (`held`): a suggestion only ever narrows a key.
///
/// Per resource: `:write` when a write was exercised (it implies the read), else
/// `:read` when a read was. The list is in the stable order of [`Permissions::iter`];
/// it is empty for a key that exercised no permission.
pub fn suggest(used: impl IntoIterator<Item = Permission>, held: Permissions) -> Vec<Permission> {
    let needed = Permissions::from_iter(used.into_iter().filter(|p| held.allows(*p)));
    Resource::ALL
        .iter()
        .filter_map(|&r| {
            if needed.allows(Permission::write(r)) {
                Some(Permission::write(r))
            } else if needed.allows(Permission::read(r)) {
                Some(Permission::read(r))
            } else {
                None
            }
        })
        .collect()
}

/// Whether `suggested` (from [`suggest`]) would give the key fewer permissions than
/// it holds: only then is a restricted rotation worth offering.
pub fn narrows(suggested: &[Permission], held: Permissions) -> bool {
    let set = Permissions::from_iter(suggested.iter().copied());
    !suggested.is_empty() && set.is_subset_of(held) && set != held
}

/// `GET /v1/api-keys/{id}/usage`: what a key used in the last 30 days and the
/// permissions that would have been enough.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyUsageView {
    #[schema(example = "api_key_usage")]
    pub object: &'static str,
    #[schema(example = "key_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub key_id: String,
    /// The window the counts cover, in days (today included).
    #[schema(example = 30)]
    pub window_days: i64,
    /// Each permission the key's requests needed, most used first.
    pub permissions_used: Vec<PermissionUseView>,
    /// The smallest set of permissions that would have allowed every request of the
    /// window (`write` implies `read`, so a resource read and written appears once, as
    /// `:write`). Empty when the key exercised no permission. Rotate with
    /// `permissions` set to this list to get a key restricted to it.
    #[schema(value_type = Vec<String>, example = json!(["contacts:read", "calls:read"]))]
    pub suggested_permissions: Vec<String>,
    /// True when the suggestion holds fewer permissions than the key.
    pub can_narrow: bool,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PermissionUseView {
    #[schema(example = "contacts:read")]
    pub permission: String,
    /// Requests in the window that needed this permission.
    #[schema(example = 812)]
    pub requests: i64,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: Timestamp,
}

impl KeyUsageView {
    pub fn new(key_id: &str, held: Permissions, mut used: Vec<PermissionUse>) -> Self {
        used.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(a.permission.cmp(&b.permission))
        });
        let suggested = suggest(used.iter().map(|u| u.permission), held);
        KeyUsageView {
            object: "api_key_usage",
            key_id: key_id.to_owned(),
            window_days: WINDOW_DAYS,
            can_narrow: narrows(&suggested, held),
            suggested_permissions: suggested.iter().map(ToString::to_string).collect(),
            permissions_used: used
                .into_iter()
                .map(|u| PermissionUseView {
                    permission: u.permission.to_string(),
                    requests: u.requests,
                    last_used_at: u.last_used_at,
                })
                .collect(),
        }
    }
}

/// How the dashboard says it: "contacts:read and calls:read".
pub fn sentence(permissions: &[Permission]) -> String {
    let words: Vec<String> = permissions.iter().map(ToString::to_string).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Permission {
        s.parse().expect("a permission")
    }

    fn list(items: &[&str]) -> Permissions {
        Permissions::parse_list(items.iter().copied()).expect("valid")
    }

    #[test]
    fn suggests_one_permission_per_resource_used() {
        let used = [
            p("contacts:read"),
            p("calls:read"),
            p("contacts:read"),
            p("messages:write"),
        ];
        let got = suggest(used, Permissions::full());
        assert_eq!(
            got,
            vec![p("contacts:read"), p("messages:write"), p("calls:read")]
        );
    }

    #[test]
    fn write_absorbs_read_so_the_suggestion_is_minimal() {
        let got = suggest([p("calls:read"), p("calls:write")], Permissions::full());
        assert_eq!(got, vec![p("calls:write")]);
        // The set it stands for still allows both.
        let set = Permissions::from_iter(got);
        assert!(set.allows(p("calls:read")) && set.allows(p("calls:write")));
    }

    #[test]
    fn permissions_never_used_are_left_out() {
        let held = list(&["contacts:write", "calls:read", "billing:read"]);
        let got = suggest([p("contacts:read"), p("calls:read")], held);
        assert_eq!(got, vec![p("contacts:read"), p("calls:read")]);
        assert!(narrows(&got, held));
    }

    #[test]
    fn a_suggestion_never_widens_the_key() {
        // A permission the key does not hold cannot be exercised; if one shows up (a
        // stale count), it is ignored rather than offered.
        let held = list(&["contacts:read"]);
        let got = suggest([p("contacts:read"), p("contacts:write")], held);
        assert_eq!(got, vec![p("contacts:read")]);
        assert!(!narrows(&got, held), "already exactly what it uses");
    }

    #[test]
    fn nothing_used_suggests_nothing_and_offers_no_narrowing() {
        let got = suggest([], Permissions::full());
        assert!(got.is_empty());
        assert!(!narrows(&got, Permissions::full()));
    }

    #[test]
    fn the_view_sorts_by_use_and_says_whether_it_narrows() {
        let at = crate::time::now();
        let used = vec![
            PermissionUse {
                permission: p("calls:read"),
                requests: 3,
                last_used_at: at,
            },
            PermissionUse {
                permission: p("contacts:read"),
                requests: 812,
                last_used_at: at,
            },
        ];
        let v = KeyUsageView::new("key_a", Permissions::read_only(), used);
        assert_eq!(v.window_days, 30);
        assert_eq!(v.permissions_used[0].permission, "contacts:read");
        assert_eq!(v.suggested_permissions, ["contacts:read", "calls:read"]);
        assert!(v.can_narrow);
    }

    #[test]
    fn sentences_read_naturally() {
        assert_eq!(sentence(&[p("contacts:read")]), "contacts:read");
        assert_eq!(
            sentence(&[p("contacts:read"), p("calls:read")]),
            "contacts:read and calls:read"
        );
        assert_eq!(
            sentence(&[p("contacts:read"), p("notes:write"), p("calls:read")]),
            "contacts:read, notes:write and calls:read"
        );
    }
}
