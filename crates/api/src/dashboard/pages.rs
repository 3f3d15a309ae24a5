//! What the resource pages share: the confirmation page that stands in for a dialog
//! without JavaScript, form errors explained in words (402 and 503 included), the
//! status a refused form answers with, and "older" links for cursor paging.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use dialtone_domain::Error;
use dialtone_domain::billing::format_amount;
use dialtone_domain::idempotency::Outcome;
use dialtone_domain::page::encode_cursor;

use super::session::{Nav, Session};
use super::{DashError, DashResult, render, render_status};

/// Rows per page of the dashboard's lists.
pub(crate) const PAGE: u32 = 25;

/// A destructive action asked once more, as a page of its own: works without scripts
/// and by keyboard (the button is the first control after the text).
#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub nav: Nav,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: String,
    pub cancel: String,
    /// A destructive action (a red button) rather than a change to confirm.
    pub danger: bool,
}

/// A change asked once more as a page of its own (the button not red): what a
/// dialog's question becomes without scripts.
pub(crate) fn ask(
    session: &Session,
    active: &'static str,
    here: &str,
    title: String,
    message: String,
    button: &str,
    cancel: &str,
) -> Response {
    render(&ConfirmPage {
        nav: session.nav(active, here),
        title,
        message,
        action: here.to_owned(),
        button: button.to_owned(),
        cancel: cancel.to_owned(),
        danger: false,
    })
}

pub(crate) fn confirm(
    session: &Session,
    active: &'static str,
    here: &str,
    title: String,
    message: String,
    button: &str,
    cancel: &str,
) -> Response {
    render(&ConfirmPage {
        nav: session.nav(active, here),
        title,
        message,
        action: here.to_owned(),
        button: button.to_owned(),
        cancel: cancel.to_owned(),
        danger: true,
    })
}

/// The words a person reads when a form is refused: every field's problem, and for
/// money or carrier refusals what happened and what to do.
pub(crate) fn explain(e: &Error) -> String {
    match e {
        Error::Validation { details, message } if !details.is_empty() => {
            let mut parts: Vec<String> = details.iter().map(|d| d.message.clone()).collect();
            parts.dedup();
            if parts.is_empty() {
                message.clone()
            } else {
                parts.join(" ")
            }
        }
        Error::InsufficientBalance { needed, balance } => format!(
            "Not sent: the live wallet cannot pay (402). This needs ${} and the balance is ${}. \
             Add funds to the wallet (the operator's `dialtone billing credit`), or switch to test mode.",
            format_amount(*needed),
            format_amount(*balance)
        ),
        Error::CarrierUnavailable => "Not sent: live mode has no carrier configured on this server (503). \
             Test mode works without one; the operator enables live messaging with --carrier twilio."
            .to_owned(),
        Error::Carrier { .. } => format!("The carrier refused: {e} (502). Nothing was charged."),
        other => other.to_string(),
    }
}

/// The status of a refused form: the API's mapping of the error.
pub(crate) fn refused_status(e: &Error) -> StatusCode {
    crate::error::status_of(e)
}

/// Errors a form shows next to itself; anything else (a role refusal, a missing
/// object, the database) becomes the error page.
pub(crate) fn form_error(e: Error) -> DashResult<(StatusCode, String)> {
    match e {
        Error::Validation { .. }
        | Error::Unprocessable { .. }
        | Error::Conflict { .. }
        | Error::InsufficientBalance { .. }
        | Error::CarrierUnavailable
        | Error::Carrier { .. } => Ok((refused_status(&e), explain(&e))),
        other => Err(DashError(other)),
    }
}

/// Renders `t` with `status` (a refused form keeps its 4xx).
pub(crate) fn render_with(status: StatusCode, t: &impl Template) -> Response {
    render_status(status, t)
}

/// The "older" link of a list: `base` with its query `pairs` and the cursor after
/// `last_id`, when there is more.
pub(crate) fn older_link(
    base: &str,
    pairs: &[(&str, &str)],
    more: bool,
    last_id: Option<&str>,
) -> Option<String> {
    if !more {
        return None;
    }
    let last = last_id?;
    let mut qs = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            qs.append_pair(k, v);
        }
    }
    qs.append_pair("cursor", &encode_cursor(last));
    Some(format!("{base}?{}", qs.finish()))
}

/// `$12.34`.
pub(crate) fn dollars(cents: i64) -> String {
    if cents < 0 {
        format!("-${}", format_amount(-cents))
    } else {
        format!("${}", format_amount(cents))
    }
}

/// What a write without an `Idempotency-Key` did (the dashboard sends none: a form
/// posted twice is two requests, as in the API without the header).
pub(crate) fn done<T>(outcome: Outcome<T>) -> dialtone_domain::Result<T> {
    match outcome {
        Outcome::Done(v) => Ok(v),
        Outcome::Replay(_) => Err(Error::internal(std::io::Error::other(
            "a replay without an idempotency key",
        ))),
    }
}
