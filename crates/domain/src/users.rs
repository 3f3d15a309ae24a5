//! People who sign in to the dashboard: roles, what each role may do, and the rules
//! for emails, passwords, sessions and sign-in throttling. No I/O.
//!
//! [`authorize`] is the one place a dashboard action is allowed or refused: handlers
//! ask it and never compare roles themselves.

use chrono::TimeDelta;

use crate::error::{Error, Result, Validator};
use crate::keys::KeyDigester;
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
    /// Create, edit or delete a contact; add a note to a contact.
    ManageContacts,
    /// Send a message in a conversation; add a note to a conversation.
    SendMessages,
    /// Buy, route or release a phone number (buying is charged).
    ManageNumbers,
    /// Create, edit or delete an agent.
    ManageAgents,
    /// Create (and start), pause, resume or cancel a campaign (its calls are charged).
    ManageCampaigns,
}

/// Whether `role` may do `action`: owners and admins manage, members look.
pub fn allows(role: Role, action: Action) -> bool {
    match action {
        Action::View => true,
        Action::ManageKeys
        | Action::ManageWebhooks
        | Action::ManageContacts
        | Action::SendMessages
        | Action::ManageNumbers
        | Action::ManageAgents
        | Action::ManageCampaigns => matches!(role, Role::Owner | Role::Admin),
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

/// Sign-in throttling. Failed sign-ins are counted within [`THROTTLE_WINDOW_MINUTES`]
/// (in the database, so every node sees them). A few are free; past that each guess
/// must wait a delay that doubles with every further failure, up to
/// [`MAX_SIGN_IN_DELAY_SECS`]. Nobody is ever locked out for the whole window: a
/// person who mistyped (or whose email is being guessed at) waits seconds, then
/// minutes, and is told how long. A browser that signed in to an account before
/// carries a signed device cookie ([`device_token`]): its attempts on that account
/// count per device only, so guesses from elsewhere never slow its owner down.
///
/// Free failures for one email from one address (and for one known device).
pub const FREE_FAILURES_PER_EMAIL_AND_IP: i64 = 5;
/// … for one email from any number of addresses (a botnet, or a spoofed
/// `X-Forwarded-For`, gets no more guesses on one account than this, then delays).
pub const FREE_FAILURES_PER_EMAIL: i64 = 10;
/// … from one address over any number of emails.
pub const FREE_FAILURES_PER_IP: i64 = 50;
/// The longest wait between two guesses.
pub const MAX_SIGN_IN_DELAY_SECS: i64 = 300;
pub const THROTTLE_WINDOW_MINUTES: i64 = 15;

/// The start of the window in which failures count.
pub fn throttle_window_start(now: Timestamp) -> Timestamp {
    now - TimeDelta::minutes(THROTTLE_WINDOW_MINUTES)
}

/// Earlier failed sign-ins of one kind (same email, same address, …) within the
/// window: how many, and the latest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub last: Option<Timestamp>,
}

/// What an attempt is judged on: earlier failures (not counting the attempt itself)
/// for this email from this address, for this email, from this address, and, when
/// the browser is a known device of the account, for that device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInHistory {
    pub email_and_ip: Failures,
    pub email: Failures,
    pub ip: Failures,
    pub device: Option<Failures>,
}

/// How long to wait after the latest failure when `count` failures happened and
/// `free` are allowed without waiting: 1 s, 2 s, 4 s, … up to the cap.
pub fn sign_in_delay(count: i64, free: i64) -> TimeDelta {
    if count < free {
        return TimeDelta::zero();
    }
    let doublings = u32::try_from((count - free).min(20)).unwrap_or(20);
    TimeDelta::seconds((1i64 << doublings).min(MAX_SIGN_IN_DELAY_SECS))
}

/// Decides whether an attempt at `at` may have its password checked: refuses with
/// 429 (and how many seconds to wait) while a delay runs. A known device is judged on
/// its own failures only; any other browser on the email, the address and the pair.
pub fn check_sign_in(history: &SignInHistory, at: Timestamp) -> Result<()> {
    let limits: Vec<(Failures, i64)> = match history.device {
        Some(device) => vec![(device, FREE_FAILURES_PER_EMAIL_AND_IP)],
        None => vec![
            (history.email_and_ip, FREE_FAILURES_PER_EMAIL_AND_IP),
            (history.email, FREE_FAILURES_PER_EMAIL),
            (history.ip, FREE_FAILURES_PER_IP),
        ],
    };
    let until = limits
        .into_iter()
        .filter_map(|(f, free)| f.last.map(|last| last + sign_in_delay(f.count, free)))
        .max();
    match until {
        Some(until) if until > at => {
            let ms = (until - at).num_milliseconds();
            Err(Error::RateLimited {
                retry_after_secs: u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1),
            })
        }
        _ => Ok(()),
    }
}

