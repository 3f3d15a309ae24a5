//! How errors look on the wire: the one place a [`Error`] becomes an HTTP response.
//!
//! Policy: every error body is `{"statusCode", "error", "message", …}` with a stable
//! `error` code; 401 is exactly `{"statusCode":401,"message":"Unauthorized",
//! "error":"Unauthorized"}`; internal causes are logged with the request id and never
//! echoed. Body and query rejections from axum are turned into the same shape by the
//! [`Json`] and [`Query`] extractors of this module.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialtone_domain::{Error, FieldError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error body of every non-2xx answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[serde(rename = "statusCode")]
    #[schema(example = 403)]
    pub status_code: u16,
    #[schema(example = "INSUFFICIENT_PERMISSIONS")]
    pub error: &'static str,
    pub message: String,
    /// The permission that was missing (403 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "contacts:write")]
    pub required_permission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorDetails>)]
    pub details: Option<serde_json::Value>,
}

/// What `details` holds: the fields at fault (400 and 422 `VALIDATION_ERROR`), or
/// facts about the refusal (402: `needed`, `balance`, `currency`; some 409s).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: the body is built as JSON in `into_response`
pub enum ErrorDetails {
    Fields(Vec<dialtone_domain::FieldError>),
    Facts(std::collections::BTreeMap<String, serde_json::Value>),
}

/// The exact 401 body (seed 001).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnauthorizedBody {
    #[serde(rename = "statusCode")]
    #[schema(example = 401)]
    pub status_code: u16,
    #[schema(example = "Unauthorized")]
    pub message: &'static str,
    #[schema(example = "Unauthorized")]
    pub error: &'static str,
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Unauthorized => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } | Error::KeyLimitExceeded { .. } => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Validation { .. } => StatusCode::BAD_REQUEST,
        Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::InsufficientBalance { .. } => StatusCode::PAYMENT_REQUIRED,
        Error::CarrierUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Error::Carrier { .. } => StatusCode::BAD_GATEWAY,
        Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Error::Unavailable | Error::QueryTimeout => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status_of(&e);
        if let Error::Unauthorized = e {
            let mut resp = (
                status,
                axum::Json(UnauthorizedBody {
                    status_code: 401,
                    message: "Unauthorized",
                    error: "Unauthorized",
                }),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let message = match &e {
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                "An internal error occurred. The request id identifies it in the logs.".to_owned()
            }
            Error::Unavailable => "The database is unavailable; retry shortly.".to_owned(),
            Error::QueryTimeout => {
                "This request took longer than its time budget and was stopped. \
                                    Narrow it (a shorter range, more filters) and retry."
                    .to_owned()
            }
            Error::NotFound { resource } => format!("No such {resource}."),
            other => other.to_string(),
        };
        let (required_permission, details) = match &e {
            Error::Forbidden {
                required_permission,
                ..
            } => (required_permission.map(|p| p.to_string()), None),
            Error::Validation { details, .. } => (None, serde_json::to_value(details).ok()),
            Error::Unprocessable { field, message } => (
                None,
                Some(serde_json::json!([{ "field": field, "message": message }])),
            ),
            Error::Conflict { details, .. } => (None, details.clone()),
            Error::KeyLimitExceeded {
                limit,
                value,
                current,
                ..
            } => (
                None,
                Some(serde_json::json!({ "limit": limit, "value": value, "current": current })),
            ),
            Error::InsufficientBalance { needed, balance } => (
                None,
                Some(
                    serde_json::json!({ "needed": needed, "balance": balance, "currency": dialtone_domain::billing::CURRENCY }),
                ),
            ),
            _ => (None, None),
        };
        let mut resp = (
            status,
            axum::Json(ErrorBody {
                status_code: status.as_u16(),
                error: e.code(),
                message,
                required_permission,
                details,
            }),
        )
            .into_response();
        if let Error::RateLimited { retry_after_secs } = e {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        resp
    }
}

/// A JSON body, parsed, with rejections in dialtone's error shape.
pub struct Json<T>(pub T);

/// A JSON body and its raw bytes (to fingerprint it for `Idempotency-Key`).
pub struct JsonBytes<T>(pub T, pub Bytes);

/// Reads and parses a JSON body: 415 without a JSON content type, 413 past the body
/// limit, 400 for text that is not JSON or JSON of the wrong shape.
async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<(T, Bytes), Error> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !is_json {
        return Err(Error::UnsupportedMediaType(
            "Send the body as JSON with Content-Type: application/json.".to_owned(),
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::Validation {
                message: r.body_text(),
                details: vec![],
            }
        }
    })?;
    if let Some(field) = nul_in_json(&bytes) {
        return Err(nul_error(&field));
    }
    parse_object(&bytes).map(|v| (v, bytes))
}

/// Parses a request body that must be a JSON object. serde would otherwise accept an
/// array for a struct (`[null, null]` as a patch), which no operation documents.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Error::Validation {
            message: "The body must be a JSON object.".to_owned(),
            details: vec![FieldError {
                field: "body".to_owned(),
                message: "expected a JSON object".to_owned(),
            }],
        });
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(e) => Err(match e.classify() {
            serde_json::error::Category::Data => {
                let message = e.to_string();
                Error::Validation {
                    message: format!("The body does not match the expected shape: {message}"),
                    details: vec![FieldError {
                        field: "body".to_owned(),
                        message,
                    }],
                }
            }
            _ => Error::Validation {
                message: format!("The body is not valid JSON: {e}"),
                details: vec![],
            },
        }),
    }
}

/// A NUL character is refused everywhere (PostgreSQL cannot store one in text).
fn nul_error(field: &str) -> Error {
    Error::validation(
        field,
        format!("{field} must not contain NUL characters (\\u0000)"),
    )
}

/// The first field of a JSON body whose text (or one of whose keys) holds a NUL
/// character: `name`, `custom_fields.key`, `events[2]`, or `body` for the top level.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    // JSON can only carry a NUL escaped; most bodies are skipped at this cheap test.
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        let name = |p: &str| {
            if p.is_empty() {
                "body".to_owned()
            } else {
                p.to_owned()
            }
        };
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(name(path)),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{}[{i}]", name(path)))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
                if k.contains('\0') {
                    return Some(name(path));
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(item, &child)
            }),
            _ => None,
        }
    }
    walk(&value, "")
}

/// The first query parameter whose name or value holds a NUL character (`%00`).
fn nul_in_query(query: Option<&str>) -> Option<String> {
    let query = query?;
    if !query.contains("%00") {
        return None;
    }
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| {
        if k.contains('\0') {
            Some("query".to_owned())
        } else if v.contains('\0') {
            Some(k.into_owned())
        } else {
            None
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Json(read_json(req, state).await?.0))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (v, bytes) = read_json(req, state).await?;
        Ok(JsonBytes(v, bytes))
    }
}

/// `axum::extract::Query` with rejections in dialtone's error shape.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(field) = nul_in_query(parts.uri.query()) {
            return Err(ApiError(nul_error(&field)));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError(query_rejected(e))),
        }
    }
}

/// A query string that does not deserialize (a repeated or malformed parameter), as
/// a validation error. The dashboard's query extractor words it the same way.
pub(crate) fn query_rejected(rejection: QueryRejection) -> Error {
    match rejection {
        QueryRejection::FailedToDeserializeQueryString(e) => Error::Validation {
            message: format!("Invalid query string: {}", e.body_text()),
            details: vec![],
        },
        other => Error::Validation {
            message: other.body_text(),
            details: vec![],
        },
    }
}
