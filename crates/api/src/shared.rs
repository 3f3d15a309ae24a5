//! Pieces every resource's routes use: page parameters, the delete answer, id checks,
//! `Idempotency-Key` handling.

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialtone_domain::id::looks_like;
use dialtone_domain::idempotency::{IdempotencyKey, Outcome, StoredResponse};
use dialtone_domain::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `meta.next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub id: String,
    #[schema(example = "contact")]
    pub object: &'static str,
    pub deleted: bool,
}

impl Deleted {
    pub fn new(id: String, object: &'static str) -> Self {
        Deleted {
            id,
            object,
            deleted: true,
        }
    }
}

/// An id of the wrong shape cannot exist: answer 404 without asking the database.
pub fn checked_id<'a>(prefix: &str, resource: &'static str, id: &'a str) -> Result<&'a str> {
    if looks_like(prefix, id) {
        Ok(id)
    } else {
        Err(Error::NotFound { resource })
    }
}

/// The `Idempotency-Key` of a request, fingerprinted with its method, path and body.
pub fn idempotency_key(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Option<IdempotencyKey>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                Error::validation("Idempotency-Key", "Idempotency-Key must be visible ASCII")
            })?;
            IdempotencyKey::new(key, method, path, body).map(Some)
        }
    }
}

/// The stored answer of an earlier request with the same `Idempotency-Key`.
pub fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (HeaderName::from_static("idempotent-replayed"), "true"),
        ],
        stored.body,
    )
        .into_response()
}

/// The answer to a creation that takes an `Idempotency-Key`: 201 with the new object,
/// or the replay of the first answer given for that key.
pub fn created<T: Serialize>(
    outcome: Outcome<T>,
    idem: Option<&IdempotencyKey>,
) -> crate::error::ApiResult<Response> {
    match (outcome, idem) {
        (Outcome::Done(v), _) => Ok((StatusCode::CREATED, axum::Json(v)).into_response()),
        (Outcome::Replay(stored), Some(key)) => Ok(replay(stored.replay_for(key)?)),
        (Outcome::Replay(_), None) => Err(Error::internal(std::io::Error::other(
            "a replay without an idempotency key",
        ))
        .into()),
    }
}
