//! The dashboard: server-rendered pages for the people of an organization — sign-in,
//! Settings → API Keys, webhooks and the call log — served by `dialtone serve` with
//! no internet and no build step (askama templates compiled in, htmx and the
//! stylesheet embedded from `assets/`).
//!
//! Invariants:
//! - **It never writes an API key row itself.** Creation and rotation go through
//!   [`crate::keys::KeyIssuer`] (so `plan_new_key`, the cap and the event are the
//!   API's), revocation through [`crate::keys::revoke_key`] (row, change feed, cache).
//! - **Roles are decided once**, by [`dialtone_domain::users::authorize`]; handlers ask
//!   it before every change and never compare roles themselves.
//! - **Every form is CSRF-checked** (a per-session token; before sign-in a token
//!   signed with the server secret, in a cookie and the form alike; constant-time
//!   compare; 403 otherwise), sessions are `HttpOnly; SameSite=Lax` cookies (`Secure`
//!   and `__Host-` names over HTTPS), and only keyed digests of session and setup
//!   tokens are stored.
//! - **Every change to a key is in the audit log** shown on the keys page.
//!
//! Map: [`session`] (sign-in, setup link, sessions, CSRF, throttling), [`keys`] (the
//! API Keys page), [`webhooks`], [`calls`], [`campaigns`], [`contacts`], [`conversations`],
//! [`numbers`], [`agents`], [`billing`], [`analytics`] (the usage report as charts and
//! a table), [`audit`] (the audit log page),
//! [`integrations`] (MCP configuration with a new read-only key, REST hooks), [`pages`]
//! (what those pages share: confirmation pages, form errors, paging links), [`chart`]
//! (server-rendered SVG bar charts),
//! [`consent`] (OAuth consent for MCP clients).

mod agents;
mod analytics;
mod audit;
mod billing;
mod calls;
mod campaigns;
mod chart;
mod consent;
mod contacts;
mod conversations;
mod integrations;
mod keys;
mod numbers;
mod pages;
mod session;
mod webhooks;

pub use session::{create_user, hash_password, issue_setup_token};

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dialtone_domain::Error;

use crate::state::AppState;

