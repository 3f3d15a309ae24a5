//! The one error type of dialtone.
//!
//! Every failure a caller can see is a variant here with a stable machine code
//! ([`Error::code`]). The HTTP crate maps variants to status codes in one place;
//! `Internal` carries the cause for the logs and is never shown to a caller.

use crate::permissions::Permission;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, malformed, unknown, revoked or expired key. Deliberately says nothing more.
    #[error("unauthorized")]
    Unauthorized,
    /// The key is valid but may not do this.
    #[error("{message}")]
    Forbidden {
        message: String,
        required_permission: Option<Permission>,
    },
    /// Well-formed but refused, e.g. a webhook URL on a private address (422).
    #[error("{message}")]
    Unprocessable {
        field: &'static str,
        message: String,
    },
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        details: Option<serde_json::Value>,
    },
    /// The wallet cannot pay for this (live mode only).
    #[error(
        "The wallet balance ({balance} cents) cannot cover this ({needed} cents). Add funds and retry."
    )]
    InsufficientBalance { needed: i64, balance: i64 },
    /// One of the calling key's limits refuses a call or message (403): which limit,
    /// its value and the key's current figure.
    #[error("{message}")]
    KeyLimitExceeded {
        limit: &'static str,
        value: serde_json::Value,
        current: serde_json::Value,
        message: String,
    },
    /// Live calling needs a carrier and none is configured.
    #[error(
        "Live calls are not enabled on this server: no carrier is configured. Use a test key, or ask the operator to enable one."
    )]
    CarrierUnavailable,
    /// The carrier refused or failed a request (its code, when it gave one).
    #[error("The carrier refused the request: {message}")]
    Carrier {
        code: Option<String>,
        message: String,
    },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("The request body is too large.")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("service unavailable")]
    Unavailable,
    /// A read took longer than the store's time budget and was stopped.
    #[error("query over its time budget")]
    QueryTimeout,
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The stable machine-readable code put in the `error` field of a response.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "Unauthorized",
            Error::Forbidden { .. } => "INSUFFICIENT_PERMISSIONS",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::Validation { .. } | Error::Unprocessable { .. } => "VALIDATION_ERROR",
            Error::Conflict { .. } => "CONFLICT",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            Error::KeyLimitExceeded { .. } => "KEY_LIMIT_EXCEEDED",
            Error::CarrierUnavailable => "CARRIER_UNAVAILABLE",
            Error::Carrier { .. } => "CARRIER_ERROR",
            Error::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Error::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Error::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Error::Unavailable => "SERVICE_UNAVAILABLE",
            Error::QueryTimeout => "QUERY_TIMEOUT",
            Error::Internal(_) => "INTERNAL_ERROR",
        }
    }

    pub fn forbidden(required: Permission) -> Self {
        Error::Forbidden {
            message: format!("This API key does not have the {required} permission."),
            required_permission: Some(required),
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::Validation {
            message: message.clone(),
            details: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(e))
    }
}

/// Collects field errors so a caller learns every problem with a body at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.push(field, message);
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Checks an optional text field's length in characters.
    pub fn max_len(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.check(
                v.chars().count() <= max,
                field,
                format!("{field} must be at most {max} characters"),
            );
        }
    }

    pub fn finish(self) -> Result<()> {
        match self.errors.first() {
            None => Ok(()),
            Some(first) => Err(Error::Validation {
                message: first.message.clone(),
                details: self.errors,
            }),
        }
    }
}