// ---- tokens signed with the server secret ----

/// How long the token of a form shown before sign-in (login, setup) is accepted.
pub const PRE_SESSION_TOKEN_LIFETIME_SECS: i64 = 3600;
/// How long a browser stays a known device of an account after its last sign-in.
pub const DEVICE_LIFETIME_DAYS: i64 = 180;

fn signed(digester: &KeyDigester, purpose: &str, payload: &str) -> String {
    hex::encode(digester.digest(&format!("dashboard-{purpose}:{payload}")))
}

fn random_nonce() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Splits `payload.mac` and checks the MAC in constant time.
fn verified<'a>(digester: &KeyDigester, purpose: &str, token: &'a str) -> Option<&'a str> {
    let (payload, mac) = token.rsplit_once('.')?;
    constant_time_eq(mac, &signed(digester, purpose, payload)).then_some(payload)
}

fn issued_within(issued: &str, at: Timestamp, lifetime: TimeDelta) -> bool {
    issued.parse::<i64>().is_ok_and(|secs| {
        let age = at.timestamp() - secs;
        (-60..=lifetime.num_seconds()).contains(&age)
    })
}

/// The CSRF token of a form shown before a session exists (the double-submit cookie
/// and the hidden field): `{issued}.{nonce}.{HMAC}` under the server secret, so a
/// value the browser did not get from this server is refused, statelessly.
pub fn pre_session_token(digester: &KeyDigester, at: Timestamp) -> String {
    let payload = format!("{}.{}", at.timestamp(), random_nonce());
    let mac = signed(digester, "pre-csrf", &payload);
    format!("{payload}.{mac}")
}

/// Whether `token` came from [`pre_session_token`] less than an hour before `at`.
pub fn pre_session_token_valid(digester: &KeyDigester, token: &str, at: Timestamp) -> bool {
    verified(digester, "pre-csrf", token)
        .and_then(|payload| payload.split_once('.'))
        .is_some_and(|(issued, nonce)| {
            !nonce.is_empty()
                && issued_within(
                    issued,
                    at,
                    TimeDelta::seconds(PRE_SESSION_TOKEN_LIFETIME_SECS),
                )
        })
}

/// A browser that signed in to an account before, as its device cookie names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user_id: String,
    /// Random, per sign-in: what failures of this browser are counted under.
    pub id: String,
}

/// The device cookie given on a successful sign-in: `{user}.{issued}.{nonce}.{HMAC}`
/// under the server secret.
pub fn device_token(digester: &KeyDigester, user_id: &str, at: Timestamp) -> String {
    let payload = format!("{user_id}.{}.{}", at.timestamp(), random_nonce());
    let mac = signed(digester, "device", &payload);
    format!("{payload}.{mac}")
}

