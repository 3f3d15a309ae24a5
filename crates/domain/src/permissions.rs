//! Permissions: `{resource}:{read|write}` and the sets a key holds.
//!
//! `write` on a resource includes `read` on it (as Stripe's restricted keys do): a key
//! that may change contacts may also see them. A set is a small bit set, so checking a
//! permission on every request costs one AND.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

macro_rules! resources {
    ($($variant:ident => $name:literal, writable: $w:literal;)*) => {
        /// Everything a permission can be about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Resource { $($variant),* }

        impl Resource {
            pub const ALL: &'static [Resource] = &[$(Resource::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Resource::$variant => $name),* }
            }

            /// Whether `{resource}:write` exists (analytics and billing are read-only).
            pub fn writable(self) -> bool {
                match self { $(Resource::$variant => $w),* }
            }

            fn parse(s: &str) -> Option<Resource> {
                match s { $($name => Some(Resource::$variant),)* _ => None }
            }
        }
    };
}

resources! {
    Contacts => "contacts", writable: true;
    Conversations => "conversations", writable: true;
    Messages => "messages", writable: true;
    Notes => "notes", writable: true;
    Calls => "calls", writable: true;
    Agents => "agents", writable: true;
    Campaigns => "campaigns", writable: true;
    PhoneNumbers => "phone_numbers", writable: true;
    Webhooks => "webhooks", writable: true;
    ApiKeys => "api_keys", writable: true;
    Analytics => "analytics", writable: false;
    Billing => "billing", writable: false;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

/// One permission, e.g. `contacts:write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub resource: Resource,
    pub access: Access,
}

impl Permission {
    pub const fn read(resource: Resource) -> Self {
        Permission {
            resource,
            access: Access::Read,
        }
    }

    pub const fn write(resource: Resource) -> Self {
        Permission {
            resource,
            access: Access::Write,
        }
    }

    fn bit(self) -> u32 {
        let base = 1u32 << (2 * self.resource as u32);
        match self.access {
            Access::Read => base,
            Access::Write => base << 1,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        write!(f, "{}:{access}", self.resource.as_str())
    }
}

impl FromStr for Permission {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::validation(
                "permissions",
                format!("unknown permission {s:?}; expected {{resource}}:{{read|write}}"),
            )
        };
        let (resource, access) = s.trim().split_once(':').ok_or_else(invalid)?;
        let resource = Resource::parse(resource).ok_or_else(invalid)?;
        let access = match access {
            "read" => Access::Read,
            "write" if resource.writable() => Access::Write,
            _ => return Err(invalid()),
        };
        Ok(Permission { resource, access })
    }
}

impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The permissions a key holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    /// Every permission there is: the default for a new key.
    pub fn full() -> Self {
        Self::from_iter(Resource::ALL.iter().flat_map(|&r| {
            let mut v = vec![Permission::read(r)];
            if r.writable() {
                v.push(Permission::write(r));
            }
            v
        }))
    }

    /// Every `:read` and nothing else: the read-only toggle.
    pub fn read_only() -> Self {
        Self::from_iter(Resource::ALL.iter().map(|&r| Permission::read(r)))
    }

    pub fn allows(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_subset_of(self, other: Permissions) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn has_any_write(self) -> bool {
        self.iter().any(|p| p.access == Access::Write)
    }

    pub fn is_full(self) -> bool {
        self == Self::full()
    }

    /// The permissions in a stable order (resource, then read before write).
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Resource::ALL.iter().flat_map(move |&r| {
            [Permission::read(r), Permission::write(r)]
                .into_iter()
                .filter(move |p| self.allows(*p))
        })
    }

    /// The first permission of `self` missing from `other`.
    pub fn first_missing_from(self, other: Permissions) -> Option<Permission> {
        self.iter().find(|p| !other.allows(*p))
    }

    /// Parses a list such as `contacts:read,calls:write`; `write` adds the matching `read`.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, Error> {
        let mut set = Permissions::NONE;
        for item in items {
            let p: Permission = item.parse()?;
            set.insert(p);
        }
        Ok(set)
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
        if p.access == Access::Write {
            self.0 |= Permission::read(p.resource).bit();
        }
    }

    /// The stored form: a comma-separated list, stable and human-readable.
    pub fn to_csv(self) -> String {
        self.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn to_strings(self) -> Vec<String> {
        self.iter().map(|p| p.to_string()).collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Permissions::NONE;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|p| p.to_string()))
            .finish()
    }
}

impl serde::Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_permissions() {
        let p: Permission = "phone_numbers:write".parse().expect("valid");
        assert_eq!(p, Permission::write(Resource::PhoneNumbers));
        assert_eq!(p.to_string(), "phone_numbers:write");
        assert!("contacts:delete".parse::<Permission>().is_err());
        assert!("billing:write".parse::<Permission>().is_err());
        assert!("nope:read".parse::<Permission>().is_err());
    }

    #[test]
    fn write_implies_read_and_read_only_has_no_write() {
        let set = Permissions::parse_list(["calls:write"]).expect("valid");
        assert!(set.allows(Permission::read(Resource::Calls)));
        assert!(!set.allows(Permission::read(Resource::Contacts)));
        assert_eq!(set.to_csv(), "calls:read,calls:write");
        let ro = Permissions::read_only();
        assert!(!ro.has_any_write());
        assert!(ro.is_subset_of(Permissions::full()));
        assert!(!Permissions::full().is_subset_of(ro));
        assert_eq!(
            Permissions::full().first_missing_from(ro),
            Some(Permission::write(Resource::Contacts))
        );
    }

    #[test]
    fn csv_round_trips() {
        let full = Permissions::full();
        let back = Permissions::parse_list(full.to_csv().split(',')).expect("valid");
        assert_eq!(full, back);
    }
}
