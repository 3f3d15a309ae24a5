//! Who is signed in: passwords (argon2), sessions (a random cookie whose keyed digest
//! is stored), CSRF tokens (per session; before sign-in a double-submit token signed
//! with the server secret), sign-in throttling (growing delays decided by
//! `domain::users::check_sign_in`; a signed device cookie exempts a browser that signed
//! in to the account before from guesses made elsewhere), the first-run setup link,
//! and the workspace / mode a person is looking at. Over HTTPS every cookie is a
//! `__Host-` cookie.

use std::sync::OnceLock;

use super::Query;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialtone_domain::keys::Digest;
use dialtone_domain::tenancy::{Mode, Scope};
use dialtone_domain::time::now;
use dialtone_domain::users::{self, Action, Role, constant_time_eq, generate_token};
use dialtone_domain::{Error, Result};
use dialtone_store::{Organization, Store, User, Workspace};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    DashError, DashResult, Form, cookie, is_https, render, render_status, see_other, set_cookie,
};
use crate::state::AppState;

pub(crate) const SESSION_COOKIE: &str = "dt_session";
/// Double-submit CSRF cookie for the forms shown before a session exists; its value
/// is signed with the server secret (`users::pre_session_token`).
const PRE_CSRF_COOKIE: &str = "dt_csrf";
/// Names a browser that signed in to an account before (`users::device_token`): its
/// sign-ins on that account are not slowed by guesses from elsewhere.
const DEVICE_COOKIE: &str = "dt_device";

/// A cookie's name: `__Host-` prefixed over HTTPS, so that only this exact origin
/// over TLS can have set it (not a sibling subdomain, not a plain-HTTP response);
/// plain-HTTP (localhost) keeps the bare name, which browsers refuse to prefix.
fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The value of the dashboard cookie `base` as this request's scheme names it.
fn our_cookie<'a>(state: &AppState, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
    cookie(headers, &cookie_name(base, is_https(state, headers)))
}

fn session_digest(state: &AppState, token: &str) -> Digest {
    state.digester.digest(&format!("dashboard-session:{token}"))
}

fn csrf_for(state: &AppState, token: &str) -> String {
    hex::encode(state.digester.digest(&format!("dashboard-csrf:{token}")))
}

fn setup_digest(state: &AppState, token: &str) -> Digest {
    state.digester.digest(&format!("dashboard-setup:{token}"))
}

// ---- passwords ----

/// Hashes a password (argon2id, a random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(std::io::Error::other(format!("argon2: {e}"))))
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the email is unknown, so both cases take as long.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dialtone-no-such-user").unwrap_or_default())
}

/// At most this many argon2 computations at once (each takes ~19 MiB and a core for
/// tens of milliseconds): a flood of sign-ins queues instead of exhausting memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn verify_password(password: String, phc: Option<String>) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            let _ = verify(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Creates a dashboard user (the CLI's `dialtone user create` and tests use this).
pub async fn create_user(
    store: &Store,
    org_id: &str,
    email: &str,
    password: &str,
    role: Role,
) -> Result<User> {
    let email = users::normalize_email(email)?;
    users::check_password(password)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(Error::internal)??;
    store.create_user(org_id, &email, &hash, role).await
}

/// On a fresh install (no user yet), makes a one-time setup token and returns it:
/// `serve` prints `http://<addr>/setup/<token>`. Only its digest is stored, and it
/// voids every earlier link: one valid link at a time.
pub async fn issue_setup_token(state: &AppState) -> Result<Option<SecretString>> {
    if state.store.count_users().await? > 0 {
        return Ok(None);
    }
    let token = generate_token();
    state
        .store
        .create_setup_token(
            &setup_digest(state, token.expose_secret()),
            now() + users::setup_link_lifetime(),
        )
        .await?;
    Ok(Some(token))
}

// ---- the signed-in person ----

/// The person behind a request, with their organization and where they are looking.
/// Extracting it redirects to the sign-in page when there is no live session.
pub(crate) struct Session {
    pub user: User,
    digest: Digest,
    pub csrf: String,
    pub org: Organization,
    pub workspaces: Vec<Workspace>,
    pub workspace_id: String,
    pub mode: Mode,
    pub ip: String,
    pub secure: bool,
}

/// What the layout shows around every page.
pub(crate) struct Nav {
    pub active: &'static str,
    pub email: String,
    pub role: &'static str,
    pub org_name: String,
    pub csrf: String,
    pub workspaces: Vec<(String, String, bool)>,
    pub test_mode: bool,
    pub here: String,
}

