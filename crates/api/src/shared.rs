//! Pieces every resource's routes use: page parameters, the delete answer, id checks,
//! `Idempotency-Key` handling.

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dialtone_domain::id::looks_like;
use dialtone_domain::idempotency::{Idem, IdempotencyKey, Outcome, StoredResponse};
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
    answer(outcome, idem, |v| {
        (StatusCode::CREATED, axum::Json(v)).into_response()
    })
}

/// The answer to a request that takes an `Idempotency-Key`: `fresh` made of what it
/// did, or the replay of the first answer given for that key (409 if the key came
/// with another request).
pub fn answer<T>(
    outcome: Outcome<T>,
    idem: Option<&IdempotencyKey>,
    fresh: impl FnOnce(T) -> Response,
) -> crate::error::ApiResult<Response> {
    match (outcome, idem) {
        (Outcome::Done(v), _) => Ok(fresh(v)),
        (Outcome::Replay(stored), Some(key)) => Ok(replay(stored.replay_for(key)?)),
        (Outcome::Replay(_), None) => Err(Error::internal(std::io::Error::other(
            "a replay without an idempotency key",
        ))
        .into()),
    }
}

/// `Idem` for a request answered `status` with `body(done)`: the same answer, fresh
/// or replayed (for answers that hold no secret).
pub fn same_answer<T>(
    key: Option<&IdempotencyKey>,
    answer: fn(&T) -> Result<(u16, String)>,
) -> Option<Idem<'_, T>> {
    key.map(|key| Idem { key, answer })
}

/// An answer to store or send: `status` and `body` as JSON.
pub fn stored_json(status: u16, body: &impl Serialize) -> Result<(u16, String)> {
    Ok((
        status,
        serde_json::to_string(body).map_err(Error::internal)?,
    ))
}

/// A response from an answer made by an `Idem`'s function (the fresh twin of a replay).
pub fn respond(answer: Result<(u16, String)>) -> Response {
    match answer {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

/// The stored answer of an earlier request with this `Idempotency-Key`, read before
/// checks a retry could now fail (a URL that stopped resolving, an API key the first
/// request rotated or expired, the key limit the first request reached): a retry is
/// replayed whatever changed since. The claim inside the storage call still decides
/// between concurrent requests.
pub async fn early_replay(
    store: &dialtone_store::Scoped<'_>,
    idem: Option<&IdempotencyKey>,
) -> Result<Option<Response>> {
    if let Some(key) = idem
        && let Some(stored) = store.idempotent_response(key).await?
    {
        return Ok(Some(replay(stored.replay_for(key)?)));
    }
    Ok(None)
}

/// A whole body, or the one byte range `range` asks for (`bytes=a-b`, `bytes=a-`,
/// `bytes=-n`): 206 with `Content-Range`, or 416 when it lies outside. Anything else
/// (several ranges, another unit) gets the whole body, as RFC 9110 allows.
pub(crate) fn ranged(
    body: Vec<u8>,
    range: Option<&str>,
    content_type: &'static str,
    disposition: &str,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let len = body.len() as u64;
    let common = [
        (header::CONTENT_TYPE, content_type.to_owned()),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        (header::CONTENT_DISPOSITION, disposition.to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
    ];
    match range.map(|r| byte_range(r, len)) {
        Some(Some(Ok((start, end)))) => {
            let part = body[start as usize..=end as usize].to_vec();
            (
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
                part,
            )
                .into_response()
        }
        Some(Some(Err(()))) => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response(),
        _ => (common, body).into_response(),
    }
}

/// The inclusive byte range a single-range `Range` header asks of `len` bytes:
/// `None` when it is not one we serve (the whole body then), `Err` when unsatisfiable.
fn byte_range(header: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            if start >= len || end < start {
                return Some(Err(()));
            }
            (start, end.min(len - 1))
        }
        (true, true) => return None,
    };
    Some(Ok(range))
}

#[cfg(test)]
mod range_tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_as_players_send_them() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=500-", 1000), Some(Ok((500, 999))));
        assert_eq!(byte_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=5-4", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=-0", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=x-1", 1000), None);
        assert_eq!(byte_range("bytes=-", 1000), None);
    }
}