/// The dashboard's routes, merged into the server's router by [`crate::router::build`].
pub fn routes(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/keys") }))
        .route(
            "/dashboard",
            get(|| async { Redirect::to("/dashboard/keys") }),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route(
            "/setup/{token}",
            get(session::setup_page).post(session::setup),
        )
        .route("/dashboard/context", post(session::switch_context))
        .route("/dashboard/keys", get(keys::page).post(keys::create))
        .route(
            "/dashboard/keys/{id}/revoke",
            get(keys::revoke_page).post(keys::revoke),
        )
        .route(
            "/dashboard/keys/{id}/rotate",
            get(keys::rotate_page).post(keys::rotate),
        )
        .route("/dashboard/keys/{id}/restrict", get(keys::restrict_page))
        .route(
            "/dashboard/keys/{id}/limits",
            get(keys::limits_page).post(keys::limits),
        )
        .route(
            "/dashboard/webhooks",
            get(webhooks::page).post(webhooks::create),
        )
        .route("/dashboard/webhooks/{id}", get(webhooks::endpoint))
        .route(
            "/dashboard/webhooks/{id}/active",
            post(webhooks::set_active),
        )
        .route(
            "/dashboard/integrations",
            get(integrations::page).post(integrations::create_key),
        )
        .route("/dashboard/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/dashboard/webhooks/{id}/rotate-secret",
            get(webhooks::rotate_secret_page).post(webhooks::rotate_secret),
        )
        .route(
            "/dashboard/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route(
            "/dashboard/oauth/authorize",
            get(consent::show).post(consent::decide),
        )
        .route("/dashboard/calls", get(calls::page))
        .route("/dashboard/analytics", get(analytics::page))
        .route("/dashboard/calls/{id}", get(calls::call))
        .route(
            "/dashboard/contacts",
            get(contacts::page).post(contacts::create),
        )
        .route(
            "/dashboard/contacts/{id}",
            get(contacts::contact).post(contacts::update),
        )
        .route(
            "/dashboard/contacts/{id}/delete",
            get(contacts::delete_page).post(contacts::delete),
        )
        .route("/dashboard/contacts/{id}/notes", post(contacts::add_note))
        .route("/dashboard/conversations", get(conversations::page))
        .route("/dashboard/messages", post(conversations::send_new))
        .route(
            "/dashboard/conversations/{id}",
            get(conversations::conversation),
        )
        .route(
            "/dashboard/conversations/{id}/messages",
            post(conversations::reply),
        )
        .route(
            "/dashboard/conversations/{id}/notes",
            post(conversations::add_note),
        )
        .route("/dashboard/numbers", get(numbers::page).post(numbers::buy))
        .route(
            "/dashboard/numbers/{id}",
            get(numbers::number).post(numbers::route),
        )
        .route(
            "/dashboard/numbers/{id}/release",
            get(numbers::release_page).post(numbers::release),
        )
        .route("/dashboard/agents", get(agents::page).post(agents::create))
        .route(
            "/dashboard/agents/{id}",
            get(agents::agent).post(agents::update),
        )
        .route(
            "/dashboard/agents/{id}/delete",
            get(agents::delete_page).post(agents::delete),
        )
        .route(
            "/dashboard/campaigns",
            get(campaigns::page).post(campaigns::create),
        )
        .route("/dashboard/campaigns/preview", post(campaigns::preview))
        .route("/dashboard/campaigns/{id}", get(campaigns::campaign))
        .route(
            "/dashboard/campaigns/{id}/progress",
            get(campaigns::progress),
        )
        .route(
            "/dashboard/campaigns/{id}/status",
            post(campaigns::set_status),
        )
        .route(
            "/dashboard/campaigns/{id}/cancel",
            get(campaigns::cancel_page).post(campaigns::cancel),
        )
        .route("/dashboard/billing", get(billing::page))
        .route("/dashboard/audit", get(audit::page))
        .layer(from_fn(security_headers))
        .route("/assets/htmx.min.js", get(htmx))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .route("/assets/favicon.svg", get(favicon))
}

/// The vendored htmx (npm `htmx.org`, see `assets/README.md` for version and checksum).
const HTMX: &str = include_str!("../../assets/htmx.min.js");
const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", HTMX)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

/// Pages are never cached (one shows a secret) nor framed; scripts and styles come
/// from this server only.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // A response that set its own policy keeps it (the consent page's redirect to
    // the OAuth client must be allowed as a form target).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// A failure shown as a page: the status of the API's mapping, a human message.
#[derive(Debug)]
pub(crate) struct DashError(pub Error);

impl From<Error> for DashError {
    fn from(e: Error) -> Self {
        DashError(e)
    }
}

pub(crate) type DashResult<T> = Result<T, DashError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = crate::error::status_of(&e);
        let (title, message) = match &e {
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "dashboard: internal error");
                (
                    "Something went wrong",
                    "An internal error occurred. Try again; if it persists, the server logs have the details.".to_owned(),
                )
            }
            Error::Unavailable => (
                "Temporarily unavailable",
                "The database is unavailable; retry shortly.".to_owned(),
            ),
            Error::NotFound { resource } => ("Not found", format!("No such {resource}.")),
            Error::Forbidden { message, .. } => ("Not allowed", message.clone()),
            Error::RateLimited { .. } => (
                "Too many attempts",
                "Too many attempts. Wait a few minutes and try again.".to_owned(),
            ),
            other => ("That did not work", other.to_string()),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message,
        };
        let mut resp = render_status(status, &page);
        if let Error::RateLimited { retry_after_secs } = e {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        resp
    }
}

/// Renders a template as a 200 page.
pub(crate) fn render(t: &impl Template) -> Response {
    render_status(StatusCode::OK, t)
}

pub(crate) fn render_status(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

/// The query string of a dashboard page. A query that does not deserialize (a repeated
/// or malformed parameter) is worded as the API words it
/// ([`crate::error::query_rejected`]: a validation error) and shown as the dashboard's
/// 400 page rather than axum's plain-text rejection. Values that deserialize (a NUL
/// included) are the page's to check, as it does its filters and cursors.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for Query<T>
{
    type Rejection = DashError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| DashError(crate::error::query_rejected(e)))
    }
}

/// A submitted `application/x-www-form-urlencoded` body. Repeated fields (checkboxes)
/// keep every value.
#[derive(Default)]
pub struct Form(Vec<(String, String)>);

/// Field names only: forms carry passwords and CSRF tokens.
impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Form {
    /// The fields of a form body. NUL characters (no browser sends them from a form;
    /// PostgreSQL cannot store them) are dropped, so both databases see the same text.
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.replace('\0', ""), v.replace('\0', "")))
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A text field, trimmed; empty counts as absent.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of a repeated field (checkboxes), in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn checked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty() && v != "0")
    }
}

/// A cookie sent by the browser.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (directly per `--public-url`, or through
/// a trusted proxy's `X-Forwarded-Proto`): cookies are then `Secure`.
pub(crate) fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    let forwarded = state.config.trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    forwarded
        || state
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` over HTTPS;
/// `max_age` 0 deletes it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// `2026-11-23 10:04 UTC`, or a dash.
pub(crate) fn when(t: Option<dialtone_domain::time::Timestamp>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A 303 to `to` (after a form); a location that is not a valid header value (which
/// would make axum panic) goes to the keys page instead.
pub(crate) fn see_other(to: &str) -> Response {
    let to = if HeaderValue::from_str(to).is_ok() {
        to
    } else {
        "/dashboard/keys"
    };
    Redirect::to(to).into_response()
}