impl Session {
    pub fn scope(&self) -> Scope {
        Scope {
            org_id: self.org.id.clone(),
            workspace_id: self.workspace_id.clone(),
            mode: self.mode,
        }
    }

    pub fn can(&self, action: Action) -> bool {
        users::allows(self.user.role, action)
    }

    /// Refuses (403) unless the person's role allows `action`.
    pub fn authorize(&self, action: Action) -> DashResult<()> {
        users::authorize(self.user.role, action).map_err(DashError)
    }

    /// Refuses (403) a form whose CSRF token is missing or wrong.
    pub fn check_csrf(&self, form: &Form) -> DashResult<()> {
        match form.get("csrf") {
            Some(t) if constant_time_eq(t, &self.csrf) => Ok(()),
            _ => Err(csrf_refused()),
        }
    }

    pub fn workspace_name(&self) -> &str {
        self.workspaces
            .iter()
            .find(|w| w.id == self.workspace_id)
            .map_or("", |w| w.name.as_str())
    }

    pub fn nav(&self, active: &'static str, here: &str) -> Nav {
        Nav {
            active,
            email: self.user.email.clone(),
            role: self.user.role.as_str(),
            org_name: self.org.name.clone(),
            csrf: self.csrf.clone(),
            workspaces: self
                .workspaces
                .iter()
                .map(|w| (w.id.clone(), w.name.clone(), w.id == self.workspace_id))
                .collect(),
            test_mode: self.mode == Mode::Test,
            here: here.to_owned(),
        }
    }
}

fn csrf_refused() -> DashError {
    DashError(Error::Forbidden {
        message: "This form has expired or did not come from this dashboard. Reload the page and try again.".to_owned(),
        required_permission: None,
    })
}

fn to_login(parts: &Parts) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/dashboard/keys", |p| p.as_str());
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    see_other(&format!("/login?next={next}"))
}

/// The client address, as the API's authentication sees it.
fn client_ip(state: &AppState, parts: &Parts) -> String {
    crate::auth::client_ip_of(state, &parts.headers, &parts.extensions)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        let Some(token) = our_cookie(state, &parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        let digest = session_digest(state, token);
        let found = state
            .store
            .session_user(&digest)
            .await
            .map_err(|e| DashError(e).into_response())?;
        let Some(found) = found else {
            return Err(to_login(parts));
        };
        let org = state
            .store
            .get_org(&found.user.org_id)
            .await
            .map_err(|e| DashError(e).into_response())?;
        let workspaces = state
            .store
            .list_workspaces(&org.id)
            .await
            .map_err(|e| DashError(e).into_response())?;
        let workspace_id = found
            .workspace_id
            .filter(|w| workspaces.iter().any(|x| &x.id == w))
            .unwrap_or_else(|| org.default_workspace_id.clone());
        Ok(Session {
            csrf: csrf_for(state, token),
            digest,
            ip: client_ip(state, parts),
            secure: is_https(state, &parts.headers),
            user: found.user,
            org,
            workspaces,
            workspace_id,
            mode: found.mode,
        })
    }
}

/// The client address, for handlers without a session.
pub(crate) struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(state, parts)))
    }
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    no_users: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// Only a path of this dashboard, never another site, and always a valid header value.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/dashboard")
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => "/dashboard/keys".to_owned(),
    }
}

/// A page with a fresh double-submit CSRF cookie.
fn with_pre_csrf(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    page: impl FnOnce(String) -> Response,
) -> Response {
    let token = users::pre_session_token(&state.digester, now());
    let mut resp = page(token.clone());
    *resp.status_mut() = status;
    let secure = is_https(state, headers);
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &cookie_name(PRE_CSRF_COOKIE, secure),
            &token,
            users::PRE_SESSION_TOKEN_LIFETIME_SECS,
            secure,
        ),
    );
    resp
}

/// A form shown before sign-in must send back the token its page set as a cookie,
/// and that token must be one this server signed within the hour: a pair the sender
/// made up (`dt_csrf=abc`, `csrf=abc`) is refused.
fn check_pre_csrf(state: &AppState, headers: &HeaderMap, form: &Form) -> DashResult<()> {
    match (
        our_cookie(state, headers, PRE_CSRF_COOKIE),
        form.get("csrf"),
    ) {
        (Some(c), Some(f))
            if constant_time_eq(c, f)
                && users::pre_session_token_valid(&state.digester, c, now()) =>
        {
            Ok(())
        }
        _ => Err(csrf_refused()),
    }
}

async fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: String,
    next: String,
    error: Option<String>,
) -> Response {
    let no_users = state.store.count_users().await.is_ok_and(|n| n == 0);
    with_pre_csrf(state, headers, status, |csrf| {
        render(&LoginPage {
            csrf,
            email,
            next,
            error,
            no_users,
        })
    })
}

pub(crate) async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Some(token) = our_cookie(&state, &headers, SESSION_COOKIE)
        && let Ok(Some(_)) = state
            .store
            .session_user(&session_digest(&state, token))
            .await
    {
        return see_other(&safe_next(q.next.as_deref()));
    }
    let next = safe_next(q.next.as_deref());
    login_form(&state, &headers, StatusCode::OK, String::new(), next, None).await
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match try_login(&state, &ip, &headers, &Form::parse(&body)).await {
        Ok(resp) => resp,
        Err(e) => e,
    }
}

async fn try_login(
    state: &AppState,
    ip: &str,
    headers: &HeaderMap,
    form: &Form,
) -> std::result::Result<Response, Response> {
    check_pre_csrf(state, headers, form).map_err(IntoResponse::into_response)?;
    let next = safe_next(form.get("next"));
    let raw_email = form.get("email").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let email = users::normalize_email(&raw_email).unwrap_or_else(|_| raw_email.to_lowercase());
    let at = now();
    let found = state
        .store
        .user_by_email(&email)
        .await
        .map_err(|e| DashError(e).into_response())?;
    // A device cookie counts only for the account it names.
    let device = our_cookie(state, headers, DEVICE_COOKIE)
        .and_then(|t| users::verify_device_token(&state.digester, t, at))
        .filter(|d| found.as_ref().is_some_and(|(u, _)| u.id == d.user_id));
    let device_id = device.as_ref().map(|d| d.id.as_str());
    let (attempt, history) = state
        .store
        .record_login_attempt(&email, ip, device_id, users::throttle_window_start(at))
        .await
        .map_err(|e| DashError(e).into_response())?;
    if let Err(Error::RateLimited { retry_after_secs }) = users::check_sign_in(&history, at) {
        // Refused unseen: not a guess, so it must not lengthen anyone's wait.
        state
            .store
            .forget_login_attempt(&attempt)
            .await
            .map_err(|e| DashError(e).into_response())?;
        tracing::warn!(%ip, known_device = device.is_some(), retry_after_secs, "dashboard: sign-in throttled");
        let mut resp = login_form(
            state,
            headers,
            StatusCode::TOO_MANY_REQUESTS,
            raw_email,
            next,
            Some(format!(
                "Too many failed sign-ins for this email or from your address. Wait {} and try again.",
                wait_text(retry_after_secs)
            )),
        )
        .await;
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            crate::auth::header_num(retry_after_secs),
        );
        return Err(resp);
    }
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let ok = !password.is_empty() && verify_password(password, phc).await;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            // The attempt was recorded before checking: it stays as a failure.
            return Err(login_form(
                state,
                headers,
                StatusCode::UNAUTHORIZED,
                raw_email,
                next,
                Some("Incorrect email or password.".to_owned()),
            )
            .await);
        }
    };
    state
        .store
        .clear_login_failures(&email, ip, device_id, users::throttle_window_start(at))
        .await
        .map_err(|e| DashError(e).into_response())?;
    let resp = start_session(state, headers, &user, &next)
        .await
        .map_err(|e| DashError(e).into_response())?;
    audit(
        state,
        &user.org_id,
        &user.id,
        "user.signed_in",
        &user.id,
        "Signed in",
        ip,
    )
    .await;
    Ok(resp)
}

/// `37 seconds`, `5 minutes`.
fn wait_text(secs: u64) -> String {
    match secs {
        1 => "1 second".to_owned(),
        s if s < 90 => format!("{s} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

/// Starts a session and makes this browser a known device of the account.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    to: &str,
) -> Result<Response> {
    let token = generate_token();
    let lifetime = users::session_lifetime();
    state
        .store
        .create_session(
            &session_digest(state, token.expose_secret()),
            &user.id,
            now() + lifetime,
        )
        .await?;
    let secure = is_https(state, headers);
    let mut resp = see_other(to);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &cookie_name(SESSION_COOKIE, secure),
            token.expose_secret(),
            lifetime.num_seconds(),
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&cookie_name(PRE_CSRF_COOKIE, secure), "", 0, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &cookie_name(DEVICE_COOKIE, secure),
            &users::device_token(&state.digester, &user.id, now()),
            users::DEVICE_LIFETIME_DAYS * 86_400,
            secure,
        ),
    );
    Ok(resp)
}