/// The device a cookie names, if this server signed it within [`DEVICE_LIFETIME_DAYS`].
pub fn verify_device_token(digester: &KeyDigester, token: &str, at: Timestamp) -> Option<Device> {
    let payload = verified(digester, "device", token)?;
    let mut parts = payload.split('.');
    let (user_id, issued, nonce) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none()
        && !user_id.is_empty()
        && !nonce.is_empty()
        && issued_within(issued, at, TimeDelta::days(DEVICE_LIFETIME_DAYS)))
    .then(|| Device {
        user_id: user_id.to_owned(),
        id: nonce.to_owned(),
    })
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
        for action in [
            Action::ManageContacts,
            Action::SendMessages,
            Action::ManageNumbers,
            Action::ManageAgents,
            Action::ManageCampaigns,
        ] {
            assert!(authorize(Role::Owner, action).is_ok());
            assert!(authorize(Role::Admin, action).is_ok());
            assert!(authorize(Role::Member, action).is_err(), "{action:?}");
        }
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

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn failures(count: i64, last: i64) -> Failures {
        Failures {
            count,
            last: Some(at(last)),
        }
    }

    #[test]
    fn delays_double_after_the_free_failures_and_are_capped() {
        assert_eq!(sign_in_delay(4, 5), TimeDelta::zero());
        assert_eq!(sign_in_delay(5, 5), TimeDelta::seconds(1));
        assert_eq!(sign_in_delay(6, 5), TimeDelta::seconds(2));
        assert_eq!(sign_in_delay(9, 5), TimeDelta::seconds(16));
        assert_eq!(
            sign_in_delay(40, 5),
            TimeDelta::seconds(MAX_SIGN_IN_DELAY_SECS)
        );
        assert_eq!(
            sign_in_delay(i64::MAX, 5),
            TimeDelta::seconds(MAX_SIGN_IN_DELAY_SECS)
        );
    }

    #[test]
    fn guesses_wait_instead_of_being_locked_out() {
        let quiet = SignInHistory::default();
        assert!(check_sign_in(&quiet, at(0)).is_ok());
        // Five from one address: the sixth waits a second after the fifth, then may try.
        let pair = SignInHistory {
            email_and_ip: failures(5, 0),
            email: failures(5, 0),
            ip: failures(5, 0),
            device: None,
        };
        assert!(matches!(
            check_sign_in(&pair, at(0)),
            Err(Error::RateLimited {
                retry_after_secs: 1
            })
        ));
        assert!(check_sign_in(&pair, at(1)).is_ok());
        // Thirty from thirty addresses: this email waits 2^20 s capped, never the window.
        let spread = SignInHistory {
            email_and_ip: Failures::default(),
            email: failures(30, 0),
            ip: Failures::default(),
            device: None,
        };
        assert!(matches!(
            check_sign_in(&spread, at(10)),
            Err(Error::RateLimited { retry_after_secs }) if retry_after_secs == 290
        ));
        assert!(check_sign_in(&spread, at(MAX_SIGN_IN_DELAY_SECS)).is_ok());
        // A known device is judged on its own failures only.
        let device = SignInHistory {
            device: Some(Failures::default()),
            ..spread
        };
        assert!(check_sign_in(&device, at(10)).is_ok());
        let guessing_device = SignInHistory {
            device: Some(failures(7, 0)),
            ..spread
        };
        assert!(matches!(
            check_sign_in(&guessing_device, at(1)),
            Err(Error::RateLimited {
                retry_after_secs: 3
            })
        ));
    }

    #[test]
    fn pre_session_tokens_are_signed_and_expire() {
        use secrecy::SecretString;
        let d = KeyDigester::new(&SecretString::from("server secret"));
        let other = KeyDigester::new(&SecretString::from("another secret"));
        let t = pre_session_token(&d, at(0));
        assert!(pre_session_token_valid(&d, &t, at(0)));
        assert!(pre_session_token_valid(
            &d,
            &t,
            at(PRE_SESSION_TOKEN_LIFETIME_SECS)
        ));
        assert!(!pre_session_token_valid(
            &d,
            &t,
            at(PRE_SESSION_TOKEN_LIFETIME_SECS + 1)
        ));
        assert!(!pre_session_token_valid(&other, &t, at(0)));
        for forged in ["abc", "", ".", "1.2.3", &t[..t.len() - 1], &format!("{t}0")] {
            assert!(!pre_session_token_valid(&d, forged, at(0)), "{forged}");
        }
        assert_ne!(t, pre_session_token(&d, at(0)));
    }

    #[test]
    fn device_tokens_name_their_user_and_cannot_be_forged() {
        use secrecy::SecretString;
        let d = KeyDigester::new(&SecretString::from("server secret"));
        let t = device_token(&d, "usr_1", at(0));
        let device = verify_device_token(&d, &t, at(60)).expect("valid");
        assert_eq!(device.user_id, "usr_1");
        assert!(!device.id.is_empty());
        let renamed = t.replacen("usr_1", "usr_2", 1);
        assert!(verify_device_token(&d, &renamed, at(60)).is_none());
        let old = at(DEVICE_LIFETIME_DAYS * 86_400 + 1);
        assert!(verify_device_token(&d, &t, old).is_none());
        let other = KeyDigester::new(&SecretString::from("another secret"));
        assert!(verify_device_token(&other, &t, at(60)).is_none());
        // A pre-session token is not a device token (different purpose).
        let pre = pre_session_token(&d, at(0));
        assert!(verify_device_token(&d, &pre, at(0)).is_none());
    }
}
