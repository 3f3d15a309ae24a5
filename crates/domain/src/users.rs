//! People who sign in to the dashboard: roles, what each role may do, and the rules
//! for emails, passwords, sessions and sign-in throttling. No I/O.
//!
//! [`authorize`] is the one place a dashboard action is allowed or refused: handlers
//! ask it and never compare roles themselves.

use chrono::TimeDelta;

use crate::error::{Error, Result, Validator};
use crate::time::Timestamp;

/// A user's role in their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including managing keys and webhooks.
    Owner,
    /// Everything an owner does.
    Admin,
    /// Sees keys, webhooks and calls; changes nothing.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(Error::validation(
                "role",
                "role must be owner, admin or member",
            )),
        }
    }
}

/// Something a dashboard user asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the key list, webhooks, calls and the audit log.
    View,
    /// Create, rotate or revoke an API key.
    ManageKeys,
    /// Send a test event, redeliver, rotate a webhook secret.
    ManageWebhooks,
}

/// Whether `role` may do `action`: owners and admins manage, members look.
pub fn allows(role: Role, action: Action) -> bool {
    match action {
        Action::View => true,
        Action::ManageKeys | Action::ManageWebhooks => matches!(role, Role::Owner | Role::Admin),
    }
}

/// Refuses with 403 unless `role` may do `action`.
pub fn authorize(role: Role, action: Action) -> Result<()> {
    if allows(role, action) {
        Ok(())
    } else {
        Err(Error::Forbidden {
            message: format!(
                "Your role ({role}) can view this page but not change it. Ask an owner or an admin."
            ),
            required_permission: None,
        })
    }
}

pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 1024;
pub const EMAIL_MAX: usize = 254;

/// Trims and lowercases an email and checks it looks like one.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let mut v = Validator::new();
    let shape_ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    };
    v.check(
        shape_ok && !email.chars().any(char::is_whitespace),
        "email",
        "Enter an email address like name@example.com.",
    );
    v.max_len("email", Some(&email), EMAIL_MAX);
    v.finish()?;
    Ok(email)
}

/// A password must be long enough to resist guessing, and bounded (hashing cost).
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    let mut v = Validator::new();
    v.check(
        n >= PASSWORD_MIN,
        "password",
        format!("The password must be at least {PASSWORD_MIN} characters."),
    );
    v.check(
        n <= PASSWORD_MAX,
        "password",
        format!("The password must be at most {PASSWORD_MAX} characters."),
    );
    v.finish()
}

/// How long a dashboard session lasts.
pub fn session_lifetime() -> TimeDelta {
    TimeDelta::hours(12)
}

/// How long a first-run setup link works.
pub fn setup_link_lifetime() -> TimeDelta {
    TimeDelta::hours(24)
}

/// Sign-in throttling, within [`THROTTLE_WINDOW_MINUTES`]: at most this many failed
/// attempts for one email from one address; further attempts are refused unseen.
pub const MAX_LOGIN_FAILURES: i64 = 5;
/// … for one email from any number of addresses (a botnet, or a spoofed
/// `X-Forwarded-For`, gets no more guesses on one account than this).
pub const MAX_LOGIN_FAILURES_PER_EMAIL: i64 = 20;
/// … from one address over any number of emails.
pub const MAX_LOGIN_FAILURES_PER_IP: i64 = 100;
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;

/// The start of the window in which failures count.
pub fn throttle_window_start(now: Timestamp) -> Timestamp {
    now - TimeDelta::minutes(THROTTLE_WINDOW_MINUTES)
}

/// Refuses with 429 when an attempt goes past a limit. The counts include the
/// attempt being decided (it is recorded before the password is checked, so that
/// parallel guesses all count).
pub fn check_throttle(email_and_ip: i64, email: i64, ip: i64) -> Result<()> {
    if email_and_ip > MAX_LOGIN_FAILURES
        || email > MAX_LOGIN_FAILURES_PER_EMAIL
        || ip > MAX_LOGIN_FAILURES_PER_IP
    {
        Err(Error::RateLimited {
            retry_after_secs: u64::try_from(THROTTLE_WINDOW_MINUTES * 60).unwrap_or(900),
        })
    } else {
        Ok(())
    }
}

/// A new random session, setup or CSRF token: 32 bytes, URL-safe base64 (43 characters).
pub fn generate_token() -> secrecy::SecretString {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    secrecy::SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_and_admins_manage() {
        for role in [Role::Owner, Role::Admin] {
            assert!(authorize(role, Action::ManageKeys).is_ok());
            assert!(authorize(role, Action::ManageWebhooks).is_ok());
        }
        assert!(authorize(Role::Member, Action::View).is_ok());
        assert!(matches!(
            authorize(Role::Member, Action::ManageKeys),
            Err(Error::Forbidden { .. })
        ));
        assert!(authorize(Role::Member, Action::ManageWebhooks).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn emails_and_passwords() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in ["", "ada", "ada@", "@x.com", "ada@x", "a b@x.com", "a@.com"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("long enough password").is_ok());
    }

    #[test]
    fn tokens_are_random_and_compared_fully() {
        use secrecy::ExposeSecret;
        let (a, b) = (generate_token(), generate_token());
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(constant_time_eq(a.expose_secret(), a.expose_secret()));
        assert!(!constant_time_eq(a.expose_secret(), b.expose_secret()));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    #[test]
    fn throttle_after_five_failures_per_pair_twenty_per_email_a_hundred_per_address() {
        assert!(check_throttle(5, 5, 5).is_ok());
        assert!(matches!(
            check_throttle(6, 6, 6),
            Err(Error::RateLimited {
                retry_after_secs: 900
            })
        ));
        assert!(check_throttle(1, 20, 1).is_ok());
        assert!(check_throttle(1, 21, 1).is_err());
        assert!(check_throttle(1, 1, 101).is_err());
    }
}