/// Writes an audit entry; a failure is logged, never shown (the action happened).
pub(crate) async fn audit(
    state: &AppState,
    org_id: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    ip: &str,
) {
    if let Err(e) = state
        .store
        .record_audit(org_id, actor, action, target, detail, Some(ip))
        .await
    {
        tracing::error!(error = %e, %action, %target, "dashboard: audit entry not written");
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    session.check_csrf(&Form::parse(&body))?;
    state.store.delete_session(&session.digest).await?;
    audit(
        &state,
        &session.org.id,
        &session.user.id,
        "user.signed_out",
        &session.user.id,
        "Signed out",
        &session.ip,
    )
    .await;
    let mut resp = see_other("/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &cookie_name(SESSION_COOKIE, session.secure),
            "",
            0,
            session.secure,
        ),
    );
    Ok(resp)
}

// ---- workspace and mode ----

pub(crate) async fn switch_context(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> DashResult<Response> {
    let form = Form::parse(&body);
    session.check_csrf(&form)?;
    let workspace = form
        .get("workspace_id")
        .filter(|w| session.workspaces.iter().any(|x| x.id == *w))
        .unwrap_or(&session.workspace_id)
        .to_owned();
    let mode = match form.get("mode") {
        Some("test") => Mode::Test,
        Some("live") => Mode::Live,
        _ => session.mode,
    };
    state
        .store
        .set_session_context(&session.digest, &workspace, mode)
        .await?;
    Ok(see_other(&safe_next(form.get("back"))))
}

// ---- first run ----

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    csrf: String,
    token: String,
    org_name: String,
    existing_org: Option<String>,
    email: String,
    error: Option<String>,
}

async fn first_org(store: &Store) -> Result<Option<Organization>> {
    Ok(store.list_orgs().await?.into_iter().next())
}

pub(crate) async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> DashResult<Response> {
    if !state
        .store
        .setup_token_valid(&setup_digest(&state, &token))
        .await?
    {
        return Err(setup_gone());
    }
    let existing_org = first_org(&state.store).await?.map(|o| o.name);
    Ok(with_pre_csrf(&state, &headers, StatusCode::OK, |csrf| {
        render(&SetupPage {
            csrf,
            token,
            org_name: String::new(),
            existing_org,
            email: String::new(),
            error: None,
        })
    }))
}

fn setup_gone() -> DashError {
    DashError(Error::NotFound {
        resource: "setup link (it was used already, has expired, or a newer link replaced it; restart `dialtone serve` with no user to get a new one, or use `dialtone user create`)",
    })
}

pub(crate) async fn setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> DashResult<Response> {
    let form = Form::parse(&body);
    check_pre_csrf(&state, &headers, &form)?;
    let digest = setup_digest(&state, &token);
    if !state.store.setup_token_valid(&digest).await? {
        return Err(setup_gone());
    }
    let existing_org = first_org(&state.store).await?;
    let org_name = form.text("org_name").unwrap_or("").to_owned();
    let email = form.text("email").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("");
    let confirm = form.get("password_confirm").unwrap_or("");
    let problem = if existing_org.is_none() && org_name.is_empty() {
        Some("Enter your organization's name.".to_owned())
    } else if org_name.chars().count() > 100 {
        Some("The organization name must be at most 100 characters.".to_owned())
    } else if let Err(e) = users::normalize_email(&email) {
        Some(e.to_string())
    } else if let Err(e) = users::check_password(password) {
        Some(e.to_string())
    } else if password != confirm {
        Some("The two passwords do not match.".to_owned())
    } else {
        None
    };
    if let Some(error) = problem {
        let existing_org = existing_org.map(|o| o.name);
        return Ok(with_pre_csrf(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            |csrf| {
                render_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &SetupPage {
                        csrf,
                        token,
                        org_name,
                        existing_org,
                        email,
                        error: Some(error),
                    },
                )
            },
        ));
    }
    let email = users::normalize_email(&email)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(Error::internal)??;
    let user = state
        .store
        .complete_setup(&digest, &org_name, &email, &hash)
        .await?;
    audit(
        &state,
        &user.org_id,
        &user.id,
        "user.created",
        &user.id,
        &format!("First owner {} created with the setup link", user.email),
        &ip,
    )
    .await;
    Ok(start_session(&state, &headers, &user, "/dashboard/keys").await?)
}
